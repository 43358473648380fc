"""What tfperf itself records about a job beyond its timing, typed: what the job ran with, the tracing
read-outs, tune's output check, the read-outs that failed, the worker processes that failed, the what-if
baseline, a distributed job's replicas and workers, and a deployment's artefact.

Each is a `Record` (tfperf/results/records.py): a dataclass with a JSON round trip whose unknown keys stay in
`details`. Unlike the older records these write every field, null where it was not measured, as the rest of
results.json does. Files written before these fields existed held the same keys under `extra`; compat.py moves
them here on load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tfperf.results.records import ErrorInfo, Record


def written_whole(cls: type[Record]) -> type[Record]:
    """Write every field of the record, null when unset (applied over @dataclass, which makes the fields)."""
    cls.ALWAYS = cls.field_names()
    return cls


# --- what the job ran with ----------------------------------------------------------------------------------


@written_whole
@dataclass
class FitLoop(Record):
    """`task: fit`: how Keras' own loop ran the job's mode (`setup.fit`)."""

    run_eagerly: bool | None = None
    jit_compile: bool | None = None
    steps_per_epoch: int | None = None


@written_whole
@dataclass
class Setup(Record):
    """What the job ran with, as the worker found it: the Keras, the input, the model's dtypes and inputs, the
    process-wide TensorFlow settings asked for and in force, and the devices the step's outputs came from."""

    keras: str | None = None  # "keras 3.15.1" / "tf_keras 2.21.0"; null for a function or a SavedModel
    input_source: str | None = None  # in_memory | pipeline | dataset | inputs
    input_pipeline: str | None = None  # what the synthetic pipeline turned off (a naive baseline)
    # Several inputs: {source, kind, inputs: {name: {shape, dtype, maxval, role}}} (model_inputs.describe).
    model_inputs: dict[str, Any] | None = None
    saved_model: dict[str, Any] | None = None  # a SavedModel folder as the model: {path, signature}
    placed_on: list[str] | None = None  # the devices TensorFlow reports for the step's outputs
    model_compute_dtype: str | None = None
    dtype_policy: str | None = None
    loss_scale_optimizer: bool | None = None  # a train step's optimizer scales the loss (float16)
    tf_config: dict[str, Any] | None = None  # the case's tf_config, as asked
    tf_config_applied: dict[str, Any] | None = None  # what TensorFlow reported back (measure/tf_config.py)
    steps_per_execution: int | None = None  # task: fit
    fit: FitLoop | None = None

    NESTED: ClassVar[dict[str, type[Record]]] = {"fit": FitLoop}


# --- tracing, tune's output check, failed read-outs ---------------------------------------------------------


@written_whole
@dataclass
class TraceReadout(Record):
    """What the tracing read-outs saw beyond `tracing_count` and `retraces`."""

    calls: list[int] | None = None  # which calls (0 = the first) traced the step
    # Traces of a first call that created variables (tf.function traces it twice): not retraces.
    first_use_traces: int | None = None
    # Every parameter's spec over all traces, for a complete input_signature fix (retracing.signature_info):
    # {function, parameters: [{name, kind, type, shape, dtype, value, varies}]}.
    signature: dict[str, Any] | None = None


@written_whole
@dataclass
class OutputValues(Record):
    """Output values tune compares across configurations, or why they could not be taken."""

    values: list[float] | None = None  # flattened, the first ones only
    count: int | None = None  # how many values the output had
    seed: int | None = None
    mode: str | None = None
    state_variables: int | None = None  # first_step: the variables put back to the same state before the call
    error: str | None = None


@written_whole
@dataclass
class OutputCheck(Record):
    """Tune's output check: a stateful step's first call from the same state (step_state.py), and the forward
    pass on a fixed input with fixed weights (tf_config.output_fingerprint)."""

    first_step: OutputValues | None = None
    fingerprint: OutputValues | None = None

    NESTED: ClassVar[dict[str, type[Record]]] = {"first_step": OutputValues, "fingerprint": OutputValues}


@written_whole
@dataclass
class ReadoutErrors(Record):
    """Read-outs that failed after the timing was measured (the timing stands): the error, per read-out."""

    retraces: str | None = None
    graph: str | None = None
    tb_summaries: str | None = None
    what_if: str | None = None


def readout_failed(errors: ReadoutErrors | None, readout: str, exc: BaseException) -> ReadoutErrors:
    """`errors` with `readout`'s failure added (a new record when there was none)."""
    errors = errors if errors is not None else ReadoutErrors()
    setattr(errors, readout, f"{type(exc).__name__}: {exc}"[:300])
    return errors


