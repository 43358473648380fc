"""The structured fields of a result, typed: an error, the timing method, a retrace, a what-if re-run, a
suggestion. Each is a dataclass with a JSON round trip.

`results.json` is a public format (schema_version 1) that grows by adding keys, never renaming them. So each
record keeps the keys it does not know — written by a newer tfperf, or by an extension — in `details`, and
writes them back: loading and saving a file never loses anything. Keys in `ALWAYS` are written even when null
(the public contract promises them); other known keys are written when set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


@dataclass
class Record:
    details: dict[str, Any] = field(default_factory=dict, kw_only=True)

    ALWAYS: ClassVar[tuple[str, ...]] = ()
    NESTED: ClassVar[dict[str, type["Record"]]] = {}  # field -> record type of its list items or value
    _null_keys: ClassVar[frozenset[str]] = frozenset()  # set per record by from_json

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "details")

    @classmethod
    def from_json(cls: type[R], d: Any) -> R:
        """A record from its JSON object (or the record itself). Unknown keys go to `details`."""
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
        names = set(cls.field_names())
        known = {k: v for k, v in d.items() if k in names}
        for name, record_type in cls.NESTED.items():
            value = known.get(name)
            if isinstance(value, list):
                known[name] = [record_type.from_json(x) if isinstance(x, dict) else x for x in value]
            elif isinstance(value, dict):
                known[name] = record_type.from_json(value)
        record = cls(**known, details={k: v for k, v in d.items() if k not in names})
        # A key written as null stays written as null: a file loaded and saved again is the same file.
        record._null_keys = frozenset(k for k, v in known.items() if v is None)
        return record

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.field_names():
            value = getattr(self, name)
            if value is None and name not in self.ALWAYS and name not in self._null_keys:
                continue
            if isinstance(value, Record):
                value = value.to_json()
            elif isinstance(value, list):
                value = [x.to_json() if isinstance(x, Record) else x for x in value]
            out[name] = value
        for k, v in self.details.items():
            out.setdefault(k, v)
        return out


@dataclass
class ErrorInfo(Record):
    """Why a job did not produce a measurement: the exception type, its message and a hint at the fix."""

    type: str = "Error"
    message: str = ""
    hint: str | None = None
    phase: str | None = None  # build | first_call | warmup | timed | profile ...: where it failed
    returncode: int | None = None  # a crashed worker process's exit code (negative: the signal)
    log_tail: str | None = None  # the last lines of the worker's log
    worker: int | None = None  # which worker of a multi-worker case
    workers: list[int] | None = None
    traceback: str | None = None  # the last frames of an unexpected exception
    # A job that one of its later worker processes failed (`merge_process`): which one, counted from 0 like
    # `repeat_process`, and that process's log, so the failure can be read where it happened.
    process: int | None = None
    log_path: str | None = None

    ALWAYS: ClassVar[tuple[str, ...]] = ("type", "message", "hint")

    @property
    def summary(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass
class ProcessTiming(Record):
    """What one worker process measured of a job (`timing.by_process`)."""

    process: int = 0
    first_call_s: float | None = None
    median_s: float | None = None
    method: str | None = None
    block_size: int | None = None
    load_average_1m: float | None = None
    warmup_s: float | None = None
    noise: dict[str, Any] | None = None  # what else went on while it timed (tfperf/host/noise.py)


@dataclass
class Timing(Record):
    """How the timed steps were taken: per step or in blocks, the sync, the warm-up, the processes."""

    method: str | None = None  # per_step | blocked
    block_size: int | None = None
    sync: str | None = None  # fetch | sync_devices
    sync_cost_s: float | None = None
    warmup_steps: int | None = None
    warmup_steps_run: int | None = None
    warmup_s: float | None = None
    steps: int | None = None
    repeats: int | None = None
    load_average_1m: float | None = None
    gc_disabled_while_timing: bool | None = None
    processes: int | None = None
    by_process: list[ProcessTiming] | None = None
    noise: dict[str, Any] | None = None  # the first process's noise record (tfperf/host/noise.py)

    NESTED: ClassVar[dict[str, type[Record]]] = {"by_process": ProcessTiming}


@dataclass
class Retrace(Record):
    """One retrace of the step function: which call traced it again, and what changed (`retraces` entries)."""

    call: int | None = None
    changed: str | None = None
    argument: str | None = None
    kind: str | None = None  # shape | dtype | python | object | ...
    before: Any = None
    after: Any = None
    dims: list[int] | None = None
    path: str | None = None
    nearest_call: int | None = None
    changes: list[dict] | None = None

    ALWAYS: ClassVar[tuple[str, ...]] = (
        "call",
        "changed",
        "argument",
        "kind",
        "before",
        "after",
        "dims",
        "nearest_call",
    )


@dataclass
class WhatIf(Record):
    """One tf.data change re-measured against the unchanged job (`what_if` entries)."""

    change: str = ""
    code: str | None = None
    combined: bool | None = None
    batch_size: int | None = None
    median_s: float | None = None
    baseline_median_s: float | None = None
    baseline_input_wait_fraction: float | None = None
    speedup: float | None = None
    input_wait_fraction: float | None = None
    p_value: float | None = None
    samples: list[float] | None = None
    helped: bool | None = None
    error: str | None = None
    skipped: str | None = None

    ALWAYS: ClassVar[tuple[str, ...]] = (
        "change",
        "code",
        "median_s",
        "baseline_median_s",
        "speedup",
        "input_wait_fraction",
    )


@dataclass
class Suggestion(Record):
    """What to change, the numbers that say so, and the code to write (`suggestions` entries)."""

    code: str = ""
    title: str = ""
    evidence: str = ""
    fix: str = ""
    threshold: str | None = None
    evidence_data: dict[str, Any] = field(default_factory=dict)

    ALWAYS: ClassVar[tuple[str, ...]] = ("code", "title", "evidence", "fix", "threshold", "evidence_data")


@dataclass
class Profile(Record):
    """The read-out of a job's profiled pass (xprof's converters over the trace) and where the trace is.

    Fractions xprof reports in percent keep its unit (`input_bound_percent`); the `figures` functions turn
    them into shares of the step.
    """

    logdir: str | None = None  # the TensorBoard logdir the trace was written under
    tb_run: str | None = None  # the run folder TensorBoard lists
    run: str | None = None  # `<tb_run>/<profile timestamp>`, as the profile plugin names it
    profile_run: str | None = None
    hosts: list[str] | None = None
    profile_wall_s: float | None = None
    readout_s: float | None = None
    readout_error: str | None = None
    input_bound_percent: float | None = None
    input_conclusion: str | None = None  # xprof's own sentence ("HIGHLY input-bound because ...")
    step_time_ms: float | None = None
    host_compute_ms: float | None = None
    step_time_breakdown_ms: dict[str, float] | None = None
    kernel_launch_ms: float | None = None  # GPU: time the host spends launching kernels per step
    device_compute_ms: float | None = None  # GPU: time the device computes per step
    top_ops: list[dict[str, Any]] | None = None  # [{name, type, self_time_us, share, ...}]
    phases: dict[str, Any] | None = None  # forward | backward | optimizer | input | other
    layers: list[dict[str, Any]] | None = None
    overview: dict[str, Any] | None = None
    memory_peak_bytes: int | None = None
    memory_peak_by_allocator: dict[str, int] | None = None
    memory_note: str | None = None  # why there is no memory profile
    error: str | None = None  # why the profiled pass produced no trace
    allreduce_share: float | None = (
        None  # tf.distribute: the collectives' share of op time (worker 0's trace)
    )
    # XLA (tfperf/profile/hlo_ops.py): the executable's fusions [{name, fusion_kind, fused_ops, self_time_us,
    # share, source_ops, layer}], and per cluster how much of the compiled step its HLO ops cover.
    fusions: list[dict[str, Any]] | None = None
    compiled_step: dict[str, Any] | None = None
    op_source: str | None = (
        None  # where the op rows came from: framework_op_stats, eager events, HLO op events
    )
    # tf.data AUTOTUNE's choices per stage (tfperf/profile/tfdata_autotune.py), when the step reads a tf.data
    # input
    autotune: dict[str, Any] | None = None


@dataclass
class GraphStats(Record):
    """The size of the traced step: TF ops before and after Grappler, HLO instructions before and after
    XLA."""

    op_count: int | None = None
    grappler_op_count: int | None = None
    hlo_instructions: int | None = None
    optimized_hlo_instructions: int | None = None
    fusions: int | None = None
    fused_instructions: int | None = None
    # What each Grappler optimizer did, in the order they ran (tfperf/profile/grappler.py):
    # [{optimizer, ops_before, ops_after, changed}]
    grappler_passes: list[dict[str, Any]] | None = None


@dataclass
class OutputAgreement(Record):
    """How closely a deployment mode's outputs match the eager Keras model's on the same examples."""

    samples: int | None = None
    top1_agreement: float | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    mean_abs_error: float | None = None
    # False when a deployed model ignoring its input would pass the same check (outputs the same for every
    # input, or a classifier's near-uniform probabilities): the numbers then prove nothing about the
    # conversion.
    meaningful: bool | None = None
    not_meaningful: str | None = None  # why (tfperf.deploy.modes.not_meaningful)
    inputs: str | None = None  # the examples: the case's dataset, or synthetic ones from its input spec

    # The three fields above are left out when unset, so files written before them load and save unchanged.
    ALWAYS: ClassVar[tuple[str, ...]] = (
        "samples",
        "top1_agreement",
        "max_abs_error",
        "max_rel_error",
        "mean_abs_error",
    )
