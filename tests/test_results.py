import json
import subprocess
import sys
from pathlib import Path

import pytest
from builders import result, run_of
from record_examples import JOB_RECORDS

from tfperf.errors import ResultsFileError
from tfperf.results.model import SCHEMA_VERSION, JobSpec, Result, RunResult, load_results, write_results
from tfperf.results.records import (
    ErrorInfo,
    GraphStats,
    OutputAgreement,
    ProcessTiming,
    Profile,
    Record,
    Retrace,
    Suggestion,
    Timing,
    WhatIf,
)
from tfperf.results.variants import TuneConfig

ROOT = Path(__file__).resolve().parents[1]
OLD_RESULTS = ROOT / "tests" / "data" / "results_v1_before_layout.json"

FIELDS = {
    "case",
    "mode",
    "device",
    "task",
    "batch_size",
    "status",
    "error",
    "first_call_s",
    "step_time_s",
    "samples",
    "throughput",
    "tracing_count",
    "retraces",
    "input_wait_fraction",
    "peak_memory_bytes",
    "profile",
    "suggestions",
}


def _run() -> RunResult:
    ok = result(
        "function",
        case="mlp",
        samples=[0.01, 0.011, 0.012],
        first_call_s=0.5,
        tracing_count=1,
        input_wait_fraction=0.01,
    )
    failed = Result.not_run(
        JobSpec("mlp", "xla", "cpu", "train", 32), "failed", "InvalidArgumentError", "boom"
    )
    return run_of(ok, failed, suite={"name": "s", "path": "s.yaml", "sha256": "0"})


def test_every_design_field_is_present_and_round_trips(tmp_path):
    path = tmp_path / "results.json"
    write_results(_run(), path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    for r in data["results"]:
        assert FIELDS <= set(r)
    assert data["results"][0]["step_time_s"]["median"] == 0.011
    assert data["results"][1]["step_time_s"] is None and data["results"][1]["throughput"] is None
    again = load_results(path)
    assert again.results[0].samples == [0.01, 0.011, 0.012]
    assert again.exit_code == 1


@pytest.mark.parametrize(
    "content,needle",
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 99, "results": []}', "newer than this tfperf"),
        ('{"schema_version": 0, "results": []}', "not supported"),
        ("[1, 2]", "not a tfperf results file"),
    ],
)
def test_unreadable_files_say_why(tmp_path, content, needle):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ResultsFileError, match=needle):
        load_results(path)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsFileError, match="no such file"):
        load_results(tmp_path / "nope.json")


