"""Issue 15: results that fail loud, and a compare gate that fails closed.

- a job whose later worker process crashed or raised is `failed` (not `ok`), names the process, keeps the log
  path and the first process's samples, and `tfperf run` exits 1 (end to end, real TensorFlow);
- `tfperf compare` exits EXIT_GATE_FAILED (3) when a base row is missing, failed or under-sampled in the
  current run, or the current run was interrupted, unless `--allow-missing`;
- `--threshold` reads percentages and fractions unambiguously and says which it read;
- a run compared with itself does not say the environments differ;
- a results.json whose entries are not result objects is one line naming the file and entry, exit 2.
"""

import json
import textwrap

import numpy as np
import pytest
from builders import result, run_of
from conftest import run_tfperf

from tfperf.analysis import compare
from tfperf.errors import ResultsFileError
from tfperf.report import compare as compare_report
from tfperf.results.model import JobSpec, Result, RunResult, load_results, write_results
from tfperf.run.merge import merge_process

ENV = {
    "tensorflow": "2.21.0",
    "keras": "3.15.0",
    "python": "3.11.7",
    "cpu_model": "Test CPU",
    "cpu_count": 2,
    "gpus": [],
    "env": {},
}


def _samples(seed: int, median_s: float, n: int = 40) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in rng.lognormal(np.log(median_s), 0.02, n)]


def _run(rows: dict[str, list[float]], interrupted: bool = False, **fields) -> RunResult:
    """One eager result per case name with these samples; `fields[case]` sets other Result fields."""
    results = [
        result("eager", case=case, batch_size=8, samples=s, **fields.get(case, {}))
        for case, s in rows.items()
    ]
    return run_of(*results, environment=dict(ENV), interrupted=interrupted)


# --- item 2: a later worker process that fails fails the job ------------------------------------------------

STEPS = """
import json
import os
import sys

import tensorflow as tf


def later_process():
    # A timing-only worker process is one whose plan (the first argument of its command line) says
    # process N >= 1.
    with open(sys.argv[1]) as f:
        return json.load(f)["process"] >= 1


def exits_after_first(x):
    if later_process():
        os._exit(3)
    return x + 1.0


def raises_after_first(x):
    if later_process():
        raise RuntimeError("only the first process may run this step")
    return x + 1.0


def inputs():
    x = tf.ones((4, 4))
    while True:
        yield (x,), {}
"""

SUITE = """
name: later-process
defaults: {modes: [eager], warmup_steps: 1, steps: 3, repeats: 2, processes: 2, profile: false,
           timeout_s: 120}
cases:
  - name: exits-later
    function: steps.py:exits_after_first
    inputs: steps.py:inputs
  - name: raises-later
    function: steps.py:raises_after_first
    inputs: steps.py:inputs
"""


@pytest.fixture(scope="module")
def later_failures(tmp_path_factory):
    root = tmp_path_factory.mktemp("later")
    (root / "steps.py").write_text(textwrap.dedent(STEPS))
    (root / "suite.yaml").write_text(SUITE)
    out = root / "out"
    proc = run_tfperf("run", str(root / "suite.yaml"), "--out", str(out), "--quiet")
    data = json.loads((out / "results.json").read_text())
    return proc, {r["case"]: r for r in data["results"]}, out


@pytest.mark.workers
def test_a_later_process_that_crashes_or_raises_fails_the_job_and_the_run(later_failures):
    proc, by_case, out = later_failures
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for case, kind in (("exits-later", "WorkerCrash"), ("raises-later", "RuntimeError")):
        r = by_case[case]
        assert r["status"] == "failed", r
        assert r["error"]["type"] == kind and r["error"]["process"] == 1
        assert r["error"]["message"].startswith("process 2 of this job failed after process 1 measured it")
        # The first process's samples are kept for inspection: 3 steps x 2 repeats, all from process 0.
        assert len(r["samples"]) == 6 and r["repeat_process"] == [0, 0]
        assert [e["process"] for e in r["process_errors"]] == [1]
    crashed = by_case["exits-later"]["error"]
    assert "exited with code 3" in crashed["message"] and crashed["returncode"] == 3, crashed
    # Each names its own worker log (the runner passes it to merge_process), whether it crashed or raised.
    for case in ("exits-later", "raises-later"):
        log = out / "workers" / f"{case}.p1.log"
        assert by_case[case]["error"]["log_path"] == str(log) and str(log) in by_case[case]["error"]["hint"]
        assert log.exists()
    assert "only the first process may run this step" in by_case["raises-later"]["error"]["message"]


