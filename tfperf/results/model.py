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
from tfperf.results.compat import upgrade_result
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
from tfperf.results.variants import TuneConfig

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class JobSpec:
    """What runs: one case in one mode at one batch size. Frozen: it is the key results are matched by."""

    case: str
    mode: str
    device: str
    task: str
    batch_size: int | None
    variant: str | None = None  # a variant of the case measured beside it (tune's configuration), or None

    @property
    def key(self) -> tuple:
        return (self.case, self.mode, self.batch_size, self.task, self.device, self.variant)

    @property
    def label(self) -> str:
        bs = f" bs={self.batch_size}" if self.batch_size is not None else ""
        return f"{self.case_label} [{self.mode}{bs}]"

    @property
    def case_label(self) -> str:
        """The case as text: `mlp`, or `mlp+threads-1` for a variant of it."""
        return f"{self.case}+{self.variant}" if self.variant else self.case

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
    variant: str | None = None  # JobSpec.variant: tune's configuration, or None
    tune: TuneConfig | None = None  # what that configuration changed (`tfperf tune`)
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
        "tune": TuneConfig,
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
        return JobSpec(self.case, self.mode, self.device, self.task, self.batch_size, self.variant)

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
            d = upgrade_result(d)  # a file written by an earlier tfperf, in the current layout
        check_entry(d, cls.RECORDS, Record)
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as e:  # a record field (error, timing, ...) that is not a JSON object
            raise ValueError(str(e)) from None

    @classmethod
    def for_job(cls, spec: JobSpec, **fields: Any) -> "Result":
        """A result of the job `spec` (its case, mode, device, task, batch size and variant)."""
        return cls(
            case=spec.case,
            mode=spec.mode,
            device=spec.device,
            task=spec.task,
            batch_size=spec.batch_size,
            variant=spec.variant,
            **fields,
        )

    @classmethod
    def not_run(
        cls, spec: JobSpec, status: str, err_type: str, message: str, hint: str | None = None, **kw: Any
    ) -> "Result":
        return cls.for_job(
            spec, status=status, error=ErrorInfo(type=err_type, message=message, hint=hint), **kw
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
