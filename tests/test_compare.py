"""`tfperf compare`: regressions beyond noise are flagged, noise is not, unmatched rows are listed.

Unit tests draw samples from known distributions with a fixed seed; the end-to-end test times a real step
with `tfperf run` twice, once with 30% more matmuls, and runs the real `tfperf compare` command.
"""

import dataclasses
import json
import sys
import textwrap

import numpy as np
import pytest
from builders import result, run_of
from conftest import ROOT, run_tfperf
from hypothesis import given, settings
from hypothesis import strategies as st

from tfperf.analysis import compare, compare_warnings, row_comparison, threshold
from tfperf.errors import TfperfError
from tfperf.report import compare as compare_report
from tfperf.results.model import Result, RunResult, write_results
from tfperf.results.records import ErrorInfo
from tfperf.stats import significance

ENV = {
    "tensorflow": "2.21.0",
    "keras": "3.15.0",
    "python": "3.11.7",
    "cpu_model": "Test CPU",
    "cpu_count": 2,
    "gpus": [],
    "env": {},
}


def samples(rng, median_s: float, n: int = 60, sigma: float = 0.02) -> list[float]:
    """Step times: log-normal around the median, the shape real step times have (a floor and a right tail)."""
    return [float(x) for x in rng.lognormal(np.log(median_s), sigma, n)]


def run_of_rows(
    rows: dict[tuple, list[float]], env: dict | None = None, fields: dict | None = None
) -> RunResult:
    """One result per (case, mode) with these samples; `fields` adds other Result fields per (case, mode)."""
    results = [
        result(mode, case=case, samples=s, **(fields or {}).get((case, mode), {}))
        for (case, mode), s in rows.items()
    ]
    return run_of(*results, environment=dict(env or ENV))


def verdicts(cmp: compare.Comparison) -> dict:
    return {(r.case, r.mode): r.verdict for r in cmp.rows}


def test_same_distribution_is_unchanged_and_exits_0():
    rng = np.random.default_rng(1)
    base = run_of_rows({("a", "function"): samples(rng, 0.010), ("b", "xla"): samples(rng, 0.004)})
    current = run_of_rows({("a", "function"): samples(rng, 0.010), ("b", "xla"): samples(rng, 0.004)})
    cmp = compare.compare_runs(base, current)
    assert verdicts(cmp) == {("a", "function"): "unchanged", ("b", "xla"): "unchanged"}
    assert compare.exit_code(cmp) == 0
    row = cmp.rows[0]
    assert row.ci_low < 1.0 < row.ci_high and row.p_value > 0.01


def test_twenty_percent_slower_is_a_regression_and_exits_1():
    rng = np.random.default_rng(2)
    base = run_of_rows({("a", "function"): samples(rng, 0.010), ("b", "function"): samples(rng, 0.010)})
    current = run_of_rows({("a", "function"): samples(rng, 0.012), ("b", "function"): samples(rng, 0.010)})
    cmp = compare.compare_runs(base, current)
    assert verdicts(cmp) == {("a", "function"): "regression", ("b", "function"): "unchanged"}
    a = next(r for r in cmp.rows if r.case == "a")
    assert 1.1 < a.ci_low <= a.ratio <= a.ci_high < 1.3 and a.p_value < 0.01
    assert compare.exit_code(cmp) == 1


def test_twenty_percent_faster_is_an_improvement_not_a_failure():
    rng = np.random.default_rng(3)
    cmp = compare.compare_runs(
        run_of_rows({("a", "xla"): samples(rng, 0.012)}), run_of_rows({("a", "xla"): samples(rng, 0.010)})
    )
    assert verdicts(cmp) == {("a", "xla"): "improvement"} and compare.exit_code(cmp) == 0


