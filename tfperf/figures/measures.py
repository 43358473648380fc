"""Figures derived from results: each defined once, here, and called by every output that shows it.

A result's raw samples and recorded fields are the truth; these functions derive what the tables, report.md,
the HTML page, the suggestions, `compare` and `tune` say about them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from tfperf import stats
from tfperf.figures.thresholds import INPUT_BOUND_FRACTION, INPUT_BOUND_MODERATE_FRACTION
from tfperf.results.model import Result
from tfperf.results.records import Suggestion


def measured(results: Iterable[Result]) -> list[Result]:
    """The results that ran and have step times."""
    return [r for r in results if r.ok and r.samples]


# --- noise --------------------------------------------------------------------------------------------------


def noise_fraction(r: Result) -> float | None:
    """The interquartile range of a result's step times as a share of their median."""
    return stats.noise_fraction(r.samples)


# --- input pipeline -----------------------------------------------------------------------------------------


def profiler_input_bound_fraction(r: Result) -> float | None:
    """The profiler's input-bound share of the step (its `input_bound_percent`, 0..1), when profiled."""
    v = r.profile.input_bound_percent if r.profile else None
    return float(v) / 100.0 if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass(frozen=True)
class InputBound:
    """How much of the step waits for input, which measurement says so, and the other for comparison."""

    fraction: float
    source: str  # "measured" (time in next(iterator) per step) or "profiler" (xprof's input_bound_percent)
    measured: float | None
    profiler: float | None

    @property
    def level(self) -> str | None:
        """The profiler's words: "highly" above 20% of the step, "moderately" above 5%, else None."""
        if self.fraction > INPUT_BOUND_FRACTION:
            return "highly"
        if self.fraction > INPUT_BOUND_MODERATE_FRACTION:
            return "moderately"
        return None


def input_bound(r: Result) -> InputBound | None:
    """The input-bound share of a result's step.

    The wait tfperf measured around `next(iterator)` on every timed step decides when there is one; the
    profiler's figure decides only when nothing was measured. The profiler's number comes from one profiled
    pass and counts what xprof attributes to input, which for an eager step includes Python dispatch ("All
    Others" time), so it is evidence beside the measured wait, not a second verdict.
    """
    wait = r.input_wait_fraction
    profiler = profiler_input_bound_fraction(r)
    if wait is not None:
        return InputBound(float(wait), "measured", float(wait), profiler)
    if profiler is not None:
        return InputBound(profiler, "profiler", None, profiler)
    return None


def input_bound_fraction(r: Result) -> float | None:
    ib = input_bound(r)
    return ib.fraction if ib else None


# --- modes side by side -------------------------------------------------------------------------------------


def tune_config(r: Result) -> str | None:
    """The `tfperf tune` configuration a result measured (its job's variant); None for a suite's own
    results."""
    return r.variant


def job_without_mode(r: Result) -> tuple:
    """What must match for two results to be the same job in two modes: case, device, task, batch, config."""
    return (r.case, r.device, r.task, r.batch_size, tune_config(r))


def same_job_in_mode(results: Iterable[Result], r: Result, mode: str) -> Result | None:
    """The measured result of the same job as `r` in another mode."""
    key = job_without_mode(r)
    return next((o for o in measured(results) if o.mode == mode and job_without_mode(o) == key), None)


def eager_baseline(results: Iterable[Result], r: Result) -> Result | None:
    """The eager result of the same case, batch size, task and device: what speed-ups are relative to."""
    return same_job_in_mode(results, r, "eager")


def speedup_over_eager(r: Result, results: Iterable[Result]) -> float | None:
    """eager median / this median for the same job; above 1 is faster than eager. None without an eager
    run."""
    return speedup_over(r, results, "eager")


def speedup_over(r: Result, results: Iterable[Result], mode: str) -> float | None:
    """`mode`'s median / this median for the same job (case, device, task, batch size, tune configuration);
    above 1 is faster than `mode`. None when `mode` did not run for this job."""
    if not (r.ok and r.median_s):
        return None
    base = same_job_in_mode(results, r, mode)
    return base.median_s / r.median_s if base is not None and base.median_s else None


# `tfperf serve-bench` results: samples are per-request latencies under concurrent load.
SERVE_MODE = "serve"


def rate(r: Result) -> float | None:
    """Samples per second when the job has a batch size, else steps per second."""
    tp = r.throughput
    if not tp:
        return None
    return tp["samples_per_s"] if tp.get("samples_per_s") else tp["steps_per_s"]


