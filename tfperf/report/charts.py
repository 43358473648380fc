"""The step-time charts of the HTML pages: a case's throughput, its steps in the order they ran, the payback
of a dearer first call, the what-if re-runs, and a comparison's ratios. Each returns an inline SVG string
(tfperf.report.chart_style), or None when a chart would say nothing a table row does not.
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib

from tfperf.report.chart_style import MODE_COLORS, RC, log_axis, mode_color, mode_style, new_figure, to_svg


def throughput_chart(rows: Sequence[dict], prefix: str) -> str | None:
    """Bars: throughput per mode, one group per batch size, each bar labelled with its mode and value.

    rows: [{mode, batch_size, value}] with value in samples/s (steps/s when there is no batch size). One bar
    says nothing a table row does not: no chart then.
    """
    rows = [r for r in rows if r.get("value") and math.isfinite(r["value"])]
    if len(rows) < 2:
        return None
    unit = "samples/s" if all(r.get("batch_size") for r in rows) else "steps/s"
    sizes = sorted({r.get("batch_size") for r in rows}, key=lambda b: (b is None, b or 0))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig = new_figure(max(4.0, 1.1 + 0.7 * len(modes) * len(sizes)), 2.6)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        width = 0.8 / len(modes)
        for i, mode in enumerate(modes):
            xs, ys = [], []
            for j, bs in enumerate(sizes):
                for r in rows:
                    if r["mode"] == mode and r.get("batch_size") == bs:
                        xs.append(j + (i - (len(modes) - 1) / 2) * width)
                        ys.append(r["value"])
            bars = ax.bar(xs, ys, width=width * 0.95, color=mode_color(mode), label=mode)
            # Direct labels: the mode and its value on the bar, no legend to look up.
            ax.bar_label(bars, labels=[f"{mode}\n{_short(y)}" for y in ys], fontsize=7, padding=1)
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([f"batch {b}" if b is not None else "" for b in sizes])
        ax.set_ylabel(unit)
        ax.set_title("Throughput (from the median step)", loc="left")
        ax.margins(y=0.25)
    return to_svg(fig, prefix)


def step_time_series(series: Sequence[dict], prefix: str) -> str | None:
    """Every timed step in the order it ran, one line per mode, in ms: warm-up drift and a process that ran
    slower than the others show here, where a box plot would pool them away.

    series: [{label, mode, samples, process_starts}] with process_starts the sample indices where a new worker
    process began (marked as dotted lines). A log axis when the modes differ by more than 10×.
    """
    series = [s for s in series if s.get("samples")]
    if len(series) < 2:
        return None
    fig = new_figure(6.0, 2.8)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        longest = max(len(s["samples"]) for s in series)
        for s in series:
            ys = [v * 1000.0 for v in s["samples"]]
            ax.plot(
                range(1, len(ys) + 1),
                ys,
                color=mode_color(s["mode"]),
                linestyle=mode_style(s["mode"]),
                linewidth=1.3,
                marker="o",
                markersize=1.8,
                label=s["label"],
            )
            # The label at the end of its line: the eye does not travel to a legend.
            ax.annotate(
                s["label"].replace("\n", " "),
                (len(ys), ys[-1]),
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=7,
                va="center",
                color=mode_color(s["mode"]),
            )
        starts = sorted({i for s in series for i in s.get("process_starts") or [] if i > 0})
        for i in starts:
            ax.axvline(i + 0.5, color="#777", linestyle=":", linewidth=0.8)
        if starts:
            ax.annotate(
                "new process",
                (starts[0] + 0.5, 1),
                xycoords=("data", "axes fraction"),
                xytext=(2, -2),
                textcoords="offset points",
                fontsize=6.5,
                va="top",
                color="#555",
            )
        lo = min(min(s["samples"]) for s in series)
        hi = max(max(s["samples"]) for s in series)
        if lo > 0 and hi / lo > 10:  # eager at 180 ms would squash 20 ms modes into one line
            log_axis(ax, "y", hi / lo)
        ax.set_xlim(0.5, longest * 1.18 + 1)
        ax.set_xlabel("timed step, in the order it ran (repeats and processes one after another)")
        ax.set_ylabel("ms per step")
        ax.set_title("Step time, step by step", loc="left")
    return to_svg(fig, prefix)


def payback_chart(lines: Sequence[dict], ref: dict, payback: dict | None, prefix: str) -> str | None:
    """Cumulative time of each mode minus the reference mode's (tf.function), after n steps past the first
    call: first_call + n × step - (first_call_ref + n × step_ref). The reference is the zero line; a mode
    whose line falls through zero has paid back its dearer first call there (`figures.measures.payback`, the
    step the `payback` mark and the advisor's suggestion quote).

    lines: [{label, mode, first_call_s, median_s}] without the reference; ref: the same for the reference
    mode.
    """
    lines = [ln for ln in lines if ln.get("first_call_s") is not None and ln.get("median_s")]
    if not lines or ref.get("first_call_s") is None or not ref.get("median_s"):
        return None
    horizon = 100
    if payback and payback.get("steps"):
        horizon = max(horizon, int(payback["steps"] * 2))
    fig = new_figure(5.2, 2.8)
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        ns = [0, horizon]
        ax.axhline(0, color=mode_color(ref["mode"]), linestyle=mode_style(ref["mode"]), linewidth=1.5)
        ax.annotate(
            f"{ref['label']} (reference)",
            (horizon, 0),
            xytext=(-2, 3),
            textcoords="offset points",
            fontsize=7,
            ha="right",
            va="bottom",
            color=mode_color(ref["mode"]),
        )
        for ln in lines:
            ys = [
                (ln["first_call_s"] - ref["first_call_s"]) + n * (ln["median_s"] - ref["median_s"])
                for n in ns
            ]
            ax.plot(
                ns,
                ys,
                color=mode_color(ln["mode"]),
                linestyle=mode_style(ln["mode"]),
                linewidth=1.6,
                label=ln["label"],
            )
            ax.annotate(
                ln["label"],
                (ns[-1], ys[-1]),
                xytext=(-2, 3),
                textcoords="offset points",
                fontsize=7,
                ha="right",
                va="bottom",
                color=mode_color(ln["mode"]),
            )
        if payback and payback.get("steps"):
            ax.axvline(payback["steps"], color="#555", linestyle="--", linewidth=1)
            ax.annotate(
                payback.get("label", ""),
                (payback["steps"], 0),
                xytext=(3, -10),
                textcoords="offset points",
                fontsize=7,
                color="#333",
                va="top",
            )
        ax.set_xlabel("steps after the first call")
        ax.set_ylabel(f"seconds more than {ref['label']}")
        ax.set_title(
            f"Cumulative time against {ref['label']}: below zero, the mode has paid back", loc="left"
        )
        ax.set_xlim(0, horizon)
    return to_svg(fig, prefix)


def what_if_chart(
    rows: Sequence[dict], prefix: str, title: str = "The naive pipeline and each measured change"
) -> str | None:
    """The naive pipeline and each change re-measured on it, as horizontal bars of ms per step, fastest last,
    each labelled with its time and speed-up: one picture of the naive → fixes answer.

    rows: [{label, median_s, speedup, helped}]; the first row is the naive baseline.
    """
    rows = [r for r in rows if r.get("median_s") and math.isfinite(r["median_s"])]
    if len(rows) < 2:
        return None
    base, rest = rows[0], sorted(rows[1:], key=lambda r: -r["median_s"])
    rows = [base, *rest]
    fig = new_figure(6.0, 0.9 + 0.32 * len(rows))
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        ys = list(range(len(rows)))[::-1]
        colors = ["#999999"] + [MODE_COLORS["xla"] if r.get("helped") else "#D55E00" for r in rest]
        bars = ax.barh(ys, [r["median_s"] * 1000.0 for r in rows], color=colors, height=0.7)
        labels = [
            f"{r['median_s'] * 1000.0:.3g} ms"
            + (f"  {r['speedup']:.2f}×" if r.get("speedup") else "")
            + ("" if i == 0 or r.get("helped") else "  (did not help)")
            for i, r in enumerate(rows)
        ]
        ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
        ax.set_yticks(ys)
        ax.set_yticklabels([r["label"] for r in rows], fontsize=7)
        ax.set_xlabel("ms per step (median)")
        ax.set_title(title, loc="left")
        ax.margins(x=0.3)
        ax.grid(axis="y", alpha=0)
    return to_svg(fig, prefix)


def ratio_chart(rows: Sequence[dict], threshold: float, prefix: str) -> str | None:
    """Comparison: ratio of medians (current / base) with its confidence interval, one line per row.

    rows: [{label, ratio, ci_low, ci_high, verdict}]
    """
    rows = [r for r in rows if r.get("ratio")]
    if not rows:
        return None
    colors = {
        "regression": "#d62728",
        "improvement": "#2ca02c",
        "inconclusive": "#ff7f0e",
        "unchanged": "#555555",
    }
    fig = new_figure(6.4, 0.9 + 0.28 * len(rows))
    with matplotlib.rc_context(RC):
        ax = fig.add_subplot()
        ys = list(range(len(rows)))[::-1]
        for y, r in zip(ys, rows):
            lo, hi = r.get("ci_low"), r.get("ci_high")
            c = colors.get(r.get("verdict"), "#555555")
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [y, y], color=c, linewidth=2, alpha=0.6)
            ax.plot([r["ratio"]], [y], marker="o", color=c, markersize=5)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.axvspan(1 / (1 + threshold), 1 + threshold, color="#999", alpha=0.15, linewidth=0)
        ax.set_yticks(ys)
        ax.set_yticklabels([r["label"] for r in rows], fontsize=7)
        ax.set_xlabel("current / base median step time (shaded: within threshold)")
        ax.grid(axis="y", alpha=0)
    return to_svg(fig, prefix)


def _short(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"