def test_two_percent_change_is_not_flagged_even_when_significant():
    rng = np.random.default_rng(4)
    base = run_of_rows({("a", "function"): samples(rng, 0.0100, n=200, sigma=0.01)})
    current = run_of_rows({("a", "function"): samples(rng, 0.0102, n=200, sigma=0.01)})
    cmp = compare.compare_runs(base, current)
    row = cmp.rows[0]
    assert row.p_value < 0.01  # the U test sees it...
    assert (
        row.verdict == "unchanged" and "within the 10% threshold" in row.reason
    )  # ...the threshold does not
    assert compare.exit_code(cmp) == 0


def test_noisy_rows_are_inconclusive_unless_clear_cut():
    rng = np.random.default_rng(5)
    # sigma 0.3 -> IQR about 40% of the median, far above the 10% noise line.
    base = run_of_rows(
        {
            ("noisy", "eager"): samples(rng, 0.010, n=30, sigma=0.3),
            ("noisy-but-2x", "eager"): samples(rng, 0.010, n=60, sigma=0.2),
        }
    )
    current = run_of_rows(
        {
            ("noisy", "eager"): samples(rng, 0.0112, n=30, sigma=0.3),
            ("noisy-but-2x", "eager"): samples(rng, 0.020, n=60, sigma=0.2),
        }
    )
    cmp = compare.compare_runs(base, current)
    rows = {r.case: r for r in cmp.rows}
    assert rows["noisy"].noisy and rows["noisy"].verdict == "inconclusive" and "noisy" in rows["noisy"].reason
    assert rows["noisy-but-2x"].verdict == "regression" and "clear-cut" in rows["noisy-but-2x"].reason
    assert "inconclusive" in compare_report.render_table(cmp)


def test_contention_that_shifts_the_median_is_not_a_regression():
    """What a shared machine does to unchanged code: the same quiet floor, but more steps hit by contention in
    one run. The medians differ 5× and the U test is sure, yet the quartiles overlap: inconclusive, not a
    regression (this was a false positive of the first version, measured by
    benchmarks/compare_false_positive.py)."""
    rng = np.random.default_rng(15)

    def contended(share_slow: float, n: int = 90) -> list[float]:
        slow = rng.random(n) < share_slow
        return [
            float(x)
            for x in np.where(
                slow, rng.lognormal(np.log(0.005), 0.3, n), rng.lognormal(np.log(0.001), 0.05, n)
            )
        ]

    base = run_of_rows({("a", "function"): contended(0.3)})
    current = run_of_rows({("a", "function"): contended(0.65)})
    row = compare.compare_runs(base, current).rows[0]
    assert row.ratio > 2 and row.p_value < 0.01 and row.ci_low > 1.1
    assert row.noisy and row.verdict == "inconclusive"


def test_a_change_of_timing_method_needs_a_clear_cut_result():
    rng = np.random.default_rng(16)
    s_base, s_cur = samples(rng, 0.00100), samples(rng, 0.001115)
    base = run_of_rows({("a", "xla"): s_base}, fields={("a", "xla"): {"timing": {"method": "per_step"}}})
    current = run_of_rows(
        {("a", "xla"): s_cur}, fields={("a", "xla"): {"timing": {"method": "blocked", "block_size": 16}}}
    )
    row = compare.compare_runs(base, current).rows[0]
    assert (
        row.verdict == "inconclusive" and "timed differently (per_step in base, blocked×16 now)" in row.reason
    )
    same_method = run_of_rows(
        {("a", "xla"): s_cur}, fields={("a", "xla"): {"timing": {"method": "per_step"}}}
    )
    assert compare.compare_runs(base, same_method).rows[0].verdict == "regression"


def test_a_row_that_fails_now_is_a_regression_naming_the_error():
    rng = np.random.default_rng(17)
    base = run_of_rows({("a", "xla"): samples(rng, 0.001)})
    current = run_of_rows(
        {("a", "xla"): []},
        fields={
            ("a", "xla"): {
                "status": "failed",
                "error": ErrorInfo(type="InvalidArgumentError", message="XLA cannot compile"),
            }
        },
    )
    row = compare.compare_runs(base, current).rows[0]
    assert row.verdict == "regression" and row.reason == "ran in base, failed now (InvalidArgumentError)"


