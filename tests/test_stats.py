import math

from hypothesis import given
from hypothesis import strategies as st

from tfperf import stats

durations = st.lists(st.floats(min_value=1e-6, max_value=10.0, allow_nan=False), min_size=1, max_size=200)


@given(durations)
def test_summary_is_ordered_and_consistent(samples):
    s = stats.summarize(samples)
    assert s["samples"] == len(samples)
    assert s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"]
    assert s["min"] <= s["p90"] <= s["p99"] <= s["max"]
    assert math.isclose(s["iqr"], s["q3"] - s["q1"])
    assert s["min"] - 1e-12 <= s["mean"] <= s["max"] + 1e-12
    assert s["stddev"] >= 0


@given(durations, st.floats(min_value=0.1, max_value=100))
def test_summary_scales_with_the_unit(samples, factor):
    a, b = stats.summarize(samples), stats.summarize([x * factor for x in samples])
    assert math.isclose(b["median"], a["median"] * factor, rel_tol=1e-9)


def test_known_values():
    s = stats.summarize([1, 2, 3, 4, 100])
    assert s["median"] == 3 and s["q1"] == 2 and s["q3"] == 4 and s["iqr"] == 2
    assert s["outliers"].endswith(";1")  # 100 lies beyond 1.5 IQR


def test_noise_flag_at_ten_percent_of_median():
    steady = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0]
    assert not stats.is_noisy(steady)
    noisy = [1.0, 1.3, 0.8, 1.0, 1.4, 0.7, 1.0, 1.2]
    assert stats.is_noisy(noisy)


def test_throughput_from_the_median():
    tp = stats.throughput(0.01, 32)
    assert math.isclose(tp["steps_per_s"], 100) and math.isclose(tp["samples_per_s"], 3200)
    assert stats.throughput(0.01, None)["samples_per_s"] is None
