"""Training under tf.distribute: one device, several devices of one machine (MirroredStrategy), several workers
(MultiWorkerMirroredStrategy), measured with a custom training loop.

Why a custom loop: Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy ("Attempt to convert a value
(PerReplica...)", DESIGN.md), and a hand-written loop is what the tf.distribute guide teaches anyway:
model and optimizer built under `strategy.scope()`, the dataset of *global* batches given to
`experimental_distribute_dataset`, and a step of `strategy.run(replica_fn)` + `strategy.reduce(SUM)` over losses
averaged with `tf.nn.compute_average_loss(..., global_batch_size)`.

`batch_size` is the per-replica batch; the global batch is per-replica × replicas. Scaling efficiency is
throughput with N replicas / (N × throughput of one replica at the same per-replica batch), both measured in the
same process and the same run (a one-device baseline pass runs first).

Process rules (TensorFlow's, not ours):
- Logical CPU devices must be configured before TensorFlow initializes its devices, and a
  MultiWorkerMirroredStrategy must be created before the eager context starts: `configure_process` runs at
  worker-process start, before anything touches a device.
- A multi-worker case either launches N local worker processes (tfperf/cluster.py, each runs `main` below with its
  own TF_CONFIG), or, when TF_CONFIG is already set, this process joins that cluster as the worker TF_CONFIG names.

Worker entry point (what tfperf/cluster.py runs):

    python -m tfperf.distributed CASE.json JOB.json RESULT.json [--out-dir D]
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import TfperfError
from .results import JobSpec, Result, atomic_write_text
from .spec import CaseSpec

STRATEGIES = ("one_device", "mirrored", "multi_worker")
# Fault injection for tests and for trying out failure handling, read only in worker processes of a multi-worker
# case: "INDEX:STEP" makes worker INDEX SIGKILL itself after STEP timed steps of the distributed pass;
# "INDEX:hang" makes it hang at start (before joining the cluster); "INDEX:abort-once:PATH" makes it abort at
# start unless PATH exists, creating PATH first (a start-up crash that a restart gets past).
KILL_ENV = "TFPERF_DISTRIBUTED_KILL"
# On a real cluster (TF_CONFIG set by you): start a profiler server on this port, so `tfperf capture` can trace
# the worker while it runs. tfperf's own profiled pass does not use it (worker 0 traces itself, see _trace_worker0).
PROFILER_PORT_ENV = "TFPERF_PROFILER_PORT"
PROBE_EXAMPLES = 16
PROFILE_STEPS = 5


class DistributeError(TfperfError):
    """A `distribute:` block that cannot run as written."""


@dataclass(frozen=True)
class DistributeSpec:
    """The case key `distribute: {strategy, devices, workers}`."""

    strategy: str = "one_device"
    devices: int = 1  # mirrored: devices of this machine (GPUs, else logical CPU devices)
    workers: int = 1  # multi_worker: worker processes (local) or the cluster's size (TF_CONFIG)

    @classmethod
    def from_dict(cls, d: dict | None) -> "DistributeSpec":
        d = {k: v for k, v in (d or {}).items() if v is not None}  # the suite loader passes unset keys as None
        unknown = sorted(set(d) - {"strategy", "devices", "workers"})
        if unknown:
            raise DistributeError(f"distribute: unknown key(s) {', '.join(unknown)} (expected strategy, devices, workers)")
        strategy = d.get("strategy", "one_device")
        if strategy not in STRATEGIES:
            raise DistributeError(f"distribute.strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
        defaults = {"one_device": (1, 1), "mirrored": (2, 1), "multi_worker": (1, 2)}[strategy]
        devices, workers = d.get("devices", defaults[0]), d.get("workers", defaults[1])
        for key, value in (("devices", devices), ("workers", workers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DistributeError(f"distribute.{key}: {value!r} must be a positive integer")
        if strategy == "one_device" and (devices != 1 or workers != 1):
            raise DistributeError("distribute: one_device runs on one device of one worker (devices: 1, workers: 1)")
        if strategy == "mirrored" and workers != 1:
            raise DistributeError("distribute: mirrored runs in one worker; use strategy: multi_worker for workers > 1")
        return cls(strategy, devices, workers)


# ---------------------------------------------------------------------------------------------------------------
# Process set-up: must happen before TensorFlow initializes its devices.

_process_strategy: Any = None  # the MultiWorkerMirroredStrategy of a joined cluster: one per process


def tf_config_task() -> tuple[int, int] | None:
    """(this worker's index, cluster size) from TF_CONFIG, or None when TF_CONFIG is not set."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
        workers = list(cfg["cluster"].get("worker", [])) + list(cfg["cluster"].get("chief", []))
        task = cfg.get("task", {})
        index = int(task.get("index", 0)) + (0 if task.get("type", "worker") == "chief" else
                                               len(cfg["cluster"].get("chief", [])))
        return index, len(workers)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DistributeError(f"TF_CONFIG is set but not valid ({exc}); expected "
                              '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}') from None


def configure_process(distribute: dict | DistributeSpec | None) -> dict:
    """Set the process up for a distributed case, before TensorFlow touches a device. Returns what it did.

    mirrored without GPUs: split the CPU into `devices` logical devices (TensorFlow refuses once devices exist).
    multi_worker with TF_CONFIG set: create the MultiWorkerMirroredStrategy now (it configures collective ops,
    which TensorFlow only allows before the eager context starts) and keep it for every job of the process.
    """
    spec = distribute if isinstance(distribute, DistributeSpec) else DistributeSpec.from_dict(distribute)
    import tensorflow as tf

    done: dict = {"strategy": spec.strategy}
    if spec.strategy == "mirrored" and not tf.config.list_physical_devices("GPU") and spec.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * spec.devices)
        except RuntimeError as exc:  # devices already initialized: a programming error in the caller
            raise DistributeError(f"distribute: cannot create {spec.devices} logical CPU devices after TensorFlow "
                                  f"initialized its devices ({exc})") from None
        done["logical_cpu_devices"] = spec.devices
    if spec.strategy == "multi_worker" and tf_config_task() is not None:
        global _process_strategy
        if _process_strategy is None:
            _process_strategy = tf.distribute.MultiWorkerMirroredStrategy()
            port = os.environ.get(PROFILER_PORT_ENV)
            if port:  # so `tfperf capture grpc://host:port,...` can trace this worker
                tf.profiler.experimental.server.start(int(port))
                done["profiler_port"] = int(port)
        done["joined_cluster"] = True
    return done


