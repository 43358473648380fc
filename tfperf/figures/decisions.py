"""Does one result beat another? The one decision the advisor, the report's summary and what-ifs share.

A difference counts when the two-sided Mann-Whitney U test on the raw samples gives p below
`SIGNIFICANCE_ALPHA` (when both sides have enough samples to test) and the difference is larger than either
result's own spread between its repeats and worker processes: the same code moving that far between two
processes is no evidence that one mode beats the other.
"""
from __future__ import annotations

import math
from typing import Sequence

from tfperf.figures.thresholds import SIGNIFICANCE_ALPHA, SIGNIFICANCE_MIN_SAMPLES
from tfperf.results.model import Result
from tfperf.stats import significance


def p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value, or None when either side has too few samples to test."""
    return significance.p_value(a, b, min_samples=SIGNIFICANCE_MIN_SAMPLES)


def within_spread(a: Result, b: Result) -> float | None:
    """The larger of the two results' repeat/process spreads when their medians differ by no more than it
    (the difference is inside the noise the same code shows); None otherwise."""
    if not (a.median_s and b.median_s):
        return None
    spreads = [s for s in (significance.repeat_spread(a.repeat_groups()),
                           significance.repeat_spread(b.repeat_groups())) if s is not None]
    if spreads and abs(math.log(a.median_s / b.median_s)) <= math.log1p(max(spreads)):
        return max(spreads)
    return None


def significant(a: Result, b: Result) -> tuple[bool, float | None]:
    """Is the difference between two results' step times real? (True, None) when untestable (few samples):
    the ratio alone then decides and the evidence says so."""
    p = p_value(a.samples, b.samples)
    if p is not None and p < SIGNIFICANCE_ALPHA and within_spread(a, b) is not None:
        return False, p
    return (p is None or p < SIGNIFICANCE_ALPHA), p


def step_saving(ref: Result, other: Result) -> float:
    """The share of `ref`'s median step that `other` saves: 1 - other / ref (negative when `other` is slower)."""
    return 1 - other.median_s / ref.median_s


def saves_more_than(ref: Result, other: Result, margin: float) -> tuple[bool, float | None]:
    """Does `other` save more than `margin` of `ref`'s step, significantly? The gate of the advisor's
    use-tf-function, enable-xla and xla-compile-payback rules, and of the report's XLA verdict."""
    sig, p = significant(ref, other)
    return sig and step_saving(ref, other) > margin, p


def slower_by_more_than(ref: Result, other: Result, margin: float) -> tuple[bool, float | None]:
    """Is `other`'s step more than `margin` longer than `ref`'s (other / ref - 1), significantly? The gate of the
    advisor's avoid-xla rule and of the report's XLA verdict."""
    sig, p = significant(ref, other)
    return sig and -step_saving(ref, other) > margin, p


def helped(speedup: float | None, p: float | None, min_speedup: float) -> bool:
    """A change helped when it was faster by more than `min_speedup` and, when testable, significantly."""
    return speedup is not None and speedup > min_speedup and (p is None or p < SIGNIFICANCE_ALPHA)
