"""Measures one job (case × mode × batch size) inside a worker process: build, first call, warm-up, timed
steps, then the separate, untimed profiled pass.

Honest timing: whole steps are timed with perf_counter, asynchronous work is forced to complete before the
clock is read, the first call is never a timed step, and the raw samples are kept (the statistics derive from
them).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tensorflow as tf

from tfperf.figures.thresholds import MAX_TRACES_OK
from tfperf.measure.inputs import InputSource, make_source
from tfperf.measure.keras_compat import clear_sessions, is_model, keras_label
from tfperf.measure.memory import PeakMemory
from tfperf.measure.model_inputs import InputStructure
from tfperf.measure.model_step import (
    build_model,
    loss_for,
    model_dtypes,
    train_step,
    training_optimizer,
    wrap_mode,
)
from tfperf.measure.retrace_fixes import check_trace_budget, effective_traces
from tfperf.measure.retracing import explain_retraces, first_use_traces, signature_info
from tfperf.measure.saved_models import ServingSignature
from tfperf.measure.step_state import (
    after_first_call,
    before_first_call,
    drawn_once,
    first_step_output,
    output_check_seed,
    seed_everything,
    step_variables,
)
from tfperf.measure.timing import (
    Clock,
    StepTimer,
    sync_for,
    tracing_count,
    warm_up_and_time,
)
from tfperf.profile.tfdata_autotune import record as autotune_record
from tfperf.results.job_records import OutputCheck, OutputValues, Setup, TraceReadout, readout_failed
from tfperf.results.model import JobSpec, Result
from tfperf.results.records import ErrorInfo, Profile, Timing
from tfperf.suite.spec import DEPLOY_MODES, CaseSpec

PROFILE_STEPS = 5


@dataclass
class JobContext:
    out_dir: Path | None  # the run folder; traces go under out_dir/tensorboard
    tf_device: str  # "/CPU:0", "/GPU:0"
    multiple_batch_sizes: bool = False
    # Which of the case's `processes` this is. After the first, only the timed pass runs: the first process
    # already read the retraces, graph, profile and summaries; again would cost time and duplicate TB runs.
    process_no: int = 0

    @property
    def timing_only(self) -> bool:
        return self.process_no > 0


@dataclass
class PreparedStep:
    """A step ready to call in its mode, with the source of its arguments and the way to force completion."""

    call: Callable[..., Any]  # the step in its mode: Python, tf.function, or tf.function(jit_compile=True)
    source: InputSource
    traced: Any | None  # the tf.function, when the mode traces (for tracing counts and retrace reasons)
    model: Any | None = None
    setup: Setup = field(default_factory=Setup)  # what the job runs with (Result.setup)
    # Result attributes set as measured (a deployment mode's size, load time, agreement and artefact)
    result_fields: dict = field(default_factory=dict)


def tf_device_name(device: str) -> str:
    """Suite device ("cpu", "gpu:1") -> TensorFlow device name ("/CPU:0", "/GPU:1")."""
    kind, _, index = device.partition(":")
    return f"/{kind.upper()}:{index or 0}"


def resolve_device(requested: str) -> str:
    """auto -> the first GPU, else the CPU. A device the process does not have is an error for that job: with
    soft placement (TensorFlow's default) the step would silently run elsewhere while the result named it."""
    gpus = tf.config.list_physical_devices("GPU")
    if requested == "auto":
        return "gpu:0" if gpus else "cpu"
    if requested.startswith("gpu"):
        index = int(requested.partition(":")[2] or 0)
        if index >= len(gpus):
            raise NoSuchDevice(f"device {requested!r} requested but TensorFlow sees {len(gpus)} GPU(s)")
        return f"gpu:{index}"
    index = int(requested.partition(":")[2] or 0)
    if index > 0:
        # Only cpu:N (N > 0) lists logical devices, which initializes them: a plain "cpu" must not, so that a
        # caller can still split the CPU into logical devices afterwards.
        cpus = tf.config.list_logical_devices("CPU")
        if index >= len(cpus):
            raise NoSuchDevice(
                f"device {requested!r} requested but TensorFlow sees {len(cpus)} CPU device(s)"
            )
    return requested


class NoSuchDevice(RuntimeError):
    pass


def pinned(call: Callable[..., Any], tf_device: str) -> Callable[..., Any]:
    """The call made under tf.device(tf_device), every time. Building under the scope is not enough: a step
    traced and called outside it runs where TensorFlow's placer puts it (GPU:0 when there is one), whatever
    the job's device says. A tf.function called in the scope runs its unplaced ops on that device (TensorFlow
    places a function's ops on the device of its call), so its graph and its trace cache are the same as
    unpinned."""

    def on_device(*args: Any, **kwargs: Any) -> Any:
        with tf.device(tf_device):
            return call(*args, **kwargs)

    on_device.__name__ = getattr(call, "__name__", "step")
    on_device.unpinned = call  # type: ignore[attr-defined]  # for a timed loop that holds the scope itself
    return on_device


def placed_on(out: Any) -> list[str]:
    """Where the step's output tensors were computed (`setup.placed_on`): the devices TensorFlow reports for
    them after a real call, not the device that was asked for. Empty when the step returns no tensors."""
    return sorted(
        {t.device for t in tf.nest.flatten(out) if isinstance(getattr(t, "device", None), str) and t.device}
    )


def prepare(case: CaseSpec, job: JobSpec, ctx: JobContext, resolve: Callable[[str], Any]) -> PreparedStep:
    if case.function is not None:
        if job.mode in DEPLOY_MODES:
            raise ValueError(
                f"mode {job.mode} exports a Keras model: give the case a model:, not a function:"
            )
        seed = output_check_seed(case)
        if seed is not None:
            seed_everything(seed)  # the user's module may be imported now: the same weights in every worker
        fn = resolve(case.function)
        source = make_source(case, None, None, None, ctx.tf_device, resolve)
        call, traced = wrap_mode(fn, job.mode)
        return PreparedStep(
            pinned(call, ctx.tf_device), source, traced, setup=Setup(input_source=source.kind)
        )

    import keras

    clear_sessions()  # fresh layer names per job, so traces of different modes line up
    with tf.device(ctx.tf_device):
        model, inp, labels = build_model(case, resolve, job.batch_size)
        source = make_source(case, inp, labels, job.batch_size, ctx.tf_device, resolve)
        if job.task == "train" and isinstance(model, ServingSignature):
            raise ValueError(
                f"model: {case.model} is a SavedModel: only its serving signature can be timed (task: infer)"
            )
        if job.task == "train":
            loss_fn = loss_for(labels, model)
            optimizer = training_optimizer(model)
            # Build the optimizer's variables now: created inside the first traced call, they would make a
            # Keras train step trace twice (one trace that may create variables, one that may not), which is
            # not a retrace but would read as one.
            optimizer.build(model.trainable_variables)

            step = train_step(model, loss_fn, optimizer)
        else:

            def step(x, y):
                with tf.name_scope("forward"):
                    return model(x, training=False)

        deploy_fields: dict = {}
        if (
            job.mode in DEPLOY_MODES
        ):  # the exported, reloaded artefact is what gets timed (tfperf/deploy/modes.py)
            from tfperf.deploy.modes import deployment_step

            workdir = (
                Path(ctx.out_dir or tempfile.mkdtemp(prefix="tfperf-deploy-"))
                / "deploy"
                / tensorboard_run_name(job, ctx.multiple_batch_sizes)
            )
            call, deploy_fields = deployment_step(job.mode, model, inp, source, job.batch_size, workdir)
            traced = None
        else:
            call, traced = wrap_mode(step, job.mode)
    setup = Setup(
        input_source=source.kind,
        keras=keras_label(model),
        input_pipeline=source.options_note,
        **model_dtypes(model),
    )
    if isinstance(inp, InputStructure):
        setup.model_inputs = inp.describe()
    if isinstance(model, ServingSignature):
        setup.saved_model = {"path": str(model.path), "signature": model.signature_name}
    if job.task == "train":
        setup.loss_scale_optimizer = "LossScaleOptimizer" in type(optimizer).__name__
    if (case.tf_config or {}).get("mixed_precision"):
        # The policy in force when the model was built (the worker merges it into what apply_tf_config saw).
        setup.tf_config_applied = {"mixed_precision": keras.mixed_precision.global_policy().name}
    return PreparedStep(pinned(call, ctx.tf_device), source, traced, model, setup, deploy_fields)


def xla_hint(exc: BaseException) -> tuple[str, str | None]:
    """Name the op XLA cannot compile, from TensorFlow's 'No registered OP OpKernel for XLA_...' message."""
    text = str(exc)
    ops = sorted(set(re.findall(r"No registered '(\w+)' OpKernel for XLA", text)))
    if not ops:
        return text.splitlines()[0][:500] if text else type(exc).__name__, None
    message = (
        f"XLA cannot compile op{'s' if len(ops) > 1 else ''} {', '.join(ops)} (no XLA kernel on this device)"
    )
    hint = (
        "run this case in mode 'function', or keep the op outside the jit_compile=True function "
        "(compile only the numeric part with tf.function(jit_compile=True))"
    )
    return message, hint


def error_info(exc: BaseException, mode: str) -> ErrorInfo:
    """A failed job's error: the exception's type and first line, a hint at the fix, and its traceback."""
    message, hint = xla_hint(exc) if mode == "xla" else (None, None)
    if message is None:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:1000]
    if hint is None and isinstance(exc, tf.errors.ResourceExhaustedError):
        hint = "out of memory: lower batch_size"
    return ErrorInfo(
        type=type(exc).__name__,
        message=message,
        hint=hint,
        traceback="".join(traceback.format_exception(exc))[-4000:],
    )


