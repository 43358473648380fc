"""One timed pass under one strategy: the training step built under the strategy (build_step), warmed up and
timed one repeat at a time by the timing core (PassRunner); and the dataset of global batches it reads."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from tfperf.measure.timing import (
    Clock,
    StepTimer,
    TimedStep,
    measure_sync_cost,
    time_repeat,
    warm_up,
)
from tfperf.results.model import JobSpec
from tfperf.suite.distribute import DistributeError
from tfperf.suite.spec import CaseSpec

PROBE_EXAMPLES = 16


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
    probe_losses: list[
        float
    ]  # the loss of a fixed batch on each local replica's copy of the model, after the steps
    step: Callable[..., Any] | None = None  # kept for the profiled pass
    iterator: Any = None
    sync: str = "fetch every replica's loss"  # how each timed step was forced to complete (Timing.sync)
    synced_replicas: int = 0  # how many local replicas' losses each step waited for
    model_dtypes: dict = field(default_factory=dict)  # model_step.model_dtypes of the built model
    loss_scale_optimizer: bool = False
    warm: list[float] = field(default_factory=list)  # the warm-up steps' seconds: never samples
    sync_cost_s: float | None = None  # timing.measure_sync_cost of the replica sync

    @property
    def median_s(self) -> float:
        s = sorted(self.samples)
        n = len(s)
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2

    @property
    def samples_per_s(self) -> float:
        return self.global_batch / self.median_s if self.median_s > 0 else math.inf


def _global_dataset(
    case: CaseSpec, inp: Any, labels: Any, global_batch: int, resolve: Callable[[str], Any]
) -> Any:
    """A dataset of global batches: the case's own pipeline or dataset when it has one, else in-memory
    batches."""
    import numpy as np
    import tensorflow as tf

    from tfperf.measure.inputs import (
        IN_MEMORY_BATCHES,
        synthetic_features,
        synthetic_labels,
        synthetic_pipeline,
    )

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
        ds = (
            tf.data.Dataset.from_tensor_slices((x, y))
            .batch(global_batch, drop_remainder=True)
            .cache()
            .repeat()
        )
        ds = ds.prefetch(2)
    options = tf.data.Options()
    # In-memory data has no files to shard by: shard by element, which is what FILE would fall back to anyway,
    # minus the warning.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _probe_batch(inp: Any, labels: Any) -> tuple[Any, Any]:
    import numpy as np

    from tfperf.measure.inputs import synthetic_features, synthetic_labels

    rng = np.random.default_rng(1234)
    return synthetic_features(inp, PROBE_EXAMPLES, rng), synthetic_labels(labels, PROBE_EXAMPLES, rng)


def _per_example_loss(labels: Any) -> Any:
    import keras

    if labels.classes is not None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    return keras.losses.MeanSquaredError(reduction=None)


def replica_sync(strategy: Any) -> tuple[Callable[[Any], int], str]:
    """How a timed step is forced to complete on every local replica, and its name (Timing.sync).

    Fetching the reduced loss waits only for the ops that loss depends on, on whichever device reduced it. On
    GPUs, kernels run asynchronously on each replica's own stream: `tf.test.experimental.sync_devices()`
    (outside tf.function, as here) waits for every local device, as the harness does for one GPU. On CPUs, a
    host read of each replica's own loss (`experimental_local_results`) waits for each replica's step. The
    sync returns how many replicas' values it waited for, so a result can show that it was every local
    replica."""
    import tensorflow as tf

    gpu = any("GPU" in d.upper() for d in strategy.extended.worker_devices)

    def sync(per_replica: Any) -> int:
        values = strategy.experimental_local_results(per_replica)
        if gpu:
            tf.test.experimental.sync_devices()
        else:
            for v in values:
                v.numpy()
        return len(values)

    return sync, "sync_devices" if gpu else "fetch every replica's loss"


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


@dataclass
class DistributedStep:
    """One strategy's training step as build_step made it: what a PassRunner times, and the probe it reads
    after the timed steps."""

    call: Callable[[Any], tuple[Any, Any]]  # a global batch -> (reduced loss, every local replica's loss)
    traced: Any | None  # the tf.function, when the mode traces
    iterator: Any  # the distributed dataset's iterator of global batches
    source_kind: str  # what the input wait measures (InputSource.kind): in_memory | pipeline | dataset
    replica_sync: Callable[[Any], int]  # waits for every local replica (replica_sync)
    sync_name: str
    replicas: int
    global_batch: int
    probe: Callable[[], list[float]]  # the loss of a fixed batch on each local replica's copy of the weights
    model_dtypes: dict = field(default_factory=dict)  # model_step.model_dtypes of the built model
    loss_scale_optimizer: bool = False


def build_step(strategy: Any, case: CaseSpec, job: JobSpec, resolve: Callable[[str], Any]) -> DistributedStep:
    """The case's model, optimizer, loss and dataset built under `strategy`, and its training step."""
    import keras
    import tensorflow as tf

    from tfperf.measure.model_step import build_model, model_dtypes, training_optimizer

    if job.task != "train":
        raise DistributeError("distribute: only task: train is measured under a strategy")
    # The same layer names in every worker and every pass. It also resets Keras' global dtype policy, which
    # build_model sets again from the case's tf_config.mixed_precision.
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)  # the same initial weights in every worker (MWMS also broadcasts them)
    replicas = strategy.num_replicas_in_sync
    global_batch = job.batch_size * replicas
    with strategy.scope():
        model, inp, labels = build_model(case, resolve)
        px, py = _probe_batch(inp, labels)
        if not model.built:
            model(px[:1])  # variables created here are mirrored; created inside strategy.run they would fail
        optimizer = training_optimizer(model)  # Adam; loss-scaled when the model computes in float16
        # Optimizer variables built now, not inside the first traced call: tf.function traces a call that
        # creates variables a second time.
        optimizer.build(model.trainable_variables)
        loss_fn = _per_example_loss(labels)

    dataset = strategy.experimental_distribute_dataset(
        _global_dataset(case, inp, labels, global_batch, resolve)
    )

    def replica_fn(x, y):
        with tf.GradientTape() as tape:
            with tf.name_scope("forward"):
                pred = model(x, training=True)
                loss = tf.nn.compute_average_loss(loss_fn(y, pred), global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                scaled = optimizer.scale_loss(loss)  # unchanged unless a LossScaleOptimizer (float16)
        with tf.name_scope("backward"):
            grads = tape.gradient(scaled, model.trainable_variables)
        with tf.name_scope("optimizer"):  # the gradient all-reduce happens in here
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def train_step(batch):
        # Every replica's own loss is returned beside the reduced one, so each timed step can wait for each
        # replica (replica_sync), not only for the device that reduced the loss.
        per_replica = strategy.run(replica_fn, args=tuple(batch))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None), per_replica

    def probe() -> list[float]:
        """Synchronous training keeps every copy identical: a forward pass (no update) over the same batch
        must give the same loss on every replica and every worker; a difference means gradients were not
        all-reduced."""
        probe_x, probe_y = tf.constant(px), tf.constant(py)

        def probe_loss():
            return tf.reduce_mean(loss_fn(probe_y, model(probe_x, training=False)))

        per_replica = strategy.run(tf.function(probe_loss))
        return [float(v.numpy()) for v in strategy.experimental_local_results(per_replica)]

    call, traced = _wrap(train_step, job.mode)
    sync, sync_name = replica_sync(strategy)
    kind = "dataset" if case.dataset is not None else "pipeline" if inp.pipeline is not None else "in_memory"
    return DistributedStep(
        call,
        traced,
        iter(dataset),
        kind,
        sync,
        sync_name,
        replicas,
        global_batch,
        probe,
        model_dtypes(model),
        isinstance(optimizer, keras.optimizers.LossScaleOptimizer),
    )


