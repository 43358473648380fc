"""How numbers are written: one definition per kind of figure, shared by the tables, report.md, the HTML page,
the suggestions' evidence, compare and tune, so the same figure reads the same everywhere.

Missing values are written `MISSING` ("–") everywhere except the plain-text terminal table, which passes its
own.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "–"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def seconds(v: float | None, missing: str = MISSING) -> str:
    """A duration with its unit, scaled: 1.20 s, 8.56 ms, 35.0 µs."""
    if not _number(v):
        return missing
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 1e-3:
        return f"{v * 1e3:.2f} ms"
    return f"{v * 1e6:.1f} µs"


def ms(v: float | None, missing: str = MISSING) -> str:
    """A duration in milliseconds, no unit, three significant digits (whole ms from 100 on): for sentences
    that say the unit once ("8.56 ms/step")."""
    if not _number(v):
        return missing
    x = v * 1e3
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def ms_column(v: float | None, missing: str = MISSING) -> str:
    """A duration in milliseconds for a table column headed "ms": fixed decimals, so a column lines up."""
    if not _number(v):
        return missing
    x = v * 1e3
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def percent(v: float | None, digits: int = 0, missing: str = MISSING) -> str:
    """A fraction (0..1) as a percentage."""
    if not _number(v):
        return missing
    return f"{v * 100:.{digits}f}%"


def size(v: float | None, missing: str = MISSING) -> str:
    """Bytes in binary units: 512 B, 1.5 MiB."""
    if not _number(v):
        return missing
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{v:.1f} GiB"


def number(v: Any, digits: int = 3, missing: str = MISSING) -> str:
    """Any JSON scalar for a reader: thousands separated, floats to `digits` significant digits."""
    if v is None:
        return missing
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return text(v, missing)


def text(v: Any, missing: str = MISSING) -> str:
    """Any JSON value as one readable line (escaping is the renderer's job)."""
    if v is None:
        return missing
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float, bool)):
        return number(v, missing=missing)
    if isinstance(v, dict):
        return ", ".join(f"{k}={text(x, missing)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(text(x, missing) for x in v)
    return str(v)


def p_value(p: float | None, missing: str = "too few samples for a significance test") -> str:
    """A p-value as evidence: p=0.013, p<1e-4."""
    if p is None:
        return missing
    return f"p={p:.2g}" if p >= 1e-4 else "p<1e-4"


def speedup(x: float | None, missing: str = MISSING) -> str:
    """A speed-up factor (above 1 = faster). A loss reads as a loss: 0.21x (slower), not a number the eye
    skims."""
    if not _number(x):
        return missing
    return f"{x:.2f}x" + (" (slower)" if x < 0.995 else "")


def versus(name: str, step_s: float, ref_name: str, ref_step_s: float) -> str:
    """`name` against `ref_name`, both measured per step, with the factor stated the right way round:
    "tflite-int8 5.66 ms/step vs tflite 8.56 ms/step (1.51× faster)"; a loss says "slower"."""
    head = f"{name} {ms(step_s)} ms/step vs {ref_name} {ms(ref_step_s)} ms/step"
    if not (_number(step_s) and _number(ref_step_s)) or step_s <= 0 or ref_step_s <= 0:
        return head
    if step_s <= ref_step_s:
        return f"{head} ({ref_step_s / step_s:.2f}× faster)"
    return f"{head} ({step_s / ref_step_s:.2f}× slower)"


def p_column(p: float | None, missing: str = MISSING) -> str:
    """A p-value in a table column headed "p": 0.013, <1e-4 (`p_value` for a sentence)."""
    if not _number(p):
        return missing
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def error_figure(v: float | None, missing: str = MISSING) -> str:
    """An output-agreement error: 0 as 0, tiny ones in scientific notation so 2.5e-06 does not read as 0."""
    if not _number(v):
        return missing
    if v == 0:
        return "0"
    return f"{v:.2g}" if abs(v) >= 1e-3 else f"{v:.1e}"
