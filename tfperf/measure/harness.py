"""Measures one job (case × mode × batch size) inside a worker process: build, first call, warm-up, timed steps,
then the separate, untimed profiled pass.

Honest timing: whole steps are timed with perf_counter, asynchronous work is forced to complete before the clock
is read, the first call is never a timed step, and the raw samples are kept (the statistics derive from them).
"""
from __future__ import annotations

import gc
import math
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
from tfperf.measure.memory import PeakMemory
from tfperf.measure.retrace_fixes import check_trace_budget, effective_traces
from tfperf.measure.retracing import explain_retraces, first_use_traces, note_trace, signature_info
from tfperf.results.model import JobSpec, Result
from tfperf.results.records import ErrorInfo, Profile, Timing
from tfperf.suite.spec import DEPLOY_MODES, CaseSpec, InputSpec, LabelsSpec

# Steps shorter than this are timed in blocks with one sync per block (torch.utils.benchmark's blocked
# autorange does the same) when the sync is a noticeable share of the step: sync_devices costs tens of
# microseconds and would otherwise be part of every sample.
BLOCKED_BELOW_S = 1e-3
# ...but only when the sync costs more than this share of the step. On the CPU the sync is a value fetch
# of a finished tensor (about a microsecond), and measured here, calls issued back to back without a fetch
# ran slower than calls each followed by one (0.3 vs 0.8 ms for x + 1.0 under load): blocking there would
# inflate the number it means to sharpen.
SYNC_SHARE_FOR_BLOCKING = 0.02
# A block lasts about this long, so the per-block sync and clock reads are a small share of it.
BLOCK_TARGET_S = 10e-3
MAX_BLOCK_SIZE = 1000
PROFILE_STEPS = 5
WARMUP_MIN_S = 0.5
WARMUP_MAX_EXTRA_STEPS = 1000


@dataclass
class JobContext:
    out_dir: Path | None  # the run folder; traces go under out_dir/tensorboard
    tf_device: str  # "/CPU:0", "/GPU:0"
    multiple_batch_sizes: bool = False
    fail_on_retrace: bool = False
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
    notes: dict = field(default_factory=dict)
    result_fields: dict = field(default_factory=dict)  # Result attributes set as measured (deployment modes)


def tf_device_name(device: str) -> str:
    """Suite device ("cpu", "gpu:1") -> TensorFlow device name ("/CPU:0", "/GPU:1")."""
    kind, _, index = device.partition(":")
    return f"/{kind.upper()}:{index or 0}"


def resolve_device(requested: str) -> str:
    """auto -> the first GPU, else the CPU. A GPU request on a machine without one is an error for that job."""
    gpus = tf.config.list_physical_devices("GPU")
    if requested == "auto":
        return "gpu:0" if gpus else "cpu"
    if requested.startswith("gpu"):
        index = int(requested.partition(":")[2] or 0)
        if index >= len(gpus):
            raise NoSuchDevice(f"device {requested!r} requested but TensorFlow sees {len(gpus)} GPU(s)")
        return f"gpu:{index}"
    return requested


class NoSuchDevice(RuntimeError):
    pass


def sync_for(device: str) -> tuple[Callable[[Any], None], str]:
    """How to force completion before reading the clock.

    On a GPU an op returns long before the kernel finishes, so wait for the device itself
    (sync_devices must run outside tf.function, which is where we call it). On the CPU, fetching a value of
    the step's result waits for the ops that produce it.
    """
    if device.startswith("gpu"):
        def sync_gpu(out: Any) -> None:
            tf.test.experimental.sync_devices()
        return sync_gpu, "sync_devices"

    def sync_cpu(out: Any) -> None:
        for t in tf.nest.flatten(out):
            if hasattr(t, "numpy"):
                t.numpy()
    return sync_cpu, "fetch"