def throughput(r: Result) -> tuple[float, str] | None:
    """A result's throughput with its unit, as every table shows it. serve-bench has concurrent clients, so
    its throughput is completed instances over wall time, not 1 / median latency; other results give samples/s
    when the job has a batch size, else steps/s."""
    if r.mode == SERVE_MODE:
        v = r.serve.instances_per_s if r.serve else None
        if isinstance(v, (int, float)) and math.isfinite(v):
            return float(v), "instances/s"
    tp = r.throughput or {}
    if tp.get("samples_per_s"):
        return tp["samples_per_s"], "samples/s"
    if tp.get("steps_per_s"):
        return tp["steps_per_s"], "steps/s"
    return None


def fastest(results: Iterable[Result]) -> Result | None:
    """The result with the highest throughput among those that ran.

    Throughput, not the median step: across a batch-size sweep a smaller batch has the shorter step but does
    less work per step. Without batch sizes both orders agree (steps per second).
    """
    ok = [r for r in measured(results) if rate(r)]
    return max(ok, key=rate) if ok else None


# --- compile cost -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payback:
    """When a mode with a dearer first call and cheaper steps (XLA) has cost less in total than another.

    n calls cost first_call + (n - 1) × step; `steps` is how many steps after the first call it takes for the
    saving per step to repay the extra first-call time: ceil(extra / saving), 0 when the first call is not
    dearer, None when the steps are not cheaper (it never pays back).
    """

    steps: int | None
    extra_first_call_s: float
    saving_per_step_s: float


def payback(first_a: float, step_a: float, first_b: float, step_b: float) -> Payback:
    """Payback of mode A (first call `first_a`, steady step `step_a`) against mode B."""
    extra, saving = first_a - first_b, step_b - step_a
    if saving <= 0:
        return Payback(None, extra, saving)
    return Payback(max(0, math.ceil(extra / saving)), extra, saving)


# --- memory -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeakFigure:
    """A job's peak memory and where it was read."""

    bytes: int
    source: (
        str  # "allocator" (the device's, during the timed job) | "profile" (the profiler's memory profile)
    )


def peak_memory(result: Result) -> PeakFigure | None:
    """The job's peak memory from a real peak only: the GPU allocator's (`peak_memory_bytes`), else the peak
    of the profiler's memory profile. A CPU result's `peak_memory_bytes` is never used: older results files
    hold the growth of the resident-memory high-water mark there, which is not a peak."""
    if result.device.startswith("gpu") and isinstance(result.peak_memory_bytes, int):
        return PeakFigure(result.peak_memory_bytes, "allocator")
    profiled = result.profile.memory_peak_bytes if result.profile else None
    if isinstance(profiled, int) and profiled > 0:
        return PeakFigure(profiled, "profile")
    return None


# --- a suggestion's gain ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gain:
    """How much faster a suggestion's fix made (or would make) the step, read from its evidence numbers.

    `factor` is old time / new time (2.0: twice as fast). `measured` is False for a bound rather than a
    re-run: an input-bound step can at best lose its whole wait, 1 / (1 - wait share).
    """

    factor: float
    measured: bool


def suggestion_gain(s: Suggestion) -> Gain | None:
    """The speed-up behind a suggestion, from the `evidence_data` its rule recorded; None for a suggestion
    that is context (payback, noise, retracing, host-bound) and promises no figure of its own.

    The keys are the rules' own: `speedup` (tf.function, XLA, what-ifs, mixed precision, threading),
    `slowdown` (avoid-xla: keeping tf.function saves that factor), `gain` (small-batch: samples/s of the
    larger batch over the smaller), `quantized_median_s` against the first float baseline's median
    (quantize-tflite, the factor its title states), `input_wait_fraction` (input-bound: the bound).
    """
    data = s.evidence_data or {}

    def num(key: str) -> float | None:
        v = data.get(key)
        return (
            float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None
        )

    for key in ("speedup", "slowdown"):
        if num(key) and num(key) > 0:
            return Gain(num(key), True)
    if s.code == "small-batch" and num("gain") is not None:
        return Gain(1.0 + num("gain"), True)
    quantized = num("quantized_median_s")
    if quantized:
        base = next(
            (num(k) for k in data if k.endswith("_median_s") and k != "quantized_median_s" and num(k)), None
        )
        return Gain(base / quantized, True) if base else None
    wait = num("input_wait_fraction")
    if s.code == "input-bound" and wait is not None and 0 <= wait < 1:
        return Gain(1.0 / (1.0 - wait), False)
    return None