def run_job(
    case: CaseSpec,
    job: JobSpec,
    ctx: JobContext,
    resolve: Callable[[str], Any],
    *,
    block_size: int | None = None,
    clock: Clock = time.perf_counter,
) -> Result:
    """Measure one job. Exceptions become a failed Result; they never escape (the worker goes on).

    `block_size`: how the job's first worker process timed it (`timing.block_size`; 1 = per step), which a
    later process reuses so that every process's samples are of one kind; None decides from this process's
    steps. `clock` reads seconds (perf_counter; tests pass their own)."""
    started = time.perf_counter()
    result = Result.for_job(job, model=case.model or case.function)
    memory = PeakMemory(job.device)
    phase = "build"
    try:
        memory.reset()
        if job.task == "fit":  # Keras' own training loop, timed from inside it (tfperf/measure/fit.py)
            phase = "fit"
            fit_job(case, job, ctx, resolve, result, clock)
            result.peak_memory_bytes = memory.peak_bytes()
            result.wall_s = time.perf_counter() - started
            return result
        prepared = prepare(case, job, ctx, resolve)
        sync, sync_name = sync_for(job.device)
        timer = StepTimer(prepared, sync, clock)

        phase = "first call"
        seed = output_check_seed(case)
        first_args = drawn_once(prepared.source.next_args)  # the first call's arguments
        if seed is not None:  # a stateful step's outputs, compared by tune, from the same state in every job
            before_first_call(case.function, resolve(case.function), seed, first_args)
        args, kwargs = first_args()
        t0 = clock()
        out = prepared.call(*args, **kwargs)
        sync(out)
        result.first_call_s = clock() - t0
        if seed is not None:
            after_first_call(case.function, resolve(case.function))
            first = first_step_output(out, job.mode, seed, len(step_variables(resolve(case.function))))
            result.output_check = OutputCheck(first_step=OutputValues.from_json(first))
        timer.after_call()
        prepared.setup.placed_on = placed_on(out)  # where the pinned step really ran

        phase = "warm-up"
        # The timed loop holds one device scope itself and calls the step unwrapped: entering tf.device per
        # call (pinned's wrapper) costs about 4.5 µs here, which a short step's samples would carry.
        timer.p = dataclasses.replace(prepared, call=getattr(prepared.call, "unpinned", prepared.call))
        try:
            # warm_up_and_time holds the TimedSection: the collector off, the process's noise record.
            with tf.device(ctx.tf_device):
                timed = warm_up_and_time(case, timer, sync, out, block_size)
        finally:
            timer.p = prepared
        samples, waits, warm = timed.samples, timed.waits, timed.warm
        result.samples = samples
        result.repeat_sizes = [case.steps] * case.repeats
        result.repeat_process = [ctx.process_no] * case.repeats
        result.input_wait_s = waits
        result.input_wait_fraction = sum(waits) / sum(samples) if sum(samples) > 0 else None
        result.tracing_count = tracing_count(prepared.traced)
        result.timing = Timing(
            method=timed.method,
            block_size=timed.block_size,
            sync_cost_s=timed.sync_cost_s,
            # Runnable processes per minute while the timed steps ran: above the core count, they shared the
            # CPU.
            load_average_1m=os.getloadavg()[0],
            warmup_steps=case.warmup_steps,
            warmup_steps_run=len(warm),
            warmup_s=sum(warm),
            steps=case.steps,
            repeats=case.repeats,
            sync=sync_name,
            gc_disabled_while_timing=True,
            noise=timed.noise,
        )
        result.setup = prepared.setup
        for name, value in prepared.result_fields.items():
            setattr(result, name, value)
        result.tracing = TraceReadout(calls=timer.trace_calls)
        result.peak_memory_bytes = memory.peak_bytes()
        result.rss_growth_bytes = memory.rss_growth_bytes()  # not a peak: see measure/memory.py
        if not case.profile:  # a what-if re-run (or --no-profile): what AUTOTUNE chose over the timed steps
            result.autotune = autotune_record(getattr(prepared.source, "iterator", None))
        if not ctx.timing_only:
            _after_measurement(case, job, ctx, prepared, timer, result)

        if case.profile and ctx.out_dir is not None and not ctx.timing_only:
            _profile(case, job, ctx, timer, result)  # never fails the job: its error goes in result.profile
    except Exception as exc:  # noqa: BLE001 - any failure of user code or TF is this job's result
        result.status = "failed"
        result.error = error_info(exc, job.mode)
        result.error.phase = phase
    result.wall_s = time.perf_counter() - started
    _write_summaries(job, ctx, result)
    return result