def make_strategy(spec: DistributeSpec, device: str = "cpu") -> Any:
    import tensorflow as tf

    if spec.strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(_tf_device(device))
    if spec.strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        kind = "GPU" if gpus and not device.startswith("cpu") else "CPU"
        devices = [d.name for d in tf.config.list_logical_devices(kind)]
        if len(devices) < spec.devices:
            raise DistributeError(f"distribute: mirrored over {spec.devices} devices, but TensorFlow sees "
                                  f"{len(devices)} {kind} device(s) (was configure_process called at process start?)")
        return tf.distribute.MirroredStrategy(devices[: spec.devices])
    if _process_strategy is None:
        raise DistributeError("distribute: multi_worker needs TF_CONFIG and configure_process() at process start")
    return _process_strategy


def _tf_device(device: str) -> str:
    kind, _, index = device.partition(":")
    return f"/{kind.upper()}:{index or 0}"


def _local_device(strategy: Any) -> str:
    """The first device this process drives under a strategy: where its one-replica baseline runs."""
    return strategy.extended.worker_devices[0]


# ---------------------------------------------------------------------------------------------------------------
# Measuring one pass under one strategy.

@dataclass
class Pass:
    """What one timed pass under one strategy measured."""

    strategy: str
    replicas: int
    global_batch: int
    first_call_s: float
    samples: list[float]
    waits: list[float]
    tracing_count: int | None
    final_loss: float  # the reduced training loss of the last timed step
    probe_losses: list[float]  # the loss of a fixed batch on each local replica's copy of the model, after the steps
    step: Callable[..., Any] | None = None  # kept for the profiled pass
    iterator: Any = None

    @property
    def median_s(self) -> float:
        s = sorted(self.samples)
        n = len(s)
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2

    @property
    def samples_per_s(self) -> float:
        return self.global_batch / self.median_s if self.median_s > 0 else math.inf


