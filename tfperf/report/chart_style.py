"""What every chart of the HTML pages shares: the matplotlib settings, one colour and line style per mode,
plain tick labels, and the figure rendered to an inline SVG string (no network, no pyplot).

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


def new_figure(width_in: float, height_in: float) -> Figure:
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