@pytest.mark.workers
def test_a_failed_result_with_samples_shows_in_every_table_and_the_page(later_failures):
    proc, _, out = later_failures
    table_rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("exits-later ")]
    assert table_rows and all(" failed " in ln for ln in table_rows), proc.stdout
    assert "FAILED exits-later [eager]: process 2 of this job failed" in proc.stdout
    md = (out / "report.md").read_text()
    assert "## Failures" in md
    assert "**exits-later [eager]** (failed)" in md and "**raises-later [eager]** (failed)" in md
    html = (out / "report.html").read_text()
    assert 'data-case="exits-later" data-mode="eager" data-batch-size="" data-status="failed"' in html
    assert "process 2 of this job failed" in html
    csv = (out / "results.csv").read_text().splitlines()
    assert sum(",failed," in ln for ln in csv) == 2


def _first_and_later() -> tuple[Result, Result]:
    first = result(
        "eager",
        case="a",
        batch_size=8,
        samples=[1.0, 1.1, 1.2, 1.3],
        repeat_sizes=[2, 2],
        repeat_process=[0, 0],
        timing={"method": "per_step", "repeats": 2},
    )
    later = result(
        "eager",
        case="a",
        batch_size=8,
        samples=[2.0, 2.1],
        repeat_sizes=[2],
        repeat_process=[1],
        timing={"method": "per_step", "repeats": 1},
    )
    return first, later


def test_merge_process_fails_the_job_names_the_process_and_keeps_the_log_path():
    first, later = _first_and_later()
    merge_process(first, later, 1)
    raised = Result.not_run(JobSpec("a", "eager", "cpu", "train", 8), "failed", "RuntimeError", "boom")
    merge_process(first, raised, 2, log_path="out/workers/a.p2.log")
    assert first.status == "failed" and first.error.type == "RuntimeError" and first.error.process == 2
    assert first.error.message.startswith(
        "process 3 of this job failed after process 1 measured it: "
        "boom (the samples of the 2 processes that finished"
    )
    assert (
        first.error.log_path == "out/workers/a.p2.log"
        and first.error.hint == "worker log: out/workers/a.p2.log"
    )
    assert len(first.samples) == 6 and first.process_errors[0].log_path == "out/workers/a.p2.log"
    # It round-trips through results.json, and the run's exit code counts it.
    again = Result.from_json(json.loads(json.dumps(first.to_json())))
    assert again.error.process == 2 and again.error.log_path == "out/workers/a.p2.log"
    assert RunResult(suite={}, environment={}, results=[again]).exit_code == 1


def test_merge_process_a_process_after_the_failed_one_still_adds_its_samples_and_the_first_error_stays():
    first, later = _first_and_later()
    merge_process(first, Result.not_run(first.spec, "timeout", "Timeout", "killed"), 1)
    merge_process(first, later, 2)
    merge_process(first, Result.not_run(first.spec, "failed", "WorkerCrash", "SIGSEGV"), 3)
    assert first.status == "failed" and first.error.process == 1 and first.error.type == "Timeout"
    assert first.repeat_process == [0, 0, 2] and len(first.samples) == 6
    assert [e.process for e in first.process_errors] == [1, 3]


def test_merge_process_leaves_the_first_process_own_failure_alone():
    spec = JobSpec("a", "xla", "cpu", "train", 8)
    first = Result.not_run(spec, "failed", "InvalidArgumentError", "XLA cannot compile")
    merge_process(first, Result.not_run(spec, "failed", "WorkerCrash", "SIGABRT"), 1)
    assert first.error.type == "InvalidArgumentError" and first.error.process is None
    assert first.process_errors is None and not first.extra


