"""`tfperf schema suite|results`: JSON Schemas generated from the models that read the files. The suite schema
must accept every suite tfperf ships and reject what the loader rejects for a key or a type; the results
schema must accept a results.json written by an earlier tfperf."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from builders import result, run_of
from ruamel.yaml import YAML

from tfperf.results.job_records import (
    Deployment,
    Distributed,
    DistributedBaseline,
    FitLoop,
    OutputCheck,
    OutputValues,
    ProcessError,
    Setup,
    TraceReadout,
    WorkerSummary,
    readout_failed,
)
from tfperf.results.json_schema import derived_fields
from tfperf.results.model import Result, RunResult, load_results
from tfperf.results.records import (
    ErrorInfo,
    GraphStats,
    OutputAgreement,
    Profile,
    Retrace,
    Suggestion,
    Timing,
    WhatIf,
)
from tfperf.results.serve_records import LatencySummary, OpenLoop, ServeBench, ServerHistogram, ServerMetrics
from tfperf.run.merge import merge_process
from tfperf.suite.loader import load_suite

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "data" / "bad_suites"
OLD_RESULTS = ROOT / "tests" / "data" / "results_v1_before_layout.json"
# Written before tfperf's own keys left `extra` for typed fields (tests/test_results_compat.py).
BEFORE_RECORDS = [
    ROOT / "tests" / "data" / "results_v1_before_records.json",
    ROOT / "tests" / "data" / "serve_bench_v1_before_records.json",
]


def _schema(what: str) -> dict:
    """The command's output, from a fresh interpreter that must not import TensorFlow."""
    code = (
        "import sys\nfrom tfperf.cli import main\nrc = main(['schema', sys.argv[1]])\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\nsys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, what], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@pytest.fixture(scope="module")
def suite_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema("suite"))


@pytest.fixture(scope="module")
def results_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema("results"))


def _yaml(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


SHIPPED = sorted((ROOT / "suites").rglob("*.yaml")) + [
    ROOT / "tests/data/faults.yaml",
    ROOT / "tests/data/pipelines.yaml",
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_suite_validates(path, suite_validator):
    load_suite(path)  # the loader accepts it too: the two agree on a good suite
    errors = [e.message for e in suite_validator.iter_errors(_yaml(path))]
    assert errors == []


def test_shipped_suites_are_found():
    assert ROOT / "suites/smoke.yaml" in SHIPPED and len(SHIPPED) >= 10


# What the loader rejects for a key or a value's type or range, the schema rejects as well. (References that
# do not resolve, duplicate names and rules over a merged case are the loader's alone.)
STRUCTURAL = [
    "unknown_key_top.yaml",
    "unknown_key_defaults.yaml",
    "unknown_key_case.yaml",
    "unknown_key_nested.yaml",
    "wrong_types.yaml",
    "out_of_range.yaml",
    "unknown_mode.yaml",
    "bad_device.yaml",
    "unknown_task.yaml",
    "empty_cases.yaml",
    "bad_name.yaml",
    "missing_name.yaml",
    "top_not_mapping.yaml",
    "distribute_mirrored_workers.yaml",
    "distribute_one_device_default.yaml",
]


@pytest.mark.parametrize("name", STRUCTURAL)
def test_schema_rejects_what_the_loader_rejects_for_keys_and_types(name, suite_validator):
    assert not suite_validator.is_valid(_yaml(BAD / name))


GOOD = {
    "name": "s",
    "defaults": {"steps": 5, "input": {"shape": [4], "pipeline": {"prefetch": "autotune"}}},
    "cases": [
        {
            "name": "a",
            "model": "zoo:mlp",
            "batch_size": [8, 16],
            "distribute": {"strategy": "multi_worker", "workers": 2},
            "tf_config": {"intra_op_threads": 1, "grappler": {"remapping": False}},
        },
        {"name": "b", "function": "steps.py:step", "inputs": "steps.py:inputs", "model": None},
    ],
}


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(descripton="typo"),
        lambda d: d["cases"][0].update(batchsize=8),
        lambda d: d["defaults"]["input"]["pipeline"].update(prefetch="lots"),
        lambda d: d["defaults"].update(steps="ten"),
        lambda d: d["defaults"].update(steps=0),
        lambda d: d["defaults"].update(name="x"),  # a default cannot name the cases
        lambda d: d["cases"][1].pop("name"),
        lambda d: d["cases"][0].update(modes=["eager", "jit"]),
        lambda d: d["cases"][0].update(model="not a reference"),
        lambda d: d["cases"][0]["distribute"].update(strategy="mirrored"),  # mirrored runs in one worker
        lambda d: d["cases"][0].update(distribute={"devices": 2}),  # one_device (the default) on one device
        lambda d: d["cases"][0]["tf_config"].update(jit="always"),
    ],
    ids=[
        "top-key",
        "case-key",
        "pipeline-type",
        "int-type",
        "minimum",
        "default-name",
        "case-without-name",
        "mode",
        "reference",
        "mirrored-workers",
        "one-device-devices",
        "tf-config",
    ],
)
def test_schema_rejects_a_bad_key_or_value(change, suite_validator):
    assert suite_validator.is_valid(GOOD)
    bad = copy.deepcopy(GOOD)
    change(bad)
    assert not suite_validator.is_valid(bad)


