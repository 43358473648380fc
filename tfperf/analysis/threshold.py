"""Reading a threshold as the user wrote it (`--threshold 10%`, `0.1`) and writing one back: shared by
`compare`, `ab` and the renderers, so a threshold reads and prints the same everywhere."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfperf import units
from tfperf.errors import TfperfError


@dataclass(frozen=True)
class Threshold:
    """A threshold as read: `value` is a fraction (0.1 = 10%), `reading` says how the text was read."""

    value: float
    reading: str


THRESHOLD_FORMS = "a percentage such as 10% or a fraction below 1 such as 0.1"


def read_threshold(text: str | float) -> Threshold:
    """'10%' and '1000%' are percentages; a bare number below 1 ('0.1') is a fraction. A bare number of 1 or
    more ('5', '1.5') is refused: either reading is a plausible threshold (5% or 500%), so the user writes
    which one they mean. A Python number is a fraction, as REGRESSION_THRESHOLD is."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, reading = float(text), "a fraction"
    else:
        s = str(text).strip()
        percent = s.endswith("%")
        try:
            value = float(s[:-1] if percent else s)
        except ValueError:
            raise TfperfError(f"--threshold {text}: expected {THRESHOLD_FORMS}") from None
        if math.isfinite(value) and not percent and value >= 1:
            raise TfperfError(
                f"--threshold {text}: ambiguous: write {s}% for a percentage, or "
                f"{threshold_text(value)} if {s} is a fraction"
            )
        value, reading = (value / 100.0, "a percentage") if percent else (value, "a fraction")
    if not math.isfinite(value):
        raise TfperfError(f"--threshold {text}: must be a finite number, {THRESHOLD_FORMS}")
    if value <= 0:
        raise TfperfError(f"--threshold {text}: must be above 0%")
    return Threshold(value, f"--threshold {text} read as {reading}: {threshold_text(value)}")


def parse_threshold(text: str | float) -> float:
    """The threshold as a fraction (see `read_threshold`): '10%' -> 0.10, '0.1' -> 0.1."""
    return read_threshold(text).value


def threshold_text(value: float) -> str:
    """A threshold as a percentage with the digits it has (1.5% stays 1.5%, not 2%), up to three decimals."""
    pct = value * 100
    digits = next((d for d in range(4) if abs(round(pct, d) - pct) <= 1e-9 * max(1.0, abs(pct))), 3)
    return units.percent(value, digits)
