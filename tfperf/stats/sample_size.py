"""How many samples a latency percentile needs before it means anything: pure arithmetic, no TensorFlow.

The normal approximation of a binomial proportion: the fraction of samples below the estimated p-th quantile
is known within +-margin at the given confidence once n >= z^2 p (1 - p) / margin^2 (the formula MLPerf's
LoadGen sizes its runs with). With margin 1 - p, the estimate of p99 is at least told apart from p98 and the
maximum: p99 needs 657 samples at 99% confidence, p90 needs 60 and the median 7.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def samples_needed(p: float, confidence: float = 0.99, margin: float | None = None) -> int:
    """Samples for the p-quantile (0 < p < 1) to be known within `margin` (default: min(p, 1 - p))."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile {p}: must be between 0 and 1")
    m = margin if margin is not None else min(p, 1.0 - p)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    # The rounding guard keeps 656.9999 from becoming 657 by float noise in either direction.
    return int(math.ceil(round(z * z * p * (1.0 - p) / (m * m), 6)))
