"""The timing core of a job (tfperf.measure.harness runs it): how completion is forced before the clock is
read, whether a step is timed one by one or in blocks, the warm-up, and the timed pass.

Honest timing: whole steps are timed, asynchronous work is forced to complete before the clock is read,
warm-up steps are never samples, and the raw samples are kept (the statistics derive from them). The clock is
`time.perf_counter` unless a caller passes another: tests drive the timing core with a clock of their own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import tensorflow as tf

from tfperf.figures.thresholds import NOISY_FRACTION
from tfperf.measure.inputs import InputSource
from tfperf.measure.retracing import note_trace
from tfperf.suite.spec import CaseSpec

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
    """What the timer calls: harness.PreparedStep (the step in its mode, its input source, its
    tf.function)."""

    call: Callable[..., Any]
    source: InputSource
    traced: Any | None


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


@dataclass
class TimedPass:
    """What warm_up_and_time measured: the samples (seconds per step), the input wait of each, the warm-up."""

    samples: list[float]
    waits: list[float]
    warm: list[float]  # the warm-up steps' times: never samples
    block_size: int  # 1: per step
    sync_cost_s: float

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
    """Warm-up, then `repeats` x `steps` timed samples.

    `block_size` is how the job's first worker process timed it: a later process times the same way, so the
    samples the runner merges are all one kind (per step, or blocks of one size). None: decide here, from the
    warm-up's fastest step and the measured sync cost (choose_block_size).
    """
    warm = [timer.one_step()[0] for _ in range(case.warmup_steps)]
    # A fixed count is not enough: measured here, steps kept getting faster for the first ~0.3 s of a
    # fresh worker (thread pools, caches, clocks ramping up: 43 -> 22 ms, 2.0 -> 0.5 ms), so warm-up also
    # lasts at least WARMUP_MIN_S. warmup_steps: 0 still means no warm-up at all.
    while (
        case.warmup_steps
        and sum(warm) < WARMUP_MIN_S
        and len(warm) < case.warmup_steps + WARMUP_MAX_EXTRA_STEPS
    ):
        warm.append(timer.one_step()[0])
    sync_cost = measure_sync_cost(sync, finished, clock=timer.clock)
    if block_size is None:
        estimate = min(warm) if warm else timer.one_step()[0]
        block_size = choose_block_size(estimate, sync_cost)
    if block_size > 1:
        timer.block(block_size)  # warms the blocked loop itself
    samples: list[float] = []
    waits: list[float] = []
    for _ in range(case.repeats):
        for _ in range(case.steps):
            s, w = timer.one_step() if block_size == 1 else timer.block(block_size)
            samples.append(s)
            waits.append(w)
    return TimedPass(samples, waits, warm, block_size, sync_cost)
