"""Paired statistics for an interleaved A/B run, with the worker process as the unit.

`tfperf ab` times both versions of the code in the same run: in each round one base process and one current
process run back to back, in a random order. Steps within one process share that process's state (memory
layout, thread placement, what else the machine was doing), so they are not independent samples of the code;
one figure per process (`process_figure`: its fastest step by default, or its 10th percentile or median) is
the unit, and the two processes of one round are a pair that saw the same machine.

For each pair the figure is log(current / base). Over the pairs:

- the estimate is the Hodges-Lehmann estimate (the median of all pairwise averages of the log ratios, the
  Walsh averages), back-transformed: a ratio, above 1 = slower;
- the interval is the distribution-free one that goes with the Wilcoxon signed-rank test: order statistics of
  the Walsh averages, cut where the exact signed-rank null distribution puts `alpha / 2` in each tail. It
  needs only that the log ratios are symmetric about their centre, not that they are normal, so one pair hit
  by a burst of contention widens it a little instead of dragging a mean;
- the test is the exact two-sided Wilcoxon signed-rank test on the log ratios (no change = centred on 0).

The smallest two-sided p-value the signed-rank test can give with n pairs is 2 / 2**n (every pair the same
sign), so n pairs can reach a significance level `alpha` only when 2 / 2**n <= alpha (`min_pairs`): 6 pairs
for 5%, 8 pairs for 1% (2 / 256 = 0.0078), 11 for 0.1%. Below that the interval is the whole range and cannot
exclude anything. (Unpaired, Mann-Whitney on 5 processes against 5 cannot go below 2 / C(10, 5) = 0.0079.)

Pure arithmetic: no TensorFlow, no reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

# What one process's steps are summarized by. Contention on a shared machine only ever adds time, in bursts
# that hit some steps of a process and not others (measured on the 2-core VM with one thread per op: a
# process's median moved 4.2 -> 7.6 ms when a burst hit, its fastest step stayed 4.14-4.27 ms over 20
# processes). So the fastest step is the steadiest figure of the code itself (as BenchmarkTools.jl argues for
# the minimum); the 10th percentile is a compromise that one lucky step cannot move; the median is the usual
# figure, hit by bursts.
STATISTICS = ("min", "p10", "median")
DEFAULT_STATISTIC = "min"


def process_figure(samples: Sequence[float], statistic: str = DEFAULT_STATISTIC) -> float:
    """One process's figure: the minimum, 10th percentile or median of its timed steps."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")
    if not len(samples):
        raise ValueError("no samples")
    if statistic == "min":
        return float(min(samples))
    return float(np.percentile(samples, 10 if statistic == "p10" else 50))


def min_pairs(alpha: float) -> int:
    """The fewest pairs whose exact two-sided signed-rank test can reach p <= alpha: 2 / 2**n <= alpha."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    return max(1, math.ceil(math.log2(2 / alpha) - 1e-12))


@lru_cache(maxsize=256)
def signed_rank_null(n: int) -> tuple[float, ...]:
    """P(W+ = w) for w = 0 .. n(n+1)/2 under no change: each rank's sign is a fair coin (exact, by
    counting)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    top = 0
    for rank in range(1, n + 1):
        # Rank `rank` either adds to W+ (positive sign) or not: convolve with {0, rank}.
        counts[rank : top + rank + 1] += counts[: top + 1].copy()
        top += rank
    return tuple(counts / counts.sum())


