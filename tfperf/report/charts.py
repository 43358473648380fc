"""Charts for the HTML pages: matplotlib figures rendered to inline SVG strings, no network, no pyplot.

Why these settings: `svg.fonttype='none'` keeps text as text (small, selectable, no glyph
paths), a fixed `svg.hashsalt` and `metadata={"Date": None}` make the bytes stable from run to run, and
`text.parse_math=False` keeps a `$` in a case name from being read as mathtext. Figures are built with
`matplotlib.figure.Figure` on an Agg canvas, never through pyplot, so no global backend or figure registry
is touched. Every user string lands in a `<text>` element that matplotlib's XML writer escapes.
"""

from __future__ import annotations

import io
import math
import re
from typing import Sequence

import matplotlib
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "tfperf",
    "text.parse_math": False,
    # With parse_math off, matplotlib's default log tick labels ($\mathdefault{10^{2}}$) would show as
    # literal text: log axes get the plain formatter of log_axis() instead, and no formatter uses mathtext.
    "axes.formatter.use_mathtext": False,
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}

# One colour and one line style per mode, the same on every chart so a reader learns them once. The colours
# are Okabe and Ito's palette, chosen to stay apart under the common colour-vision deficiencies (the old tab10
# green and red of function and xla collapse into one brown under deuteranopia); the line styles and direct
# labels carry the series too, for print in grey.
MODE_COLORS = {
    "eager": "#0072B2",
    "function": "#E69F00",
    "xla": "#009E73",
    "savedmodel": "#CC79A7",
    "tflite": "#56B4E9",
    "tflite-dynamic": "#D55E00",
    "tflite-int8": "#000000",
}
MODE_STYLES = {
    "eager": ":",
    "function": "-",
    "xla": "--",
    "savedmodel": "-.",
    "tflite": (0, (5, 1, 1, 1)),
    "tflite-dynamic": (0, (3, 1)),
    "tflite-int8": (0, (1, 2)),
}
_FALLBACK = ["#F0E442", "#882255", "#44AA99"]


def mode_color(mode: str) -> str:
    """A fixed colour per mode; an unknown mode gets one chosen from its name, so pages stay byte-stable."""
    return MODE_COLORS.get(mode) or _FALLBACK[sum(mode.encode()) % len(_FALLBACK)]


def mode_style(mode: str):
    return MODE_STYLES.get(mode, "-")


def plain_tick(v: float, _pos: object = None) -> str:
    """A tick value as plain text (0.5, 20, 1e+04): never mathtext, which parse_math=False prints raw."""
    if v <= 0 or not math.isfinite(v):
        return ""
    if 1e3 <= v < 1e9:
        return f"{v:,.0f}"
    if 1e-3 <= v < 1e3:
        return f"{v:.4g}"
    return f"{v:.0e}"


def log_axis(ax, axis: str = "y", span: float = 10.0) -> None:
    """A log scale with plain-text labels; ticked at 1, 2, 5 × 10^k unless the data spans over three
    decades."""
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    subs = (1.0, 2.0, 5.0) if span <= 1000 else (1.0,)
    target.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    target.set_major_formatter(ticker.FuncFormatter(plain_tick))
    target.set_minor_formatter(ticker.NullFormatter())


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def to_svg(fig: Figure, prefix: str) -> str:
    """The figure as an `<svg>` element ready to inline into HTML.

    `prefix` namespaces the element ids (clip paths, groups): several charts share one HTML document,
    and ids must be unique within it. The prefix must be deterministic for byte-stable pages.
    """
    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE: invalid inside HTML
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}-{m.group(1)}"', svg)
    # Scale to the container on small screens, keep the natural size on large ones.
    svg = re.sub(
        r'<svg ([^>]*?)width="([\d.]+)pt" height="([\d.]+)pt"',
        lambda m: (
            f'<svg {m.group(1)}width="{m.group(2)}pt" height="{m.group(3)}pt" '
            f'style="max-width:100%;height:auto"'
        ),
        svg,
        count=1,
    )
    return svg.strip()


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
    fig = _figure(max(4.0, 1.1 + 0.7 * len(modes) * len(sizes)), 2.6)
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
    fig = _figure(6.0, 2.8)
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
    fig = _figure(5.2, 2.8)
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
    fig = _figure(6.0, 0.9 + 0.32 * len(rows))
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
    fig = _figure(max(8.4, 3.4 + 0.45 * len(modes) * (len(sizes) + 2)), 2.8)
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
    fig = _figure(4.6, 2.6)
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
    fig = _figure(4.6, 2.6)
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
    fig = _figure(6.4, 0.9 + 0.28 * len(rows))
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