def fit_job(
    case: CaseSpec,
    job: JobSpec,
    ctx: JobContext,
    resolve: Callable[[str], Any],
    result: Result,
    clock: Clock = time.perf_counter,
) -> None:
    """`task: fit`: the case's model trained by its own `model.fit` in the job's mode."""
    from tfperf.measure.fit import run_fit

    clear_sessions()
    with tf.device(ctx.tf_device):
        model, inp, labels = build_model(case, resolve, job.batch_size)
        if not is_model(model):
            raise ValueError(
                f"model: {case.model} has no fit (a SavedModel's serving signature): use task: infer"
            )
        run_fit(case, job, model, inp, labels, resolve, result, clock)
    result.repeat_process = [ctx.process_no] * case.repeats


def _after_measurement(
    case: CaseSpec, job: JobSpec, ctx: JobContext, prepared: PreparedStep, timer: StepTimer, result: Result
) -> None:
    """Read-outs over the measured step that cost no timed work (retrace reasons, graph statistics)."""
    traced = prepared.traced
    if traced is None:
        return
    from tfperf.profile.graph_stats import example_call_args, graph_stats

    try:
        result.retraces = explain_retraces(traced, timer.trace_calls)
        result.tracing.first_use_traces = first_use_traces(traced) or None
        if effective_traces(result) > MAX_TRACES_OK:
            name = getattr(getattr(traced, "python_function", None), "__name__", None) or "step"
            result.tracing.signature = signature_info(traced, name)
    except Exception as exc:  # noqa: BLE001 - a read-out never fails the measured result
        result.readout_errors = readout_failed(result.readout_errors, "retraces", exc)
    try:
        # The latest trace's own arguments (zeros of its shapes): drawing another batch could trace again.
        args, kwargs = example_call_args(traced) or prepared.source.next_args()
        result.graph = graph_stats(traced, args, kwargs, jit=job.mode == "xla")
    except Exception as exc:  # noqa: BLE001 - a read-out that fails is recorded; the timing stands
        result.readout_errors = readout_failed(result.readout_errors, "graph", exc)
    # `--fail-on-retrace` arrives as the plan's `max_traces: 1` for every case that sets none.
    check_trace_budget(result, case.max_traces)