def test_slower_beyond_threshold_without_significance_is_inconclusive():
    # Four scattered samples each: a 15% gap in the medians that the U test cannot call (p >= 0.01).
    base = run_of_rows({("a", "eager"): [0.0100, 0.0104, 0.0098, 0.0102]})
    current = run_of_rows({("a", "eager"): [0.0116, 0.0113, 0.0119, 0.0117]})
    row = compare.compare_runs(base, current).rows[0]
    assert row.ratio > 1.1 and row.p_value >= 0.01
    assert row.verdict == "inconclusive" and "not significant" in row.reason


def test_rows_in_one_file_only_are_listed_in_every_format():
    rng = np.random.default_rng(6)
    base = run_of_rows({("kept", "function"): samples(rng, 0.01), ("dropped", "xla"): samples(rng, 0.01)})
    current = run_of_rows({("kept", "function"): samples(rng, 0.01), ("added", "eager"): samples(rng, 0.01)})
    cmp = compare.compare_runs(base, current)
    assert [r.case for r in cmp.rows] == ["kept"]
    assert [i["case"] for i in cmp.only_in_base] == ["dropped"]
    assert [i["case"] for i in cmp.only_in_current] == ["added"]
    for fmt in ("table", "markdown", "html"):
        text = compare_report.render(cmp, fmt)
        assert "dropped" in text and "added" in text, fmt
    data = json.loads(compare_report.render_json(cmp))
    # A base row missing from the current run fails the gate, unless missing rows are allowed.
    assert data["only_in_base"][0]["case"] == "dropped" and data["exit_code"] == compare.EXIT_GATE_FAILED
    assert [g["kind"] for g in data["gate_failures"]] == ["missing"]
    allowed = compare.compare_runs(base, current, allow_missing=True)
    assert compare.exit_code(allowed) == 0 and allowed.gate_failures and not allowed.gate_failed


def test_retrace_growth_is_a_regression_even_at_equal_speed():
    rng = np.random.default_rng(7)
    s = samples(rng, 0.01)
    base = run_of_rows({("a", "function"): s}, fields={("a", "function"): {"tracing_count": 1}})
    current = run_of_rows({("a", "function"): list(s)}, fields={("a", "function"): {"tracing_count": 3}})
    row = compare.compare_runs(base, current).rows[0]
    assert row.time_verdict == "unchanged" and row.verdict == "regression" and "retracing grew" in row.reason


def test_diagnostics_are_compared():
    rng = np.random.default_rng(8)
    s = samples(rng, 0.01)
    base = run_of_rows(
        {("a", "function"): s},
        fields={
            ("a", "function"): {
                "input_wait_fraction": 0.02,
                "first_call_s": 1.0,
                "peak_memory_bytes": 100_000_000,
                "profile": {"input_bound_percent": 3.0},
            }
        },
    )
    current = run_of_rows(
        {("a", "function"): list(s)},
        fields={
            ("a", "function"): {
                "input_wait_fraction": 0.40,
                "first_call_s": 2.0,
                "peak_memory_bytes": 101_000_000,
                "profile": {"input_bound_percent": 45.0},
            }
        },
    )
    row = compare.compare_runs(base, current).rows[0]
    d = {x.name: x.verdict for x in row.diagnostics}
    assert d == {"input_bound": "worse", "first_call_s": "worse", "peak_memory_bytes": "same"}
    assert row.verdict == "unchanged"  # diagnostics other than retracing warn; they do not fail the gate
    # One input-bound figure (the measured wait), with the profiler's quoted beside it for readers.
    (inputs,) = [x for x in row.diagnostics if x.name == "input_bound"]
    assert (inputs.base, inputs.current) == (0.02, 0.40)
    assert inputs.note == "2% → 40% of the step, measured; the profiler's figure 3% → 45%"
    assert "input_bound worse" in compare_report.render_table(compare.compare_runs(base, current))


