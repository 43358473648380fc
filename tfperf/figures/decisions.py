"""Does one result beat another? The one decision the advisor, the report's summary and what-ifs share.

A difference counts when the two-sided Mann-Whitney U test on the raw samples gives p below
`SIGNIFICANCE_ALPHA` (when both sides have enough samples to test) and the difference is larger than either
result's own spread between its repeats and worker processes: the same code moving that far between two
processes is no evidence that one mode beats the other.
"""

from __future__ import annotations

import math
from typing import Sequence

from tfperf import stats
from tfperf.figures.thresholds import SIGNIFICANCE_ALPHA, SIGNIFICANCE_MIN_SAMPLES
from tfperf.results.model import Result
from tfperf.stats import significance


def p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value, or None when either side has too few samples to test."""
    return significance.p_value(a, b, min_samples=SIGNIFICANCE_MIN_SAMPLES)


def per_sample(r: Result) -> list[float]:
    """A result's step times per sample: a step of twice the batch does twice the work, so two batch sizes of
    one job compare like with like (under tf.distribute a step processes the global batch)."""
    size = r.global_batch_size or r.batch_size or 1
    return [s / size for s in r.samples]


def largest_spread(*results: Result) -> float | None:
    """The largest repeat/process spread (max / min - 1 of repeat medians) among the results; None when none
    of them has two repeats. Scale-free, so it holds per step and per sample alike."""
    spreads = [s for s in (significance.repeat_spread(r.repeat_groups()) for r in results) if s is not None]
    return max(spreads) if spreads else None


def within_spread(a: Result, b: Result, ratio: float | None = None) -> float | None:
    """The larger of the two results' repeat/process spreads when their medians (or the given ratio of them)
    differ by no more than it (the difference is inside the noise the same code shows); None otherwise."""
    if ratio is None:
        if not (a.median_s and b.median_s):
            return None
        ratio = a.median_s / b.median_s
    if not ratio or ratio <= 0:
        return None
    spread = largest_spread(a, b)
    if spread is not None and abs(math.log(ratio)) <= math.log1p(spread):
        return spread
    return None


def significant(a: Result, b: Result, *, per_sample_times: bool = False) -> tuple[bool, float | None]:
    """Is the difference between two results' step times real? (True, None) when untestable (few samples):
    the ratio alone then decides and the evidence says so. `per_sample_times` compares time per sample, for
    two batch sizes of one job."""
    xa, xb = (per_sample(a), per_sample(b)) if per_sample_times else (a.samples, b.samples)
    p = p_value(xa, xb)
    ratio = stats.summarize(xa)["median"] / stats.summarize(xb)["median"] if xa and xb else None
    if p is not None and p < SIGNIFICANCE_ALPHA and within_spread(a, b, ratio) is not None:
        return False, p
    return (p is None or p < SIGNIFICANCE_ALPHA), p


def step_saving(ref: Result, other: Result) -> float:
    """The share of `ref`'s median step that `other` saves: 1 - other / ref (negative when `other` is
    slower)."""
    return 1 - other.median_s / ref.median_s


def saves_more_than(ref: Result, other: Result, margin: float) -> tuple[bool, float | None]:
    """Does `other` save more than `margin` of `ref`'s step, significantly? The gate of the advisor's
    use-tf-function, enable-xla and xla-compile-payback rules, and of the report's XLA verdict."""
    sig, p = significant(ref, other)
    return sig and step_saving(ref, other) > margin, p


def slower_by_more_than(ref: Result, other: Result, margin: float) -> tuple[bool, float | None]:
    """Is `other`'s step more than `margin` longer than `ref`'s (other / ref - 1), significantly? The gate of
    the advisor's avoid-xla rule and of the report's XLA verdict."""
    sig, p = significant(ref, other)
    return sig and -step_saving(ref, other) > margin, p


def helped(speedup: float | None, p: float | None, min_speedup: float) -> bool:
    """A change helped when it was faster by more than `min_speedup` and, when testable, significantly."""
    return speedup is not None and speedup > min_speedup and (p is None or p < SIGNIFICANCE_ALPHA)


def re_measure_helped(r: Result, speedup: float | None, p: float | None, min_speedup: float) -> bool:
    """A change re-measured against `r` (a what-if) helped: `helped`, and faster by more than `r`'s own spread
    between its repeats and processes (the same code moving that far is no evidence the change did it)."""
    if not helped(speedup, p, min_speedup):
        return False
    spread = largest_spread(r)
    return spread is None or math.log(speedup) > math.log1p(spread)