def _global_dataset(case: CaseSpec, inp: Any, labels: Any, global_batch: int, resolve: Callable[[str], Any]) -> Any:
    """A dataset of global batches: the case's own pipeline or dataset when it has one, else in-memory batches."""
    import numpy as np
    import tensorflow as tf

    from .inputs import IN_MEMORY_BATCHES, synthetic_features, synthetic_labels, synthetic_pipeline

    if case.dataset is not None:
        ds = resolve(case.dataset)(global_batch)
        if not isinstance(ds, tf.data.Dataset):
            raise TypeError(f"dataset: {case.dataset} returned {type(ds).__name__}, not a tf.data.Dataset")
        ds = ds.repeat()
    elif inp.pipeline is not None:
        ds, _ = synthetic_pipeline(inp, labels, global_batch)
    else:
        rng = np.random.default_rng(0)  # the same data in every worker: auto-sharding gives each its part
        n = global_batch * IN_MEMORY_BATCHES
        x, y = synthetic_features(inp, n, rng), synthetic_labels(labels, n, rng)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch, drop_remainder=True).cache().repeat()
        ds = ds.prefetch(2)
    options = tf.data.Options()
    # In-memory data has no files to shard by: shard by element, which is what FILE would fall back to anyway,
    # minus the warning.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _probe_batch(inp: Any, labels: Any) -> tuple[Any, Any]:
    import numpy as np

    from .inputs import synthetic_features, synthetic_labels

    rng = np.random.default_rng(1234)
    return synthetic_features(inp, PROBE_EXAMPLES, rng), synthetic_labels(labels, PROBE_EXAMPLES, rng)


def _per_example_loss(labels: Any) -> Any:
    import keras

    if labels.classes is not None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    return keras.losses.MeanSquaredError(reduction=None)


def _wrap(step: Callable[..., Any], mode: str) -> tuple[Callable[..., Any], Any | None]:
    import tensorflow as tf

    if mode == "eager":
        return step, None
    if mode == "function":
        fn = tf.function(step)
    elif mode == "xla":
        fn = tf.function(step, jit_compile=True)
    else:
        raise DistributeError(f"mode {mode!r}: distributed cases run in eager, function or xla")
    return fn, fn


class PassRunner:
    """One strategy's training step, built and warmed up; timed one repeat at a time, so the one-replica baseline
    and the distributed pass can take turns (repeat by repeat) and see the same machine load."""

    def __init__(self, strategy: Any, label: str, case: CaseSpec, job: JobSpec, resolve: Callable[[str], Any]):
        import keras
        import tensorflow as tf

        from .harness import build_model

        if job.task != "train":
            raise DistributeError("distribute: only task: train is measured under a strategy")
        self.strategy, self.label, self.case = strategy, label, case
        keras.backend.clear_session()  # the same layer names in every worker and every pass
        keras.utils.set_random_seed(0)  # the same initial weights in every worker (MWMS also broadcasts them)
        self.replicas = replicas = strategy.num_replicas_in_sync
        self.global_batch = global_batch = job.batch_size * replicas
        with strategy.scope():
            model, inp, labels = build_model(case, resolve)
            px, py = _probe_batch(inp, labels)
            if not model.built:
                model(px[:1])  # variables created here are mirrored; created inside strategy.run they would fail
            optimizer = keras.optimizers.Adam(learning_rate=1e-3)
            # Optimizer variables built now, not inside the first traced call (which would trace twice, DESIGN.md).
            optimizer.build(model.trainable_variables)
            loss_fn = _per_example_loss(labels)

        dataset = strategy.experimental_distribute_dataset(_global_dataset(case, inp, labels, global_batch, resolve))
        self.iterator = iter(dataset)

        def replica_fn(x, y):
            with tf.GradientTape() as tape:
                with tf.name_scope("forward"):
                    pred = model(x, training=True)
                    loss = tf.nn.compute_average_loss(loss_fn(y, pred), global_batch_size=global_batch)
                    if model.losses:
                        loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            with tf.name_scope("backward"):
                grads = tape.gradient(loss, model.trainable_variables)
            with tf.name_scope("optimizer"):  # the gradient all-reduce happens in here
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        def train_step(batch):
            per_replica = strategy.run(replica_fn, args=tuple(batch))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        self.call, self.traced = _wrap(train_step, job.mode)
        self.model, self.loss_fn, self.probe_xy = model, loss_fn, (px, py)
        self.samples: list[float] = []
        self.waits: list[float] = []
        self.final_loss = math.nan

        batch = next(self.iterator)
        t0 = time.perf_counter()
        float(self.call(batch).numpy())
        self.first_call_s = time.perf_counter() - t0
        for _ in range(case.warmup_steps):
            self.step()

    def step(self) -> tuple[float, float, float]:
        """(step seconds, input wait seconds, reduced loss) of one complete step."""
        t0 = time.perf_counter()
        batch = next(self.iterator)
        t1 = time.perf_counter()
        loss = self.call(batch)
        value = float(loss.numpy())  # fetching the reduced loss waits for every replica's step
        return time.perf_counter() - t0, t1 - t0, value

    def repeat(self, on_timed_step: Callable[[int], None] | None = None) -> None:
        """One repeat of `steps` timed steps."""
        import gc

        gc.collect()
        gc.disable()  # like timeit: a collection pause belongs to no particular step
        try:
            for _ in range(self.case.steps):
                s, w, self.final_loss = self.step()
                self.samples.append(s)
                self.waits.append(w)
                if on_timed_step is not None:
                    on_timed_step(len(self.samples))
        finally:
            gc.enable()

    def finish(self) -> Pass:
        """The pass's numbers, and the loss of one fixed batch on each local replica's copy of the weights.

        Synchronous training keeps every copy identical: a forward pass (no update) over the same batch must
        give the same loss on every replica and every worker; a difference means gradients were not all-reduced.
        """
        import tensorflow as tf

        model, loss_fn = self.model, self.loss_fn
        probe_x, probe_y = tf.constant(self.probe_xy[0]), tf.constant(self.probe_xy[1])

        def probe():
            return tf.reduce_mean(loss_fn(probe_y, model(probe_x, training=False)))

        per_replica = self.strategy.run(tf.function(probe))
        probe_losses = [float(v.numpy()) for v in self.strategy.experimental_local_results(per_replica)]
        return Pass(self.label, self.replicas, self.global_batch, self.first_call_s, self.samples, self.waits,
                    self.traced.experimental_get_tracing_count() if self.traced is not None else None,
                    self.final_loss, probe_losses, step=self.step, iterator=self.iterator)