def test_suite_schema_describes_keys_and_gives_the_defaults(suite_validator):
    case = suite_validator.schema["$defs"]["CaseModel"]["properties"]
    assert case["steps"]["default"] == 20 and case["modes"]["default"] == ["eager", "function", "xla"]
    assert case["batch_size"]["default"] == 32 and "default" not in case["model"]
    assert all(prop.get("description") for prop in case.values())


# --- results ------------------------------------------------------------------------------------------------


def test_results_schema_validates_a_file_written_by_the_previous_version(results_validator):
    old = json.loads(OLD_RESULTS.read_text())
    assert {"step_time_s", "throughput", "noisy"} <= set(old["results"][0])  # the derived fields are there
    assert [e.message for e in results_validator.iter_errors(old)] == []


@pytest.mark.parametrize("path", BEFORE_RECORDS, ids=lambda p: p.name)
def test_results_schema_validates_a_file_written_before_the_typed_records_as_read_and_as_written_again(
    path, results_validator
):
    old = json.loads(path.read_text())
    assert [e.message for e in results_validator.iter_errors(old)] == []
    again = json.loads(json.dumps(load_results(path).to_json()))  # the old `extra` keys in their records
    assert any(r["setup"] or r["serve"] for r in again["results"])
    assert [e.message for e in results_validator.iter_errors(again)] == []


def test_results_schema_describes_the_records_of_what_tfperf_writes(results_validator):
    defs = results_validator.schema["$defs"]
    result = defs["Result"]["properties"]
    for field, record in [
        ("setup", "Setup"),
        ("tracing", "TraceReadout"),
        ("output_check", "OutputCheck"),
        ("what_if_baseline", "WhatIfBaseline"),
        ("readout_errors", "ReadoutErrors"),
        ("distributed", "Distributed"),
        ("deployment", "Deployment"),
        ("serve", "ServeBench"),
    ]:
        assert {"$ref": f"#/$defs/{record}"} in result[field]["anyOf"], field
        assert defs[record]["additionalProperties"] is True and "details" not in defs[record]["properties"]
    assert defs["ServeBench"]["properties"]["open_loop"]["anyOf"][0] == {"$ref": "#/$defs/OpenLoop"}
    assert defs["ProcessError"]["properties"]["error"]["anyOf"][0] == {"$ref": "#/$defs/ErrorInfo"}
    assert {"rss_growth_bytes", "autotune", "process_errors"} <= set(result)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(schema_version=2),
        lambda d: d["results"][0].update(samples="fast"),
        lambda d: d["results"][0].update(status="done"),
        lambda d: d["results"][0].pop("case"),
        lambda d: d["results"][0].update(noisy="very"),
        lambda d: d["results"][0].update(step_time_s=[1, 2]),
    ],
    ids=["schema-version", "samples", "status", "case", "noisy", "step-time"],
)
def test_results_schema_rejects_a_wrong_type(change, results_validator):
    bad = json.loads(OLD_RESULTS.read_text())
    change(bad)
    assert not results_validator.is_valid(bad)


def test_results_schema_validates_what_this_version_writes(results_validator):
    result = Result(
        case="a",
        mode="xla",
        device="cpu",
        task="train",
        batch_size=32,
        samples=[0.01, 0.011, 0.012],
        timing={"method": "per_step", "repeats": 1},
        repeat_sizes=[3],
        repeat_process=[0],
    )
    failed = Result.not_run(result.spec, "failed", "ValueError", "boom")
    run = RunResult(suite={"name": "s"}, environment={}, results=[result, failed], tfperf_version="x")
    written = json.loads(json.dumps(run.to_json()))
    assert [e.message for e in results_validator.iter_errors(written)] == []


