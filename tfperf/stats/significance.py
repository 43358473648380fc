"""Is a difference between two sets of step times real? Two-sample tests and intervals, pure arithmetic.

The one home of the significance machinery: the advisor (which mode wins within a run), `tfperf compare` (did
a change regress) and `tfperf tune` (which configuration wins) all call these functions; each decides with its
own significance level, which lives with the other thresholds in `tfperf.figures.thresholds`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tfperf.stats.descriptive import median_spread, summarize

CONFIDENCE = 0.99
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240521
MIN_SAMPLES = 3  # below this neither the U test nor the bootstrap says anything


def mann_whitney_p(base: Sequence[float], current: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value of two sample sets."""
    from scipy.stats import mannwhitneyu  # scipy costs ~0.3 s to import: only when a test is run

    if len(set(base)) == 1 and set(base) == set(current):
        return 1.0  # identical constant samples: scipy warns and returns nan
    return float(mannwhitneyu(current, base, alternative="two-sided").pvalue)


def p_value(a: Sequence[float], b: Sequence[float], min_samples: int = MIN_SAMPLES) -> float | None:
    """`mann_whitney_p`, or None when either side has fewer than `min_samples` samples to test."""
    if len(a) < min_samples or len(b) < min_samples:
        return None
    return mann_whitney_p(a, b)


def repeat_spread(groups: Sequence[Sequence[float]]) -> float | None:
    """How far apart the medians of a run's repeats (or processes) are: max / min - 1; None with fewer than
    two."""
    return median_spread(groups)


def bootstrap_ratio_ci(
    base: Sequence[float],
    current: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of median(current) / median(base), resampling single samples."""
    return repeat_bootstrap_ratio_ci([[x] for x in base], [[x] for x in current], confidence, resamples, seed)


def repeat_bootstrap_ratio_ci(
    base: Sequence[Sequence[float]],
    current: Sequence[Sequence[float]],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Two-stage percentile-bootstrap interval of median(current) / median(base) over grouped samples.

    Each resample draws whole repeats with replacement, then steps with replacement within each drawn repeat
    (the hierarchical bootstrap). Steps of one repeat share the machine's state while it ran, so resampling
    single steps, as if each were independent, gives an interval far too narrow: measured here, a repeat's
    median moved by more than the whole single-step interval between two repeats of the same code.
    """
    rng = np.random.default_rng(seed)
    mb = _bootstrap_medians([np.asarray(g, dtype=float) for g in base if len(g)], resamples, rng)
    mc = _bootstrap_medians([np.asarray(g, dtype=float) for g in current if len(g)], resamples, rng)
    ratios = mc / mb
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return float(lo), float(hi)


def _bootstrap_medians(groups: list[np.ndarray], resamples: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(resamples)
    sizes = np.array([g.size for g in groups])
    flat = np.concatenate(groups)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    total = int(sizes.sum())
    # A batch of resamples at a time: resamples x samples floats at once could take hundreds of MB.
    batch = max(1, min(resamples, 4_000_000 // max(total, 1)))
    for lo in range(0, resamples, batch):
        n = min(batch, resamples - lo)
        picked = rng.integers(0, len(groups), size=(n, len(groups)))  # which repeats, per resample
        out[lo : lo + n] = _medians_of(flat, starts, sizes, picked, rng)
    return out


def _medians_of(
    flat: np.ndarray, starts: np.ndarray, sizes: np.ndarray, picked: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    n, k = picked.shape
    if np.all(sizes == sizes[0]):
        size = int(sizes[0])
        pos = starts[picked][:, :, None] + rng.integers(0, size, size=(n, k, size))
        return np.median(flat[pos].reshape(n, k * size), axis=1)
    meds = np.empty(n)
    for i in range(n):
        parts = [flat[starts[g] + rng.integers(0, sizes[g], size=sizes[g])] for g in picked[i]]
        meds[i] = np.median(np.concatenate(parts))
    return meds


def iqr_separation(base: Sequence[float], current: Sequence[float], threshold: float) -> int:
    """+1 when current's lower quartile is above base's upper quartile by more than the threshold (the middle
    halves do not overlap, even allowing the threshold), -1 the other way round, 0 when they overlap.

    This is what "clear-cut" means for noisy samples. On a shared machine contention adds time to some steps
    and not others, so both the medians and a bootstrap interval around them can jump between two runs of
    the same code; a real slowdown beyond the threshold moves the whole distribution, and a contended run
    leaves its quartiles overlapping the quiet run's.
    """
    b, c = summarize(base), summarize(current)
    if c["q1"] > b["q3"] * (1 + threshold):
        return 1
    if c["q3"] * (1 + threshold) < b["q1"]:
        return -1
    return 0