_barrier_count = 0
BARRIER_TIMEOUT_S = 3600.0  # a bound, not a deadline: the supervisor's timeout_s ends a stuck job first


def _barrier() -> None:
    """Every worker waits here until all arrive. Only meaningful across workers; every worker calls the barriers
    in the same order, so the n-th call of each meets the others' n-th.

    The coordination service's barrier (an RPC to the cluster's leader) rather than a one-number all-reduce: an
    eager all-reduce runs through a Python thread pool (TensorFlow warns it "has significant overhead"), and a
    barrier should not take part in the collectives the profiler attributes to the step.
    """
    from tensorflow.python.eager import context

    global _barrier_count
    _barrier_count += 1
    context.context().wait_at_barrier(f"tfperf-barrier-{_barrier_count}", int(BARRIER_TIMEOUT_S * 1000))


# ---------------------------------------------------------------------------------------------------------------
# One job: the one-replica baseline, the distributed pass, the read-outs.

def _error(exc: BaseException, spec: DistributeSpec, mode: str, phase: str) -> dict:
    import traceback

    text = str(exc).strip()
    message = (text.splitlines() or [type(exc).__name__])[0][:1000]
    hint = None
    if mode == "xla" and "Trying to access resource" in text and "located in device" in text:
        message = (f"XLA (jit_compile=True) cannot compile the {spec.strategy} step: one compiled function would "
                   "read variables of replicas on other devices (tensorflow.org/xla/known_issues"
                   "#tfvariable_on_a_different_device)")
        hint = "run this case in mode 'function' under a strategy; jit_compile works with one_device"
    elif mode == "xla" and "Collectives are not yet implemented for CPU devices" in text:
        message = (f"XLA (jit_compile=True) cannot compile the {spec.strategy} step on CPU: XLA has no CPU "
                   "implementation of the collective all-reduce the step needs")
        hint = "run this case in mode 'function' under a strategy; jit_compile works with one_device"
    elif mode == "xla":
        from .harness import xla_hint

        m, h = xla_hint(exc)
        message, hint = m or message, h
    return {"type": type(exc).__name__, "message": message, "hint": hint, "phase": phase,
            "traceback": "".join(traceback.format_exception(exc))[-4000:]}


