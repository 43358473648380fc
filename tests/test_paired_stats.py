"""Paired statistics of an interleaved A/B run (tfperf/stats/paired.py) and the per-process noise record
(tfperf/host/noise.py): pure arithmetic and /proc reads, no TensorFlow."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from tfperf.host import noise
from tfperf.stats.paired import decide, min_pairs, paired_comparison, signed_rank_p, walsh_interval


def test_min_pairs_is_where_the_smallest_p_reaches_alpha():
    assert min_pairs(0.01) == 8 and min_pairs(0.05) == 6 and min_pairs(0.10) == 5 and min_pairs(0.001) == 11
    for alpha in (0.2, 0.1, 0.05, 0.01, 0.001):
        n = min_pairs(alpha)
        assert 2 / 2**n <= alpha < 2 / 2 ** (n - 1)
        assert signed_rank_p([0.01 * (i + 1) for i in range(n)]) == pytest.approx(2 / 2**n)


def test_signed_rank_p_is_the_exact_wilcoxon_test():
    rng = np.random.default_rng(7)
    for n in (4, 7, 10, 15):
        x = rng.normal(0.03, 0.05, n)
        assert signed_rank_p(x) == pytest.approx(wilcoxon(x, method="exact").pvalue)
    assert signed_rank_p([0.0, 0.0]) == 1.0


def test_interval_cuts_walsh_averages_at_the_exact_null():
    x = [0.05, 0.07, 0.09, 0.06, 0.08, 0.10, 0.04, 0.11]
    est, lo, hi = walsh_interval(x, 0.99)
    # 8 pairs at 99%: P(W+ <= 0) = 1/256 <= 0.005 < P(W+ <= 1), so nothing is cut: the whole range.
    assert (lo, hi) == (min(x), max(x)) and lo < est < hi
    _, lo90, hi90 = walsh_interval(x, 0.90)
    assert lo < lo90 < hi90 < hi
    # Coverage on skewed, heavy-tailed symmetric data (t with 3 degrees of freedom) is at least nominal.
    rng = np.random.default_rng(3)
    covered = sum(
        lo <= 0 <= hi for _, lo, hi in (walsh_interval(rng.standard_t(3, 12), 0.90) for _ in range(800))
    )
    assert covered / 800 > 0.87


def test_decide_needs_the_interval_wholly_beyond_or_within_the_threshold():
    slower = paired_comparison([1.0] * 8, [1.09, 1.10, 1.08, 1.11, 1.10, 1.09, 1.12, 1.10], 0.99)
    assert slower.decisive and slower.ci_low > 1.05 and decide(slower, 0.05) == "regression"
    assert decide(slower, 0.10) == "inconclusive"  # straddles 1.10
    same = paired_comparison([1.0] * 8, [1.01, 0.99, 1.00, 1.02, 0.98, 1.01, 0.995, 1.005], 0.99)
    assert decide(same, 0.05) == "unchanged"
    faster = paired_comparison([1.0] * 8, [0.80, 0.82, 0.79, 0.81, 0.80, 0.83, 0.78, 0.80], 0.99)
    assert decide(faster, 0.10) == "improvement" and faster.ratio == pytest.approx(0.80, abs=0.01)
    few = paired_comparison([1.0] * 7, [1.5] * 7, 0.99)  # every pair 50% slower, but 7 pairs cannot reach 1%
    assert not few.decisive and decide(few, 0.05) == "inconclusive"
    assert few.p_value == pytest.approx(2 / 2**7)


def test_one_stray_pair_does_not_drag_the_estimate():
    ratios = [1.10, 1.09, 1.11, 1.10, 1.08, 1.10, 1.11, 1.09, 1.10, 2.5]
    pc = paired_comparison([1.0] * 10, ratios, 0.99)
    assert pc.ratio == pytest.approx(1.10, abs=0.01)
    assert math.exp(np.mean(np.log(ratios))) > 1.17  # a mean would have moved


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match="pairs must match"):
        paired_comparison([1.0, 1.0], [1.0], 0.99)
    with pytest.raises(ValueError, match="zero"):
        paired_comparison([0.0], [1.0], 0.99)


def test_noise_record_of_this_process():
    begun = noise.start()
    sum(i * i for i in range(200_000))
    record = noise.finish(begun, 0, 0)
    assert record["timed_s"] > 0 and record["voluntary_context_switches"] >= 0
    assert record["involuntary_context_switches"] >= 0
    assert record["schedulable_cpus"] >= 1 and len(record["cpu_affinity"]) == record["schedulable_cpus"]
    # TensorFlow's default pools are one thread per schedulable CPU: not oversubscribed.
    assert record["intra_op_threads"] == record["schedulable_cpus"]
    assert not any("oversubscribed" in w for w in record["warnings"])
    over = noise.finish(begun, record["schedulable_cpus"] * 4, 1)
    assert any(w.startswith(f"{record['schedulable_cpus'] * 4} intra-op threads") for w in over["warnings"])
    assert record["aslr"] in (None, "off", "partial", "full")


def test_explain_points_at_the_slower_process_only():
    quiet = {
        "timed_s": 1.0,
        "involuntary_context_switches": 30,
        "load_average": [1.0, 1, 1],
        "schedulable_cpus": 2,
        "warnings": [],
    }
    preempted = {**quiet, "involuntary_context_switches": 400, "load_average": [3.5, 2, 1]}
    why = noise.explain(preempted, quiet)
    assert any("preempted 400/s vs 30/s" in w for w in why) and any(
        "load average 3.5 vs 1.0" in w for w in why
    )
    assert noise.explain(quiet, preempted) == []  # the slower one suffered less: nothing explains it
    assert noise.explain(None, quiet) == []


def test_process_figure_is_the_fastest_step_by_default():
    from tfperf.stats.paired import DEFAULT_STATISTIC, process_figure

    # A burst hit three of ten steps: the median moves, the fastest step and the 10th percentile do not.
    steps = [4.20, 4.22, 4.25, 4.21, 4.23, 4.24, 4.26, 7.6, 7.9, 8.1]
    assert DEFAULT_STATISTIC == "min" and process_figure(steps) == 4.20
    assert 4.20 <= process_figure(steps, "p10") <= 4.21
    assert process_figure(steps, "median") == pytest.approx(4.245)
    with pytest.raises(ValueError, match="unknown statistic"):
        process_figure(steps, "mean")