def test_input_bound_is_compared_once_by_the_one_definition():
    """The measured wait and the profiler's figure used to be two verdicts that could disagree (here the wait
    is flat while the profiler's figure, which for an eager step counts Python dispatch, jumps): now the
    measured wait decides, as in the advisor, and figures of different sources are not compared at all."""
    rng = np.random.default_rng(8)
    s = samples(rng, 0.01)

    def rows(base_fields: dict, current_fields: dict):
        base = run_of_rows({("a", "eager"): s}, fields={("a", "eager"): base_fields})
        current = run_of_rows({("a", "eager"): list(s)}, fields={("a", "eager"): current_fields})
        return [x for x in compare.compare_runs(base, current).rows[0].diagnostics if x.name == "input_bound"]

    (flat,) = rows(
        {"input_wait_fraction": 0.02, "profile": {"input_bound_percent": 3.0}},
        {"input_wait_fraction": 0.03, "profile": {"input_bound_percent": 32.0}},
    )
    assert flat.verdict == "same" and (flat.base, flat.current) == (0.02, 0.03)
    (profiler,) = rows({"profile": {"input_bound_percent": 3.0}}, {"profile": {"input_bound_percent": 32.0}})
    assert profiler.verdict == "worse" and "profiler" in profiler.note
    (mixed,) = rows({"profile": {"input_bound_percent": 3.0}}, {"input_wait_fraction": 0.30})
    assert mixed.verdict == "n/a" and "not comparable" in mixed.note
    assert rows({}, {}) == []


def test_rows_are_labelled_by_their_job_spec():
    r = Result("a", "function", "gpu:0", "infer", 32)
    assert r.spec.full_label == f"{r.spec.label} infer gpu:0" == "a [function bs=32] infer gpu:0"


def test_a_row_that_now_fails_is_a_regression():
    rng = np.random.default_rng(9)
    base = run_of_rows({("a", "xla"): samples(rng, 0.01)})
    current = RunResult(
        suite={},
        environment=ENV,
        results=[Result.not_run(base.results[0].spec, "failed", "InvalidArgumentError", "unsupported op")],
    )
    row = compare.compare_runs(base, current).rows[0]
    assert row.verdict == "regression" and "failed now" in row.reason


def test_environment_differences_are_warned():
    rng = np.random.default_rng(10)
    other = {**ENV, "tensorflow": "2.20.0", "cpu_model": "Other CPU", "gpus": [{"name": "NVIDIA L4"}]}
    cmp = compare.compare_runs(
        run_of_rows({("a", "eager"): samples(rng, 0.01)}),
        run_of_rows({("a", "eager"): samples(rng, 0.01)}, env=other),
    )
    text = "\n".join(cmp.environment_warnings)
    assert "TensorFlow version" in text and "CPU model" in text and "NVIDIA L4" in text
    assert "environments differ" in compare_report.render_markdown(cmp)
    busy = compare_warnings.busy_warnings(ENV, {**ENV, "load_average": [7.9, 7.5, 6.0]})
    assert busy == [
        "the machine was busy during the current run (load average 7.9 on 2 CPUs): its timings "
        "include waiting for other processes"
    ]


def test_every_row_moving_together_is_warned_as_drift():
    rng = np.random.default_rng(14)
    keys = [("a", "eager"), ("b", "function"), ("c", "xla")]
    base = run_of_rows({k: samples(rng, 0.01) for k in keys})
    slower = run_of_rows({k: samples(rng, 0.013) for k in keys})
    assert any("moved the same way" in w for w in compare.compare_runs(base, slower).warnings)
    mixed = run_of_rows({k: samples(rng, 0.013 if k[0] == "a" else 0.01) for k in keys})
    assert not any("moved the same way" in w for w in compare.compare_runs(base, mixed).warnings)


step_times = st.lists(st.floats(min_value=1e-5, max_value=10.0, allow_nan=False), min_size=0, max_size=40)