def _kill_hook(worker_index: int) -> Callable[[int], None] | None:
    raw = os.environ.get(KILL_ENV)
    if not raw:
        return None
    index, _, step = raw.partition(":")
    if int(index) != worker_index or not step.isdigit():
        return None
    at = int(step or 1)

    def hook(done: int) -> None:
        if done >= at:
            os.kill(os.getpid(), signal.SIGKILL)
    return hook


def measure_distributed(case: CaseSpec, job: JobSpec, ctx: Any = None, resolve: Callable[[str], Any] | None = None,
                        *, baseline: bool = True) -> Result:
    """Measure one job of a distributed case in this process. Never raises: failures become a failed Result.

    Runs a one-replica baseline (OneDeviceStrategy on this process's first device, same per-replica batch) and
    then the distributed pass, and fills replicas, global_batch_size, scaling_efficiency and the per-worker
    losses. In a multi-worker cluster every worker calls this; worker 0 measures the baseline while the others
    wait at a barrier, so the baseline never shares the machine with another worker's steps.
    """
    started = time.perf_counter()
    resolve = resolve or _resolver(case)
    result = Result(case=job.case, mode=job.mode, device=job.device, task=job.task, batch_size=job.batch_size,
                    model=case.model)
    phase = "set-up"
    try:
        spec = DistributeSpec.from_dict(case.distribute)
        import tensorflow as tf

        from .memory import PeakMemory

        memory = PeakMemory(job.device)
        memory.reset()

        strategy = make_strategy(spec, job.device)
        task = tf_config_task() if spec.strategy == "multi_worker" else None
        worker_index, workers = task if task else (0, 1)
        result.extra.update({"strategy": spec.strategy, "devices": spec.devices, "workers": workers,
                             "worker_index": worker_index, "pid": os.getpid(),
                             "replica_devices": list(strategy.extended.worker_devices)})
        result.replicas = strategy.num_replicas_in_sync
        result.global_batch_size = job.batch_size * result.replicas if job.batch_size else None
        one: PassRunner | None = None
        with_baseline = baseline and spec.strategy != "one_device"
        if with_baseline:
            phase = "one-replica baseline"
            if workers > 1:
                _barrier()
            if worker_index == 0:
                one = PassRunner(tf.distribute.OneDeviceStrategy(_local_device(strategy)), "one_device",
                                 case, job, resolve)
            if workers > 1:
                _barrier()
        phase = f"{spec.strategy} pass"
        try:
            dist = PassRunner(strategy, spec.strategy, case, job, resolve)
        except Exception:
            if one is not None and workers == 1:  # still say what one device does (e.g. XLA fails only mirrored)
                for _ in range(case.repeats):
                    one.repeat()
                _record_baseline(result, one.finish(), strategy)
            raise
        kill = _kill_hook(worker_index) if workers > 1 else None
        for _ in range(case.repeats):
            # Baseline and distributed repeats take turns, so a change in machine load hits both alike. Across
            # workers, worker 0 times its baseline repeat while the others wait at a barrier, so the baseline
            # never shares the machine with another worker's steps.
            if with_baseline:
                phase = "one-replica baseline"
                if workers > 1:
                    _barrier()
                if one is not None:
                    one.repeat()
                if workers > 1:
                    _barrier()
            phase = f"{spec.strategy} pass"
            dist.repeat(kill)
        main = dist.finish()
        result.peak_memory_bytes = memory.peak_bytes()  # this process (worker), both passes' models included
        base = one.finish() if one is not None else None
        if base is not None:
            _record_baseline(result, base, strategy)
        result.samples = main.samples
        result.input_wait_s = main.waits
        total = sum(main.samples)
        result.input_wait_fraction = sum(main.waits) / total if total > 0 else None
        result.first_call_s = main.first_call_s
        result.tracing_count = main.tracing_count
        result.replicas = main.replicas
        result.global_batch_size = main.global_batch
        result.timing = {"method": "per_step", "block_size": 1, "warmup_steps": case.warmup_steps,
                         "steps": case.steps, "repeats": case.repeats, "sync": "fetch reduced loss",
                         "gc_disabled_while_timing": True}
        result.extra.update({"final_loss": main.final_loss, "probe_losses": main.probe_losses,
                             "samples_per_s": main.samples_per_s})
        if base is not None:
            result.scaling_efficiency = scaling_efficiency(main.samples_per_s, base.samples_per_s, main.replicas)
        if len(set(main.probe_losses)) > 1:
            result.extra["replicas_diverged"] = True

        if case.profile and ctx is not None and getattr(ctx, "out_dir", None) is not None:
            phase = "profiled pass"
            try:
                result.profile = _profile(case, job, ctx, main, worker_index, workers)
            except Exception as exc:  # noqa: BLE001 - a failed trace loses the trace, not the timed numbers
                if workers > 1:
                    raise  # the peers are inside the same profiled steps: the job cannot go on consistently
                result.profile = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        if workers > 1:
            phase = "final barrier"
            # Leave together: a worker that exits while a peer still runs makes the peer's coordination
            # service report an error.
            _barrier()
    except Exception as exc:  # noqa: BLE001 - any failure of user code or TF is this job's result
        result.status = "failed"
        result.error = _error(exc, DistributeSpec.from_dict(case.distribute) if _valid(case) else DistributeSpec(),
                              job.mode, phase)
    result.wall_s = time.perf_counter() - started
    return result