# --- processes and what-ifs ---------------------------------------------------------------------------------


@written_whole
@dataclass
class ProcessError(Record):
    """A later worker process of a job that failed (results.model.merge_process), counted from 0 like
    `repeat_process`."""

    process: int | None = None
    status: str | None = None
    error: ErrorInfo | None = None
    log_path: str | None = None  # that process's worker log

    NESTED: ClassVar[dict[str, type[Record]]] = {"error": ErrorInfo}


@written_whole
@dataclass
class WhatIfBaseline(Record):
    """How the what-ifs' baseline was measured: the job's own timed pass, then once more after the what-ifs,
    and how far the machine drifted between the two."""

    median_s_before: float | None = None
    samples_before: int | None = None
    median_s_after: float | None = None
    samples_after: int | None = None
    drift: float | None = None  # |after / before - 1|


# --- tf.distribute ------------------------------------------------------------------------------------------


@written_whole
@dataclass
class DistributedBaseline(Record):
    """The one-replica baseline measured in the same run, repeat by repeat with the distributed pass."""

    strategy: str | None = None
    device: str | None = None
    replicas: int | None = None
    global_batch_size: int | None = None
    median_s: float | None = None
    samples_per_s: float | None = None
    first_call_s: float | None = None
    final_loss: float | None = None
    samples: list[float] | None = None
    interleaved_with_distributed_repeats: bool | None = None


@written_whole
@dataclass
class WorkerSummary(Record):
    """What one worker of a multi-worker cluster measured (`distributed.per_worker`)."""

    index: int | None = None
    pid: int | None = None
    address: str | None = None
    median_s: float | None = None
    final_loss: float | None = None
    probe_losses: list[float] | None = None
    first_call_s: float | None = None
    input_wait_fraction: float | None = None
    cuda_visible_devices: str | None = None


@written_whole
@dataclass
class ClusterRestart(Record):
    """A local cluster started again after a worker died before it joined (`distributed.cluster_restarts`)."""

    message: str | None = None
    log_tail: str | None = None


@written_whole
@dataclass
class Distributed(Record):
    """A tf.distribute job: the strategy and its replicas, the losses every replica and worker reached, the
    one-replica baseline, and a local cluster's workers and failures."""

    strategy: str | None = None  # one_device | mirrored | multi_worker
    devices: int | None = None
    workers: int | None = None
    worker_index: int | None = None  # the worker that wrote the result (0 in a combined cluster result)
    pid: int | None = None
    replica_devices: list[str] | None = None
    cuda_visible_devices: str | None = None  # a multi-worker worker's GPUs (cluster.worker_gpu_env)
    final_loss: float | None = None
    probe_losses: list[float] | None = None  # every local replica's loss on the same probe batch
    samples_per_s: float | None = None
    synced_replicas: int | None = None  # the replicas whose loss each timed step fetched
    replicas_diverged: bool | None = None
    baseline: DistributedBaseline | None = None
    per_worker: list[WorkerSummary] | None = None
    losses_identical: bool | None = None
    worker_pids: list[int] | None = None
    failed_worker: int | None = None
    also_failed_workers: list[int] | None = None
    cluster_restarts: list[ClusterRestart] | None = None
    # The collectives' share of op time, where files of an early tfperf held it (the profile holds it now).
    allreduce_share: float | None = None

    NESTED: ClassVar[dict[str, type[Record]]] = {
        "baseline": DistributedBaseline,
        "per_worker": WorkerSummary,
        "cluster_restarts": ClusterRestart,
    }


# --- deployment modes ---------------------------------------------------------------------------------------


@written_whole
@dataclass
class Deployment(Record):
    """The exported artefact a deployment mode timed (tfperf/deploy/modes.py), and how it was fed."""

    artefact: str | None = None  # the SavedModel folder or .tflite file
    export_time_s: float | None = None
    convert_time_s: float | None = None  # the TF Lite conversion; null for savedmodel
    num_threads: int | None = None  # the interpreter's threads; null: TensorFlow's own pools
    interpreter: str | None = None  # which TF Lite interpreter ran it, with its version
    runs_on: str | None = None
    signature: str | None = None  # the SavedModel's serving signature
    input_name: str | list[str] | None = None
    output_name: str | None = None  # the output timed and compared, when there are several
    outputs_ignored: list[str] | None = None
    # One input: its dtype and {scale, zero_point}; several: {input name: ...}.
    input_dtype: str | dict[str, str] | None = None
    input_quantization: dict[str, Any] | None = None
    output_dtype: str | None = None
    output_quantization: dict[str, Any] | None = None