def loss_for(labels: LabelsSpec):
    import keras

    if labels.classes is not None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def build_model(case: CaseSpec, resolve: Callable[[str], Any]) -> tuple[Any, InputSpec, LabelsSpec]:
    """The case's Keras model and the input/label specs it is fed with."""
    import keras

    from tfperf.zoo import ZooModel, resolve_input, resolve_labels

    target = resolve(case.model)
    if isinstance(target, ZooModel):
        # The params decide the implied input (features, image size, vocabulary) unless the case gives one.
        inp = resolve_input(target, case.input, case.params)
        labels = resolve_labels(target, case.labels, case.params)
        return target.build(case.params, inp, labels), inp, labels
    model = target(**case.params) if callable(target) and not isinstance(target, keras.Model) else target
    if not isinstance(model, keras.Model):
        raise TypeError(f"model: {case.model} gave {type(model).__name__}, not a keras.Model")
    inp, labels = case.input, case.labels
    if inp is None:
        shape = tuple(model.inputs[0].shape[1:]) if model.inputs else None
        if shape is None or any(d is None for d in shape):
            raise ValueError(f"model: {case.model}: give the case an input: {{shape: [...]}}; the model's input shape is {shape}")
        inp = InputSpec(shape=shape, dtype=str(model.inputs[0].dtype))
    if labels is None:
        out_shape = tuple(model.outputs[0].shape[1:]) if model.outputs else ()
        labels = LabelsSpec(classes=out_shape[0]) if len(out_shape) == 1 and out_shape[0] else LabelsSpec(shape=out_shape, dtype="float32")
    return model, inp, labels


def train_step(model: Any, loss_fn: Callable, optimizer: Any) -> Callable:
    """A Keras train step: forward, loss, gradients, optimizer update. The name scopes are what the profile's
    per-phase split reads (forward / backward / optimizer); they cost nothing at run time."""
    def step(x, y):
        with tf.GradientTape() as tape:
            with tf.name_scope("forward"):
                pred = model(x, training=True)
                loss = loss_fn(y, pred)
        with tf.name_scope("backward"):
            grads = tape.gradient(loss, model.trainable_variables)
        with tf.name_scope("optimizer"):
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return step


def wrap_mode(step: Callable[..., Any], mode: str) -> tuple[Callable[..., Any], Any | None]:
    # A step that is already a tf.function keeps its own tracing options (input_signature, reduce_retracing:
    # the retracing fixes), re-wrapped per job so each job counts its own traces and the mode sets jit_compile.
    options: dict[str, Any] = {}
    if isinstance(step, tf.types.experimental.PolymorphicFunction) and hasattr(step, "python_function"):
        options = {"input_signature": step.input_signature,
                   "reduce_retracing": bool(getattr(step, "_reduce_retracing", False))}
        step = step.python_function
    if mode == "eager":
        return step, None
    if mode == "function":
        fn = tf.function(step, **options)
    elif mode == "xla":
        # Explicit, never keras' jit_compile="auto", which silently turns XLA on or off by device.
        fn = tf.function(step, jit_compile=True, **options)
    else:
        raise ValueError(f"mode {mode!r} is not an execution mode of the harness")
    return fn, fn


def prepare(case: CaseSpec, job: JobSpec, ctx: JobContext, resolve: Callable[[str], Any]) -> PreparedStep:
    if case.function is not None:
        if job.mode in DEPLOY_MODES:
            raise ValueError(f"mode {job.mode} exports a Keras model: give the case a model:, not a function:")
        fn = resolve(case.function)
        source = make_source(case, None, None, None, ctx.tf_device, resolve)
        call, traced = wrap_mode(fn, job.mode)
        return PreparedStep(call, source, traced)

    import keras

    keras.backend.clear_session()  # fresh layer names per job, so traces of different modes line up
    with tf.device(ctx.tf_device):
        model, inp, labels = build_model(case, resolve)
        source = make_source(case, inp, labels, job.batch_size, ctx.tf_device, resolve)
        if job.task == "train":
            loss_fn = loss_for(labels)
            optimizer = keras.optimizers.Adam(learning_rate=1e-3)
            # Build the optimizer's variables now: created inside the first traced call, they would make a
            # Keras train step trace twice (one trace that may create variables, one that may not), which is
            # not a retrace but would read as one.
            optimizer.build(model.trainable_variables)

            step = train_step(model, loss_fn, optimizer)
        else:
            def step(x, y):
                with tf.name_scope("forward"):
                    return model(x, training=False)

        deploy_notes: dict = {}
        deploy_fields: dict = {}
        if job.mode in DEPLOY_MODES:  # the exported, reloaded artefact is what gets timed (tfperf/deploy/modes.py)
            from tfperf.deploy.modes import deployment_step

            workdir = Path(ctx.out_dir or tempfile.mkdtemp(prefix="tfperf-deploy-")) / "deploy" / \
                tensorboard_run_name(job, ctx.multiple_batch_sizes)
            call, deploy_notes, deploy_fields = deployment_step(job.mode, model, inp, source, job.batch_size, workdir)
            traced = None
        else:
            call, traced = wrap_mode(step, job.mode)
    notes = {"input_source": source.kind, **deploy_notes}
    if source.options_note:
        notes["input_pipeline"] = source.options_note
    return PreparedStep(call, source, traced, model, notes, deploy_fields)