@pytest.mark.cli
def test_report_rerenders_without_tensorflow(tmp_path):
    path = tmp_path / "results.json"
    write_results(_run(), path)
    code = (
        "import sys; from tfperf.cli import main; rc = main(['report', %r, '--format', 'markdown']); "
        "assert 'tensorflow' not in sys.modules, 'report imported TensorFlow'; sys.exit(rc)"
    ) % str(path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| mlp" in proc.stdout and "InvalidArgumentError" in proc.stdout


@pytest.mark.cli
def test_report_on_bad_file_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text("{oops")
    proc = subprocess.run(
        [sys.executable, "-m", "tfperf", "report", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_merge_process_appends_a_later_process_samples_and_keeps_the_first_process_read_outs():
    from tfperf.run.merge import merge_process

    first = Result(
        "a",
        "xla",
        "cpu",
        "train",
        32,
        first_call_s=1.5,
        samples=[1.0, 1.1, 1.2, 1.3],
        repeat_sizes=[2, 2],
        repeat_process=[0, 0],
        input_wait_s=[0.1, 0.1, 0.1, 0.1],
        tracing_count=1,
        timing={"method": "per_step", "repeats": 2},
    )
    later = Result(
        "a",
        "xla",
        "cpu",
        "train",
        32,
        first_call_s=1.4,
        samples=[2.0, 2.0, 2.2, 2.2],
        repeat_sizes=[2, 2],
        repeat_process=[1, 1],
        input_wait_s=[0.0] * 4,
        tracing_count=1,
        timing={"method": "per_step", "repeats": 2},
    )
    merge_process(first, later, 1)
    assert first.samples == [1.0, 1.1, 1.2, 1.3, 2.0, 2.0, 2.2, 2.2]
    assert first.repeat_process == [0, 0, 1, 1] and first.process_count == 2
    assert [len(g) for g in first.process_groups()] == [4, 4]
    assert first.first_call_s == 1.5  # the compile cost stays the first process's
    assert first.input_wait_fraction == pytest.approx(0.4 / sum(first.samples))
    assert [p.median_s for p in first.timing.by_process] == [pytest.approx(1.15), pytest.approx(2.1)]
    assert all(isinstance(p, ProcessTiming) for p in first.timing.by_process) and first.timing.processes == 2

    # A later process that ran out of time fails the job; the samples of the processes that finished stay.
    failed = Result.not_run(later.spec, "timeout", "Timeout", "killed")
    merge_process(first, failed, 2, log_path="out/workers/a.p2.log")
    assert first.status == "failed" and not first.ok and len(first.samples) == 8
    assert first.error.process == 2 and first.error.type == "Timeout"
    assert (
        "process 3 of this job failed" in first.error.message and "measured it: killed" in first.error.message
    )
    assert first.error.log_path == "out/workers/a.p2.log" and "out/workers/a.p2.log" in first.error.hint
    assert first.process_errors[0].status == "timeout"


# --- the typed records: each JSON object a writer produces reads into its record and writes back unchanged

RECORDS = {
    ErrorInfo: {
        "type": "WorkerCrash",
        "message": "worker 1 (pid 7) killed by SIGKILL before reporting",
        "hint": "the other workers were stopped",
        "phase": "timed",
        "returncode": -9,
        "log_tail": "...",
        "worker": 1,
        "workers": [1],
    },
    Timing: {
        "method": "per_step",
        "block_size": 1,
        "sync": "fetch",
        "sync_cost_s": 2.2e-06,
        "warmup_steps": 2,
        "warmup_steps_run": 302,
        "warmup_s": 0.5,
        "steps": 10,
        "repeats": 3,
        "load_average_1m": 0.68,
        "gc_disabled_while_timing": True,
        "processes": 2,
        "by_process": [
            {
                "process": 0,
                "first_call_s": 0.7,
                "median_s": 0.0016,
                "method": "per_step",
                "block_size": 1,
                "load_average_1m": 0.68,
                "warmup_s": 0.5,
            },
            {
                "process": 1,
                "first_call_s": 0.99,
                "median_s": 0.0024,
                "method": "per_step",
                "block_size": 1,
                "load_average_1m": 1.04,
                "warmup_s": 0.5,
            },
        ],
    },
    ProcessTiming: {
        "process": 3,
        "first_call_s": 0.7,
        "median_s": 0.0016,
        "method": "blocked",
        "block_size": 8,
        "load_average_1m": 0.68,
        "warmup_s": 0.5,
    },
    Retrace: {
        "call": 3,
        "changed": "x: shape (32, 4) -> (16, 4)",
        "argument": "x",
        "kind": "shape",
        "before": [32, 4],
        "after": [16, 4],
        "dims": [0],
        "path": "x",
        "nearest_call": 2,
        "changes": [{"argument": "x", "kind": "shape"}],
    },
    WhatIf: {
        "change": "prefetch",
        "code": "dataset = dataset.prefetch(tf.data.AUTOTUNE)",
        "combined": False,
        "batch_size": 32,
        "median_s": 0.01,
        "baseline_median_s": 0.02,
        "baseline_input_wait_fraction": 0.5,
        "speedup": 2.0,
        "input_wait_fraction": 0.01,
        "p_value": 0.001,
        "samples": [0.01, 0.011],
        "helped": True,
        "error": None,
        "skipped": None,
    },
    TuneConfig: {
        "group": "threads",
        "label": "1 intra-op thread, 1 inter-op thread",
        "settings": {"intra_op_threads": 1, "inter_op_threads": 1},
        "pipeline": {},
    },
    Suggestion: {
        "code": "noisy-measurement",
        "title": "Noisy timing",
        "evidence": "the IQR is 41% of the median",
        "fix": "tf_config: {intra_op_threads: 1}",
        "threshold": "IQR > 10% of the median",
        "evidence_data": {"iqr_fraction": 0.41, "samples": 90},
    },
    Profile: {
        "logdir": "out/tensorboard/mlp-xla",
        "tb_run": "mlp-xla",
        "run": "mlp-xla/2024_01_01_00_00_00",
        "profile_run": "2024_01_01_00_00_00",
        "hosts": ["h"],
        "profile_wall_s": 1.2,
        "readout_s": 0.4,
        "readout_error": None,
        "input_bound_percent": 31.9,
        "input_conclusion": "POTENTIALLY input-bound",
        "step_time_ms": 1.5,
        "host_compute_ms": 1.2,
        "step_time_breakdown_ms": {"input": 0.3},
        "top_ops": [{"name": "MatMul", "type": "MatMul", "self_time_us": 10.0, "share": 0.4}],
        "phases": {"forward": 0.5},
        "layers": [{"name": "dense", "share": 0.9}],
        "overview": {"a": 1},
        "memory_peak_bytes": 1024,
        "memory_peak_by_allocator": {"cpu": 1024},
        "memory_note": None,
    },
    GraphStats: {
        "op_count": 303,
        "grappler_op_count": 228,
        "hlo_instructions": 391,
        "optimized_hlo_instructions": 76,
        "fusions": 38,
        "fused_instructions": 329,
    },
    OutputAgreement: {
        "samples": 8,
        "top1_agreement": 1.0,
        "max_abs_error": 1e-6,
        "max_rel_error": 2e-6,
        "mean_abs_error": 5e-7,
    },
    # The records of what tfperf writes beyond the timing: every field written, null where not measured.
    **JOB_RECORDS,
}


def _record_types() -> set[type]:
    todo, seen = list(Record.__subclasses__()), set()
    while todo:
        cls = todo.pop()
        seen.add(cls)
        todo.extend(cls.__subclasses__())
    return seen


def test_every_record_type_is_covered_and_declares_every_key_of_its_example():
    assert _record_types() == set(RECORDS)
    for cls, d in RECORDS.items():
        record = cls.from_json(d)
        assert record.details == {}, cls.__name__  # every key of the example is a declared field


@pytest.mark.parametrize("cls", list(RECORDS), ids=lambda c: c.__name__)
def test_a_record_reads_its_json_object_and_writes_it_back_unchanged(cls):
    d = RECORDS[cls]
    record = cls.from_json(json.loads(json.dumps(d)))
    assert isinstance(record, cls)
    assert record.to_json() == d
    assert json.loads(json.dumps(record.to_json())) == d  # JSON-able as written
    assert cls.from_json(record) is record


@pytest.mark.parametrize("cls", list(RECORDS), ids=lambda c: c.__name__)
def test_unknown_keys_are_kept_in_details_and_written_back(cls):
    d = {**RECORDS[cls], "written_by_a_newer_tfperf": {"nested": [1, 2]}, "remark": "kept"}
    record = cls.from_json(d)
    assert record.details == {"written_by_a_newer_tfperf": {"nested": [1, 2]}, "remark": "kept"}
    assert record.to_json() == d


def test_nested_records_are_typed_and_keep_their_own_unknown_keys():
    d = {"method": "per_step", "by_process": [{"process": 0, "median_s": 0.1, "host": "a"}]}
    timing = Timing.from_json(d)
    assert isinstance(timing.by_process[0], ProcessTiming) and timing.by_process[0].details == {"host": "a"}
    assert timing.to_json() == d


def test_null_keys_stay_written_and_always_keys_are_written_when_unset():
    assert ErrorInfo.from_json({"type": "E", "message": "m", "phase": None}).to_json() == {
        "type": "E",
        "message": "m",
        "hint": None,
        "phase": None,
    }
    assert ErrorInfo(type="E", message="m").to_json() == {"type": "E", "message": "m", "hint": None}
    assert Profile(error="no trace").to_json() == {"error": "no trace"}


def test_a_record_from_something_else_than_an_object_is_a_type_error():
    with pytest.raises(TypeError, match="ErrorInfo"):
        ErrorInfo.from_json("boom")


def test_result_built_with_dicts_holds_records():
    r = Result(
        "a",
        "function",
        "cpu",
        "train",
        8,
        **{
            name: RECORDS[cls]
            for name, cls in [
                ("error", ErrorInfo),
                ("timing", Timing),
                ("profile", Profile),
                ("graph", GraphStats),
                ("output_agreement", OutputAgreement),
            ]
        },
        retraces=[RECORDS[Retrace]],
        what_if=[RECORDS[WhatIf]],
        suggestions=[RECORDS[Suggestion]],
    )
    assert isinstance(r.error, ErrorInfo) and r.error.worker == 1
    assert isinstance(r.timing, Timing) and isinstance(r.timing.by_process[1], ProcessTiming)
    assert isinstance(r.profile, Profile) and r.profile.input_bound_percent == 31.9
    assert isinstance(r.graph, GraphStats) and isinstance(r.output_agreement, OutputAgreement)
    assert [type(x) for x in r.retraces + r.what_if + r.suggestions] == [Retrace, WhatIf, Suggestion]
    assert r.suggestions[0].code == "noisy-measurement" and r.what_if[0].speedup == 2.0
    # Assigning a JSON object later converts it too; None stays None.
    r.profile = {"logdir": "x", "run": "y", "steps": 5}
    assert isinstance(r.profile, Profile) and r.profile.details == {"steps": 5}
    r.error = None
    assert r.error is None
    written = r.to_json()
    for name, cls in [("timing", Timing), ("graph", GraphStats), ("output_agreement", OutputAgreement)]:
        assert written[name] == RECORDS[cls]
    assert written["what_if"] == [RECORDS[WhatIf]] and written["suggestions"] == [RECORDS[Suggestion]]
    assert Result.from_json(json.loads(json.dumps(written))).to_json() == written


def test_not_run_builds_an_error_record():
    r = Result.not_run(JobSpec("a", "xla", "cpu", "train", 8), "failed", "ValueError", "boom", "try eager")
    assert r.error == ErrorInfo(type="ValueError", message="boom", hint="try eager")
    assert r.error.summary == "ValueError: boom"


def test_a_file_written_before_the_records_loads_into_them_and_writes_back_equal():
    raw = json.loads(OLD_RESULTS.read_text())
    run = load_results(OLD_RESULTS)
    for r in run.results:
        assert isinstance(r.timing, Timing) and all(isinstance(p, ProcessTiming) for p in r.timing.by_process)
        assert isinstance(r.profile, Profile) and r.profile.logdir
        assert r.suggestions and all(isinstance(s, Suggestion) and s.code for s in r.suggestions)
    assert sum(isinstance(r.graph, GraphStats) for r in run.results) == 6
    # Every key the file held is written back unchanged, but `extra`: the keys tfperf wrote there have fields
    # of their own now (tests/test_results_compat.py). Fields added since are written too: null (every field
    # is present, null where it was not measured), or holding what moved out of `extra`.
    again = json.loads(json.dumps(run.to_json()))
    for old, new in zip(raw["results"], again["results"]):
        assert {k: new[k] for k in old if k != "extra"} == {k: v for k, v in old.items() if k != "extra"}
        assert new["extra"] == {} and new["tracing"]["calls"] == old["extra"]["trace_calls"]
        assert (new["setup"] or {}).get("input_source") == old["extra"].get("input_source")
        added = set(new) - set(old) - {"setup", "tracing"}
        assert all(new[k] in (None, [], {}) for k in added), added
    assert {**again, "results": raw["results"]} == raw
    assert json.loads(json.dumps(RunResult.from_json(again).to_json())) == again


def test_a_tune_result_named_case_plus_config_loads_as_a_variant_of_its_case():
    """`tfperf tune` used to name a configuration's results `<case>+<config>` and describe it in extra.tune;
    such a file loads with the case's own name, the configuration as the job's variant, and what it changed
    as `tune`."""
    old = {
        "case": "mlp+threads-1",
        "mode": "function",
        "device": "cpu",
        "task": "train",
        "batch_size": 32,
        "samples": [0.01, 0.011],
        "extra": {
            "tune": {
                "case": "mlp",
                "config": "threads-1",
                "group": "threads",
                "settings": {"intra_op_threads": 1},
                "pipeline": {},
                "label": "1 intra-op thread",
            },
            "an_extension": 1,
        },
    }
    r = Result.from_json(old)
    assert (r.case, r.variant) == ("mlp", "threads-1")
    assert r.tune == TuneConfig(group="threads", label="1 intra-op thread", settings={"intra_op_threads": 1})
    assert r.extra == {"an_extension": 1}  # what an extension wrote stays
    assert r.spec.label == "mlp+threads-1 [function bs=32]" and r.spec.variant == "threads-1"
    again = r.to_json()
    assert again["case"] == "mlp" and again["variant"] == "threads-1" and "tune" not in again["extra"]
    assert Result.from_json(again).to_json() == again
    # A suite's own result named with a "+" is not taken for a tune configuration.
    plain = Result.from_json({**old, "case": "a+b", "extra": {}})
    assert (plain.case, plain.variant, plain.tune) == ("a+b", None, None)
