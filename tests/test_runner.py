"""End to end through `python -m tfperf run`: fault isolation, XLA failures, retracing, input wait."""
import json

import pytest

from conftest import DATA, run_tfperf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "out"
    proc = run_tfperf("run", str(DATA / "faults.yaml"), "--out", str(out), "--quiet")
    data = json.loads((out / "results.json").read_text())
    by_key = {(r["case"], r["mode"]): r for r in data["results"]}
    return proc, data, by_key, out


def test_failures_exit_1_and_every_case_is_reported(faults):
    proc, data, by_key, out = faults
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert set(by_key) == {
        ("healthy", "eager"), ("factory-raises", "eager"), ("aborts", "eager"), ("aborts", "function"),
        ("hangs", "eager"), ("string-op", "eager"), ("string-op", "function"), ("string-op", "xla"),
        ("growing-shapes", "function"),
    }
    for name in ("results.json", "results.csv", "report.md"):
        assert (out / name).stat().st_size > 0
    assert data["schema_version"] == 1 and data["finished_at"]


def test_healthy_case_is_ok_with_statistics(faults):
    _, _, by_key, _ = faults
    r = by_key[("healthy", "eager")]
    assert r["status"] == "ok" and r["error"] is None
    assert r["step_time_s"]["samples"] == 3 * 2 == len(r["samples"])
    assert r["step_time_s"]["min"] <= r["step_time_s"]["median"] <= r["step_time_s"]["max"]
    assert r["first_call_s"] > 0 and r["throughput"]["steps_per_s"] > 0
    assert r["tracing_count"] is None  # eager does not trace
    assert r["timing"]["method"] in ("per_step", "blocked")


def test_factory_exception_is_a_failed_result(faults):
    r = faults[2][("factory-raises", "eager")]
    assert r["status"] == "failed"
    assert r["error"]["type"] == "RuntimeError" and "factory exploded" in r["error"]["message"]


def test_abort_is_failed_with_signal_and_worker_restarts(faults):
    by_key = faults[2]
    crashed = by_key[("aborts", "eager")]
    assert crashed["status"] == "failed" and "SIGABRT" in crashed["error"]["message"]
    # The worker that died was replaced: the next job of the same case still ran.
    assert by_key[("aborts", "function")]["status"] == "ok"


def test_timeout_kills_the_case(faults):
    r = faults[2][("hangs", "eager")]
    assert r["status"] == "timeout" and "timeout_s" in r["error"]["message"]


def test_xla_failure_names_the_op_while_other_modes_run(faults):
    by_key = faults[2]
    assert by_key[("string-op", "eager")]["status"] == "ok"
    assert by_key[("string-op", "function")]["status"] == "ok"
    xla = by_key[("string-op", "xla")]
    assert xla["status"] == "failed"
    assert "AsString" in xla["error"]["message"] and xla["error"]["hint"]


def test_changing_shapes_retrace(faults):
    r = faults[2][("growing-shapes", "function")]
    assert r["status"] == "ok" and r["tracing_count"] > 1


def test_slow_pipeline_waits_on_input_and_autotune_waits_less(tmp_path):
    out = tmp_path / "out"
    proc = run_tfperf("run", str(DATA / "pipelines.yaml"), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    results = {r["case"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    naive, tuned = results["slow-naive"], results["slow-autotuned"]
    assert naive["input_wait_fraction"] > 0.5
    assert tuned["input_wait_fraction"] < naive["input_wait_fraction"]
    assert tuned["step_time_s"]["median"] < naive["step_time_s"]["median"]
