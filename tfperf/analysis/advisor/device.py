"""Device and host rules: a GPU starved by its host, and CPU thread pools that measured faster than
TensorFlow's defaults. (Mixed precision, on GPUs and CPUs alike, is `advisor.precision`.)"""

from __future__ import annotations

from collections import defaultdict

from tfperf import units
from tfperf.analysis.advisor.suggestion import Finding, base_case, config_settings, suggestion
from tfperf.figures.decisions import p_value, re_measure_helped, significant
from tfperf.figures.measures import measured, tune_config
from tfperf.figures.thresholds import (
    DEVICE_IDLE_PERCENT,
    KERNEL_LAUNCH_PERCENT,
    SMALL_OP_MIN_COUNT,
    SMALL_OP_US,
    THREADING_MIN_SPEEDUP,
)
from tfperf.results.model import Result, RunResult
from tfperf.results.records import Profile
from tfperf.units import ms


def profile_number(profile: Profile, *names: str) -> float | None:
    """A number from the profile read-out, wherever the profiling module put it: at the top level (a field of
    the record or a key it keeps in `details`), in the step-time breakdown or in the overview."""
    for holder in (profile.to_json(), profile.step_time_breakdown_ms or {}, profile.overview or {}):
        for n in names:
            v = holder.get(n)
            if isinstance(v, (int, float)):
                return float(v)
    return None


def rule_host_bound(run: RunResult) -> list[Finding]:
    out = []
    for r in measured(run.results):
        if not r.device.startswith("gpu") or not r.profile:
            continue
        p = r.profile
        step_ms = profile_number(p, "step_time_ms", "steptime_ms_average") or r.median_s * 1e3
        launch = profile_number(p, "kernel_launch_percent")
        if launch is None:
            launch_ms = profile_number(p, "kernel_launch_ms", "kernel_launch")
            launch = 100 * launch_ms / step_ms if launch_ms is not None and step_ms else None
        idle = profile_number(p, "device_idle_percent", "device_idle_time_percent")
        device_ms = profile_number(p, "device_compute_ms", "device_compute")
        ops = profile_number(p, "device_op_count", "ops_per_step") or (r.graph.op_count if r.graph else None)
        per_op_us = 1e3 * device_ms / ops if device_ms is not None and ops else None
        reasons = []
        if launch is not None and launch >= KERNEL_LAUNCH_PERCENT:
            reasons.append(f"kernel launch takes {launch:.1f}% of the step (≥ {KERNEL_LAUNCH_PERCENT:g}%)")
        if idle is not None and idle >= DEVICE_IDLE_PERCENT:
            reasons.append(f"the GPU idles {idle:.1f}% of the step (≥ {DEVICE_IDLE_PERCENT:g}%)")
        if per_op_us is not None and ops >= SMALL_OP_MIN_COUNT and per_op_us < SMALL_OP_US:
            reasons.append(
                f"{ops:.0f} ops per step average {per_op_us:.1f} us of device time each "
                f"(< {SMALL_OP_US:g} us: launch overhead dominates)"
            )
        if not reasons:
            continue
        fix = (
            "step = tf.function(step, jit_compile=True)  # XLA fuses small kernels"
            if r.mode != "xla"
            else "model.compile(..., steps_per_execution=32)  # fewer host round trips"
        )
        out.append(
            (
                r,
                suggestion(
                    "host-bound",
                    "Host-bound: the GPU waits for the host to launch work",
                    "; ".join(reasons) + f" (step {step_ms:.3g} ms).",
                    fix,
                    f"kernel launch ≥ {KERNEL_LAUNCH_PERCENT:g}% or device idle ≥ {DEVICE_IDLE_PERCENT:g}% "
                    "of the step, "
                    f"or ≥ {SMALL_OP_MIN_COUNT} ops under {SMALL_OP_US:g} us",
                    kernel_launch_percent=launch,
                    device_idle_percent=idle,
                    device_us_per_op=per_op_us,
                    ops=ops,
                ),
            )
        )
    return out


