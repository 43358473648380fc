"""`task: fit`: the Keras training loop as most users run it, `model.fit`, timed per step from inside it.

tfperf's own train step (harness.train_step) leaves out what `fit` adds around the step: Keras' data adapter
and iterator, its callbacks and logs, and `steps_per_execution` (several steps per call of the compiled train
function, the usual fix for small models whose steps are dominated by Python). Here the mode maps to
`compile`: eager -> run_eagerly=True, function -> the default tf.function, xla -> jit_compile=True (explicit,
never Keras' "auto"). A callback reads the clock at the end of every execution, after fetching the logs (which
forces the execution's work to complete): the first execution (tracing, compiling) is the first call, timed
apart, the next ones up to `warmup_steps` are warm-up, and each later execution gives one sample, its time
divided by the steps it ran. Everything runs in one `fit` call of one epoch, so Keras' per-epoch set-up is in
the first call. Imports TensorFlow: used only inside worker processes.
"""

from __future__ import annotations

import gc
import math
import os
import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfperf.measure.inputs import IN_MEMORY_BATCHES, synthetic_features, synthetic_labels, synthetic_pipeline
from tfperf.measure.keras_compat import adam_for, keras_label, keras_of, loss_for_model
from tfperf.measure.timing import Clock
from tfperf.results.job_records import FitLoop, Setup
from tfperf.results.model import JobSpec, Result
from tfperf.results.records import Timing
from tfperf.suite.spec import CaseSpec

TIMING_METHOD = "fit_callback"


def fit_dataset(
    case: CaseSpec, inp: Any, labels: Any, batch_size: int, resolve: Callable[[str], Any]
) -> tuple[Any, str]:
    """The dataset `fit` reads: the case's own, its synthetic pipeline, or synthetic batches held in
    memory."""
    if case.dataset is not None:
        return resolve(case.dataset)(batch_size).repeat(), "dataset"
    if getattr(inp, "pipeline", None) is not None:
        return synthetic_pipeline(inp, labels, batch_size)[0], "pipeline"
    rng = np.random.default_rng(0)
    n = IN_MEMORY_BATCHES * batch_size
    ds = tf.data.Dataset.from_tensor_slices(
        (synthetic_features(inp, n, rng), synthetic_labels(labels, n, rng))
    )
    return ds.batch(batch_size, drop_remainder=True).cache().repeat(), "in_memory"


def compile_for_mode(model: Any, labels: Any, mode: str, steps_per_execution: int) -> None:
    if mode not in ("eager", "function", "xla"):
        raise ValueError(f"task: fit runs in eager, function or xla (Keras' compile), not {mode}")
    model.compile(
        optimizer=adam_for(model),
        loss=loss_for_model(model, labels.classes is not None),
        run_eagerly=mode == "eager",
        jit_compile=mode == "xla",
        steps_per_execution=steps_per_execution,
    )


def executions(case: CaseSpec, spe: int) -> tuple[int, int]:
    """(warm-up executions, timed executions per repeat): whole executions of `spe` steps each."""
    return math.ceil(case.warmup_steps / spe), max(1, math.ceil(case.steps / spe))


def make_callback(keras_module: Any, clock: Clock) -> Any:
    class StepClock(keras_module.callbacks.Callback):
        """Reads the clock at the end of each execution, after fetching its logs (forcing its work to
        complete)."""

        def __init__(self) -> None:
            super().__init__()
            self.ends: list[float] = []
            self.start = 0.0

        def on_train_begin(self, logs: Any = None) -> None:
            self.start = clock()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            for value in tf.nest.flatten(logs or {}):
                np.asarray(value)
            self.ends.append(clock())

    return StepClock()


def run_fit(
    case: CaseSpec,
    job: JobSpec,
    model: Any,
    inp: Any,
    labels: Any,
    resolve: Callable[[str], Any],
    result: Result,
    clock: Clock = time.perf_counter,
) -> None:
    """Compile, fit for 1 + warm-up + repeats × timed executions, and record the samples on `result`."""
    spe = case.steps_per_execution
    ds, kind = fit_dataset(case, inp, labels, job.batch_size or 32, resolve)
    compile_for_mode(model, labels, job.mode, spe)
    warm, timed = executions(case, spe)
    total = 1 + warm + case.repeats * timed
    callback = make_callback(keras_of(model), clock)
    gc.collect()
    gc.disable()  # as in the harness's timed loop: a collection pause belongs to no step
    try:
        model.fit(ds, epochs=1, steps_per_epoch=total * spe, callbacks=[callback], verbose=0, shuffle=False)
    finally:
        gc.enable()
    ends = callback.ends
    if len(ends) != total:
        raise RuntimeError(
            f"fit called its batch callback {len(ends)} times for {total} executions of "
            f"{spe} step(s): Keras' steps_per_execution did not run as asked"
        )
    times = np.diff([callback.start, *ends])
    result.first_call_s = float(times[0])
    result.samples = [float(t) / spe for t in times[1 + warm :]]
    result.repeat_sizes = [timed] * case.repeats
    result.repeat_process = [0] * case.repeats
    result.timing = Timing(
        method=TIMING_METHOD,
        block_size=spe,
        sync="fetch",
        warmup_steps=case.warmup_steps,
        warmup_steps_run=warm * spe,
        warmup_s=float(sum(times[1 : 1 + warm])),
        steps=timed * spe,
        repeats=case.repeats,
        load_average_1m=os.getloadavg()[0],
        gc_disabled_while_timing=True,
    )
    result.setup = Setup(
        input_source=kind,
        keras=keras_label(model),
        steps_per_execution=spe,
        fit=FitLoop(
            run_eagerly=job.mode == "eager", jit_compile=job.mode == "xla", steps_per_epoch=total * spe
        ),
    )