def tensorboard_run_name(job: JobSpec, multiple_batch_sizes: bool) -> str:
    name = f"{job.case}-{job.mode}"
    if multiple_batch_sizes and job.batch_size is not None:
        name += f"-bs{job.batch_size}"
    return name


def _profile(case: CaseSpec, job: JobSpec, ctx: JobContext, timer: StepTimer, result: Result) -> None:
    """The separate, untimed profiled pass: after the timed pass, so profiling never changes the timed
    numbers."""
    from tfperf.profile.profiler import ProfileError, profile_job

    run = tensorboard_run_name(job, ctx.multiple_batch_sizes)
    logdir = Path(ctx.out_dir) / "tensorboard" / run
    # Top-level Keras layers (as model.summary() lists them) are what the per-layer split attributes op time
    # to.
    model = timer.p.model
    layer_names = [layer.name for layer in getattr(model, "layers", [])] if model is not None else None
    try:
        # The step marker name (trace_name) is what TensorBoard's step-time graph and input-pipeline analysis
        # key on.
        result.profile = profile_job(
            lambda i: timer.one_step(),
            steps=min(PROFILE_STEPS, case.steps),
            trace_name=job.task,
            logdir=logdir,
            layer_names=layer_names,
        )
        # What tf.data AUTOTUNE settled on, read after the timed and profiled steps let it settle.
        result.profile.autotune = autotune_record(getattr(timer.p.source, "iterator", None))
    except ProfileError as exc:  # no trace: the timed numbers stand, the profile says why it is missing
        result.profile = Profile(logdir=str(logdir), tb_run=run, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - the step or the read-out failed in the untimed pass: the timing
        # above was measured and stands; the profile record says what failed, and the worker log has the
        # traceback.
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:500]
        result.profile = Profile(
            logdir=str(logdir),
            tb_run=run,
            error=f"the profiled pass failed: {type(exc).__name__}: {first}".rstrip(": "),
        )


def _write_summaries(job: JobSpec, ctx: JobContext, result: Result) -> None:
    """TensorBoard scalars + HParams for this job, in the same <tb-run> folder as its profile."""
    if ctx.out_dir is None or not result.ok or ctx.timing_only:
        return
    from tfperf.profile.tb_summaries import write_job_summaries

    try:
        write_job_summaries(
            Path(ctx.out_dir) / "tensorboard" / tensorboard_run_name(job, ctx.multiple_batch_sizes), result
        )
    except Exception as exc:  # noqa: BLE001 - summaries are a convenience; the measured result stands
        result.readout_errors = readout_failed(result.readout_errors, "tb_summaries", exc)
