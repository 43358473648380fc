"""The timing core: the one timed loop of the harness, the distributed passes and `task: fit`. How completion
is forced before the clock is read, whether a step is timed one by one or in blocks, the warm-up rule, one
repeat of timed steps, and the section around a process's warm-up and timed steps (the collector off, the
process's noise record).

The harness (tfperf.measure.harness) runs all of it in one go (warm_up_and_time); the distributed passes
(tfperf.distributed.passes) run the same pieces a repeat at a time, taking turns with their one-replica
baseline; `task: fit` (tfperf.measure.fit), where Keras drives the loop, reads the same clock from a callback
and keeps the same warm-up rule and section. So a sample, the warm-up and `timing.noise` mean the same in
every result.

Honest timing: whole steps are timed, asynchronous work is forced to complete before the clock is read,
warm-up steps are never samples, and the raw samples are kept (the statistics derive from them). The clock is
`time.perf_counter` unless a caller passes another: tests drive the timing core with a clock of their own.

TensorFlow is imported where a function needs it, not with the module: tfperf.distributed's modules import
this one and must not import TensorFlow (the local cluster's supervisor runs without it).
"""

from __future__ import annotations

import gc
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

from tfperf.figures.thresholds import NOISY_FRACTION
from tfperf.host import noise
from tfperf.measure.retracing import note_trace
from tfperf.suite.spec import CaseSpec

if TYPE_CHECKING:
    from tfperf.measure.inputs import InputSource

Clock = Callable[[], float]

# Steps are timed one by one: each sample is one whole step, so the samples carry the step's own spread (the
# IQR, the noisy flag, the tests over samples). A step is timed in blocks with one sync per block (as
# torch.utils.benchmark's blocked autorange does) only when forcing completion would be a large share of every
# sample: when the measured sync costs more than this share of the step. The share is tfperf's noise
# threshold: past it, the sync alone would move each sample by more than the spread tfperf flags as noisy. On
# the CPU the sync fetches a finished tensor (1-3 us measured here), so only steps under about 10-30 us are
# blocked; a step that runs a TensorFlow op takes longer (x + 1.0 eagerly: 60-80 us here). Blocking longer CPU
# steps would inflate the number it means to sharpen: measured here, calls issued back to back without a fetch
# ran slower than calls each followed by one (0.3 vs 0.8 ms for x + 1.0 under load). On a GPU sync_devices
# costs tens of microseconds, so steps under a few hundred microseconds are blocked.
SYNC_SHARE_FOR_BLOCKING = NOISY_FRACTION
# Steps this long or longer are always timed one by one, whatever their sync costs (the pytest plugin reads
# it).
BLOCKED_BELOW_S = 1e-3
# A block lasts about this long, so the per-block sync and clock reads are a small share of it.
BLOCK_TARGET_S = 10e-3
MAX_BLOCK_SIZE = 1000
WARMUP_MIN_S = 0.5
WARMUP_MAX_EXTRA_STEPS = 1000


class Step(Protocol):
    """What the timer calls: harness.PreparedStep (the step in its mode, its input source, its tf.function),
    or a TimedStep."""

    call: Callable[..., Any]
    source: InputSource
    traced: Any | None


@dataclass
class TimedStep:
    """A Step that is not the harness's PreparedStep: a distributed pass's training step and its batches."""

    call: Callable[..., Any]
    source: InputSource
    traced: Any | None = None


def sync_for(device: str) -> tuple[Callable[[Any], None], str]:
    """How to force completion before reading the clock.

    On a GPU an op returns long before the kernel finishes, so wait for the device itself
    (sync_devices must run outside tf.function, which is where we call it). On the CPU, fetching a value of
    the step's result waits for the ops that produce it.
    """
    import tensorflow as tf

    if device.startswith("gpu"):

        def sync_gpu(out: Any) -> None:
            tf.test.experimental.sync_devices()

        return sync_gpu, "sync_devices"

    def sync_cpu(out: Any) -> None:
        for t in tf.nest.flatten(out):
            if hasattr(t, "numpy"):
                t.numpy()

    return sync_cpu, "fetch"