@settings(max_examples=60, deadline=None)
@given(base=step_times, current=step_times)
def test_any_samples_give_a_verdict_and_a_run_never_regresses_against_itself(base, current):
    row = row_comparison.compare_results(
        Result("a", "eager", "cpu", "train", 1, samples=base),
        Result("a", "eager", "cpu", "train", 1, samples=current),
    )
    assert row.verdict in row_comparison.VERDICTS
    if row.ratio is not None and row.ci_low is not None:
        assert row.ci_low <= row.ci_high
    json.dumps(dataclasses.asdict(row), allow_nan=False)
    itself = row_comparison.compare_results(
        Result("a", "eager", "cpu", "train", 1, samples=base),
        Result("a", "eager", "cpu", "train", 1, samples=list(base)),
    )
    assert itself.verdict in ("unchanged", "inconclusive")


def test_bootstrap_interval_is_deterministic_and_covers_the_true_ratio():
    rng = np.random.default_rng(11)
    b, c = samples(rng, 0.010, n=40), samples(rng, 0.015, n=40)
    assert significance.bootstrap_ratio_ci(b, c) == significance.bootstrap_ratio_ci(b, c)
    lo, hi = significance.bootstrap_ratio_ci(b, c)
    assert lo < 1.5 < hi and hi - lo < 0.1


@pytest.mark.parametrize(
    "text, value",
    [
        ("10%", 0.10),
        ("0.1", 0.10),
        ("2.5%", 0.025),
        ("1000%", 10.0),
        ("0.99", 0.99),
        ("1.5%", 0.015),
        ("150%", 1.5),
    ],
)
def test_parse_threshold(text, value):
    assert threshold.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text, why",
    [
        ("ten", "expected a percentage"),
        ("0", "above 0%"),
        ("-5%", "above 0%"),
        ("inf", "finite"),
        ("nan", "finite"),
        ("1e999%", "finite"),
        ("1.0", "ambiguous: write 1.0% for a percentage, or 100%"),
        ("1.5", "ambiguous: write 1.5% for a percentage, or 150%"),
        ("5", "ambiguous"),
    ],
)
def test_parse_threshold_rejects(text, why):
    with pytest.raises(TfperfError, match=why.replace("(", r"\(")):
        threshold.parse_threshold(text)


def test_markdown_escapes_table_breaking_names():
    rng = np.random.default_rng(12)
    s = samples(rng, 0.01)
    cmp = compare.compare_runs(
        run_of_rows({("a|b<i>", "eager"): s}), run_of_rows({("a|b<i>", "eager"): list(s)})
    )
    md = compare_report.render_markdown(cmp)
    assert "a\\|b&lt;i&gt;" in md and "<i>" not in md


@pytest.mark.cli
def test_cli_exit_codes(tmp_path):
    rng = np.random.default_rng(13)
    write_results(run_of_rows({("a", "function"): samples(rng, 0.010)}), tmp_path / "base.json")
    write_results(run_of_rows({("a", "function"): samples(rng, 0.010)}), tmp_path / "same.json")
    write_results(run_of_rows({("a", "function"): samples(rng, 0.013)}), tmp_path / "slow.json")
    (tmp_path / "broken.json").write_text("{not json")
    same = run_tfperf("compare", str(tmp_path / "base.json"), str(tmp_path / "same.json"))
    assert same.returncode == 0 and "unchanged" in same.stdout, same.stderr
    slow = run_tfperf(
        "compare", str(tmp_path / "base.json"), str(tmp_path / "slow.json"), "--format", "markdown"
    )
    assert slow.returncode == 1 and "REGRESSION" in slow.stdout
    # A 50% threshold lets the 30% slowdown through.
    assert (
        run_tfperf(
            "compare", str(tmp_path / "base.json"), str(tmp_path / "slow.json"), "--threshold", "50%"
        ).returncode
        == 0
    )
    broken = run_tfperf("compare", str(tmp_path / "base.json"), str(tmp_path / "broken.json"))
    assert broken.returncode == 2 and "broken.json:1" in broken.stderr and "Traceback" not in broken.stderr