def _record_baseline(result: Result, base: Pass, strategy: Any) -> None:
    result.extra["baseline"] = {"strategy": "one_device", "device": _local_device(strategy), "replicas": 1,
                                "global_batch_size": base.global_batch, "median_s": base.median_s,
                                "samples_per_s": base.samples_per_s, "first_call_s": base.first_call_s,
                                "final_loss": base.final_loss, "samples": base.samples,
                                "interleaved_with_distributed_repeats": True}


def _valid(case: CaseSpec) -> bool:
    try:
        DistributeSpec.from_dict(case.distribute)
        return True
    except DistributeError:
        return False


def scaling_efficiency(samples_per_s: float, baseline_samples_per_s: float, replicas: int) -> float | None:
    """Throughput with N replicas / (N × one-replica throughput at the same per-replica batch)."""
    if not baseline_samples_per_s or replicas < 1 or not math.isfinite(samples_per_s):
        return None
    return samples_per_s / (replicas * baseline_samples_per_s)


def _resolver(case: CaseSpec) -> Callable[[str], Any]:
    from .references import resolve_reference

    return lambda ref: resolve_reference(ref, case.base_dir)


# ---------------------------------------------------------------------------------------------------------------
# The profiled pass: separate from the timed pass, so profiling never changes the timed numbers.

def _profile(case: CaseSpec, job: JobSpec, ctx: Any, main: Pass, worker_index: int, workers: int) -> dict | None:
    """Trace a few distributed steps: the steps of this process, or with several workers, worker 0's while the
    others run the same steps untraced (see _trace_worker0 for why)."""
    run = f"{job.case}-{job.mode}" + (f"-bs{job.batch_size}" if len(case.batch_sizes) > 1 else "")
    logdir = Path(ctx.out_dir) / "tensorboard" / run
    steps = min(PROFILE_STEPS, case.steps)
    from .profiling import profile_job

    if workers > 1:
        return _trace_worker0(main, steps, logdir, worker_index, workers)
    logdir.mkdir(parents=True, exist_ok=True)
    out = dict(profile_job(lambda i: main.step(), steps=steps, trace_name="train", logdir=logdir) or {})
    out["capture"] = "local"
    out.update(_allreduce_share(logdir / "plugins" / "profile" / out["profile_run"]))
    return out


# Why only worker 0 is traced, measured on TF 2.21 (2 local workers, 2 cores): stopping a profiler session on any
# other worker crashed it in about a third of the runs (SIGABRT "free(): invalid pointer" / "double free or
# corruption", or SIGSEGV), with the native stack in tsl::profiler::TraceMeRecorder::Stop -> Consume ->
# SplitEventTracker::FindStartAndMerge: merging trace events that began on one thread and ended on another. It made
# no difference whether worker 0 captured the worker's profiler server remotely or the worker traced itself.
# Worker 0 (the collective group's leader, which resolves collectives locally) never crashed in 70 sessions.
UNTRACED_WORKERS_NOTE = ("only worker 0 is traced: stopping the profiler on another worker of a MultiWorkerMirrored"
                         "Strategy cluster crashed that worker in about a third of the runs on TensorFlow 2.21 "
                         "(TraceMeRecorder::Consume, SplitEventTracker::FindStartAndMerge); the other workers ran "
                         "the same steps untraced")