def tracing_count(traced: Any | None) -> int | None:
    return traced.experimental_get_tracing_count() if traced is not None else None


def block_size_for(step_s: float) -> int:
    """Steps per timed block for a step of about `step_s`, so a block lasts about BLOCK_TARGET_S."""
    return int(min(MAX_BLOCK_SIZE, max(2, math.ceil(BLOCK_TARGET_S / max(step_s, 1e-7)))))


def choose_block_size(step_s: float, sync_cost_s: float) -> int:
    """1 (per-step timing) unless the sync costs more than SYNC_SHARE_FOR_BLOCKING of a step shorter than
    BLOCKED_BELOW_S; then the steps of a block of about BLOCK_TARGET_S."""
    if step_s < BLOCKED_BELOW_S and sync_cost_s > SYNC_SHARE_FOR_BLOCKING * step_s:
        return block_size_for(step_s)
    return 1


def measure_sync_cost(
    sync: Callable[[Any], None], finished: Any, n: int = 20, clock: Clock = time.perf_counter
) -> float:
    """Median cost of forcing completion when nothing is pending: what each per-step sample pays for it."""
    sync(finished)
    costs = []
    for _ in range(n):
        t0 = clock()
        sync(finished)
        costs.append(clock() - t0)
    costs.sort()
    return costs[len(costs) // 2]


class StepTimer:
    """Runs steps and times them; every step goes through `one_step` so the tracing count is read per call."""

    def __init__(self, prepared: Step, sync: Callable[[Any], None], clock: Clock = time.perf_counter):
        self.p = prepared
        self.sync = sync
        self.clock = clock
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
        clock = self.clock
        t0 = clock()
        args, kwargs = self.p.source.next_args()
        t1 = clock()
        out = self.p.call(*args, **kwargs)
        self.sync(out)
        t2 = clock()
        self.after_call()
        return t2 - t0, t1 - t0

    def block(self, n: int) -> tuple[float, float]:
        """(per-step seconds, per-step input wait) over n calls with a single sync at the end."""
        source, call, clock = self.p.source.next_args, self.p.call, self.clock
        wait = 0.0
        out = None
        t0 = clock()
        for _ in range(n):
            a = clock()
            args, kwargs = source()
            wait += clock() - a
            out = call(*args, **kwargs)
            self.after_call()
        self.sync(out)
        elapsed = clock() - t0
        return elapsed / n, wait / n


def tf_threads() -> tuple[int, int]:
    """TensorFlow's intra-/inter-op thread counts as configured (0: its default), for the noise record."""
    import tensorflow as tf

    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


class TimedSection:
    """A process's warm-up and timed steps, bracketed the same way by every timed loop: the garbage collector
    runs once before and stays off until the last timed step, and the process's noise record
    (tfperf/host/noise.py) counts what else ran meanwhile (`timing.noise`, `timing.by_process[].noise`).

    Like timeit, the collector is off: a collection pause belongs to no particular step and only adds noise.
    It collects before the warm-up, not before the timed steps: measured here, the steps right after a
    gc.collect() ran up to 3x slower (caches evicted). Use it as a context manager, or start() and stop()
    when the loop is someone else's (Keras' fit calls back at the end of each execution); stop() does
    nothing on a section that is not open, so a caller's `finally` can always call it.
    """

    def __init__(self) -> None:
        self.noise: dict[str, Any] | None = None
        self._tally = noise.Tally()
        self._open = False

    def start(self) -> None:
        gc.collect()
        gc.disable()
        self._open = True
        self._tally.resume()

    def stop(self) -> None:
        """The collector back on and the noise record taken; nothing when the section is not open."""
        if not self._open:
            return
        self._open = False
        self._tally.pause()
        gc.enable()
        self.noise = self._tally.record(*tf_threads())

    @contextmanager
    def aside(self) -> Iterator[None]:
        """Time that is not this process's timed work (a wait at the workers' barrier while another worker
        times its baseline): its seconds and context switches stay out of the noise record. The collector
        stays off: the steps after it are still the section's."""
        self._tally.pause()
        try:
            yield
        finally:
            if self._open:
                self._tally.resume()

    def __enter__(self) -> TimedSection:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def warming_up(warm: list[float], minimum: int, extra: int = WARMUP_MAX_EXTRA_STEPS) -> bool:
    """The warm-up rule: is another warm-up step (or, in fit, execution) due after the `warm` ones (seconds)?
    `minimum` of them, then more until they add up to WARMUP_MIN_S, at most `extra` more; `minimum` 0 means no
    warm-up at all.

    A fixed count is not enough: measured here, steps kept getting faster for the first ~0.3 s of a fresh
    worker (thread pools, caches, clocks ramping up: 43 -> 22 ms, 2.0 -> 0.5 ms)."""
    if not minimum:
        return False
    return len(warm) < minimum or (sum(warm) < WARMUP_MIN_S and len(warm) < minimum + extra)


def warm_up(timer: StepTimer, warmup_steps: int, agree: Callable[[bool], bool] | None = None) -> list[float]:
    """Run the warm-up steps (warming_up's rule); their seconds, never samples.

    `agree`: for processes whose steps must stay in lockstep (the workers of a multi-worker pass, where every
    step is a collective all of them take part in), turns this process's answer to "one more?" into the answer
    all of them follow. Only the time-based part of the rule can differ between processes, so only it is
    agreed on."""
    warm: list[float] = []
    while True:
        more = warming_up(warm, warmup_steps)
        if agree is not None and warmup_steps and len(warm) >= warmup_steps:
            more = agree(more)
        if not more:
            return warm
        warm.append(timer.one_step()[0])


def time_repeat(
    timer: StepTimer,
    steps: int,
    block_size: int = 1,
    after_sample: Callable[[int], None] | None = None,
) -> tuple[list[float], list[float]]:
    """One repeat: `steps` samples (seconds per step: one whole step each, or the mean of a block of
    `block_size`) and the input wait of each. `after_sample(n)` runs after the n-th sample of the repeat,
    outside the clock reads (the distributed fault injection's hook)."""
    samples: list[float] = []
    waits: list[float] = []
    for i in range(steps):
        s, w = timer.one_step() if block_size == 1 else timer.block(block_size)
        samples.append(s)
        waits.append(w)
        if after_sample is not None:
            after_sample(i + 1)
    return samples, waits


@dataclass
class TimedPass:
    """What warm_up_and_time measured: the samples (seconds per step), the input wait of each, the warm-up."""

    samples: list[float]
    waits: list[float]
    warm: list[float]  # the warm-up steps' times: never samples
    block_size: int  # 1: per step
    sync_cost_s: float
    noise: dict[str, Any] | None = None  # the process's noise record over warm-up and timed steps

    @property
    def method(self) -> str:
        return "per_step" if self.block_size == 1 else "blocked"


def warm_up_and_time(
    case: CaseSpec,
    timer: StepTimer,
    sync: Callable[[Any], None],
    finished: Any,
    block_size: int | None = None,
) -> TimedPass:
    """Warm-up, then `repeats` x `steps` timed samples, in one TimedSection.

    `block_size` is how the job's first worker process timed it: a later process times the same way, so the
    samples the runner merges are all one kind (per step, or blocks of one size). None: decide here, from the
    warm-up's fastest step and the measured sync cost (choose_block_size).
    """
    with TimedSection() as section:
        warm = warm_up(timer, case.warmup_steps)
        sync_cost = measure_sync_cost(sync, finished, clock=timer.clock)
        if block_size is None:
            estimate = min(warm) if warm else timer.one_step()[0]
            block_size = choose_block_size(estimate, sync_cost)
        if block_size > 1:
            timer.block(block_size)  # warms the blocked loop itself
        samples: list[float] = []
        waits: list[float] = []
        for _ in range(case.repeats):
            s, w = time_repeat(timer, case.steps, block_size)
            samples += s
            waits += w
    return TimedPass(samples, waits, warm, block_size, sync_cost, section.noise)
