"""End to end through `python -m tfperf run`: fault isolation, XLA failures, retracing, input wait."""

import json

import pytest
from conftest import DATA, run_tfperf

pytestmark = pytest.mark.workers


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
        ("healthy", "eager"),
        ("factory-raises", "eager"),
        ("aborts", "eager"),
        ("aborts", "function"),
        ("hangs", "eager"),
        ("string-op", "eager"),
        ("string-op", "function"),
        ("string-op", "xla"),
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


PROCESSES_SUITE = """
name: processes
defaults: {{warmup_steps: 1, steps: 3, repeats: 2, processes: 2, profile: false, timeout_s: 120}}
cases:
  - name: healthy
    modes: [eager]
    function: {data}/fault_steps.py:add_one
    inputs: {data}/fault_steps.py:square_inputs
  - name: string-op            # xla fails (AsString has no XLA kernel): a later process must not run it again
    modes: [eager, xla]
    function: {data}/fault_steps.py:string_length
    inputs: {data}/fault_steps.py:square_inputs
"""


def test_processes_time_each_job_in_rounds_of_fresh_workers(tmp_path):
    (tmp_path / "suite.yaml").write_text(PROCESSES_SUITE.format(data=DATA))
    out = tmp_path / "out"
    proc = run_tfperf("run", str(tmp_path / "suite.yaml"), "--out", str(out), "--quiet")
    assert proc.returncode == 1, proc.stderr  # the xla job failed
    by_key = {(r["case"], r["mode"]): r for r in json.loads((out / "results.json").read_text())["results"]}

    healthy = by_key[("healthy", "eager")]
    assert healthy["status"] == "ok"
    assert len(healthy["samples"]) == 3 * 2 * 2 == healthy["step_time_s"]["samples"]
    assert healthy["repeat_sizes"] == [3, 3, 3, 3] and healthy["repeat_process"] == [0, 0, 1, 1]
    by_process = healthy["timing"]["by_process"]
    assert healthy["timing"]["processes"] == 2 and [p["process"] for p in by_process] == [0, 1]
    assert all(p["median_s"] > 0 and p["first_call_s"] > 0 for p in by_process)

    # The failed job keeps its one failure; the second process ran only the job that measured.
    assert by_key[("string-op", "xla")]["status"] == "failed"
    assert len(by_key[("string-op", "eager")]["samples"]) == 12
    assert "(string-op jobs 0)" in (out / "workers" / "string-op.p1.log").read_text()

    # Rounds over the suite: every case's first process before any second one.
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("[")]
    firsts = [i for i, ln in enumerate(lines) if "in process 2" not in ln]
    seconds = [i for i, ln in enumerate(lines) if "in process 2" in ln]
    assert len(firsts) == 3 and len(seconds) == 2 and max(firsts) < min(seconds), lines

    # The second process only timed: one set of TensorBoard summaries per job, not two.
    events = list((out / "tensorboard" / "healthy-eager").glob("events.out.tfevents*"))
    assert len(events) == 1, events

    same = run_tfperf("compare", str(out), str(out), "--format", "json")
    assert same.returncode == 0, same.stdout
    rows = json.loads(same.stdout)["rows"]
    assert {(r["base_processes"], r["current_processes"]) for r in rows if r["base_status"] == "ok"} == {
        (2, 2)
    }
