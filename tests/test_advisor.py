"""The advisor's rules over constructed results: each fires when its trigger is met and stays silent just
below.

No TensorFlow: the rules are plain functions over results.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from builders import result, run_of

from tfperf.analysis import advisor
from tfperf.figures.decisions import p_value
from tfperf.figures.measures import payback
from tfperf.figures.thresholds import INPUT_BOUND_FRACTION, SIGNIFICANCE_ALPHA
from tfperf.results.model import Result, RunResult
from tfperf.results.records import Retrace, Suggestion
from tfperf.results.variants import TuneConfig

DOCS = Path(__file__).resolve().parents[1] / "docs" / "suggestions.md"  # lists every code


def fired(rule, run: RunResult, code: str | None = None) -> list[tuple[Result, Suggestion]]:
    return [(r, s) for r, s in rule(run) if code is None or s.code == code]


# --- use-tf-function -------------------------------------------------------------------------------------


def test_use_tf_function_fires_on_the_eager_result_when_function_saves_more_than_the_threshold():
    eager, fn = result("eager", 0.0115), result("function", 0.010)  # saves 13%
    found = fired(advisor.rule_use_tf_function, run_of(eager, fn))
    assert [(r.mode, s.code) for r, s in found] == [("eager", "use-tf-function")]
    s = found[0][1]
    assert "11.5 ms/step" in s.evidence and "10 ms/step" in s.evidence
    assert "tf.function(step)" in s.fix
    assert s.evidence_data["speedup"] == pytest.approx(1.15, rel=1e-3)
    # The factor belongs to tf.function, the faster one: "eager ... vs tf.function ... (1.15× faster)" read
    # as if eager were faster.
    assert "tf.function 10 ms/step vs eager 11.5 ms/step (1.15× faster)" in s.evidence, s.evidence


def test_use_tf_function_silent_just_below_the_threshold():
    eager, fn = result("eager", 0.0109), result("function", 0.010)  # saves 8%
    assert fired(advisor.rule_use_tf_function, run_of(eager, fn)) == []


def test_use_tf_function_silent_when_the_difference_is_not_significant():
    # Interleaved, widely spread samples: medians differ by 15% but the U test cannot tell them apart.
    eager = result("eager", 0.0115, spread=1.5)
    fn = result("function", 0.010, spread=1.5)
    assert p_value(eager.samples, fn.samples) > SIGNIFICANCE_ALPHA
    assert fired(advisor.rule_use_tf_function, run_of(eager, fn)) == []


# --- XLA -------------------------------------------------------------------------------------------------


def test_enable_xla_fires_on_the_function_result_above_the_threshold_and_not_below():
    fn = result("function", 0.010)
    found = fired(advisor.rule_enable_xla, run_of(fn, result("xla", 0.0088)))
    assert [(r.mode, s.code) for r, s in found] == [("function", "enable-xla")]
    assert "jit_compile=True" in found[0][1].fix
    assert fired(advisor.rule_enable_xla, run_of(fn, result("xla", 0.0092))) == []


def test_xla_compile_payback_counts_the_steps_that_repay_the_compile():
    fn = result("function", 0.010, first_call_s=0.5)
    xla = result("xla", 0.008, first_call_s=2.5)
    found = fired(advisor.rule_xla_compile_payback, run_of(fn, xla))
    assert len(found) == 1 and found[0][0] is xla
    data = found[0][1].evidence_data
    # (2.5 - 0.5) s / (10 - 8) ms per step = 1000 steps (medians are exact to within the 0.2% spread).
    assert data["payback_steps"] == pytest.approx(1000, rel=0.01)
    # The title says the computed number of steps, written the one way numbers are written.
    assert found[0][1].title == f"XLA's compile cost pays back after {data['payback_steps']:,} steps"
    assert 990 <= data["payback_steps"] <= 1010
    # The one payback definition (figures.measures.payback), which the HTML's payback point uses too.
    assert (
        data["payback_steps"] == payback(xla.first_call_s, xla.median_s, fn.first_call_s, fn.median_s).steps
    )


def test_xla_compile_payback_is_immediate_when_xla_compiles_no_slower():
    fn, xla = result("function", 0.010, first_call_s=1.0), result("xla", 0.008, first_call_s=0.9)
    ((_, s),) = fired(advisor.rule_xla_compile_payback, run_of(fn, xla))
    assert s.evidence_data["payback_steps"] == 0


def test_xla_compile_payback_silent_when_xla_is_barely_faster():
    fn, xla = result("function", 0.010, first_call_s=0.5), result("xla", 0.0099, first_call_s=2.5)
    assert fired(advisor.rule_xla_compile_payback, run_of(fn, xla)) == []


def test_avoid_xla_fires_on_the_xla_result_with_the_measured_loss():
    fn, xla = result("function", 0.010), result("xla", 0.0106)  # 6% slower
    found = fired(advisor.rule_avoid_xla, run_of(fn, xla))
    assert len(found) == 1 and found[0][0] is xla
    assert found[0][1].evidence_data["loss_per_step_s"] == pytest.approx(0.0006, rel=0.05)
    assert fired(advisor.rule_avoid_xla, run_of(fn, result("xla", 0.0104))) == []


def test_avoid_xla_fires_when_xla_cannot_compile_the_step():
    fn = result("function", 0.010)
    xla = Result(
        case="c",
        mode="xla",
        device="cpu",
        task="train",
        batch_size=32,
        status="failed",
        error={"type": "InvalidArgumentError", "message": "XLA cannot compile op StringFormat", "hint": None},
    )
    ((r, s),) = fired(advisor.rule_avoid_xla, run_of(fn, xla))
    assert r is xla and "StringFormat" in s.evidence


def test_modes_of_different_batch_sizes_are_not_compared():
    eager, fn = result("eager", 0.05, batch_size=32), result("function", 0.010, batch_size=64)
    assert fired(advisor.rule_use_tf_function, run_of(eager, fn)) == []


# --- retracing -------------------------------------------------------------------------------------------

RETRACES = [
    Retrace(
        call=3,
        changed="scale: 3.0 -> 4.0 (python float)",
        argument="scale",
        kind="python_value",
        before=3.0,
        after=4.0,
        dims=None,
    )
]


def test_retracing_fires_above_one_trace_and_names_the_argument():
    r = result("function", tracing_count=3, retraces=RETRACES * 2)
    ((found_r, s),) = fired(advisor.rule_retracing, run_of(r))
    assert found_r is r and "3 traces" in s.evidence and "scale: 3.0 -> 4.0" in s.evidence
    assert s.fix
    assert s.evidence_data["arguments"] == ["scale"]


def test_retracing_silent_at_one_trace_and_in_eager():
    assert fired(advisor.rule_retracing, run_of(result("function", tracing_count=1), result("eager"))) == []


def test_fallback_retrace_fixes_follow_the_kind_of_change():
    assert "tf.constant" in advisor.fallback_retrace_fix(RETRACES)
    shape = [Retrace(argument="x", kind="shape", changed="x: shape (8, 16) -> (9, 16)")]
    assert "input_signature" in advisor.fallback_retrace_fix(shape)
    assert "reduce_retracing" in advisor.fallback_retrace_fix([Retrace(kind="object")])
    assert "reduce_retracing" in advisor.fallback_retrace_fix([])


# --- input pipeline --------------------------------------------------------------------------------------


def test_input_bound_fires_above_20_percent_with_wait_per_step_and_the_profilers_conclusion():
    r = result(
        "function",
        0.010,
        input_wait_fraction=0.25,
        input_wait_s=[0.0025] * 12,
        profile={"input_bound_percent": 31.0, "input_conclusion": "Your program is HIGHLY input-bound"},
    )
    ((found_r, s),) = fired(advisor.rule_input_bound, run_of(r))
    assert found_r is r
    assert "2.5 ms" in s.evidence and "25%" in s.evidence and "HIGHLY input-bound" in s.evidence
    assert s.evidence_data["input_wait_ms_per_step"] == pytest.approx(2.5)


def test_input_bound_silent_just_below_the_threshold():
    assert fired(advisor.rule_input_bound, run_of(result(input_wait_fraction=0.19))) == []


def test_input_bound_is_the_measured_wait_when_measured_and_the_profilers_figure_otherwise():
    """figures.measures.input_bound decides: a profiler figure above the threshold beside a measured wait
    below it is evidence, not a second verdict (an eager step's "All Others" time is Python dispatch, not
    input)."""
    profile = {"input_bound_percent": 31.9, "input_conclusion": "POTENTIALLY input-bound"}
    measured_low = result("eager", input_wait_fraction=0.01, profile=profile)
    assert fired(advisor.rule_input_bound, run_of(measured_low)) == []
    ((_, s),) = fired(advisor.rule_input_bound, run_of(result(profile=profile)))
    assert s.evidence_data["source"] == "profiler" and s.evidence_data["input_wait_fraction"] == 0.319
    assert "32% of the step, profiler" in s.evidence
    below = result(profile={"input_bound_percent": 100 * INPUT_BOUND_FRACTION - 1})
    assert fired(advisor.rule_input_bound, run_of(below)) == []


def test_input_bound_fix_is_the_best_measured_what_if():
    what_if = [
        {
            "change": "prefetch",
            "median_s": 0.008,
            "baseline_median_s": 0.010,
            "speedup": 1.25,
            "code": "ds = ds.prefetch(tf.data.AUTOTUNE)",
        },
        {
            "change": "parallel map",
            "median_s": 0.006,
            "baseline_median_s": 0.010,
            "speedup": 1.67,
            "code": "ds = ds.map(f, num_parallel_calls=tf.data.AUTOTUNE)",
        },
    ]
    ((_, s),) = fired(advisor.rule_input_bound, run_of(result(input_wait_fraction=0.5, what_if=what_if)))
    assert s.fix == "ds = ds.map(f, num_parallel_calls=tf.data.AUTOTUNE)"


@pytest.mark.parametrize(
    "change,code",
    [
        ("prefetch", "prefetch"),
        ("parallel_map", "parallelize-map"),
        ("map num_parallel_calls=AUTOTUNE", "parallelize-map"),
        ("cache", "cache-dataset"),
        ("interleave", "parallel-interleave"),
        # tfperf.measure.whatif's names
        ("prefetch(AUTOTUNE) appended", "prefetch"),
        ("parallel map via tf.data.Options", "parallelize-map"),
        ("parallel interleave(AUTOTUNE)", "parallel-interleave"),
        ("cache() appended", "cache-dataset"),
        ("larger batch (32 → 64)", "small-batch"),
    ],
)
def test_what_if_suggests_a_change_only_above_the_measured_speedup(change, code):
    helped = {"change": change, "median_s": 0.008, "baseline_median_s": 0.010, "speedup": 1.25}
    ((r, s),) = fired(advisor.rule_what_if, run_of(result(what_if=[helped])))
    assert s.code == code and "1.25×" in s.evidence and "10 → 8 ms/step" in s.evidence
    did_not_help = {"change": change, "median_s": 0.0095, "baseline_median_s": 0.010, "speedup": 1.05}
    assert fired(advisor.rule_what_if, run_of(result(what_if=[did_not_help]))) == []


def test_what_if_that_is_not_significant_is_not_suggested():
    lucky = {
        "change": "prefetch",
        "median_s": 0.008,
        "baseline_median_s": 0.010,
        "speedup": 1.25,
        "p_value": 0.2,
    }
    assert fired(advisor.rule_what_if, run_of(result(what_if=[lucky]))) == []
    assert len(fired(advisor.rule_what_if, run_of(result(what_if=[{**lucky, "p_value": 0.001}])))) == 1


def test_combined_what_if_is_not_reported_as_a_single_change():
    combined = {
        "change": "prefetch + parallel map",
        "median_s": 0.004,
        "baseline_median_s": 0.010,
        "speedup": 2.5,
    }
    assert fired(advisor.rule_what_if, run_of(result(what_if=[combined]))) == []


def test_small_batch_fires_when_throughput_still_rises_at_the_largest_batch():
    # samples/s: 64/0.010 = 6400; 128/x. A 15% gain needs x = 128 / 7360.
    sweep = [
        result(batch_size=32, median=0.006),
        result(batch_size=64, median=0.010),
        result(batch_size=128, median=128 / (6400 * 1.15)),
    ]
    ((r, s),) = fired(advisor.rule_small_batch, run_of(*sweep))
    assert r.batch_size == 128 and "batch(256)" in s.fix
    assert s.evidence_data["gain"] == pytest.approx(0.15, rel=0.01)
    flat = sweep[:2] + [result(batch_size=128, median=128 / (6400 * 1.05))]
    assert fired(advisor.rule_small_batch, run_of(*flat)) == []


def test_small_batch_needs_a_sweep():
    assert fired(advisor.rule_small_batch, run_of(result(batch_size=512, median=0.001))) == []


# --- GPU rules -------------------------------------------------------------------------------------------


def _gpu_env(cc: str) -> dict:
    return {"gpus": [{"name": "Tesla T4", "device": "/physical_device:GPU:0", "compute_capability": cc}]}


def test_mixed_precision_fires_on_a_tensor_core_gpu_only():
    fn, xla = result("function", 0.010, device="gpu:0"), result("xla", 0.008, device="gpu:0")
    ((r, s),) = fired(advisor.rule_mixed_precision, run_of(fn, xla, environment=_gpu_env("7.5")))
    assert r is xla and 'set_global_policy("mixed_float16")' in s.fix and "7.5" in s.evidence
    assert fired(advisor.rule_mixed_precision, run_of(fn, environment=_gpu_env("6.1"))) == []
    assert (
        fired(advisor.rule_mixed_precision, run_of(result(device="cpu"), environment=_gpu_env("8.0"))) == []
    )


def test_mixed_precision_silent_when_the_profile_shows_16_bit_compute():
    # xprof's overview figure, as tfperf.profile.xprof_tools reads it out.
    r = result(device="gpu:0", profile={"overview": {"device_compute_16bit_percent": 60.0}})
    assert fired(advisor.rule_mixed_precision, run_of(r, environment=_gpu_env("8.0"))) == []
    low = result(device="gpu:0", profile={"overview": {"device_compute_16bit_percent": 4.0}})
    ((_, s),) = fired(advisor.rule_mixed_precision, run_of(low, environment=_gpu_env("8.0")))
    assert "4% of device compute in 16-bit" in s.evidence


def test_host_bound_fires_on_kernel_launch_share_and_device_idle():
    launch = result(device="gpu:0", profile={"kernel_launch_percent": 16.0})
    ((r, s),) = fired(advisor.rule_host_bound, run_of(launch))
    assert "16.0%" in s.evidence
    idle = result(device="gpu:0", profile={"device_idle_percent": 25.0})
    assert len(fired(advisor.rule_host_bound, run_of(idle))) == 1
    below = result(device="gpu:0", profile={"kernel_launch_percent": 14.0, "device_idle_percent": 19.0})
    assert fired(advisor.rule_host_bound, run_of(below)) == []
    assert (
        fired(advisor.rule_host_bound, run_of(result(device="cpu", profile={"kernel_launch_percent": 50.0})))
        == []
    )


def test_host_bound_reads_the_profiling_modules_fields():
    # tfperf.profile.xprof_tools: kernel_launch_ms and step_time_ms at the top, device idle under overview.
    launch = result(device="gpu:0", profile={"kernel_launch_ms": 1.6, "step_time_ms": 10.0})
    ((_, s),) = fired(advisor.rule_host_bound, run_of(launch))
    assert s.evidence_data["kernel_launch_percent"] == pytest.approx(16.0)
    assert (
        fired(
            advisor.rule_host_bound,
            run_of(result(device="gpu:0", profile={"kernel_launch_ms": 1.4, "step_time_ms": 10.0})),
        )
        == []
    )
    idle = result(device="gpu:0", profile={"overview": {"device_idle_time_percent": 21.0}})
    assert len(fired(advisor.rule_host_bound, run_of(idle))) == 1


def test_use_tf_function_from_the_profilers_eager_share_in_a_traced_mode():
    r = result("function", profile={"overview": {"host_op_time_eager_percent": 12.0}})
    ((found, s),) = fired(advisor.rule_use_tf_function, run_of(r))
    assert found is r and "12.0%" in s.evidence
    below = result("function", profile={"overview": {"host_op_time_eager_percent": 9.0}})
    assert fired(advisor.rule_use_tf_function, run_of(below)) == []


def test_host_bound_fires_on_many_small_ops():
    many = result(
        device="gpu:0", profile={"device_compute_ms": 1.0}, graph={"op_count": 400}
    )  # 2.5 us per op
    ((_, s),) = fired(advisor.rule_host_bound, run_of(many))
    assert "400 ops" in s.evidence
    few = result(device="gpu:0", profile={"device_compute_ms": 1.0}, graph={"op_count": 50})
    assert fired(advisor.rule_host_bound, run_of(few)) == []


# --- measured configurations -----------------------------------------------------------------------------


def _tuned(config: str, settings: dict, median: float) -> Result:
    return result("function", median, variant=config, tune=TuneConfig(settings=settings))


def test_threading_fires_on_the_baseline_when_a_thread_setting_measured_faster():
    base = _tuned("baseline", {}, 0.010)
    fast = _tuned("intra=1 inter=2", {"intra_op_threads": 1, "inter_op_threads": 2}, 0.009)
    ((r, s),) = fired(advisor.rule_threading, run_of(base, fast))
    assert r is base
    assert "set_intra_op_parallelism_threads(1)" in s.fix and "set_inter_op_parallelism_threads(2)" in s.fix
    slightly = _tuned("intra=1", {"intra_op_threads": 1}, 0.0096)  # 1.04x
    assert fired(advisor.rule_threading, run_of(base, slightly)) == []


def test_threading_from_a_what_if_entry():
    w = {
        "change": "intra_op threads=1",
        "median_s": 0.008,
        "baseline_median_s": 0.010,
        "speedup": 1.25,
        "settings": {"intra_op_threads": 1},
    }
    ((_, s),) = fired(advisor.rule_threading, run_of(result(what_if=[w])))
    assert "set_intra_op_parallelism_threads(1)" in s.fix


def test_noisy_measurement_fires_above_10_percent_iqr_only():
    noisy = result(n=20, spread=0.5)
    assert noisy.noisy
    assert len(fired(advisor.rule_noisy_measurement, run_of(noisy))) == 1
    assert fired(advisor.rule_noisy_measurement, run_of(result(n=20, spread=0.15))) == []


def test_noisy_measurement_between_processes_suggests_one_thread_per_op_on_cpu():
    # Three processes, tight inside, their medians 10, 10.5 and 14 ms apart: the noise is between processes.
    groups = [result(median=m, n=10).samples for m in (0.010, 0.0105, 0.014)]
    fields = dict(samples=[x for g in groups for x in g], repeat_sizes=[10, 10, 10], repeat_process=[0, 1, 2])
    cpu = Result(case="c", mode="function", device="cpu", task="train", batch_size=32, **fields)
    ((_, s),) = fired(advisor.rule_noisy_measurement, run_of(cpu))
    assert "3 worker processes' medians were 40% apart (10, 10.5, 14 ms)" in s.evidence, s.evidence
    assert s.fix.startswith(advisor.STEADY_THREADS) and s.evidence_data["process_spread"] == 0.4
    # Threads already pinned, or a GPU: the generic advice.
    pinned = Result(
        case="c",
        mode="function",
        device="cpu",
        task="train",
        batch_size=32,
        setup={"tf_config": {"intra_op_threads": 1}},
        **fields,
    )
    gpu = Result(case="c", mode="function", device="gpu:0", task="train", batch_size=32, **fields)
    for r in (pinned, gpu):
        ((_, s),) = fired(advisor.rule_noisy_measurement, run_of(r))
        assert s.fix.startswith("repeats: 5")
    # Noisy within one process: no process spread to speak of.
    ((_, s),) = fired(advisor.rule_noisy_measurement, run_of(result(n=20, spread=0.5)))
    assert "worker processes" not in s.evidence and s.fix.startswith("repeats: 5")


# --- entry points ----------------------------------------------------------------------------------------


def test_quantize_tflite_evidence_states_the_factor_for_the_faster_mode():
    """The quantized mode is the faster one: the old sentence put "slower" after it ("tflite-int8 5.66 ms/step
    vs tflite 8.56 ms/step (1.51× slower)")."""
    agreement = {
        "max_abs_error": 0.01,
        "mean_abs_error": 0.001,
        "max_rel_error": 0.01,
        "top1_agreement": 1.0,
        "samples": 256,
    }
    int8 = result("tflite-int8", 0.00566, output_agreement=agreement)
    run = run_of(result("tflite", 0.00856), result("function", 0.0100), int8)
    ((r, s),) = fired(advisor.rule_quantize_tflite, run)
    assert r is int8
    assert "tflite-int8 5.66 ms/step vs tflite 8.56 ms/step (1.51× faster)" in s.evidence, s.evidence
    assert "tflite-int8 5.66 ms/step vs function 10 ms/step (1.77× faster)" in s.evidence, s.evidence
    assert "slower" not in s.evidence


def test_attach_suggestions_replaces_and_is_idempotent():
    eager, fn = result("eager", 0.05), result("function", 0.010)
    eager.suggestions = [Suggestion(code="stale")]
    run = run_of(eager, fn)
    advisor.attach_suggestions(run)
    first = [s.code for s in eager.suggestions]
    advisor.attach_suggestions(run)
    assert first == [s.code for s in eager.suggestions] == ["use-tf-function"]
    assert fn.suggestions == []
    grouped = advisor.suggestions_by_code(run)
    assert list(grouped) == ["use-tf-function"] and grouped["use-tf-function"][0][0] is eager
    for s in eager.suggestions:
        assert isinstance(s, Suggestion) and {"code", "title", "evidence", "fix"} <= set(s.to_json())


def test_failed_and_empty_results_do_not_break_the_rules():
    failed = Result(
        case="c",
        mode="function",
        device="cpu",
        task="train",
        batch_size=32,
        status="failed",
        error={"type": "X", "message": "boom", "hint": None},
    )
    run = run_of(
        failed, result("eager", 0.05), Result(case="d", mode="xla", device="cpu", task="train", batch_size=1)
    )
    advisor.attach_suggestions(run)
    assert all(s.code != "use-tf-function" for r in run.results for s in r.suggestions)


def test_every_code_is_documented_with_its_threshold():
    text = DOCS.read_text()
    for code in advisor.CODES:
        assert re.search(rf"^##+ `{re.escape(code)}`", text, re.M), f"{code} missing from {DOCS}"
        assert re.search(rf"^\| `{re.escape(code)}` \|", text, re.M), f"{code} has no row in {DOCS}'s table"


def test_advisor_imports_no_tensorflow():
    code = "import sys, tfperf.analysis.advisor; sys.exit(1 if 'tensorflow' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