def _trace_worker0(main: Pass, steps: int, logdir: Path, worker_index: int, workers: int) -> dict | None:
    """Every worker runs the profiled steps (each is a collective all of them take part in), between two
    barriers; worker 0 traces its own with a local session and reads the trace out. Returns None on the others."""
    from .profiling import profile_job

    _barrier()
    if worker_index != 0:
        for _ in range(steps):
            main.step()
        _barrier()
        return None
    logdir.mkdir(parents=True, exist_ok=True)
    done = 0

    def step(i: int) -> None:
        nonlocal done
        main.step()
        done += 1

    try:
        out = dict(profile_job(step, steps=steps, trace_name="train", logdir=logdir) or {})
        out.update(_allreduce_share(logdir / "plugins" / "profile" / out["profile_run"]))
    except Exception as exc:  # noqa: BLE001 - a failed trace loses the trace, not the timed numbers
        out = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        # The others run every profiled step, each a collective: run the ones the profiler did not (it failed to
        # start, say), then meet them at the barrier.
        for _ in range(done, steps):
            main.step()
        _barrier()
    out.update({"capture": "worker0", "workers_traced": [0], "workers": workers, "note": UNTRACED_WORKERS_NOTE})
    return out


# Op types that are the cross-replica gradient exchange, as the profiler's framework op stats name them.
ALLREDUCE_OP_TYPES = ("CollectiveReduceV2", "CollectiveReduce", "CollectiveGatherV2", "CollectiveBcastSendV2",
                      "CollectiveBcastRecvV2", "NcclAllReduce", "NcclReduce", "NcclBroadcast")


def _allreduce_share(run_dir: Path) -> dict:
    """The all-reduce share of op time in each xplane file (one per worker) of a profile run folder, from the
    profiler's own op stats."""
    files = sorted(Path(run_dir).glob("*.xplane.pb"))
    if not files:
        return {"allreduce_share": None, "allreduce_note": "no trace file found"}
    import shutil
    import tempfile

    per_host = {}
    for path in files:
        host = path.name.removesuffix(".xplane.pb")
        # xprof reads (and caches into) the whole folder of the file it is given: one copy per host in a
        # scratch folder keeps the hosts apart and the TensorBoard run folder clean.
        with tempfile.TemporaryDirectory(prefix="tfperf-xplane-") as scratch:
            copy = Path(scratch) / path.name
            shutil.copyfile(path, copy)
            try:
                per_host[host] = allreduce_share_of(copy)
            except Exception as exc:  # noqa: BLE001 - the read-out is optional; the measurement stands
                per_host[host] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    shares = [h["share"] for h in per_host.values() if h.get("share") is not None]
    return {"allreduce_share": sum(shares) / len(shares) if shares else None, "allreduce_by_host": per_host}


def allreduce_share_of(xplane: Path) -> dict:
    """Share of host op self time spent in collective (all-reduce) ops, from xprof's framework_op_stats."""
    from xprof.convert import raw_to_tool_data

    data, _ = raw_to_tool_data.xspace_to_tool_data([str(xplane)], "framework_op_stats", {})
    rows = _op_rows(data)
    total = sum(r[1] for r in rows)
    collective = sum(t for op_type, t in rows if op_type in ALLREDUCE_OP_TYPES or op_type.startswith("Collective"))
    return {"share": collective / total if total > 0 else None, "collective_us": collective, "total_us": total}


def _op_rows(data: Any) -> list[tuple[str, float]]:
    """(op type, self time µs) per op from framework_op_stats JSON (a list of Google DataTable dicts)."""
    if isinstance(data, bytes):
        data = data.decode()
    tables = json.loads(data) if isinstance(data, str) else data
    if isinstance(tables, dict):
        tables = [tables]
    rows: list[tuple[str, float]] = []
    for table in tables[:1]:  # the first table is the op stats (with idle); the second excludes idle
        cols = [c.get("id") or c.get("label") for c in table.get("cols", [])]
        try:
            i_type, i_self = cols.index("type"), cols.index("total_self_time")
        except ValueError:
            continue
        i_host = cols.index("host_or_device") if "host_or_device" in cols else None
        for row in table.get("rows", []):
            cells = [c.get("v") if isinstance(c, dict) else c for c in row.get("c", [])]
            if cells[i_type] == "IDLE":
                continue
            if i_host is not None and cells[i_host] not in ("Host", "Device", None):
                continue
            rows.append((str(cells[i_type]), float(cells[i_self] or 0.0)))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Dispatch from the case worker, and the entry point of a launched worker.