# ---------------------------------------------------------------------------------------------------------
# End to end: real timings
# ---------------------------------------------------------------------------------------------------------

# The suite is the detection benchmark's (10 vs 13 matmuls 384×384, one side each), with one intra-op and one
# inter-op thread: on the 2-core VM the same matmul chain's median moved 59-62% between worker processes with
# TensorFlow's default thread pools (some processes ran at 7.5 ms, some at 10-12 ms), and 3-15% with one
# thread each (sets of 10 processes). A regression-tracking suite wants the steady setting.
sys.path.insert(0, str(ROOT / "benchmarks"))
from compare_detection import STEPS, suite_text  # noqa: E402 - benchmarks/ is a folder, put on the path just above


def _run_pair(tmp_path, attempt: int) -> dict:
    outs = {}
    for label, grown in (("base", "step10"), ("current", "step13")):
        suite = tmp_path / f"{label}.yaml"
        suite.write_text(suite_text(grown, "one thread per op"))
        outs[label] = tmp_path / f"{label}-{attempt}"
        proc = run_tfperf("run", str(suite), "--out", str(outs[label]), "--quiet")
        assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_tfperf(
        "compare",
        str(outs["base"] / "results.json"),
        str(outs["current"] / "results.json"),
        "--format",
        "json",
    )
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    return {"proc": proc, "data": data, "rows": {r["case"]: r for r in data["rows"]}, "outs": outs}


def _spreads(rows: dict) -> dict:
    return {
        f"{case} {side}": rows[case][f"{side}_spread"]
        for case in ("same", "grown")
        for side in ("base", "current")
    }


# 13 matmuls instead of 10: about 25-30% slower once the fixed cost per call is counted.
EXPECTED_CHANGE = 0.25


def _quiet(rows: dict) -> bool:
    """The machine held still: the unchanged control row compares as unchanged, and in both runs every row's
    repeats agreed within half the change under test. Noisier than that, compare rightly calls the change
    inconclusive (it must exceed the runs' own spread), and the test cannot tell a miss from noise."""
    spreads = _spreads(rows).values()
    return rows["same"]["verdict"] == "unchanged" and all(
        s is not None and s < EXPECTED_CHANGE / 2 for s in spreads
    )


@pytest.mark.workers
def test_real_runs_flag_the_slower_step_and_pass_the_unchanged_one(tmp_path):
    (tmp_path / "steps.py").write_text(textwrap.dedent(STEPS))
    for attempt in range(2):
        got = _run_pair(tmp_path, attempt)
        rows, data, proc = got["rows"], got["data"], got["proc"]
        assert data["only_in_base"] == [] and data["only_in_current"] == []
        # A run compared with itself: nothing regresses, exit 0.
        itself = run_tfperf("compare", str(got["outs"]["base"]), str(got["outs"]["base"]))
        assert itself.returncode == 0 and "0 regression(s)" in itself.stdout
        if _quiet(rows):
            break
    else:
        # Another process loaded the machine during one run and not the other: even the unchanged control
        # step moved. No statistics over two runs can separate that from a code change, so say so.
        spreads = ", ".join(f"{k} {v:.0%}" if v is not None else f"{k} -" for k, v in _spreads(rows).items())
        pytest.skip(
            f"machine too unsteady to time a 20% change: the unchanged control row was "
            f"{rows['same']['verdict']} ({rows['same']['reason']}); the runs' own spreads: {spreads}"
        )
    grown = rows["grown"]
    assert grown["verdict"] == "regression", grown["reason"]
    assert 1.1 < grown["ratio"] < 1.5 and grown["p_value"] < 0.01
    assert proc.returncode == 1


# --- processes: repeats as the unit, the runs' own spread ---------------------------------------------------


