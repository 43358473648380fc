"""`tfperf tune`: candidates, ranking and exclusion over constructed results (no TensorFlow), the rendering,
and one real tune of a small case that must finish within its budget and whose winner is not slower than the
baseline when re-measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from builders import result
from conftest import run_tfperf
from ruamel.yaml import YAML

from tfperf import units
from tfperf.figures.thresholds import INPUT_BOUND_FRACTION
from tfperf.results.model import Result, RunResult
from tfperf.suite.loader import load_suite
from tfperf.tune.candidates import Candidate, merge_settings, setting_candidates, thread_grid
from tfperf.tune.ranking import MIN_GAIN, CaseTuning, Row, TuneRun, evaluate, gain
from tfperf.tune.render import ranking_rows, render_markdown, summary_lines, tuned_yaml
from tfperf.tune.search import record_what_ifs


def _result(
    mode: str, median: float, *, batch_size: int = 32, values=(1.0, -2.0, 0.5), n: int = 12
) -> Result:
    samples = [median * (1 + 0.002 * (i - n / 2) / n) for i in range(n)]
    return result(
        mode,
        case="c+x",
        batch_size=batch_size,
        samples=samples,
        output_check={"fingerprint": {"values": list(values)}},
    )


def _tuning(*rows: Row) -> CaseTuning:
    t = CaseTuning("c", 60.0, rows=list(rows), baseline=rows[0])
    evaluate(t)
    return t


BASE = Candidate("baseline", "baseline", modes=("function", "xla"))


def test_significantly_faster_config_is_best_and_ranked_first():
    base = Row(BASE, _result("function", 0.010))
    threads = Row(
        Candidate("threads-1x1", "threads", {"intra_op_threads": 1, "inter_op_threads": 1}),
        _result("function", 0.008),
    )
    slower = Row(
        Candidate("grappler-off", "grappler", {"grappler": {"disable_meta_optimizer": True}}),
        _result("function", 0.012),
    )
    t = _tuning(base, threads, slower)
    assert t.best is threads and threads.verdict == "faster" and slower.verdict == "slower"
    assert threads.speedup == pytest.approx(1.25, rel=0.01)
    assert threads.ci[0] <= threads.speedup <= threads.ci[1]
    assert [r.candidate.id for r in t.ranked()] == ["threads-1x1", "baseline", "grappler-off"]
    assert "tf.config.threading.set_intra_op_parallelism_threads(1)" in threads.code()


def test_a_config_that_changes_the_outputs_is_excluded_even_when_faster():
    base = Row(BASE, _result("function", 0.010))
    broken = Row(
        Candidate("no-remapping", "grappler", {"grappler": {"remapping": False}}),
        _result("function", 0.005, values=(1.0, -2.0, 0.6)),
    )  # 5% of the largest output off
    ok = Row(
        Candidate("autoclustering", "jit", {"jit": "autoclustering"}),
        _result("function", 0.009, values=(1.0, -2.0, 0.5000001)),
    )
    t = _tuning(base, broken, ok)
    assert broken.excluded and "outputs differ" in broken.excluded and broken.verdict == "excluded"
    assert t.best is ok
    assert all(r is not broken for r in t.ranked()[:2])
    assert any("excluded no-remapping" in line for line in summary_lines(t))


def test_output_tolerance_fits_the_compute_dtype_and_the_mode():
    from tfperf.figures.thresholds import (
        MIXED_PRECISION_OUTPUT_TOLERANCE,
        OUTPUT_TOLERANCE,
        XLA_OUTPUT_TOLERANCE,
        output_tolerance,
    )

    assert output_tolerance("float32", "function") == output_tolerance(None, "eager") == OUTPUT_TOLERANCE
    # XLA reorders float32 arithmetic: looser than graph, still tighter than any 16-bit rounding.
    assert (
        OUTPUT_TOLERANCE
        < output_tolerance("float32", "xla")
        == XLA_OUTPUT_TOLERANCE
        < MIXED_PRECISION_OUTPUT_TOLERANCE
    )
    for dtype in ("float16", "bfloat16", "mixed_float16", "mixed_bfloat16"):
        assert (
            output_tolerance(dtype, "function")
            == output_tolerance(dtype, "xla")
            == MIXED_PRECISION_OUTPUT_TOLERANCE
        )


def test_the_output_check_holds_each_row_to_its_measured_dtype_and_mode():
    def row(cid: str, mode: str, diff: float, settings: dict | None = None, dtype: str | None = None) -> Row:
        r = _result(mode, 0.009, values=(1.0, -2.0, 0.5 + 2.0 * diff))  # relative to the largest output, 2.0
        if dtype:
            r.setup = {"model_compute_dtype": dtype}
        return Row(Candidate(cid, "x", settings or {}), r)

    base = Row(BASE, _result("function", 0.010))
    graph = row("graph", "function", 2e-3)  # beyond graph float32's 1e-3
    xla = row("xla", "xla", 2e-3)  # within XLA's reordering
    clustered = row("autoclustering", "function", 2e-3, {"jit": "autoclustering"})
    # Measured on the built model: a case already in bfloat16 gets the 16-bit tolerance without a policy
    # setting.
    measured16 = row("bf16-model", "function", 1e-2, dtype="bfloat16")
    policy16 = row("mixed", "function", 1e-2, {"mixed_precision": "mixed_float16"})
    measured32 = row("f32-model", "xla", 1e-2, {"mixed_precision": "mixed_float16"}, dtype="float32")
    _tuning(base, graph, xla, clustered, measured16, policy16, measured32)
    assert "tolerance 0.001, float32)" in graph.excluded
    assert xla.excluded is None and clustered.excluded is None and xla.output_tolerance == 5e-3
    assert measured16.excluded is None and policy16.excluded is None and measured16.output_tolerance == 3e-2
    assert (
        "tolerance 0.005, float32 under XLA" in measured32.excluded
    )  # the measured dtype wins over the policy
    assert graph.to_json()["output_tolerance"] == 1e-3


def test_a_batch_size_is_compared_per_sample():
    base = Row(BASE, _result("function", 0.010, batch_size=32))
    bigger = Row(BASE, _result("function", 0.016, batch_size=64))  # 1.6x the step for 2x the samples
    t = _tuning(base, bigger)
    assert bigger.speedup == pytest.approx(1.25, rel=0.01) and t.best is bigger
    assert "dataset = dataset.batch(64)" in bigger.code()


def test_a_gain_below_min_gain_is_not_a_winner():
    base = Row(BASE, _result("function", 0.010))
    tiny = Row(
        Candidate("threads-1x2", "threads", {"intra_op_threads": 1, "inter_op_threads": 2}),
        _result("function", 0.0098),
    )
    t = _tuning(base, tiny)
    # Significant, but within compare's threshold at MIN_GAIN: not "faster", and no winner.
    assert tiny.verdict == f"within ±{MIN_GAIN:.0%}" and t.best is None and t.recommended is base


def test_measured_pipeline_changes_become_the_advisors_verified_suggestions():
    from tfperf.analysis import advisor

    base = Row(BASE, _result("function", 0.020))
    par = Row(
        Candidate("parallel-map", "pipeline", pipeline={"num_parallel_calls": "autotune"}),
        _result("function", 0.010),
    )
    useless = Row(Candidate("cache", "pipeline", pipeline={"cache": True}), _result("function", 0.0199))
    t = _tuning(base, par, useless)
    record_what_ifs(t)
    run = RunResult(suite={}, environment={}, results=[base.result, par.result, useless.result])
    advisor.attach_suggestions(run)
    codes = {s.code: s for s in base.result.suggestions}
    assert "parallelize-map" in codes and "cache-dataset" not in codes
    assert "num_parallel_calls=tf.data.AUTOTUNE" in codes["parallelize-map"].fix


def test_combined_settings_merge_grappler_options_and_keep_the_rest():
    merged = merge_settings(
        [
            {"intra_op_threads": 1, "inter_op_threads": 2},
            {"grappler": {"remapping": False}},
            {"grappler": {"layout_optimizer": False}},
            {"jit": "autoclustering"},
        ]
    )
    assert merged == {
        "intra_op_threads": 1,
        "inter_op_threads": 2,
        "jit": "autoclustering",
        "grappler": {"remapping": False, "layout_optimizer": False},
    }
    from tfperf.suite.tf_config import code_for, validate

    assert validate(merged) == []
    assert 'tf.config.optimizer.set_jit("autoclustering")' in code_for(merged)


def test_thread_grid_leaves_out_tensorflows_default():
    assert thread_grid(2) == [(1, 1), (1, 2), (2, 1)]
    assert (8, 8) not in thread_grid(8) and (4, 1) in thread_grid(8)


def _pipeline_candidate_ids(tmp_path: Path, **measured) -> list[str]:
    src = tmp_path / "p.yaml"
    src.write_text(
        "name: p\ncases:\n  - name: p\n    model: zoo:mlp\n    input:\n      shape: [8]\n"
        "      pipeline: {map_cost_ms: 1, num_parallel_calls: 1, prefetch: 0, cache: false}\n"
    )
    case = load_suite(src).cases[0]
    baseline = Result(
        case="p", mode="function", device="cpu", task="train", batch_size=8, samples=[0.01] * 5, **measured
    )
    return [
        c.id for c in setting_candidates(case, "cpu", baseline, {"cpu_count": 2}) if c.group == "pipeline"
    ]


def test_tf_data_candidates_follow_the_one_input_bound_figure(tmp_path):
    every = ["prefetch", "parallel-map", "cache", "pipeline-all"]
    assert _pipeline_candidate_ids(tmp_path, input_wait_fraction=0.30) == every
    assert _pipeline_candidate_ids(tmp_path, input_wait_fraction=INPUT_BOUND_FRACTION) == []
    # The measured wait decides over the profiler's figure (which counts Python dispatch as input)...
    assert (
        _pipeline_candidate_ids(tmp_path, input_wait_fraction=0.05, profile={"input_bound_percent": 31.9})
        == []
    )
    # ...which decides only when nothing was measured, as everywhere else.
    assert _pipeline_candidate_ids(tmp_path, profile={"input_bound_percent": 31.9}) == every


@pytest.mark.parametrize("capability, wanted", [("8.6", True), ([7, 0], True), ("6.1", False), (None, False)])
def test_mixed_precision_is_a_candidate_only_on_a_tensor_core_gpu(tmp_path, capability, wanted):
    src = tmp_path / "g.yaml"
    src.write_text("name: g\ncases:\n  - name: g\n    model: zoo:mlp\n")
    case = load_suite(src).cases[0]
    base = Result(case="g", mode="function", device="gpu:0", task="train", batch_size=8, samples=[0.01] * 5)
    ids = [
        c.id for c in setting_candidates(case, "gpu:0", base, {"gpus": [{"compute_capability": capability}]})
    ]
    assert ("mixed-float16" in ids) is wanted
    assert not any(i.startswith("threads-") for i in ids)  # thread counts are a CPU search


def test_too_few_samples_to_test_is_no_win_however_large_the_ratio():
    base = Row(BASE, _result("function", 0.010, n=2))
    fast = Row(Candidate("threads-1x1", "threads", {"intra_op_threads": 1}), _result("function", 0.005, n=2))
    t = _tuning(base, fast)
    assert fast.speedup == pytest.approx(2.0, rel=0.01) and fast.p_value is None and fast.ci is None
    assert fast.verdict == "inconclusive" and "too few samples" in fast.reason and t.best is None
    assert not gain(base, fast).faster


def test_a_win_is_significant_and_at_least_min_gain():
    base = Row(BASE, _result("function", 0.010))
    enough = gain(base, Row(BASE, _result("function", 0.010 / (1 + MIN_GAIN + 0.01))))
    tiny = gain(base, Row(BASE, _result("function", 0.010 / (1 + MIN_GAIN / 2))))
    slower = gain(base, Row(BASE, _result("function", 0.012)))
    assert enough.wins and tiny.significant and not tiny.faster and not tiny.wins
    assert slower.significant and not slower.faster and slower.speedup < 1


def test_the_ranking_table_and_summary_write_figures_the_shared_way():
    base = Row(BASE, _result("function", 0.010))
    threads = Row(
        Candidate("threads-1x1", "threads", {"intra_op_threads": 1, "inter_op_threads": 1}),
        _result("function", 0.008),
    )
    t = _tuning(base, threads)
    first = ranking_rows(t)[0]
    assert first["configuration"] == "threads-1x1 (best)"
    assert first["median ms/step"] == units.ms_column(threads.result.median_s)
    assert first["p"] == units.p_column(threads.p_value) and first["p"] != "-"
    assert first["speed-up [99% CI]"].startswith("1.25×")
    t.confirmation = {"status": "confirmed", "speedup": 1.24, "p_value": 1e-6}
    assert "re-measured in fresh workers: 1.24× (p<1e-4)" in summary_lines(t)[0]
    md = render_markdown(TuneRun(RunResult(suite={"name": "s"}, environment={}), [t], Path(".")))
    assert "(p < 0.01)" in md and "| threads-1x1 (best) |" in md
    # A winner the budget left no room to re-measure is not recommended, and the summary says what would help.
    t.unconfirmed, t.best = threads, None
    t.confirmation = {"status": "not run", "reason": "budget: 70 s left, about 75 s needed"}
    line = summary_lines(t)[0]
    assert line.startswith("best: the baseline — threads-1x1 · function · bs=32 measured 1.25×")
    assert line.endswith(
        "(budget: 70 s left, about 75 s needed); a larger --budget-s would let tune re-measure it"
    )


def test_tuned_yaml_is_a_valid_suite_with_the_winning_settings(tmp_path):
    src = tmp_path / "s.yaml"
    src.write_text(
        "name: s\ndefaults: {steps: 3}\ncases:\n  - name: c\n    model: zoo:mlp\n    batch_size: [16, 32]\n"
    )
    suite = load_suite(src)
    base = Row(BASE, _result("function", 0.010, batch_size=16))
    win = Row(
        Candidate("combined", "combined", {"intra_op_threads": 1, "grappler": {"remapping": False}}),
        _result("xla", 0.010, batch_size=32),
    )
    t = _tuning(base, win)
    assert t.best is win
    out = tmp_path / "tuned.yaml"
    out.write_text(tuned_yaml(suite, [t]))
    case = load_suite(out).cases[0]
    assert case.modes == ("xla",) and case.batch_sizes == (32,)
    assert case.tf_config == {"intra_op_threads": 1, "grappler": {"remapping": False}}


@pytest.mark.tensorflow
def test_tuned_yaml_gives_each_keras_of_a_split_case_its_own_winner(tmp_path):
    pytest.importorskip("tf_keras")  # the loader refuses keras: 2 without it
    src = tmp_path / "s.yaml"
    src.write_text(
        "name: s\ncases:\n  - name: c\n    model: zoo:mlp\n    keras: [3, 2]\n"
        "  - name: other\n    model: zoo:mlp\n"
    )
    suite = load_suite(src)
    assert [c.name for c in suite.cases] == ["c-keras3", "c-keras2", "other"]
    base3, base2 = Row(BASE, _result("function", 0.010)), Row(BASE, _result("function", 0.010))
    win3 = Row(
        Candidate("threads-1x1", "threads", {"intra_op_threads": 1, "inter_op_threads": 1}),
        _result("function", 0.007),
    )
    t3 = _tuning(base3, win3)
    t3.case = "c-keras3"
    t2 = _tuning(base2)
    t2.case = "c-keras2"
    out = tmp_path / "tuned.yaml"
    out.write_text(tuned_yaml(suite, [t3, t2]))
    cases = {c.name: c for c in load_suite(out).cases}
    assert set(cases) == {"c-keras3", "c-keras2"}  # the untuned case is left out, the split cases are not
    assert cases["c-keras3"].keras == 3 and cases["c-keras3"].tf_config == {
        "intra_op_threads": 1,
        "inter_op_threads": 1,
    }
    assert cases["c-keras2"].keras == 2 and not cases["c-keras2"].tf_config


@pytest.mark.workers
def test_tune_a_small_case_within_budget_and_its_winner_holds_when_re_measured(tmp_path):
    suite = tmp_path / "small.yaml"
    suite.write_text(
        "name: small\n"
        "defaults: {steps: 10, repeats: 2, warmup_steps: 2, profile: false, timeout_s: 120}\n"
        "cases:\n"
        "  - name: mlp\n"
        "    model: zoo:mlp\n"
        "    params: {hidden: 64}\n"
        "    batch_size: [8, 128]\n"
    )  # per sample, batch 128 is many times faster: a winner to find
    budget = 50
    out = tmp_path / "tune"
    proc = run_tfperf("tune", str(suite), "--budget-s", str(budget), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "tune.json").read_text())
    (case,) = report["cases"]
    # tune.json's top-level tolerance keeps its shape (a number: float32, graph mode); all three are listed
    # beside it.
    assert report["output_tolerance"] == 1e-3 and set(report["output_tolerances"]) == {
        "float32",
        "float32_xla",
        "16bit",
    }
    # The budget is a promise: workers are started only when they fit and are killed at its end.
    assert case["elapsed_s"] <= budget + 5
    measured = {r["config"] for r in case["ranking"]}
    assert "baseline" in measured
    for skipped in case["not_run"]:
        assert skipped["reason"].startswith("budget"), skipped
    assert (out / "results.json").exists() and (out / "tune.md").read_text().count("| baseline ") >= 1
    assert case["recommended_code"], "the best configuration comes as code to write"
    ranked = [r for r in case["ranking"] if r["status"] == "ok" and not r["excluded"]]
    # The baseline worker times every batch size of the sweep, so batch 128 is always measured, and per sample
    # it is many times faster than batch 8: tune must find it, rank it first and recommend it.
    assert ranked[0]["batch_size"] == 128, case["ranking"]
    assert case["best"] is not None and case["best"]["batch_size"] == 128, case
    assert "dataset = dataset.batch(128)" in case["recommended_code"], case["recommended_code"]
    # Proven by a re-measure, or measured beside the baseline in its own worker when the budget ran out.
    assert case["confirmation"]["status"] == "confirmed" or (
        case["confirmation"]["status"] == "not run" and case["best"]["config"] == "baseline"
    ), case
    # Every configuration ran in a worker that applied its settings before TF ran anything, and checked
    # outputs.
    from tfperf.results.model import load_results

    for r in load_results(out).results:
        if not r.ok:  # only a job the budget cut short may be missing
            assert r.status in ("timeout", "skipped"), (r.case, r.error)
            continue
        assert r.output_check.fingerprint.values, r.case
        wanted, applied = r.setup.tf_config, r.setup.tf_config_applied
        for key in ("intra_op_threads", "inter_op_threads"):
            assert applied[key] == wanted.get(key, 0), (r.case, key)

    # Re-measure: the tuned case and the suite's baseline side by side, each in its own worker.
    yaml = YAML(typ="rt")
    tuned = yaml.load((out / "tuned.yaml").read_text())
    tuned_case = tuned["cases"][0]
    tuned_case["name"] = "tuned"
    baseline_case = {
        "name": "baseline",
        "model": "zoo:mlp",
        "params": {"hidden": 64},
        "batch_size": 8,
        "modes": ["function"],
    }
    tuned["cases"] = [baseline_case, tuned_case]
    check = tmp_path / "check.yaml"
    with open(check, "w") as f:
        yaml.dump(tuned, f)
    proc = run_tfperf("run", str(check), "--out", str(tmp_path / "check"), "--quiet", "--no-profile")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from tfperf.analysis.row_comparison import compare_results

    results = {r.case: r for r in load_results(tmp_path / "check").results}
    base, best = results["baseline"], results["tuned"]
    # Per sample, so a tuned batch size compares fairly; "not slower" = not a significant regression.
    base_ps = Result(**{**base.__dict__, "samples": [s / base.batch_size for s in base.samples]})
    best_ps = Result(**{**best.__dict__, "samples": [s / best.batch_size for s in best.samples]})
    row = compare_results(base_ps, best_ps)
    assert row.verdict != "regression", row.reason


BLOCKED_STEPS = """
import tensorflow as tf