def signed_rank_p(log_ratios: Sequence[float]) -> float:
    """Exact two-sided Wilcoxon signed-rank p-value of `log_ratios` centred on 0. Zeros are dropped (they say
    nothing about the direction, as in Wilcoxon's own treatment); ties between magnitudes get average ranks,
    and the exact null of distinct ranks is kept (exact for float timings, which do not tie)."""
    x = np.asarray([v for v in log_ratios if v != 0.0], dtype=float)
    n = x.size
    if n == 0:
        return 1.0
    ranks = _average_ranks(np.abs(x))
    w_plus = float(ranks[x > 0].sum())
    null = np.asarray(signed_rank_null(n))
    support = np.arange(null.size)
    low = float(null[support <= w_plus + 1e-9].sum())
    high = float(null[support >= w_plus - 1e-9].sum())
    return min(1.0, 2 * min(low, high))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(1, values.size + 1)
    for v in np.unique(values):
        same = values == v
        if same.sum() > 1:
            ranks[same] = ranks[same].mean()
    return ranks


def walsh_interval(log_ratios: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """(estimate, low, high) of the centre of `log_ratios`: the Hodges-Lehmann estimate and the signed-rank
    interval, both in log units. With too few pairs for `confidence`, the interval is the whole range of the
    Walsh averages (its coverage is then below `confidence`: `PairedComparison.decisive` says so)."""
    x = np.asarray(log_ratios, dtype=float)
    n = x.size
    if n == 0:
        raise ValueError("no pairs")
    i, j = np.triu_indices(n)
    walsh = np.sort((x[i] + x[j]) / 2)
    null = np.cumsum(signed_rank_null(n))
    # [W(k), W(M + 1 - k)] (1-based) covers with probability 1 - 2 P(W+ <= k - 1): k is the largest with
    # P(W+ <= k - 1) <= alpha / 2, i.e. the count of such tail values; c = k - 1 is the 0-based cut.
    alpha = 1 - confidence
    c = max(int(np.searchsorted(null, alpha / 2 + 1e-12, side="right")) - 1, 0)
    c = min(c, (walsh.size - 1) // 2)
    return float(np.median(walsh)), float(walsh[c]), float(walsh[walsh.size - 1 - c])


@dataclass
class PairedComparison:
    """One row of an interleaved A/B run: the pairs and what they say, ratios as current / base."""

    pairs: int
    ratios: list[float]  # each pair's current / base process figure, in round order
    ratio: float  # Hodges-Lehmann estimate of the pairs' centre
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float
    decisive: bool  # enough pairs for the interval to reach `confidence` (n >= min_pairs)


def paired_comparison(
    base_medians: Sequence[float], current_medians: Sequence[float], confidence: float
) -> PairedComparison:
    """Compare per-process figures paired by round (base_medians[i] ran in the same round as
    current_medians[i]); the names say medians, any `process_figure` works."""
    if len(base_medians) != len(current_medians):
        raise ValueError(
            f"{len(base_medians)} base medians and {len(current_medians)} current: pairs must match"
        )
    if not base_medians:
        raise ValueError("no pairs")
    if any(b <= 0 or c <= 0 for b, c in zip(base_medians, current_medians)):
        raise ValueError("a per-process median of zero or less: nothing to divide by")
    logs = [math.log(c / b) for b, c in zip(base_medians, current_medians)]
    est, lo, hi = walsh_interval(logs, confidence)
    return PairedComparison(
        pairs=len(logs),
        ratios=[math.exp(v) for v in logs],
        ratio=math.exp(est),
        ci_low=math.exp(lo),
        ci_high=math.exp(hi),
        p_value=signed_rank_p(logs),
        confidence=confidence,
        decisive=len(logs) >= min_pairs(1 - confidence),
    )


def decide(pc: PairedComparison, threshold: float) -> str:
    """regression | improvement | unchanged when the interval decides, else inconclusive.

    The interval must lie wholly beyond the threshold (above 1 + t: slower; below 1 / (1 + t): faster) or
    wholly inside it; an interval that straddles a bound has not decided, however far its estimate is."""
    if not pc.decisive:
        return "inconclusive"
    slower, faster = 1 + threshold, 1 / (1 + threshold)
    if pc.ci_low > slower:
        return "regression"
    if pc.ci_high < faster:
        return "improvement"
    if faster <= pc.ci_low and pc.ci_high <= slower:
        return "unchanged"
    return "inconclusive"