def test_merge_process_refuses_to_pool_samples_timed_another_way():
    """A job's processes time it one way (the runner hands the first process's block size on): per-step
    samples and block means are not one distribution, so a process that timed otherwise fails the job,
    unmerged."""
    first, later = _first_and_later()
    later.timing.method, later.timing.block_size = "blocked", 32
    merge_process(first, later, 1)
    assert (
        first.status == "failed" and first.error.type == "TimingMethodMismatch" and first.error.process == 1
    )
    assert len(first.samples) == 4  # the other process's block means were not pooled


# --- item 3: the compare gate fails closed ------------------------------------------------------------------


def test_an_interrupted_current_run_with_no_results_fails_the_gate():
    base = _run({"a": _samples(1, 0.01), "b": _samples(2, 0.02)})
    cmp = compare.compare_runs(base, _run({}, interrupted=True))
    assert [g.kind for g in cmp.gate_failures] == ["interrupted", "missing", "missing"]
    assert compare.exit_code(cmp) == compare.EXIT_GATE_FAILED == 3
    text = compare_report.render_table(cmp)
    assert "GATE FAILED (exit 3)" in text and "the current run was interrupted" in text
    assert "Comparison incomplete" in compare_report.render_markdown(cmp)


def test_a_current_run_holding_one_of_two_rows_fails_the_gate_and_names_the_missing_row():
    base = _run({"a": _samples(1, 0.01), "b": _samples(2, 0.02)})
    cmp = compare.compare_runs(base, _run({"a": _samples(3, 0.01)}))
    assert [(g.kind, g.label) for g in cmp.gate_failures] == [("missing", "b [eager bs=8] train cpu")]
    assert compare.exit_code(cmp) == 3 and not cmp.regressed
    allowed = compare.compare_runs(base, _run({"a": _samples(3, 0.01)}), allow_missing=True)
    assert compare.exit_code(allowed) == 0
    assert "allowed by --allow-missing" in compare_report.render_table(allowed)


def test_a_row_failed_now_fails_the_gate_and_is_a_regression_when_allowed():
    base = _run({"a": _samples(1, 0.01), "b": _samples(2, 0.02)})
    current = _run(
        {"a": _samples(3, 0.01), "b": []},
        b={"status": "failed", "error": {"type": "WorkerCrash", "message": "SIGSEGV"}},
    )
    cmp = compare.compare_runs(base, current)
    assert [g.kind for g in cmp.gate_failures] == ["failed"]
    assert "failed now (WorkerCrash)" in cmp.gate_failures[0].message
    assert compare.exit_code(cmp) == 3
    assert (
        compare.exit_code(compare.compare_runs(base, current, allow_missing=True)) == compare.EXIT_REGRESSED
    )


def test_rows_with_too_few_samples_to_decide_fail_the_gate():
    base = _run({"a": [0.010, 0.011]})
    current = _run({"a": [0.010, 0.011]})
    cmp = compare.compare_runs(base, current)
    assert cmp.rows[0].verdict == "inconclusive"
    assert [g.kind for g in cmp.gate_failures] == ["too_few_samples"] and compare.exit_code(cmp) == 3


def test_a_row_failed_in_both_runs_does_not_fail_the_gate_but_nothing_compared_does():
    failed = {"status": "failed", "error": {"type": "InvalidArgumentError", "message": "XLA"}}
    base = _run({"a": _samples(1, 0.01), "x": []}, x=failed)
    current = _run({"a": _samples(2, 0.01), "x": []}, x=failed)
    assert compare.exit_code(compare.compare_runs(base, current)) == 0
    only_failed = compare.compare_runs(_run({"x": []}, x=failed), _run({"x": []}, x=failed))
    assert [g.kind for g in only_failed.gate_failures] == ["nothing_compared"]
    assert compare.exit_code(compare.compare_runs(_run({}), _run({}))) == 3


