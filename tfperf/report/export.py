"""results.json -> pytest-benchmark's JSON, for `pytest-benchmark compare` and github-action-benchmark's
`pytest` tool.

Reads results.json and nothing else; no TensorFlow. The statistics are computed from each result's raw samples
with pytest-benchmark's own `Stats` class, so every field (q1/q3 method, ld15iqr, outliers, ops) is exactly
what pytest-benchmark would have written for the same samples. Times are seconds per iteration (per step).

Only `ok` results with samples become benchmarks: pytest-benchmark itself leaves out benchmarks that errored,
and its compare table and github-action-benchmark both need `stats` for every entry. Each result left out is
named in the returned `skipped` list (the CLI prints them on stderr).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata

from tfperf.results.model import Result, RunResult
from tfperf.results.records import Timing

FORMATS = ("pytest-benchmark",)


@dataclass
class Export:
    document: dict
    skipped: list[str] = field(
        default_factory=list
    )  # "case [mode bs=N]: status (reason)" per result left out


def benchmark_name(result: Result) -> str:
    """`<case>[<mode>-bs<N>]`: pytest's `func[param]` shape, so pytest-benchmark's group-by func/param
    work."""
    param = result.mode + (f"-bs{result.batch_size}" if result.batch_size is not None else "")
    return f"{result.case}[{param}]"


def _pytest_benchmark_version() -> str:
    """The installed pytest-benchmark's version (its `Stats` computed the numbers); empty when it cannot be
    read, never a made-up one."""
    try:
        return metadata.version("pytest-benchmark")
    except metadata.PackageNotFoundError:
        try:
            import pytest_benchmark
        except ImportError:
            return ""
        return str(getattr(pytest_benchmark, "__version__", "") or "")


def _stats(samples: list[float], iterations: int) -> dict:
    from pytest_benchmark.stats import Stats  # pure Python, no pytest import

    s = Stats()
    for value in samples:
        s.update(float(value))
    out = s.as_dict()
    out["iterations"] = iterations
    out["data"] = [float(v) for v in samples]
    return out


def machine_info(environment: dict) -> dict:
    """pytest-benchmark's machine_info keys, from the run's recorded environment (not from this machine): a
    value the run did not record is left empty, never filled with a guess (a results.json written before
    tfperf recorded the host name or the Python implementation exports those empty)."""
    plat = environment.get("platform") or ""
    python = environment.get("python") or ""
    return {
        "node": environment.get("hostname") or "",
        "processor": environment.get("processor") or "",
        "machine": environment.get("machine") or "",
        "python_compiler": environment.get("python_compiler") or "",
        "python_implementation": environment.get("python_implementation") or "",
        "python_implementation_version": environment.get("python_implementation_version") or "",
        "python_version": python,
        "python_build": [],
        "release": environment.get("release") or "",
        # platform.platform() begins with the system name ("Linux-6.1-x86_64-...").
        "system": environment.get("system") or (plat.split("-")[0] if plat else ""),
        "cpu": {
            "brand_raw": environment.get("cpu_model"),
            "count": environment.get("cpu_count"),
            "arch": environment.get("machine"),
        },
        # tfperf's own: what TensorFlow saw, so two exports can be told apart.
        "tensorflow": environment.get("tensorflow"),
        "keras": environment.get("keras"),
        "gpus": environment.get("gpus") or [],
        "env": environment.get("env") or {},
    }


def commit_info(run: RunResult) -> dict:
    commit = run.environment.get("git_commit")
    return {
        "id": commit or "unversioned",
        "time": None,
        "author_time": None,
        "dirty": None,
        "project": (run.suite or {}).get("name") or "tfperf",
        "branch": None,
    }


def _extra_info(r: Result) -> dict:
    throughput = r.throughput or {}
    return {
        "tool": "tfperf",
        "case": r.case,
        "mode": r.mode,
        "device": r.device,
        "task": r.task,
        "batch_size": r.batch_size,
        "model": r.model,
        "tracing_count": r.tracing_count,
        "first_call_s": r.first_call_s,
        "input_wait_fraction": r.input_wait_fraction,
        "peak_memory_bytes": r.peak_memory_bytes,
        "samples_per_s": throughput.get("samples_per_s"),
        "noisy": r.noisy,
        "timing_method": r.timing.method if r.timing else None,
        "suggestions": [s.code for s in r.suggestions],
    }


def _skip_reason(r: Result) -> str | None:
    if r.status != "ok":
        message = ((r.error.message if r.error else None) or "").splitlines()
        return f"{r.status}" + (f" ({message[0][:200]})" if message else "")
    if not r.samples:
        return "no timed samples"
    return None


def to_pytest_benchmark(run: RunResult) -> Export:
    """The pytest-benchmark document for a run: one benchmark per ok result (case × mode × batch size)."""
    suite = (run.suite or {}).get("name") or "tfperf"
    benchmarks, skipped = [], []
    for r in run.results:
        reason = _skip_reason(r)
        if reason:
            skipped.append(f"{r.spec.label}: {reason}")
            continue
        timing = r.timing or Timing()
        name = benchmark_name(r)
        benchmarks.append(
            {
                "group": r.case,
                "name": name,
                "fullname": f"{suite}::{name}",
                "params": {
                    "case": r.case,
                    "mode": r.mode,
                    "batch_size": r.batch_size,
                    "task": r.task,
                    "device": r.device,
                },
                "param": name[len(r.case) + 1 : -1],
                "extra_info": _extra_info(r),
                "options": {
                    "disable_gc": bool(timing.gc_disabled_while_timing),
                    "timer": "perf_counter",
                    "min_rounds": len(r.samples),
                    "max_time": None,
                    "min_time": None,
                    "warmup": timing.warmup_steps if timing.warmup_steps is not None else False,
                },
                # Blocked timing: each sample is the mean over block_size steps, i.e. one round of block_size
                # iterations.
                "stats": _stats(r.samples, int(timing.block_size or 1)),
            }
        )
    document = {
        "machine_info": machine_info(run.environment or {}),
        "commit_info": commit_info(run),
        "benchmarks": benchmarks,
        "datetime": run.finished_at or run.started_at or datetime.now(timezone.utc).isoformat(),
        "version": _pytest_benchmark_version(),
        "tfperf": {"version": run.tfperf_version, "suite": run.suite, "started_at": run.started_at},
    }
    return Export(document, skipped)
