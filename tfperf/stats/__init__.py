"""Statistics over raw step times: pure arithmetic, no TensorFlow, no reports.

`descriptive` summarizes one set of samples; `significance` decides whether two sets differ.
"""

from tfperf.stats.descriptive import (
    NOISE_MIN_SAMPLES,
    NOISY_IQR_FRACTION,
    is_noisy,
    median_spread,
    noise_fraction,
    quantile,
    summarize,
    throughput,
)

__all__ = [
    "NOISY_IQR_FRACTION",
    "NOISE_MIN_SAMPLES",
    "quantile",
    "summarize",
    "noise_fraction",
    "is_noisy",
    "throughput",
    "median_spread",
]