def tracing_count(traced: Any | None) -> int | None:
    return traced.experimental_get_tracing_count() if traced is not None else None


def xla_hint(exc: BaseException) -> tuple[str, str | None]:
    """Name the op XLA cannot compile, from TensorFlow's 'No registered OP OpKernel for XLA_...' message."""
    text = str(exc)
    ops = sorted(set(re.findall(r"No registered '(\w+)' OpKernel for XLA", text)))
    if not ops:
        return text.splitlines()[0][:500] if text else type(exc).__name__, None
    message = f"XLA cannot compile op{'s' if len(ops) > 1 else ''} {', '.join(ops)} (no XLA kernel on this device)"
    hint = ("run this case in mode 'function', or keep the op outside the jit_compile=True function "
            "(compile only the numeric part with tf.function(jit_compile=True))")
    return message, hint


def error_info(exc: BaseException, mode: str) -> ErrorInfo:
    """A failed job's error: the exception's type and first line, a hint at the fix, and its traceback."""
    message, hint = xla_hint(exc) if mode == "xla" else (None, None)
    if message is None:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:1000]
    if hint is None and isinstance(exc, tf.errors.ResourceExhaustedError):
        hint = "out of memory: lower batch_size"
    return ErrorInfo(type=type(exc).__name__, message=message, hint=hint,
                     traceback="".join(traceback.format_exception(exc))[-4000:])


def block_size_for(step_s: float) -> int:
    """Steps per timed block for a step of about `step_s`, so a block lasts about BLOCK_TARGET_S."""
    return int(min(MAX_BLOCK_SIZE, max(2, math.ceil(BLOCK_TARGET_S / max(step_s, 1e-7)))))