W = [tf.Variable(tf.fill((4,), float(i))) for i in range(40)]


def step(x):
    # Forty small outputs: fetching them all costs more than a tenth of the step, so it is timed in blocks.
    return [w * x for w in W]


def inputs():
    x = tf.ones((4,))
    while True:
        yield (x,), {}
"""


@pytest.mark.workers
def test_a_step_timed_in_blocks_is_timed_in_the_first_process_block_size_by_every_later_process(tmp_path):
    """tune's rounds hand round 0's block size to later processes, as `tfperf run` does: a step timed in
    blocks, in two processes, merges into one result instead of failing with TimingMethodMismatch (each
    process choosing its own block size, x35 and x33, was the failure)."""
    from tfperf.suite.spec import CaseSpec
    from tfperf.tune.progress import SilentTuneProgress
    from tfperf.tune.search import CaseTuner

    (tmp_path / "steps.py").write_text(BLOCKED_STEPS)
    case = CaseSpec(
        name="many-outputs",
        function="steps.py:step",
        inputs="steps.py:inputs",
        steps=10,
        repeats=2,
        warmup_steps=2,
        processes=2,
        profile=False,
        timeout_s=120,
        base_dir=str(tmp_path),
    )
    tuner = CaseTuner(case, tmp_path / "out", 300.0, {}, SilentTuneProgress(), sys.executable)
    (row,) = tuner.measure(BASE, ("function",), case.batch_sizes, planned=1)
    r = row.result
    assert r.ok, r.error
    assert (r.case, r.variant) == ("many-outputs", "baseline") and r.tune.group == "baseline"
    firsts, later = r.timing.by_process
    assert firsts.method == later.method == "blocked"
    assert later.block_size == firsts.block_size == r.timing.block_size > 1
    assert r.repeat_process == [0, 0, 1, 1]
    plan = json.loads((tmp_path / "out" / "workers" / "many-outputs+baseline.p1.plan0.json").read_text())
    assert plan["parts"][0]["block_sizes"] == {"0": firsts.block_size}