# The settings a `tfperf tune` configuration or a what-if changes TensorFlow's thread pools with.
THREAD_KEYS = ("intra_op_threads", "inter_op_threads")


def threading_fix(settings: dict) -> str:
    lines = []
    if settings.get("intra_op_threads") is not None:
        lines.append(f"tf.config.threading.set_intra_op_parallelism_threads({settings['intra_op_threads']})")
    if settings.get("inter_op_threads") is not None:
        lines.append(f"tf.config.threading.set_inter_op_parallelism_threads({settings['inter_op_threads']})")
    return "\n".join(lines) + "  # at program start, before any op runs"


def rule_threading(run: RunResult) -> list[Finding]:
    """CPU thread counts that measured faster than TensorFlow's defaults, from `tfperf tune` or a what-if."""
    out = []
    groups: dict[tuple, list[Result]] = defaultdict(list)
    for r in measured(run.results):
        if r.device == "cpu":
            groups[(base_case(r), r.mode, r.device, r.task, r.batch_size)].append(r)
    for results in groups.values():
        baseline = next(
            (
                r
                for r in results
                if not any(k in config_settings(r) for k in THREAD_KEYS)
                and tune_config(r) is not None
                and set(config_settings(r)) <= {"mode"}
            ),
            None,
        )
        threaded = [
            r
            for r in results
            if set(config_settings(r)) - {"mode"} <= set(THREAD_KEYS)
            and any(k in config_settings(r) for k in THREAD_KEYS)
        ]
        if baseline is None or not threaded:
            continue
        best = min(threaded, key=lambda r: r.median_s)
        speedup = baseline.median_s / best.median_s
        sig, p = significant(baseline, best)
        if speedup > THREADING_MIN_SPEEDUP and sig:
            s = config_settings(best)
            out.append(
                (
                    baseline,
                    suggestion(
                        "threading",
                        f"Set TensorFlow's thread pools: measured {speedup:.2f}× faster",
                        f"{tune_config(best)}: {ms(best.median_s)} ms/step vs {ms(baseline.median_s)} "
                        "ms/step with the "
                        f"default thread pools ({units.p_value(p)}).",
                        threading_fix(s),
                        f"measured speed-up > {THREADING_MIN_SPEEDUP:.2f}×",
                        speedup=speedup,
                        median_s=best.median_s,
                        baseline_median_s=baseline.median_s,
                        p_value=p,
                        **{k: s.get(k) for k in THREAD_KEYS},
                    ),
                )
            )
    # What-if entries that changed thread counts (settings in the entry): held to the same standard as the
    # configurations above, the U test when testable and a gain beyond the job's own repeat/process spread.
    for r in measured(run.results):
        for w in r.what_if or []:
            if "thread" not in w.change.lower() or w.error or w.helped is False:
                continue
            speedup = w.speedup
            if speedup is None and w.median_s and w.baseline_median_s:
                speedup = w.baseline_median_s / w.median_s
            p = w.p_value if w.p_value is not None else (p_value(r.samples, w.samples) if w.samples else None)
            if speedup is None or not re_measure_helped(r, speedup, p, THREADING_MIN_SPEEDUP):
                continue
            tested = units.p_value(p) if p is not None else "too few samples to test"
            out.append(
                (
                    r,
                    suggestion(
                        "threading",
                        f"{w.change}: measured {speedup:.2f}× faster",
                        f"re-run with {w.change}: {ms(w.baseline_median_s or r.median_s)} → "
                        f"{ms(w.median_s or 0)} ms/step "
                        f"({tested}).",
                        w.code or threading_fix(w.details.get("settings") or {}),
                        f"measured speed-up > {THREADING_MIN_SPEEDUP:.2f}×, significant and beyond the job's "
                        "own spread",
                        change=w.change,
                        speedup=speedup,
                        p_value=p,
                    ),
                )
            )
    return out
