"""Statistics over raw per-step durations: pure arithmetic, no TensorFlow.

Field names follow pytest-benchmark's where they mean the same thing (min max mean stddev median iqr q1 q3
outliers rounds), so exporting needs no renaming.
"""

from __future__ import annotations

import math
from typing import Sequence

# torch.utils.benchmark warns at an IQR above 10% of the median: the environment is influencing the timing.
NOISY_IQR_FRACTION = 0.10


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def summarize(samples: Sequence[float]) -> dict:
    """The step_time_s block of a result: derived from the raw samples, never stored beside them to drift."""
    values = sorted(float(s) for s in samples)
    n = len(values)
    if n == 0:
        raise ValueError("summarize needs at least one sample")
    mean = sum(values) / n
    stddev = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    q1, median, q3 = quantile(values, 0.25), quantile(values, 0.5), quantile(values, 0.75)
    iqr = q3 - q1
    # pytest-benchmark's outlier notation: "<beyond 1 stddev>;<beyond 1.5 IQR>".
    sd_out = sum(1 for v in values if abs(v - mean) > stddev) if n > 1 else 0
    iqr_out = sum(1 for v in values if v < q1 - 1.5 * iqr or v > q3 + 1.5 * iqr)
    return {
        "median": median,
        "mean": mean,
        "min": values[0],
        "max": values[-1],
        "stddev": stddev,
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "p90": quantile(values, 0.90),
        "p99": quantile(values, 0.99),
        "outliers": f"{sd_out};{iqr_out}",
        "samples": n,
    }


def noise_fraction(samples: Sequence[float]) -> float | None:
    """The interquartile range as a share of the median: the one definition of how noisy a set of samples
    is."""
    if not samples:
        return None
    s = summarize(samples)
    return s["iqr"] / s["median"] if s["median"] > 0 else None


# Below four samples the quartiles are interpolated between two or three values and mean nothing.
NOISE_MIN_SAMPLES = 4


def is_noisy(samples: Sequence[float], threshold: float = NOISY_IQR_FRACTION) -> bool:
    """True when the interquartile range exceeds `threshold` of the median."""
    if len(samples) < NOISE_MIN_SAMPLES:
        return False
    fraction = noise_fraction(samples)
    return fraction is not None and fraction > threshold


def throughput(median_step_s: float, batch_size: int | None) -> dict:
    """Throughput from the median step (robust to the odd slow step)."""
    steps_per_s = 1.0 / median_step_s if median_step_s > 0 else math.inf
    samples_per_s = steps_per_s * batch_size if batch_size else None
    return {"samples_per_s": samples_per_s, "steps_per_s": steps_per_s}


def median_spread(groups) -> float | None:
    """How far apart the medians of groups of samples (repeats, processes) are: max / min - 1; None with fewer
    than two non-empty groups."""
    meds = [summarize(g)["median"] for g in groups if len(g)]
    if len(meds) < 2 or min(meds) <= 0:
        return None
    return max(meds) / min(meds) - 1