def measure_sync_cost(sync: Callable[[Any], None], finished: Any, n: int = 20) -> float:
    """Median cost of forcing completion when nothing is pending: what each per-step sample pays for it."""
    sync(finished)
    costs = []
    for _ in range(n):
        t0 = time.perf_counter()
        sync(finished)
        costs.append(time.perf_counter() - t0)
    costs.sort()
    return costs[len(costs) // 2]


class StepTimer:
    """Runs steps and times them; every step goes through `one_step` so the tracing count is read per call."""

    def __init__(self, prepared: PreparedStep, sync: Callable[[Any], None]):
        self.p = prepared
        self.sync = sync
        self.calls = 0
        self.trace_calls: list[int] = []  # call indices at which the tf.function traced
        self._last_count = tracing_count(prepared.traced) or 0

    def after_call(self) -> None:
        """Count a call of the step, and note a trace it made (call after every call, the first included)."""
        if self.p.traced is not None:
            count = self.p.traced.experimental_get_tracing_count()
            if count != self._last_count:
                self.trace_calls.append(self.calls)
                self._last_count = count
                # Read the new trace's signature now, while the call's arguments are alive (a new Python
                # object's class is gone once its weak reference dies). Only on a call that traced.
                note_trace(self.p.traced, self.calls)
        self.calls += 1

    def one_step(self) -> tuple[float, float]:
        """(step seconds, input wait seconds) of one complete step."""
        t0 = time.perf_counter()
        args, kwargs = self.p.source.next_args()
        t1 = time.perf_counter()
        out = self.p.call(*args, **kwargs)
        self.sync(out)
        t2 = time.perf_counter()
        self.after_call()
        return t2 - t0, t1 - t0

    def block(self, n: int) -> tuple[float, float]:
        """(per-step seconds, per-step input wait) over n calls with a single sync at the end."""
        source, call = self.p.source.next_args, self.p.call
        wait = 0.0
        out = None
        t0 = time.perf_counter()
        for _ in range(n):
            a = time.perf_counter()
            args, kwargs = source()
            wait += time.perf_counter() - a
            out = call(*args, **kwargs)
            self.after_call()
        self.sync(out)
        elapsed = time.perf_counter() - t0
        return elapsed / n, wait / n


def _warm_up_and_time(case: CaseSpec, timer: "StepTimer", sync: Callable[[Any], None],
                      finished: Any) -> tuple[list[float], list[float], list[float], int, float]:
    """Warm-up, then repeats x steps timed samples: (samples, input waits, warm-up step times, block size,
    sync cost)."""
    warm = [timer.one_step()[0] for _ in range(case.warmup_steps)]
    # A fixed count is not enough: measured here, steps kept getting faster for the first ~0.3 s of a
    # fresh worker (thread pools, caches, clocks ramping up: 43 -> 22 ms, 2.0 -> 0.5 ms), so warm-up also
    # lasts at least WARMUP_MIN_S. warmup_steps: 0 still means no warm-up at all.
    while case.warmup_steps and sum(warm) < WARMUP_MIN_S and len(warm) < case.warmup_steps + WARMUP_MAX_EXTRA_STEPS:
        warm.append(timer.one_step()[0])
    estimate = min(warm) if warm else timer.one_step()[0]
    sync_cost = measure_sync_cost(sync, finished)
    block_size = 1
    if estimate < BLOCKED_BELOW_S and sync_cost > SYNC_SHARE_FOR_BLOCKING * estimate:
        block_size = block_size_for(estimate)
        timer.block(block_size)  # warms the blocked loop itself
    samples: list[float] = []
    waits: list[float] = []
    for _ in range(case.repeats):
        for _ in range(case.steps):
            s, w = timer.one_step() if block_size == 1 else timer.block(block_size)
            samples.append(s)
            waits.append(w)
    return samples, waits, warm, block_size, sync_cost


def run_job(case: CaseSpec, job: JobSpec, ctx: JobContext, resolve: Callable[[str], Any]) -> Result:
    """Measure one job. Exceptions become a failed Result; they never escape (the worker goes on)."""
    started = time.perf_counter()
    result = Result(case=job.case, mode=job.mode, device=job.device, task=job.task,
                    batch_size=job.batch_size, model=case.model or case.function)
    memory = PeakMemory(job.device)
    phase = "build"
    try:
        memory.reset()
        prepared = prepare(case, job, ctx, resolve)
        sync, sync_name = sync_for(job.device)
        timer = StepTimer(prepared, sync)

        phase = "first call"
        args, kwargs = prepared.source.next_args()
        t0 = time.perf_counter()
        out = prepared.call(*args, **kwargs)
        sync(out)
        result.first_call_s = time.perf_counter() - t0
        timer.after_call()

        phase = "warm-up"
        # Like timeit: a collection pause belongs to no particular step and only adds noise, so the collector
        # is off from warm-up to the end of the timed pass. Collect before warm-up, not before the timed
        # steps: measured here, the steps right after a gc.collect() ran up to 3x slower (caches evicted).
        gc.collect()
        gc.disable()
        try:
            samples, waits, warm, block_size, sync_cost = _warm_up_and_time(case, timer, sync, out)
        finally:
            gc.enable()
        result.samples = samples
        result.repeat_sizes = [case.steps] * case.repeats
        result.repeat_process = [ctx.process_no] * case.repeats
        result.input_wait_s = waits
        result.input_wait_fraction = sum(waits) / sum(samples) if sum(samples) > 0 else None
        result.tracing_count = tracing_count(prepared.traced)
        result.timing = Timing(
            method="per_step" if block_size == 1 else "blocked",
            block_size=block_size,
            sync_cost_s=sync_cost,
            # Runnable processes per minute while the timed steps ran: above the core count, they shared the CPU.
            load_average_1m=os.getloadavg()[0],
            warmup_steps=case.warmup_steps,
            warmup_steps_run=len(warm),
            warmup_s=sum(warm),
            steps=case.steps,
            repeats=case.repeats,
            sync=sync_name,
            gc_disabled_while_timing=True,
        )
        result.extra.update(prepared.notes)
        for name, value in prepared.result_fields.items():
            setattr(result, name, value)
        result.extra["trace_calls"] = timer.trace_calls
        result.peak_memory_bytes = memory.peak_bytes()
        if not ctx.timing_only:
            _after_measurement(case, job, ctx, prepared, timer, result)

        if case.profile and ctx.out_dir is not None and not ctx.timing_only:
            phase = "profiled pass"
            _profile(case, job, ctx, timer, result)
    except Exception as exc:  # noqa: BLE001 - any failure of user code or TF is this job's result
        result.status = "failed"
        result.error = error_info(exc, job.mode)
        result.error.phase = phase
    result.wall_s = time.perf_counter() - started
    _write_summaries(job, ctx, result)
    return result


def _after_measurement(case: CaseSpec, job: JobSpec, ctx: JobContext, prepared: PreparedStep,
                       timer: StepTimer, result: Result) -> None:
    """Read-outs over the measured step that cost no timed work (retrace reasons, graph statistics)."""
    traced = prepared.traced
    if traced is None:
        return
    from tfperf.profile.graph_stats import example_call_args, graph_stats

    try:
        result.retraces = explain_retraces(traced, timer.trace_calls)
        first_use = first_use_traces(traced)
        if first_use:
            result.extra["first_use_traces"] = first_use
        if effective_traces(result) > MAX_TRACES_OK:
            name = getattr(getattr(traced, "python_function", None), "__name__", None) or "step"
            result.extra["trace_signature"] = signature_info(traced, name)
    except Exception as exc:  # noqa: BLE001 - a read-out never fails the measured result
        result.extra.setdefault("readout_errors", {})["retraces"] = f"{type(exc).__name__}: {exc}"[:300]
    try:
        # The latest trace's own arguments (zeros of its shapes): drawing another batch could trace again.
        args, kwargs = example_call_args(traced) or prepared.source.next_args()
        result.graph = graph_stats(traced, args, kwargs, jit=job.mode == "xla")
    except Exception as exc:  # noqa: BLE001
        result.extra.setdefault("readout_errors", {})["graph"] = f"{type(exc).__name__}: {exc}"[:300]
    max_traces = case.max_traces if case.max_traces is not None else (MAX_TRACES_OK if ctx.fail_on_retrace else None)
    check_trace_budget(result, max_traces)


def tensorboard_run_name(job: JobSpec, multiple_batch_sizes: bool) -> str:
    name = f"{job.case}-{job.mode}"
    if multiple_batch_sizes and job.batch_size is not None:
        name += f"-bs{job.batch_size}"
    return name


def _profile(case: CaseSpec, job: JobSpec, ctx: JobContext, timer: StepTimer, result: Result) -> None:
    """The separate, untimed profiled pass: after the timed pass, so profiling never changes the timed numbers."""
    from tfperf.profile.profiler import ProfileError, profile_job

    run = tensorboard_run_name(job, ctx.multiple_batch_sizes)
    logdir = Path(ctx.out_dir) / "tensorboard" / run
    # Top-level Keras layers (as model.summary() lists them) are what the per-layer split attributes op time to.
    model = timer.p.model
    layer_names = [layer.name for layer in getattr(model, "layers", [])] if model is not None else None
    try:
        # The step marker name (trace_name) is what TensorBoard's step-time graph and input-pipeline analysis key on.
        result.profile = profile_job(lambda i: timer.one_step(), steps=min(PROFILE_STEPS, case.steps),
                                     trace_name=job.task, logdir=logdir, layer_names=layer_names)
    except ProfileError as exc:  # no trace: the timed numbers stand, the profile says why it is missing
        result.profile = Profile(logdir=str(logdir), tb_run=run, error=str(exc))


def _write_summaries(job: JobSpec, ctx: JobContext, result: Result) -> None:
    """TensorBoard scalars + HParams for this job, in the same <tb-run> folder as its profile."""
    if ctx.out_dir is None or not result.ok or ctx.timing_only:
        return
    from tfperf.profile.tb_summaries import write_job_summaries

    try:
        write_job_summaries(Path(ctx.out_dir) / "tensorboard" / tensorboard_run_name(job, ctx.multiple_batch_sizes),
                            result)
    except Exception as exc:  # noqa: BLE001 - summaries are a convenience; the measured result stands
        result.extra.setdefault("readout_errors", {})["tb_summaries"] = f"{type(exc).__name__}: {exc}"[:300]