def processes_of(rng, medians: list[float], repeats: int = 3, steps: int = 15, sigma: float = 0.02) -> dict:
    """Result fields for samples timed in one process per entry of `medians`: each process its own offset,
    tight inside, as measured on the 2-core VM."""
    s, sizes, owner = [], [], []
    for p, m in enumerate(medians):
        for _ in range(repeats):
            s += samples(rng, m, n=steps, sigma=sigma)
            sizes.append(steps)
            owner.append(p)
    return {"samples": s, "repeat_sizes": sizes, "repeat_process": owner}


def test_a_shift_within_the_runs_process_spread_is_inconclusive_not_a_regression():
    rng = np.random.default_rng(11)
    # The same code: nine repeats at 1.00 ms and one at 1.25 ms in base (five processes of two repeats); 1.15
    # ms now. A test on the raw steps calls +15% significant, the pooled IQR is not noisy and the interval
    # clears 1; but the base run itself moved 25% between its repeats, so +15% is not evidence.
    fields = processes_of(rng, [0.00100] * 10, repeats=1)
    fields["samples"][-15:] = samples(rng, 0.00125, n=15)
    fields["repeat_process"] = [i // 2 for i in range(10)]
    base = Result("a", "function", "cpu", "train", 32, **fields)
    current = Result("a", "function", "cpu", "train", 32, **processes_of(rng, [0.00115] * 3))
    row = row_comparison.compare_results(base, current)
    assert row.ratio > 1.1 and row.p_value < 0.01 and not row.noisy and row.ci_low > 1
    assert row.verdict == "inconclusive" and "within the runs' own spread" in row.reason, row.reason
    assert row.base_processes == 5 and row.current_processes == 3
    assert 0.2 < row.base_spread < 0.35


def test_a_shift_beyond_every_process_is_still_a_regression():
    rng = np.random.default_rng(12)
    base = Result("a", "function", "cpu", "train", 32, **processes_of(rng, [0.0100, 0.0103, 0.0098]))
    current = Result("a", "function", "cpu", "train", 32, **processes_of(rng, [0.0130, 0.0127, 0.0133]))
    row = row_comparison.compare_results(base, current)
    assert row.verdict == "regression", row.reason
    assert "spread" in row.reason and row.current_spread < 0.1


def test_the_interval_resamples_repeats_so_process_offsets_widen_it():
    rng = np.random.default_rng(13)
    fields_b = processes_of(rng, [0.00100, 0.00125, 0.00105])
    fields_c = processes_of(rng, [0.00110, 0.00112, 0.00118])
    b = Result("a", "xla", "cpu", "train", 32, **fields_b)
    c = Result("a", "xla", "cpu", "train", 32, **fields_c)
    per_step = significance.bootstrap_ratio_ci(b.samples, c.samples)
    per_repeat = significance.repeat_bootstrap_ratio_ci(b.repeat_groups(), c.repeat_groups())
    assert per_repeat[1] - per_repeat[0] > 1.5 * (per_step[1] - per_step[0])
    assert per_repeat[0] < 1.0 < per_repeat[1]  # with the offsets counted, no change is inside the interval


def test_runs_timed_in_one_process_are_warned_about():
    rng = np.random.default_rng(14)
    one = run_of_rows({("a", "function"): samples(rng, 0.010)})
    many = RunResult(
        suite={"name": "t"},
        environment=dict(ENV),
        results=[Result("a", "function", "cpu", "train", 32, **processes_of(rng, [0.010, 0.010, 0.010]))],
    )
    assert any(
        "base run timed each job in one worker process" in w for w in compare.compare_runs(one, many).warnings
    )
    assert not any("one worker process" in w for w in compare.compare_runs(many, many).warnings)


def test_old_files_split_their_samples_by_timing_repeats():
    r = Result(
        "a", "eager", "cpu", "train", 32, samples=[1.0, 1.0, 2.0, 2.0, 3.0, 3.0], timing={"repeats": 3}
    )
    assert r.repeat_groups() == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]] and r.process_count == 1
    assert significance.repeat_spread(r.repeat_groups()) == pytest.approx(2.0)
    assert significance.repeat_spread([[1.0, 1.1]]) is None