@pytest.mark.cli
def test_cli_gate_exit_codes_and_allow_missing(tmp_path):
    write_results(_run({"a": _samples(1, 0.01), "b": _samples(2, 0.02)}), tmp_path / "base.json")
    write_results(_run({}, interrupted=True), tmp_path / "empty.json")
    write_results(_run({"a": _samples(3, 0.01)}), tmp_path / "half.json")
    for current in ("empty.json", "half.json"):
        proc = run_tfperf("compare", str(tmp_path / "base.json"), str(tmp_path / current))
        assert proc.returncode == 3, (current, proc.stdout, proc.stderr)
        assert "GATE FAILED" in proc.stdout and "b [eager bs=8] train cpu" in proc.stdout
    allowed = run_tfperf(
        "compare",
        str(tmp_path / "base.json"),
        str(tmp_path / "half.json"),
        "--allow-missing",
        "--format",
        "json",
    )
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["gate_failures"][0]["kind"] == "missing"
    helptext = run_tfperf("compare", "--help").stdout
    assert "--allow-missing" in helptext and "3 the gate failed: a base row missing" in helptext


# --- item 18: --threshold, a run against itself, damaged entries --------------------------------------------


@pytest.mark.cli
def test_cli_threshold_is_read_unambiguously_and_says_how(tmp_path):
    write_results(_run({"a": _samples(1, 0.01)}), tmp_path / "r.json")
    r = str(tmp_path / "r.json")
    big = run_tfperf("compare", r, r, "--threshold", "1000%")
    assert big.returncode == 0 and "--threshold 1000% read as a percentage: 1000%" in big.stderr
    assert "threshold 1000%" in big.stdout
    fraction = run_tfperf("compare", r, r, "--threshold", "0.015")
    assert "read as a fraction: 1.5%" in fraction.stderr and "threshold 1.5%" in fraction.stdout
    for text, why in (
        ("1.5", "ambiguous: write 1.5% for a percentage, or 150%"),
        ("inf", "must be a finite number"),
    ):
        refused = run_tfperf("compare", r, r, "--threshold", text)
        assert refused.returncode == 2 and why in refused.stderr and "Traceback" not in refused.stderr


def test_a_run_compared_with_itself_does_not_say_the_environments_differ():
    # One process per job on a busy machine: worth a warning, but nothing differs between a run and itself.
    run = _run({"a": _samples(1, 0.01), "b": _samples(2, 0.02)})
    run.environment["load_average"] = [5.0, 4.0, 3.0]
    cmp = compare.compare_runs(run, run)
    assert cmp.environment_warnings == []
    assert any("busy" in w for w in cmp.warnings) and any(
        "both runs timed each job" in w for w in cmp.warnings
    )
    for fmt in ("table", "markdown", "html"):
        text = compare_report.render(cmp, fmt)
        assert "environments differ" not in text.lower(), fmt
    assert "verdicts are less safe" in compare_report.render_table(cmp)
    # A real difference still says so.
    other = _run({"a": _samples(1, 0.01)})
    other.environment["tensorflow"] = "2.20.0"
    assert "environments differ" in compare_report.render_table(compare.compare_runs(other, run))


@pytest.mark.parametrize(
    "entry, needle",
    [
        ({}, "results[1]: missing case, mode, device, task, batch_size"),
        (1, "results[1]: expected a JSON object, got a number"),
        (
            {"case": "a", "mode": "eager", "device": "cpu", "task": "train", "batch_size": 1, "samples": "x"},
            "results[1]: samples: expected a list of numbers, got a string",
        ),
        (
            {"case": "a", "mode": "eager", "device": "cpu", "task": "train", "batch_size": 1, "error": 1},
            "results[1]: error: expected a JSON object, got a number",
        ),
    ],
)
def test_a_damaged_entry_names_the_file_and_its_index(tmp_path, entry, needle):
    good = {"case": "ok", "mode": "eager", "device": "cpu", "task": "train", "batch_size": None}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema_version": 1, "results": [good, entry]}))
    with pytest.raises(ResultsFileError) as err:
        load_results(path)
    assert str(err.value) == f"{path}: {needle}"


@pytest.mark.cli
@pytest.mark.parametrize("entry", [{}, 1])
def test_cli_report_export_compare_on_a_damaged_entry_exit_2_in_one_line(tmp_path, entry):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema_version": 1, "results": [entry]}))
    for args in (["report", str(path)], ["export", str(path)], ["compare", str(path), str(path)]):
        proc = run_tfperf(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and f"{path}: results[0]: " in proc.stderr, proc.stderr
