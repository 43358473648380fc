"""`task: fit`: the Keras training loop as most users run it, `model.fit`, timed per step from inside it.

tfperf's own train step (model_step.train_step) leaves out what `fit` adds around the step: Keras' data
adapter and iterator, its callbacks and logs, and `steps_per_execution` (several steps per call of the
compiled train function, the usual fix for small models whose steps are dominated by Python). Here the mode
maps to `compile`: eager -> run_eagerly=True, function -> the default tf.function, xla -> jit_compile=True
(explicit, never Keras' "auto").

Keras drives the loop, so the timing core (tfperf/measure/timing.py) is driven from a callback
(ExecutionTimer): at the end of every execution it forces the execution's work to complete (the harness's
sync for the job's device) and reads the timing core's clock. The first execution (tracing, compiling) is the
first call, timed apart; the next ones are warm-up by the harness's rule (timing.warming_up, in whole
executions: at least `warmup_steps`, and at least WARMUP_MIN_S unless `warmup_steps` is 0); each later
execution gives one sample, its time divided by the steps it ran. From the warm-up to the last timed execution
the harness's TimedSection is open (the collector off, the process's noise record), and the callback stops
`fit` after the last timed execution. Everything runs in one `fit` call of one epoch, so Keras' per-epoch
set-up is in the first call. Imports TensorFlow: used only inside worker processes.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfperf.measure.inputs import IN_MEMORY_BATCHES, synthetic_features, synthetic_labels, synthetic_pipeline
from tfperf.measure.keras_compat import adam_for, keras_label, keras_of, loss_for_model
from tfperf.measure.timing import (
    WARMUP_MAX_EXTRA_STEPS,
    Clock,
    TimedSection,
    measure_sync_cost,
    sync_for,
    warming_up,
)
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
    """(the fewest warm-up executions, timed executions per repeat): whole executions of `spe` steps each."""
    return math.ceil(case.warmup_steps / spe), max(1, math.ceil(case.steps / spe))


class ExecutionTimer:
    """fit's timed loop over the timing core: `begin` when training begins, `end` at the end of each execution
    of `steps_per_execution` steps. `end` returns True after the last timed execution: fit must stop there.

    A sample is measured from the end of the previous execution's bookkeeping here to the clock read after
    this execution's sync: Keras' own work between executions is in it, this timer's is not."""

    def __init__(self, case: CaseSpec, spe: int, sync: Callable[[Any], None], clock: Clock):
        self.spe, self.sync, self.clock = spe, sync, clock
        self.min_warm, self.timed = executions(case, spe)
        self.extra_warm = math.ceil(WARMUP_MAX_EXTRA_STEPS / spe)  # the harness's cap, in executions
        self.wanted = case.repeats * self.timed
        self.section = TimedSection()
        self.first_call_s: float | None = None
        self.warm: list[float] = []  # warm-up executions' seconds: never samples
        self.times: list[float] = []  # timed executions' seconds
        self.sync_cost_s: float | None = None
        self.executions = 0
        self.steps_run: int | None = None  # the steps Keras says it ran (its batch index + 1)
        self._warming = True
        self._since = 0.0

    @property
    def max_executions(self) -> int:
        """The most executions this timer can ask for: the size of fit's epoch (it stops fit sooner)."""
        return 1 + self.min_warm + self.extra_warm + self.wanted

    def begin(self) -> None:
        self._since = self.clock()

    def end(self, logs: Any, batch: int | None = None) -> bool:
        """`batch`: Keras' index of the execution's last step."""
        self.sync(logs)
        took = self.clock() - self._since
        self.executions += 1
        self.steps_run = None if batch is None else batch + 1
        if self.first_call_s is None:
            self.first_call_s = took
            self.section.start()  # as the harness: the section opens with the warm-up, after the first call
        elif self._warming:
            self.warm.append(took)
        elif len(self.times) < self.wanted:
            self.times.append(took)
        if self._warming and not warming_up(self.warm, self.min_warm, self.extra_warm):
            self._warming = False
            # As the harness: the sync's cost measured after the warm-up, on a finished result.
            self.sync_cost_s = measure_sync_cost(self.sync, logs, clock=self.clock)
        done = len(self.times) >= self.wanted
        if done:
            self.section.stop()
        self._since = self.clock()
        return done


def make_callback(keras_module: Any, timer: ExecutionTimer) -> Any:
    class StepClock(keras_module.callbacks.Callback):
        """Hands fit's loop to the ExecutionTimer, and stops fit after its last timed execution."""

        def on_train_begin(self, logs: Any = None) -> None:
            timer.begin()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if timer.end(logs or {}, batch):
                self.model.stop_training = True

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
    """Compile, fit until the last timed execution (first call, warm-up, repeats x timed executions), and
    record the samples on `result`."""
    spe = case.steps_per_execution
    ds, kind = fit_dataset(case, inp, labels, job.batch_size or 32, resolve)
    compile_for_mode(model, labels, job.mode, spe)
    sync, sync_name = sync_for(job.device)
    timer = ExecutionTimer(case, spe, sync, clock)
    total = timer.max_executions  # fit's epoch, in executions: the callback stops it after the timed ones
    try:
        model.fit(
            ds,
            epochs=1,
            steps_per_epoch=total * spe,
            callbacks=[make_callback(keras_of(model), timer)],
            verbose=0,
            shuffle=False,
        )
    finally:
        timer.section.stop()  # the collector back on, had fit raised inside the section
    if len(timer.times) != timer.wanted or timer.steps_run != timer.executions * spe:
        raise RuntimeError(
            f"fit called its batch callback {timer.executions} times ({len(timer.times)} timed, "
            f"{timer.wanted} asked for) over {timer.steps_run} steps, in executions of {spe} step(s): "
            "Keras' steps_per_execution did not run as asked"
        )
    result.first_call_s = timer.first_call_s
    result.samples = [t / spe for t in timer.times]
    result.repeat_sizes = [timer.timed] * case.repeats
    result.repeat_process = [0] * case.repeats
    result.timing = Timing(
        method=TIMING_METHOD,
        block_size=spe,
        sync=sync_name,
        sync_cost_s=timer.sync_cost_s,
        warmup_steps=case.warmup_steps,
        warmup_steps_run=len(timer.warm) * spe,
        warmup_s=sum(timer.warm),
        steps=timer.timed * spe,
        repeats=case.repeats,
        load_average_1m=os.getloadavg()[0],
        gc_disabled_while_timing=True,
        noise=timer.section.noise,
    )
    result.setup = Setup(
        input_source=kind,
        keras=keras_label(model),
        steps_per_execution=spe,
        fit=FitLoop(
            run_eagerly=job.mode == "eager", jit_compile=job.mode == "xla", steps_per_epoch=total * spe
        ),
    )
