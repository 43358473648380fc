"""`tfperf export --format pytest-benchmark`: pytest-benchmark's JSON from results.json, read back by the real
`pytest-benchmark compare` command and shaped for github-action-benchmark's `pytest` tool.

The results.json here is written by tfperf's own writer from Result objects with known samples (no
TensorFlow): the export reads results.json and nothing else, so where the samples came from does not matter to
it.
"""

import json
import math
import os
import shutil
import statistics
import subprocess
import sys

import pytest
from builders import result, run_of
from conftest import ROOT, run_tfperf

from tfperf.report.export import benchmark_name, to_pytest_benchmark
from tfperf.results.model import RunResult, load_results, write_results

ENV = {
    "tensorflow": "2.21.0",
    "keras": "3.15.0",
    "python": "3.11.7",
    "platform": "Linux-6.1-x86_64-with-glibc2.36",
    "machine": "x86_64",
    "cpu_model": "Test CPU",
    "cpu_count": 2,
    "gpus": [],
    "env": {},
    "git_commit": "abc123",
}

STAT_FIELDS = (
    "min max mean stddev median iqr q1 q3 outliers rounds iterations ops ld15iqr hd15iqr iqr_outliers "
    "stddev_outliers total data"
).split()


def _samples(median: float, n: int = 12) -> list[float]:
    # A spread around the median, with one slow step (the right tail real step times have).
    return [median * (1 + 0.01 * (i - n // 2)) for i in range(n - 1)] + [median * 1.8]


def make_run() -> RunResult:
    results = []
    for mode, median in (("eager", 0.020), ("function", 0.004), ("xla", 0.006)):
        results.append(
            result(
                mode,
                case="mlp",
                batch_size=64,
                samples=_samples(median),
                first_call_s=0.5,
                tracing_count=None if mode == "eager" else 1,
                input_wait_fraction=0.01,
                timing={
                    "method": "per_step",
                    "block_size": 1,
                    "warmup_steps": 2,
                    "gc_disabled_while_timing": True,
                },
            )
        )
    # A sub-millisecond step timed in blocks of 40: each sample is the mean of one block.
    results.append(
        result(
            "function",
            case="matmul",
            batch_size=None,
            samples=_samples(0.0002),
            tracing_count=1,
            timing={"method": "blocked", "block_size": 40, "warmup_steps": 2},
        )
    )
    results.append(result("eager", case="matmul", batch_size=None, samples=_samples(0.0009)))
    results.append(
        result(
            "xla",
            case="matmul",
            batch_size=None,
            status="failed",
            error={"type": "InvalidArgumentError", "message": "XLA cannot compile op PyFunc", "hint": None},
        )
    )
    results.append(
        result(
            "function",
            case="big",
            batch_size=4096,
            status="timeout",
            error={"type": "Timeout", "message": "killed after 300 s", "hint": None},
        )
    )
    return run_of(
        *results,
        suite={"name": "smoke", "path": "suites/smoke.yaml", "sha256": "x"},
        environment=dict(ENV),
        started_at="2026-11-27T04:00:00+00:00",
        finished_at="2026-11-27T04:01:00+00:00",
        tfperf_version="0.1.0",
    )


OK_JOBS = {("mlp", "eager"), ("mlp", "function"), ("mlp", "xla"), ("matmul", "function"), ("matmul", "eager")}


def test_every_ok_result_becomes_a_benchmark_with_stats_from_its_samples():
    run = make_run()
    exported = to_pytest_benchmark(run)
    doc = exported.document
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(doc)
    benches = doc["benchmarks"]
    assert {(b["params"]["case"], b["params"]["mode"]) for b in benches} == OK_JOBS
    assert len({b["fullname"] for b in benches}) == len(benches)  # compare and the action match on fullname
    by_name = {b["name"]: b for b in benches}
    for r in run.results:
        if (r.case, r.mode) not in OK_JOBS:
            continue
        b = by_name[benchmark_name(r)]
        st = b["stats"]
        assert set(STAT_FIELDS) <= set(st)
        assert st["data"] == r.samples and st["rounds"] == len(r.samples)
        assert st["median"] == pytest.approx(statistics.median(r.samples))
        assert st["mean"] == pytest.approx(statistics.mean(r.samples))
        assert st["stddev"] == pytest.approx(statistics.stdev(r.samples))
        assert st["min"] == min(r.samples) and st["max"] == max(r.samples)
        assert st["total"] == pytest.approx(sum(r.samples))
        assert st["ops"] == pytest.approx(len(r.samples) / sum(r.samples))  # pytest-benchmark's definition
        assert st["q1"] <= st["median"] <= st["q3"] and st["iqr"] == pytest.approx(st["q3"] - st["q1"])
        assert st["iqr_outliers"] >= 1  # the 1.8x step
        assert b["group"] == r.case and b["extra_info"]["mode"] == r.mode
        assert b["extra_info"]["tracing_count"] == r.tracing_count
    assert by_name["mlp[function-bs64]"]["fullname"] == "smoke::mlp[function-bs64]"
    assert by_name["mlp[function-bs64]"]["stats"]["iterations"] == 1
    assert (
        by_name["matmul[function]"]["stats"]["iterations"] == 40
    )  # samples are per step, blocks of 40 steps
    assert by_name["mlp[function-bs64]"]["options"]["disable_gc"] is True
    assert doc["commit_info"]["id"] == "abc123" and doc["machine_info"]["cpu"]["brand_raw"] == "Test CPU"
    # Failed and timed-out results are left out and named, with their reason.
    assert len(exported.skipped) == 2
    assert any("matmul [xla]" in s and "failed" in s and "PyFunc" in s for s in exported.skipped)
    assert any("big [function bs=4096]" in s and "timeout" in s for s in exported.skipped)


def test_machine_info_is_what_the_run_recorded_or_empty(monkeypatch):
    """node, processor, the Python implementation and the format version are the real values or empty: the
    export used to write "CPython" and pytest-benchmark "5.0.0" when it did not know, and read a host name the
    run never recorded."""
    import platform
    from importlib import metadata

    from tfperf.host.environment import host_environment
    from tfperf.report import export

    # A results.json written before these were recorded: empty, not guessed (nor read from this machine).
    info = to_pytest_benchmark(make_run()).document["machine_info"]
    assert (
        info["node"] == ""
        and info["processor"] == ""
        and info["python_compiler"] == ""
        and info["release"] == ""
    )
    assert info["python_implementation"] == "" and info["python_implementation_version"] == ""
    assert (
        info["python_version"] == "3.11.7" and info["system"] == "Linux"
    )  # from the recorded platform string
    # A run that records its host: the values of the machine it ran on.
    run = make_run()
    run.environment = host_environment()
    info = to_pytest_benchmark(run).document["machine_info"]
    assert info["node"] == platform.node() and info["node"]
    assert info["python_implementation"] == platform.python_implementation()
    assert info["python_implementation_version"] == platform.python_version()  # CPython's are the same
    assert info["python_compiler"] == platform.python_compiler() and info["release"] == platform.release()
    assert info["system"] == platform.system() and info["processor"] == platform.processor()
    # The version is the installed pytest-benchmark's (its Stats made the numbers), never a made-up one.
    import pytest_benchmark

    assert to_pytest_benchmark(run).document["version"] == metadata.version("pytest-benchmark")

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(export.metadata, "version", missing)
    assert to_pytest_benchmark(run).document["version"] == pytest_benchmark.__version__
    monkeypatch.setattr(pytest_benchmark, "__version__", None, raising=False)
    assert to_pytest_benchmark(run).document["version"] == ""


def test_github_action_benchmark_pytest_tool_fields():
    """github-action-benchmark's `pytest` tool reads, per benchmark, fullname as the name, stats.ops as the
    value (iter/sec), stats.stddev for the range and stats.mean + stats.rounds for the detail line."""
    doc = to_pytest_benchmark(make_run()).document
    for b in doc["benchmarks"]:
        st = b["stats"]
        assert isinstance(b["fullname"], str) and b["fullname"]
        assert math.isfinite(st["ops"]) and st["ops"] > 0
        assert st["mean"] > 0 and st["stddev"] >= 0 and isinstance(st["rounds"], int)
    # Faster mode -> more ops: the chart goes up when the step gets faster.
    ops = {b["params"]["mode"]: b["stats"]["ops"] for b in doc["benchmarks"] if b["group"] == "mlp"}
    assert ops["function"] > ops["xla"] > ops["eager"]


@pytest.mark.cli
def test_export_command_and_the_real_pytest_benchmark_compare(tmp_path):
    results = tmp_path / "results.json"
    write_results(make_run(), results)
    out = tmp_path / "export.json"
    proc = run_tfperf("export", str(results), "--format", "pytest-benchmark", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (
        "left out matmul [xla]: failed" in proc.stderr
        and "left out big [function bs=4096]: timeout" in proc.stderr
    )
    doc = json.loads(out.read_text())
    assert len(doc["benchmarks"]) == len(OK_JOBS)

    exe = shutil.which("pytest-benchmark") or pytest.skip("the pytest-benchmark command is not on PATH")
    cmp = subprocess.run(
        [exe, "compare", str(out), "--columns=min,median,mean,ops,rounds", "--group-by=group"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    assert (
        "Failed to load" not in cmp.stdout + cmp.stderr
    )  # pytest-benchmark warns and skips files it cannot read
    for case, mode in OK_JOBS:
        bs = "-bs64" if case == "mlp" else ""
        assert f"{case}[{mode}{bs}]" in cmp.stdout, cmp.stdout
    assert "benchmark 'mlp': 3 tests" in cmp.stdout and "benchmark 'matmul': 2 tests" in cmp.stdout
    assert "matmul[xla]" not in cmp.stdout


@pytest.mark.cli
def test_export_to_stdout_reads_a_run_folder(tmp_path):
    write_results(make_run(), tmp_path / "results.json")
    proc = run_tfperf("export", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert {b["name"] for b in json.loads(proc.stdout)["benchmarks"]} >= {"mlp[xla-bs64]", "matmul[eager]"}


@pytest.mark.cli
def test_export_errors_are_one_line_with_exit_2(tmp_path):
    bad_format = run_tfperf("export", str(tmp_path / "missing.json"), "--format", "csv")
    assert bad_format.returncode == 2 and "--format csv: choose one of pytest-benchmark" in bad_format.stderr
    missing = run_tfperf("export", str(tmp_path / "missing.json"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    run = make_run()
    run.results = [r for r in run.results if not r.ok]
    write_results(run, tmp_path / "results.json")
    nothing = run_tfperf("export", str(tmp_path / "results.json"))
    assert nothing.returncode == 2 and "no ok result with timed samples to export" in nothing.stderr


@pytest.mark.cli
def test_export_does_not_import_tensorflow(tmp_path):
    write_results(make_run(), tmp_path / "results.json")
    code = (
        "import sys; from tfperf.cli import main; rc = main(['export', sys.argv[1], '-o', sys.argv[2]]); "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad); sys.exit(1 if bad else "
        "rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "results.json"), str(tmp_path / "o.json")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load_results(tmp_path / "results.json").results  # the input is untouched and still loads