def run_distributed_job(case: CaseSpec, job: JobSpec, ctx: Any, resolve: Callable[[str], Any],
                        deadline_s: float | None = None) -> Result:
    """What the case worker calls for a job of a case with `distribute:`.

    multi_worker without TF_CONFIG launches a local cluster (tfperf/cluster.py) and waits for it; everything else
    (one_device, mirrored, multi_worker joining the cluster TF_CONFIG describes) is measured in this process.
    """
    try:
        spec = DistributeSpec.from_dict(case.distribute)
    except DistributeError as exc:
        return Result.not_run(job, "failed", type(exc).__name__, str(exc))
    if spec.strategy == "multi_worker" and tf_config_task() is None:
        from .cluster import run_local_cluster

        out_dir = getattr(ctx, "out_dir", None)
        work_dir = Path(out_dir) / "workers" if out_dir is not None else None
        if deadline_s is None:
            deadline_s = _remaining_case_time(case)
        return run_local_cluster(case, job, spec.workers, work_dir=work_dir, out_dir=out_dir, timeout_s=deadline_s)
    return measure_distributed(case, job, ctx, resolve)


def _remaining_case_time(case: CaseSpec) -> float:
    """What is left of the case's timeout_s (counted by the runner from this process's start), minus a margin so
    the cluster reports its own `timeout` naming the worker before the runner kills this whole process."""
    import psutil

    elapsed = time.time() - psutil.Process().create_time()
    margin = max(3.0, 0.05 * case.timeout_s)
    return max(1.0, case.timeout_s - elapsed - margin)


@dataclass
class _WorkerContext:
    out_dir: Path | None


def _watch_parent() -> None:
    """A launched worker must not outlive its supervisor (PR_SET_PDEATHSIG covers Linux; this covers the rest)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(70)
    threading.Thread(target=watch, daemon=True, name="tfperf-parent-watch").start()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tfperf.distributed")
    ap.add_argument("case_file")
    ap.add_argument("job_file")
    ap.add_argument("result_file")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args(argv)
    # A native crash (SIGABRT/SIGSEGV in TensorFlow) then leaves every thread's Python stack in the worker log.
    faulthandler.enable(all_threads=True)
    _watch_parent()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    task = tf_config_task()
    if task is not None and os.environ.get(KILL_ENV) == f"{task[0]}:hang":
        while True:  # fault injection: a worker that never joins (its supervisor must time out and kill it)
            time.sleep(1)
    if task is not None and os.environ.get(KILL_ENV, "").startswith(f"{task[0]}:abort-once:"):
        flag = Path(os.environ[KILL_ENV].split(":", 2)[2])
        if not flag.exists():  # fault injection: die in start-up, once
            flag.write_text("aborted")
            os.abort()
    case = CaseSpec.from_json(json.loads(Path(args.case_file).read_text()))
    job = JobSpec(**json.loads(Path(args.job_file).read_text()))
    if getattr(case, "tf_config", None):
        # The same threading/jit settings as a single-process case; they too must precede TF's start-up.
        from .tfconfig import apply_tf_config

        apply_tf_config(case.tf_config)
    configure_process(case.distribute)
    # Joined: past TensorFlow's start-up and the cluster's servers. The supervisor restarts a cluster once when a
    # worker dies before this, and never after (a crash in the user's step is the job's result).
    Path(args.result_file + ".joined").write_text(str(os.getpid()))
    ctx = _WorkerContext(Path(args.out_dir) if args.out_dir else None)
    result = measure_distributed(case, job, ctx)
    atomic_write_text(Path(args.result_file), json.dumps(result.to_json(), default=str) + "\n")
    sys.stdout.flush()
    # os._exit: skip interpreter teardown, where TensorFlow's collective and gRPC threads can hang the exit after
    # the result is safely on disk.
    os._exit(0 if result.ok else 3)


if __name__ == "__main__":
    sys.exit(main())
