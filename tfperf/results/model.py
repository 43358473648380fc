"""The results contract (schema_version 1): what ran, what was measured, and the file that holds it.

`results.json` is the source of truth: every renderer, `compare` and `export` read it and nothing else.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from tfperf import stats
from tfperf.errors import ResultsFileError
from tfperf.results import compat
from tfperf.results.job_records import (
    Deployment,
    Distributed,
    OutputCheck,
    ProcessError,
    ReadoutErrors,
    Setup,
    TraceReadout,
    WhatIfBaseline,
)
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
from tfperf.results.serve_records import ServeBench
from tfperf.results.shapes import check_entry, json_type

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class JobSpec:
    """What runs: one case in one mode at one batch size. Frozen: it is the key results are matched by."""

    case: str
    mode: str
    device: str
    task: str
    batch_size: int | None

    @property
    def key(self) -> tuple:
        return (self.case, self.mode, self.batch_size, self.task, self.device)

    @property
    def label(self) -> str:
        bs = f" bs={self.batch_size}" if self.batch_size is not None else ""
        return f"{self.case} [{self.mode}{bs}]"

    @property
    def full_label(self) -> str:
        """`label` with the task and device: two runs compared may hold the same case on several."""
        return f"{self.label} {self.task} {self.device}"


@dataclass
class Result:
    """What was measured for one JobSpec. The raw `samples` are the truth; statistics derive from them."""

    case: str
    mode: str
    device: str
    task: str
    batch_size: int | None
    status: str = "ok"
    error: ErrorInfo | None = None  # {type, message, hint}
    first_call_s: float | None = None
    samples: list[float] = field(default_factory=list)
    tracing_count: int | None = None
    retraces: list[Retrace] = field(default_factory=list)  # [{call, changed}]
    input_wait_fraction: float | None = None
    peak_memory_bytes: int | None = None
    profile: Profile | None = None
    suggestions: list[Suggestion] = field(default_factory=list)  # [{code, title, evidence, fix}]
    # Extensions (schema_version 1 grows by adding fields, never renaming).
    model: str | None = None  # the reference that built it: zoo:mlp, pkg.mod:attr, file.py:attr
    timing: Timing | None = None  # {method: per_step|blocked, block_size, warmup_steps, steps, repeats, sync}
    input_wait_s: list[float] = field(default_factory=list)  # per-sample wait, same order as samples
    # How `samples` split into repeats (consecutive runs of timed steps) and which worker process, counted
    # from 0 in the order they ran, timed each repeat. Steps within one repeat are not independent of each
    # other.
    repeat_sizes: list[int] = field(default_factory=list)
    repeat_process: list[int] = field(default_factory=list)
    graph: GraphStats | None = None  # {op_count, hlo_instructions, optimized_hlo_instructions, fusions}
    replicas: int | None = None
    global_batch_size: int | None = None
    scaling_efficiency: float | None = None
    model_size_bytes: int | None = None
    load_time_s: float | None = None
    output_agreement: OutputAgreement | None = None
    what_if: list[WhatIf] | None = None
    # What tfperf records beyond the timing (tfperf/results/job_records.py, serve_records.py).
    setup: Setup | None = None  # what the job ran with
    tracing: TraceReadout | None = None  # trace calls, first-use traces, the signature over all traces
    output_check: OutputCheck | None = None  # the outputs tune's output check compares
    rss_growth_bytes: int | None = None  # resident memory grown over the job: not a peak (measure/memory.py)
    autotune: dict | None = None  # tf.data AUTOTUNE's choices over the timed steps, without a profiled pass
    what_if_baseline: WhatIfBaseline | None = None
    readout_errors: ReadoutErrors | None = None
    process_errors: list[ProcessError] | None = None  # the job's later worker processes that failed
    distributed: Distributed | None = None
    deployment: Deployment | None = None
    serve: ServeBench | None = None  # a serve-bench load test (mode "serve")
    # Anything else an extension measured: an open mapping by design (the typed fields above are the
    # contract; tfperf writes nothing here).
    extra: dict = field(default_factory=dict)
    wall_s: float | None = None  # worker wall time for this job, all passes included

    # The structured fields and the record type each holds (a list of records for the list fields).
    RECORDS: ClassVar[dict[str, type[Record]]] = {
        "error": ErrorInfo,
        "timing": Timing,
        "profile": Profile,
        "graph": GraphStats,
        "output_agreement": OutputAgreement,
        "retraces": Retrace,
        "what_if": WhatIf,
        "suggestions": Suggestion,
        "setup": Setup,
        "tracing": TraceReadout,
        "output_check": OutputCheck,
        "what_if_baseline": WhatIfBaseline,
        "readout_errors": ReadoutErrors,
        "process_errors": ProcessError,
        "distributed": Distributed,
        "deployment": Deployment,
        "serve": ServeBench,
    }

    def __setattr__(self, name: str, value: Any) -> None:
        # results.json and the writers hand over JSON objects: every assignment, the constructor's included,
        # holds them as records from here on, so a reader always finds the typed record.
        record_type = self.RECORDS.get(name)
        if record_type is not None:
            if isinstance(value, list):
                value = [record_type.from_json(x) for x in value]
            elif value is not None:
                value = record_type.from_json(value)
        object.__setattr__(self, name, value)

    @property
    def spec(self) -> JobSpec:
        return JobSpec(self.case, self.mode, self.device, self.task, self.batch_size)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def step_time_s(self) -> dict | None:
        return stats.summarize(self.samples) if self.samples else None

    @property
    def median_s(self) -> float | None:
        st = self.step_time_s
        return st["median"] if st else None

    @property
    def throughput(self) -> dict | None:
        st = self.step_time_s
        # Under tf.distribute batch_size is per replica; a step processes the global batch.
        return stats.throughput(st["median"], self.global_batch_size or self.batch_size) if st else None

    @property
    def noisy(self) -> bool:
        return stats.is_noisy(self.samples)

    def repeat_groups(self) -> list[list[float]]:
        """The samples split into their repeats. A file without `repeat_sizes` (written before they were
        recorded) splits evenly by `timing.repeats`; failing that, all samples are one group."""
        sizes = list(self.repeat_sizes)
        if not sizes or sum(sizes) != len(self.samples):
            n = self.timing.repeats if self.timing else None
            if isinstance(n, int) and n > 0 and len(self.samples) % n == 0:
                sizes = [len(self.samples) // n] * n
            else:
                sizes = [len(self.samples)] if self.samples else []
        groups, start = [], 0
        for size in sizes:
            groups.append(self.samples[start : start + size])
            start += size
        return groups

    @property
    def process_count(self) -> int:
        """How many worker processes timed this result (1 for files that did not record it)."""
        return len(set(self.repeat_process)) if self.repeat_process else (1 if self.samples else 0)

    @property
    def process_spread(self) -> float | None:
        """max / min - 1 of the per-process medians; None when one process timed the result."""
        return stats.median_spread(self.process_groups())

    def process_groups(self) -> list[list[float]]:
        """The samples per worker process, in the order the processes ran."""
        groups = self.repeat_groups()
        if len(self.repeat_process) != len(groups):
            return [[x for g in groups for x in g]] if groups else []
        by: dict[int, list[float]] = {}
        for p, g in zip(self.repeat_process, groups):
            by.setdefault(p, []).extend(g)
        return [by[p] for p in sorted(by)]

    def to_json(self) -> dict:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Record):
                value = value.to_json()
            elif isinstance(value, list):
                value = [x.to_json() if isinstance(x, Record) else copy.deepcopy(x) for x in value]
            else:  # `extra` and the scalars: a copy, so the JSON object never aliases the live result
                value = copy.deepcopy(value)
            d[f.name] = value
        d["step_time_s"] = self.step_time_s
        d["throughput"] = self.throughput
        d["noisy"] = self.noisy if self.samples else None
        return d

    @classmethod
    def from_json(cls, d: Any) -> "Result":
        """A result from its JSON object. Raises ValueError naming the first key of the wrong shape, so a
        reader of a damaged file gets one line instead of an error deep inside a renderer."""
        if isinstance(d, dict):
            d = compat.migrate(d)  # a file written before tfperf's own keys left `extra`
        check_entry(d, cls.RECORDS, Record)
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as e:  # a record field (error, timing, ...) that is not a JSON object
            raise ValueError(str(e)) from None

    @classmethod
    def not_run(
        cls, spec: JobSpec, status: str, err_type: str, message: str, hint: str | None = None, **kw: Any
    ) -> "Result":
        return cls(
            case=spec.case,
            mode=spec.mode,
            device=spec.device,
            task=spec.task,
            batch_size=spec.batch_size,
            status=status,
            error=ErrorInfo(type=err_type, message=message, hint=hint),
            **kw,
        )


def merge_process(first: Result, later: Result, process_no: int, log_path: str | Path | None = None) -> None:
    """Fold what a later worker process timed for the same job into the first process's result.

    The first process did everything (first call, tracing, read-outs, profile); later processes only timed
    steps, so they add samples and repeats and nothing else. A later process that failed (crashed, raised, ran
    out of time, timed nothing) fails the job: the same code that ran once and then crashed is not a
    measurement to report as ok. The samples of the processes that finished stay, for inspection;
    `process_errors` lists every later process that failed. `log_path` is that process's worker log.
    """
    if not first.ok and not (first.error and first.error.process is not None):
        return  # the first process's own failure stands: later processes never ran the job
    if not later.ok or not later.samples:
        _process_failed(first, later, process_no, log_path)
        return
    ft, lt = first.timing, later.timing
    if ft is not None and lt is not None and (ft.method, ft.block_size) != (lt.method, lt.block_size):
        # Per-step samples and block means are not one distribution. The runner hands the first process's
        # block size on, so a mismatch means a worker ignored it: fail rather than pool them.
        later.status = "failed"
        later.error = ErrorInfo(
            type="TimingMethodMismatch",
            message=f"process {process_no} timed {lt.method} x{lt.block_size}, the first process "
            f"{ft.method} x{ft.block_size}: samples not merged",
        )
        _process_failed(first, later, process_no, log_path)
        return
    if not first.repeat_process and first.samples:
        first.repeat_sizes = [len(g) for g in first.repeat_groups()]
        first.repeat_process = [0] * len(first.repeat_sizes)
    if first.timing is not None and first.timing.by_process is None:
        first.timing.by_process = [process_timing(first, 0)]
    sizes = [len(g) for g in later.repeat_groups()]
    first.samples = first.samples + later.samples
    first.repeat_sizes = first.repeat_sizes + sizes
    first.repeat_process = first.repeat_process + [process_no] * len(sizes)
    if len(first.input_wait_s) + len(later.input_wait_s) == len(first.samples):
        first.input_wait_s = first.input_wait_s + later.input_wait_s
        total = sum(first.samples)
        first.input_wait_fraction = sum(first.input_wait_s) / total if total > 0 else None
    if first.wall_s is not None and later.wall_s is not None:
        first.wall_s += later.wall_s
    if first.timing is not None:
        # Each process's own median, first call and load: a process that compiled or ran slower shows here.
        first.timing.by_process.append(process_timing(later, process_no))
        first.timing.processes = len(first.timing.by_process)


def _process_failed(first: Result, later: Result, process_no: int, log_path: str | Path | None) -> None:
    """Mark `first` failed by its later process `process_no` (the first such failure names the job's
    error)."""
    err = later.error
    log = str(log_path) if log_path is not None else None
    entry = ProcessError(process=process_no, status=later.status, error=err, log_path=log)
    first.process_errors = [*(first.process_errors or []), entry]
    if not first.ok:
        return  # already failed by an earlier process: that one is the job's error
    # The type stays the later error's own (WorkerCrash, Timeout, RuntimeError), so the message carries its
    # words.
    why = (err.message or err.type) if err else f"{later.status}, no samples timed"
    hint = err.hint if err else None
    if log and log not in (hint or ""):  # a crash's hint already names the log
        hint = f"{hint}; worker log: {log}" if hint else f"worker log: {log}"
    kept = first.process_count
    # Processes are counted from 1 in words (as the progress lines say "in process 2"), from 0 in `process`.
    first.status = "failed"
    first.error = ErrorInfo(
        type=err.type if err else "ProcessFailed",
        message=(
            f"process {process_no + 1} of this job failed after process 1 measured it: {why} "
            f"(the samples of the {kept} process{'es' if kept != 1 else ''} that finished are kept for "
            f"inspection)"
        ),
        hint=hint,
        phase=err.phase if err else None,
        returncode=err.returncode if err else None,
        log_tail=err.log_tail if err else None,
        traceback=err.traceback if err else None,
        process=process_no,
        log_path=log,
    )


def process_timing(r: Result, process_no: int) -> ProcessTiming:
    """What one worker process measured of a job, for `timing.by_process`."""
    t = r.timing or Timing()
    return ProcessTiming(
        process=process_no,
        first_call_s=r.first_call_s,
        median_s=r.median_s,
        method=t.method,
        block_size=t.block_size,
        load_average_1m=t.load_average_1m,
        warmup_s=t.warmup_s,
        noise=t.noise,
    )


@dataclass
class RunResult:
    """A whole run: the suite, the environment and every result."""

    suite: dict  # {name, path, sha256}
    environment: dict
    results: list[Result] = field(default_factory=list)
    started_at: str | None = None
    finished_at: str | None = None
    tfperf_version: str = ""
    schema_version: int = SCHEMA_VERSION
    command: list[str] | None = None
    interrupted: bool = False

    def to_json(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "tfperf_version": self.tfperf_version,
            "suite": self.suite,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "interrupted": self.interrupted,
            "command": self.command,
            "environment": self.environment,
            "results": [r.to_json() for r in self.results],
        }

    @classmethod
    def from_json(cls, d: dict) -> "RunResult":
        """A run from its JSON object. Raises ValueError naming the key, or the index of the result entry,
        that has the wrong shape."""
        for key in ("suite", "environment"):
            if d.get(key) is not None and not isinstance(d[key], dict):
                raise ValueError(f"{key}: expected a JSON object, got {json_type(d[key])}")
        entries = d.get("results", [])
        if not isinstance(entries, list):
            raise ValueError(f"results: expected a list, got {json_type(entries)}")
        results = []
        for i, entry in enumerate(entries):
            try:
                results.append(Result.from_json(entry))
            except ValueError as e:
                raise ValueError(f"results[{i}]: {e}") from None
        return cls(
            suite=d.get("suite") or {},
            environment=d.get("environment") or {},
            results=results,
            started_at=d.get("started_at"),
            finished_at=d.get("finished_at"),
            tfperf_version=d.get("tfperf_version", ""),
            schema_version=d.get("schema_version", SCHEMA_VERSION),
            command=d.get("command"),
            interrupted=bool(d.get("interrupted", False)),
        )

    @property
    def exit_code(self) -> int:
        """0 when every result is ok (or deliberately skipped), 1 when any failed or timed out."""
        return 1 if any(r.status in ("failed", "timeout") for r in self.results) else 0


def now_iso() -> str:
    """A run's timestamps (started_at, finished_at): local time with its UTC offset, to the second."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so a reader or a kill never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp creates 0600; a report is an ordinary file, readable as the umask allows.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results(run: RunResult, path: Path) -> None:
    atomic_write_text(Path(path), json.dumps(run.to_json(), indent=2, allow_nan=False, default=str) + "\n")


def load_results(path: str | Path) -> RunResult:
    """Read a results.json, with a clear message for a missing file, bad JSON or an unknown schema."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise ResultsFileError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except OSError as e:
        raise ResultsFileError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict) or "results" not in data:
        raise ResultsFileError(f"{path}: not a tfperf results file (no 'results' list)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise ResultsFileError(
            f"{path}: schema_version {version!r} is "
            + (
                "newer than this tfperf understands (upgrade tfperf)"
                if newer
                else f"not supported (expected {SCHEMA_VERSION})"
            )
        )
    try:
        return RunResult.from_json(data)
    except ValueError as e:  # a field or entry of the wrong shape, named (results[3]: missing case)
        raise ResultsFileError(f"{path}: {e}") from None
    except TypeError as e:  # a shape no check above names: still the file, no traceback
        raise ResultsFileError(f"{path}: not a valid tfperf results file ({e})") from None