def _typed_run() -> RunResult:
    """A run whose results hold every record type, built the way the writers build them (constructors, unknown
    keys in details, a second worker process merged in)."""
    first = result(
        "function",
        case="a",
        samples=[0.01, 0.011, 0.012],
        timing=Timing(
            method="blocked",
            block_size=4,
            sync="fetch",
            repeats=1,
            warmup_s=0.1,
            gc_disabled_while_timing=True,
        ),
        repeat_sizes=[3],
        repeat_process=[0],
        profile=Profile(
            logdir="out/tb/a",
            run="a/1",
            input_bound_percent=31.9,
            top_ops=[{"name": "x"}],
            details={"steps": 5, "capture": "local"},
        ),
        graph=GraphStats(op_count=10, hlo_instructions=20),
        output_agreement=OutputAgreement(samples=8, top1_agreement=1.0),
        retraces=[Retrace(call=2, changed="x: shape", kind="shape", before=[32, 4], after=[16, 4])],
        what_if=[
            WhatIf(
                change="prefetch",
                code="ds.prefetch(tf.data.AUTOTUNE)",
                median_s=0.01,
                baseline_median_s=0.02,
                speedup=2.0,
                p_value=0.01,
                details={"source": "tfperf tune"},
            )
        ],
        suggestions=[
            Suggestion(code="prefetch", title="t", evidence="e", fix="f", evidence_data={"wait": 0.5})
        ],
    )
    later = result(
        "function",
        case="a",
        samples=[0.02, 0.021],
        timing=Timing(method="blocked", block_size=4),
        repeat_sizes=[2],
        repeat_process=[0],
    )
    merge_process(first, later, 1)
    # What tfperf records beyond the timing, each record as its writer builds it (one result holds them all).
    first.setup = Setup(keras="keras 3.15.1", input_source="in_memory", tf_config={"intra_op_threads": 1})
    first.setup.fit = FitLoop(run_eagerly=False, steps_per_epoch=10)
    first.tracing = TraceReadout(calls=[0], first_use_traces=1)
    first.output_check = OutputCheck(fingerprint=OutputValues(values=[0.5, -0.25], count=2, mode="function"))
    first.rss_growth_bytes = 1 << 20
    first.readout_errors = readout_failed(None, "graph", ValueError("no graph"))
    first.process_errors = [ProcessError(process=2, status="failed", error=ErrorInfo(type="E", message="m"))]
    first.distributed = Distributed(
        strategy="multi_worker",
        workers=2,
        baseline=DistributedBaseline(replicas=1, samples=[0.01]),
        per_worker=[WorkerSummary(index=0, pid=41), WorkerSummary(index=1, pid=42)],
    )
    first.deployment = Deployment(artefact="m.tflite", num_threads=2, input_dtype={"a": "int8"})
    first.serve = ServeBench(
        requests_failed=1,
        latency_s=LatencySummary(p50=0.01),
        server=ServerMetrics(
            status="read", request_latency_s=ServerHistogram(count=30, p50_bucket=[0.1, None])
        ),
        open_loop=OpenLoop(verdict="VALID", percentiles={"p99": {"value": 0.01, "enough": False}}),
    )
    failed = Result.not_run(first.spec, "failed", "WorkerCrash", "worker 1 killed", "see the log")
    failed.error.worker, failed.error.returncode = 1, -9
    failed.error.details["pid"] = 42
    noprofile = result(
        "eager",
        case="b",
        batch_size=8,
        samples=[0.1],
        profile=Profile(error="no trace"),
        error=ErrorInfo(type="E", message="m", phase="profile", details={"traceback": "..."}),
    )
    return run_of(first, failed, noprofile, suite={"name": "s"}, tfperf_version="x")


def test_results_schema_validates_every_typed_record_as_written(results_validator):
    written = json.loads(json.dumps(_typed_run().to_json()))
    assert written["results"][0]["timing"]["by_process"][1]["process"] == 1
    assert [e.message for e in results_validator.iter_errors(written)] == []


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r[1]["error"].update(returncode="nine"),
        lambda r: r[1]["error"].update(message=None),
        lambda r: r[0]["timing"]["by_process"][0].update(median_s="slow"),
        lambda r: r[0]["suggestions"][0].update(code=3),
        lambda r: r[0]["what_if"][0].update(speedup="2x"),
        lambda r: r[0].update(retraces={"call": 1}),
        lambda r: r[0]["profile"].update(input_bound_percent="high"),
        lambda r: r[0]["graph"].update(op_count=1.5),
        lambda r: r[0]["setup"].update(loss_scale_optimizer="yes"),
        lambda r: r[0]["setup"]["fit"].update(steps_per_epoch="ten"),
        lambda r: r[0]["tracing"].update(calls=[0, "one"]),
        lambda r: r[0]["output_check"]["fingerprint"].update(values="0.5"),
        lambda r: r[0]["process_errors"][0]["error"].update(returncode="nine"),
        lambda r: r[0]["distributed"]["per_worker"][0].update(pid="4242"),
        lambda r: r[0]["distributed"].update(workers=2.5),
        lambda r: r[0]["deployment"].update(num_threads="two"),
        lambda r: r[0]["serve"]["server"]["request_latency_s"].update(count="30"),
        lambda r: r[0]["serve"].update(requests_failed=[10]),
        lambda r: r[0].update(rss_growth_bytes="1 MiB"),
        lambda r: r[0].update(setup=["keras 3"]),
    ],
    ids=[
        "error",
        "error-message",
        "by-process",
        "suggestion",
        "what-if",
        "retraces",
        "profile",
        "graph",
        "setup",
        "setup-fit",
        "tracing",
        "output-check",
        "process-errors",
        "per-worker",
        "distributed",
        "deployment",
        "server-histogram",
        "serve",
        "rss-growth",
        "setup-not-an-object",
    ],
)
def test_results_schema_rejects_a_wrong_type_inside_a_record(change, results_validator):
    written = json.loads(json.dumps(_typed_run().to_json()))
    change(written["results"])
    assert not results_validator.is_valid(written)


def test_derived_fields_are_what_to_json_adds():
    assert set(derived_fields()) == {"step_time_s", "throughput", "noisy"}
