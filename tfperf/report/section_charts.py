"""The charts of the per-case sections beyond step time (tfperf.report.sections): deployment modes' latency,
size and cold start, a serve-bench load test's latency histogram, and tf.distribute scaling. Each returns an
inline SVG string (tfperf.report.chart_style), or None when there is nothing to draw.
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib

from tfperf.report.chart_style import MODE_COLORS, RC, log_axis, mode_color, new_figure, to_svg


def deployment_chart(rows: Sequence[dict], prefix: str) -> str | None:
    """Two panels: latency per mode (grouped by batch size) and model size per mode.

    rows: [{mode, batch_size, latency_s, size_bytes}]; a missing size (function, xla) leaves no size bar.
    """
    lat = [r for r in rows if r.get("latency_s") and math.isfinite(r["latency_s"])]
    if not lat:
        return None
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    sizes = sorted({r.get("batch_size") for r in lat}, key=lambda b: (b is None, b or 0))
    size_of: dict[str, float] = {}
    for r in rows:  # the artefact's size barely moves with the batch size: one bar per mode
        if r.get("size_bytes") and r["mode"] not in size_of:
            size_of[r["mode"]] = r["size_bytes"] / 2**20
    # Cold start = loading the artefact + the first call: a SavedModel's load can dwarf its first call.
    cold = {}
    for r in rows:
        if r.get("first_call_s") is not None and r["mode"] not in cold:
            cold[r["mode"]] = (r.get("load_time_s") or 0.0, r["first_call_s"])
    fig = new_figure(max(8.4, 3.4 + 0.45 * len(modes) * (len(sizes) + 2)), 2.8)
    with matplotlib.rc_context(RC):
        ax, axs, axc = fig.subplots(1, 3, width_ratios=[max(1, len(sizes)) * 1.4, 1, 1])
        width = 0.8 / len(modes)
        for i, mode in enumerate(modes):
            xs, ys = [], []
            for j, bs in enumerate(sizes):
                for r in lat:
                    if r["mode"] == mode and r.get("batch_size") == bs:
                        xs.append(j + (i - (len(modes) - 1) / 2) * width)
                        ys.append(r["latency_s"] * 1000.0)
            ax.bar(xs, ys, width=width * 0.95, color=mode_color(mode), label=mode)
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([f"batch {b}" if b is not None else "" for b in sizes])
        ax.set_ylabel("ms per call (median)")
        ax.set_title("Latency per mode", loc="left")
        vals = [r["latency_s"] for r in lat]
        if min(vals) > 0 and max(vals) / min(vals) > 20:  # TF Lite and tf.function can be 100× apart
            log_axis(ax, "y", max(vals) / min(vals))
        ax.legend(
            fontsize=7, frameon=False, ncols=min(len(modes), 3), loc="upper left", bbox_to_anchor=(0, -0.12)
        )
        if size_of:
            names = list(size_of)
            bars = axs.bar(
                range(len(names)), [size_of[m] for m in names], color=[mode_color(m) for m in names]
            )
            axs.bar_label(bars, labels=[f"{size_of[m]:.2g}" for m in names], fontsize=7, padding=1)
            axs.set_xticks(range(len(names)))
            axs.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
            axs.margins(y=0.15)
        else:
            axs.set_xticks([])
        axs.set_ylabel("MiB")
        axs.set_title("Model size", loc="left")
        if cold:
            names = list(cold)
            loads = [cold[m][0] * 1000.0 for m in names]
            firsts = [cold[m][1] * 1000.0 for m in names]
            axc.bar(
                range(len(names)),
                loads,
                color=[mode_color(m) for m in names],
                alpha=0.45,
                hatch="//",
                edgecolor="#333",
                linewidth=0.4,
            )
            bars = axc.bar(range(len(names)), firsts, bottom=loads, color=[mode_color(m) for m in names])
            axc.bar_label(bars, labels=[f"{a + b:.3g}" for a, b in zip(loads, firsts)], fontsize=7, padding=1)
            axc.set_xticks(range(len(names)))
            axc.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
            axc.margins(y=0.15)
            axc.set_ylabel("ms (hatched: load)")
            axc.set_title("Cold start: load + first call", loc="left")
        else:
            axc.set_axis_off()
    return to_svg(fig, prefix)


def latency_histogram(samples_s: Sequence[float], marks: dict[str, float], prefix: str) -> str | None:
    """Histogram of request latencies in ms, with the percentiles in `marks` ({"p50": seconds, ...}) drawn as
    lines."""
    data = [v * 1000.0 for v in samples_s if math.isfinite(v)]
    if not data:
        return None
    fig = new_figure(4.6, 2.6)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        bins = max(5, min(40, int(math.sqrt(len(data))) + 1))
        ax.hist(data, bins=bins, color=MODE_COLORS["savedmodel"], alpha=0.7, edgecolor="white", linewidth=0.5)
        styles = {"p50": "-", "p90": "--", "p99": ":"}
        for name, v in marks.items():
            if v is None or not math.isfinite(v):
                continue
            ax.axvline(v * 1000.0, color="#333", linestyle=styles.get(name, "-."), linewidth=1)
            ax.annotate(
                name,
                (v * 1000.0, 1),
                xycoords=("data", "axes fraction"),
                xytext=(2, -2),
                textcoords="offset points",
                fontsize=7,
                va="top",
                color="#333",
            )
        ax.set_xlabel("ms per request (successful requests)")
        ax.set_ylabel("requests")
        ax.set_title("Request latency", loc="left")
    return to_svg(fig, prefix)


def scaling_chart(rows: Sequence[dict], prefix: str) -> str | None:
    """tf.distribute scaling: samples/s with 1 replica and with N, the ideal linear line, efficiency
    annotated.

    rows: [{label, mode, replicas, base, value, efficiency}] with base / value in samples/s.
    """
    rows = [
        r
        for r in rows
        if r.get("base")
        and r.get("value")
        and r.get("replicas")
        and math.isfinite(r["base"])
        and math.isfinite(r["value"])
    ]
    if not rows:
        return None
    fig = new_figure(4.6, 2.6)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        xs = sorted({1} | {int(r["replicas"]) for r in rows})
        for r in rows:
            n, color = int(r["replicas"]), mode_color(r["mode"])
            ax.plot([1, n], [r["base"], r["base"] * n], color=color, linestyle=":", linewidth=1.2)
            ax.plot(
                [1, n],
                [r["base"], r["value"]],
                color=color,
                marker="o",
                markersize=4,
                linewidth=1.8,
                label=r["label"],
            )
            if r.get("efficiency") is not None:
                ax.annotate(
                    f"{r['efficiency']:.0%} efficient",
                    (n, r["value"]),
                    xytext=(-4, -10),
                    textcoords="offset points",
                    fontsize=7,
                    ha="right",
                    va="top",
                    color="#333",
                )
        ax.plot([], [], color="#555", linestyle=":", linewidth=1.2, label="ideal (linear)")
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs])
        ax.set_xlim(0.7, max(xs) + 0.3)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("replicas (same per-replica batch)")
        ax.set_ylabel("samples/s")
        ax.set_title("Scaling with replicas", loc="left")
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    return to_svg(fig, prefix)
