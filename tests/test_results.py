import json
import subprocess
import sys

import pytest

from tfperf.errors import ResultsFileError
from tfperf.results.model import SCHEMA_VERSION, JobSpec, Result, RunResult, load_results, write_results

FIELDS = {"case", "mode", "device", "task", "batch_size", "status", "error", "first_call_s", "step_time_s",
          "samples", "throughput", "tracing_count", "retraces", "input_wait_fraction", "peak_memory_bytes",
          "profile", "suggestions"}


def _run() -> RunResult:
    ok = Result("mlp", "function", "cpu", "train", 32, samples=[0.01, 0.011, 0.012], first_call_s=0.5,
                tracing_count=1, input_wait_fraction=0.01)
    failed = Result.not_run(JobSpec("mlp", "xla", "cpu", "train", 32), "failed", "InvalidArgumentError", "boom")
    return RunResult(suite={"name": "s", "path": "s.yaml", "sha256": "0"}, environment={}, results=[ok, failed])


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


@pytest.mark.parametrize("content,needle", [
    ("{not json", "not valid JSON"),
    ('{"schema_version": 99, "results": []}', "newer than this tfperf"),
    ('{"schema_version": 0, "results": []}', "not supported"),
    ('[1, 2]', "not a tfperf results file"),
])
def test_unreadable_files_say_why(tmp_path, content, needle):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ResultsFileError, match=needle):
        load_results(path)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsFileError, match="no such file"):
        load_results(tmp_path / "nope.json")


def test_report_rerenders_without_tensorflow(tmp_path):
    path = tmp_path / "results.json"
    write_results(_run(), path)
    code = ("import sys; from tfperf.cli import main; rc = main(['report', %r, '--format', 'markdown']); "
            "assert 'tensorflow' not in sys.modules, 'report imported TensorFlow'; sys.exit(rc)") % str(path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| mlp" in proc.stdout and "InvalidArgumentError" in proc.stdout


def test_report_on_bad_file_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text("{oops")
    proc = subprocess.run([sys.executable, "-m", "tfperf", "report", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_merge_process_appends_a_later_process_samples_and_keeps_the_first_process_read_outs():
    from tfperf.results.model import merge_process

    first = Result("a", "xla", "cpu", "train", 32, first_call_s=1.5, samples=[1.0, 1.1, 1.2, 1.3],
                   repeat_sizes=[2, 2], repeat_process=[0, 0], input_wait_s=[0.1, 0.1, 0.1, 0.1], tracing_count=1,
                   timing={"method": "per_step", "repeats": 2})
    later = Result("a", "xla", "cpu", "train", 32, first_call_s=1.4, samples=[2.0, 2.0, 2.2, 2.2],
                   repeat_sizes=[2, 2], repeat_process=[1, 1], input_wait_s=[0.0] * 4, tracing_count=1,
                   timing={"method": "per_step", "repeats": 2})
    merge_process(first, later, 1)
    assert first.samples == [1.0, 1.1, 1.2, 1.3, 2.0, 2.0, 2.2, 2.2]
    assert first.repeat_process == [0, 0, 1, 1] and first.process_count == 2
    assert [len(g) for g in first.process_groups()] == [4, 4]
    assert first.first_call_s == 1.5  # the compile cost stays the first process's
    assert first.input_wait_fraction == pytest.approx(0.4 / sum(first.samples))
    assert [p["median_s"] for p in first.timing["by_process"]] == [pytest.approx(1.15), pytest.approx(2.1)]

    failed = Result.not_run(later.spec, "timeout", "Timeout", "killed")
    merge_process(first, failed, 2)
    assert first.status == "ok" and len(first.samples) == 8
    assert first.extra["process_errors"][0]["status"] == "timeout"