class PassRunner:
    """One strategy's training step timed by the timing core (tfperf/measure/timing.py), one repeat at a time,
    so the one-replica baseline and the distributed pass can take turns (repeat by repeat) and see the same
    machine load. The caller holds the TimedSection (collector off, the process's noise record) around both
    passes' warm-ups and repeats.

    A sample is what the harness's is: one whole step (the next global batch, the call, and the wait for
    every local replica and the reduced loss), timed per step. Always per step, never in blocks: the
    baseline's and the distributed pass's medians are divided (scaling efficiency), and the workers of a
    multi-worker pass time the same steps, so every one of them must be timed the same way."""

    def __init__(self, label: str, case: CaseSpec, step: DistributedStep, clock: Clock = time.perf_counter):
        from tfperf.measure.inputs import InputSource

        self.label, self.case, self.built = label, case, step
        self.replicas, self.global_batch = step.replicas, step.global_batch
        self.samples: list[float] = []
        self.waits: list[float] = []
        self.warm: list[float] = []
        self.sync_cost_s: float | None = None
        self.final_loss = math.nan
        self.synced_replicas = 0
        self.first_call_s = math.nan
        self._finished: Any = None  # the first call's output: the sync's cost is measured on it
        iterator = step.iterator
        source = InputSource(step.source_kind, lambda: ((next(iterator),), {}), iterator=iterator)
        self.timer = StepTimer(TimedStep(step.call, source, step.traced), self.sync, clock)

    @classmethod
    def start(
        cls,
        strategy: Any,
        label: str,
        case: CaseSpec,
        job: JobSpec,
        resolve: Callable[[str], Any],
        clock: Clock = time.perf_counter,
    ) -> PassRunner:
        """Build the step under `strategy` and make its first call (timed apart: tracing, compiling)."""
        runner = cls(label, case, build_step(strategy, case, job, resolve), clock)
        runner.first_call()
        return runner

    def sync(self, out: tuple[Any, Any]) -> None:
        """Wait for every local replica's step, not only the reduced loss (replica_sync), then read the
        reduced loss (the loss of the last step is the pass's final_loss)."""
        loss, per_replica = out
        self.synced_replicas = self.built.replica_sync(per_replica)
        self.final_loss = float(loss.numpy())

    def first_call(self) -> None:
        """As the harness's first call: its batch drawn before the clock starts, completion forced before the
        clock is read, and counted by the timer (its trace is call 0's)."""
        clock = self.timer.clock
        batch = next(self.built.iterator)
        t0 = clock()
        out = self.built.call(batch)
        self.sync(out)
        self.first_call_s = clock() - t0
        self.timer.after_call()
        self._finished = out

    def warm_up(self, agree: Callable[[bool], bool] | None = None) -> None:
        """The timing core's warm-up (at least WARMUP_MIN_S unless warmup_steps is 0), then the sync's cost
        measured on a finished step. `agree`: the workers' shared answer to "one more warm-up step?"
        (timing.warm_up), when every step is a collective of several workers."""
        self.warm = warm_up(self.timer, self.case.warmup_steps, agree)
        self.sync_cost_s = measure_sync_cost(self.sync, self._finished, clock=self.timer.clock)
        self._finished = None

    def repeat(self, on_timed_step: Callable[[int], None] | None = None) -> None:
        """One repeat of `steps` timed steps; `on_timed_step(n)` runs after each, n the timed steps so far."""
        done = len(self.samples)
        hook = None if on_timed_step is None else (lambda i: on_timed_step(done + i))
        samples, waits = time_repeat(self.timer, self.case.steps, 1, hook)
        self.samples += samples
        self.waits += waits

    def step(self) -> tuple[float, float]:
        """One more step, as timed (the profiled pass's)."""
        return self.timer.one_step()

    def finish(self) -> Pass:
        """The pass's numbers, and the loss of one fixed batch on each local replica's copy of the weights."""
        b = self.built
        return Pass(
            self.label,
            self.replicas,
            self.global_batch,
            self.first_call_s,
            self.samples,
            self.waits,
            b.traced.experimental_get_tracing_count() if b.traced is not None else None,
            self.final_loss,
            b.probe(),
            step=self.step,
            iterator=b.iterator,
            sync=b.sync_name,
            synced_replicas=self.synced_replicas,
            model_dtypes=b.model_dtypes,
            loss_scale_optimizer=b.loss_scale_optimizer,
            warm=self.warm,
            sync_cost_s=self.sync_cost_s,
        )
