"""The advisor: rules over measured results that say what to change, each backed by the numbers that fired it.

Every rule is a plain function `rule(run) -> list[(Result, suggestion)]` over a RunResult: no TensorFlow, no
re-measuring. A suggestion is a dict with the public keys `{code, title, evidence, fix}` (DESIGN.md) plus
`evidence_data` (the numbers behind the evidence sentence, for scripts) and `threshold` (what the rule compares
against). A suggestion is attached to the result it concerns: `use-tf-function` to the eager result of a case
whose function mode is faster, `avoid-xla` to the xla result, `prefetch` to the result whose what-if run
measured it, and so on.

Thresholds start from the TensorBoard profiler's own (xprof `op_stats_to_input_pipeline_analysis.cc` and
`op_stats_to_overview_page.h`) and are module constants so the README can quote them.
A suggestion that compares two measurements also needs the difference to be statistically significant when
both have enough samples (`SIGNIFICANCE_ALPHA`) and larger than either side's spread between its own repeats
and processes: a 12% "win" inside the noise is not a suggestion.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Callable, Iterable

from . import stats
from .results import Result, RunResult

Suggestion = dict
Finding = tuple[Result, Suggestion]

# --- thresholds ---------------------------------------------------------------------------------------------
# The profiler reports "eager op time above 10% of op time" as an opportunity for tf.function
# (kEagerReportThresholdInPercent); measured directly: tf.function saves more than 10% of the eager step.
USE_TF_FUNCTION_MIN_SAVING = 0.10
# XLA is worth suggesting when it saves more than 10% of the tf.function step...
ENABLE_XLA_MIN_SAVING = 0.10
# ...its compile cost is worth putting in numbers as soon as it is faster at all (2% guards against ties)...
XLA_PAYBACK_MIN_SAVING = 0.02
# ...and it is a loss worth reporting when its step is more than 5% slower than tf.function's.
AVOID_XLA_MIN_LOSS = 0.05
# The profiler's overview: more than 10% of host op time executed eagerly (kEagerReportThresholdInPercent).
EAGER_OP_PERCENT = 10.0
# A step function traced more often than this during warm-up and timed steps is retracing.
MAX_TRACES_OK = 1
# The profiler: "moderately" input-bound at 5% of the step, "highly" at 20%
# (kModeratelyInfeedBoundThresholdInPercent, kHighlyInfeedBoundThresholdInPercent). We suggest at "highly".
INPUT_BOUND_MODERATE_FRACTION = 0.05
INPUT_BOUND_FRACTION = 0.20
# A tf.data what-if is suggested only when its re-run was more than 10% faster than the unchanged pipeline.
WHAT_IF_MIN_SPEEDUP = 1.10
# A batch-size sweep whose throughput still rose by more than 10% between its two largest batches.
SMALL_BATCH_MIN_GAIN = 0.10
# Tensor cores (fp16 matmul/conv units) arrive with compute capability 7.0 (Volta).
MIXED_PRECISION_MIN_CC = 7.0
# The profiler: under 10% of device compute in 16-bit on a tensor-core GPU suggests mixed precision.
MIXED_PRECISION_MAX_16BIT_PERCENT = 10.0
# The profiler: kernel launch "highly" bound at 15% of the step (kHighlyKernelLaunchBoundThresholdInPercent).
KERNEL_LAUNCH_PERCENT = 15.0
# The GPU idles more than 20% of the step: the host does not keep it fed.
DEVICE_IDLE_PERCENT = 20.0
# "Many small ops": device time per op below 10 us (launch overhead is ~5 us per kernel), with at least this
# many ops per step.
SMALL_OP_US = 10.0
SMALL_OP_MIN_COUNT = 200
# Thread settings (from `tfperf tune` or a what-if) worth suggesting when more than 5% faster than the default.
THREADING_MIN_SPEEDUP = 1.05
# A difference between two measurements must have p below this (two-sided Mann-Whitney U) when both have at
# least SIGNIFICANCE_MIN_SAMPLES samples; with fewer, the ratio alone decides and the evidence says so.
SIGNIFICANCE_ALPHA = 0.05
SIGNIFICANCE_MIN_SAMPLES = 5
# torch.utils.benchmark's warning: an IQR above 10% of the median means the environment moved the numbers.
NOISY_IQR_FRACTION = stats.NOISY_IQR_FRACTION
# A quantized TF Lite mode is suggested when it saves more than 10% of the step of every float mode measured beside
# it (tflite, function) and stays within the accuracy tolerance: top-1 agreement with the eager Keras outputs of at
# least 99% (classifiers), and a max absolute error of at most 5% of the largest reference output magnitude.
QUANTIZE_MIN_SAVING = 0.10
QUANTIZE_MIN_TOP1_AGREEMENT = 0.99
QUANTIZE_MAX_REL_ERROR = 0.05
# ...measured on at least 100 examples (below that, 99% top-1 agreement cannot be told from 100%).
QUANTIZE_MIN_AGREEMENT_SAMPLES = 100

CODES: tuple[str, ...] = (
    "use-tf-function", "enable-xla", "avoid-xla", "xla-compile-payback", "retracing",
    "input-bound", "prefetch", "parallelize-map", "cache-dataset", "parallel-interleave", "small-batch",
    "mixed-precision", "host-bound", "threading", "noisy-measurement", "quantize-tflite",
)


# --- helpers ------------------------------------------------------------------------------------------------

def suggestion(code: str, title: str, evidence: str, fix: str, threshold: str | None = None,
               **evidence_data) -> Suggestion:
    return {"code": code, "title": title, "evidence": evidence, "fix": fix, "threshold": threshold,
            "evidence_data": {k: _round(v) for k, v in evidence_data.items()}}


def _round(v):
    if isinstance(v, float) and math.isfinite(v):
        return float(f"{v:.6g}")
    return v


def ms(seconds: float) -> str:
    v = seconds * 1e3
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _config_name(r: Result) -> str | None:
    """Results of `tfperf tune` carry their configuration; other results have none."""
    tune = (r.extra or {}).get("tune") or {}
    return tune.get("config")


def _config_settings(r: Result) -> dict:
    return ((r.extra or {}).get("tune") or {}).get("settings") or {}


def _base_case(r: Result) -> str:
    """The suite's case a tune configuration belongs to (tune names its results `<case>+<config>`)."""
    return ((r.extra or {}).get("tune") or {}).get("case") or r.case


def _ok(results: Iterable[Result]) -> list[Result]:
    return [r for r in results if r.ok and r.samples]


def by_job_without_mode(run: RunResult) -> dict[tuple, dict[str, Result]]:
    """(case, device, task, batch_size, tune config) -> {mode: result}: the modes of one job side by side."""
    groups: dict[tuple, dict[str, Result]] = defaultdict(dict)
    for r in run.results:
        groups[(r.case, r.device, r.task, r.batch_size, _config_name(r))][r.mode] = r
    return groups


def p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value, or None when either side has too few samples to test."""
    if len(a) < SIGNIFICANCE_MIN_SAMPLES or len(b) < SIGNIFICANCE_MIN_SAMPLES:
        return None
    try:
        from .compare import mann_whitney_p  # the compare module's statistics, when present
    except ImportError:
        mann_whitney_p = None
    if mann_whitney_p is not None:
        return float(mann_whitney_p(a, b))
    from scipy.stats import mannwhitneyu

    if len(set(a) | set(b)) == 1:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def significant(a: Result, b: Result) -> tuple[bool, float | None]:
    """Is the difference between two results' step times real? (True, None) when untestable (few samples).

    Real means the U test's p < SIGNIFICANCE_ALPHA and, as in `tfperf compare`, a difference larger than
    either result's own spread between its repeats (and processes): the same code moving that far between
    two processes is no evidence that one mode beats the other."""
    p = p_value(a.samples, b.samples)
    if p is not None and p < SIGNIFICANCE_ALPHA and a.median_s and b.median_s:
        from .compare import repeat_spread

        spreads = [s for s in (repeat_spread(a.repeat_groups()), repeat_spread(b.repeat_groups())) if s is not None]
        if spreads and abs(math.log(a.median_s / b.median_s)) <= math.log1p(max(spreads)):
            return False, p
    return (p is None or p < SIGNIFICANCE_ALPHA), p


def _p_text(p: float | None) -> str:
    if p is None:
        return "too few samples for a significance test"
    return f"p={p:.2g}" if p >= 1e-4 else "p<1e-4"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


# --- mode rules ---------------------------------------------------------------------------------------------

def rule_use_tf_function(run: RunResult) -> list[Finding]:
    out = []
    for (case, *_), modes in by_job_without_mode(run).items():
        eager, fn = modes.get("eager"), modes.get("function")
        if not (eager and fn and eager.ok and fn.ok and eager.samples and fn.samples):
            continue
        e, f = eager.median_s, fn.median_s
        saving = 1 - f / e
        sig, p = significant(eager, fn)
        if saving > USE_TF_FUNCTION_MIN_SAVING and sig:
            out.append((eager, suggestion(
                "use-tf-function", f"Wrap the step in tf.function: measured {e / f:.2f}× faster than eager",
                f"eager {ms(e)} ms/step vs tf.function {ms(f)} ms/step ({e / f:.2f}× faster, saves {saving:.0%} "
                f"of the step; {_p_text(p)}).",
                "step = tf.function(step)  # Keras: model.compile(..., run_eagerly=False)",
                f"tf.function saves > {USE_TF_FUNCTION_MIN_SAVING:.0%} of the eager step",
                eager_median_s=e, function_median_s=f, speedup=e / f, p_value=p)))
    # In a traced mode, the profiler still sees ops run eagerly: part of the step is outside the tf.function.
    for r in _ok(run.results):
        eager_pct = ((r.profile or {}).get("overview") or {}).get("host_op_time_eager_percent")
        if r.mode == "eager" or not isinstance(eager_pct, (int, float)) or eager_pct <= EAGER_OP_PERCENT:
            continue
        out.append((r, suggestion(
            "use-tf-function", f"{eager_pct:.0f}% of host op time still runs eagerly in {r.mode} mode",
            f"the profiler's overview: {eager_pct:.1f}% of op time on the host used eager execution "
            f"(profiled {r.mode} step of {ms(r.median_s)} ms): part of the step runs outside the tf.function.",
            "move the eager part (preprocessing, metrics, Python loops over tensors) inside the tf.function",
            f"host op time eager > {EAGER_OP_PERCENT:g}% (profiler: kEagerReportThresholdInPercent)",
            host_op_time_eager_percent=eager_pct)))
    return out


def _xla_pair(modes: dict[str, Result]) -> tuple[Result, Result] | None:
    fn, xla = modes.get("function"), modes.get("xla")
    if fn and xla and fn.ok and xla.ok and fn.samples and xla.samples:
        return fn, xla
    return None


def rule_enable_xla(run: RunResult) -> list[Finding]:
    out = []
    for modes in by_job_without_mode(run).values():
        pair = _xla_pair(modes)
        if not pair:
            continue
        fn, xla = pair
        f, x = fn.median_s, xla.median_s
        saving = 1 - x / f
        sig, p = significant(fn, xla)
        if saving > ENABLE_XLA_MIN_SAVING and sig:
            out.append((fn, suggestion(
                "enable-xla", f"Compile the step with XLA: measured {f / x:.2f}× faster than tf.function",
                f"tf.function {ms(f)} ms/step vs XLA {ms(x)} ms/step (saves {saving:.0%} of the step; {_p_text(p)}).",
                "step = tf.function(step, jit_compile=True)  # Keras: model.compile(..., jit_compile=True)",
                f"XLA saves > {ENABLE_XLA_MIN_SAVING:.0%} of the tf.function step",
                function_median_s=f, xla_median_s=x, speedup=f / x, p_value=p)))
    return out


def rule_xla_compile_payback(run: RunResult) -> list[Finding]:
    out = []
    for modes in by_job_without_mode(run).values():
        pair = _xla_pair(modes)
        if not pair or pair[0].first_call_s is None or pair[1].first_call_s is None:
            continue
        fn, xla = pair
        f, x = fn.median_s, xla.median_s
        saving_s = f - x
        sig, p = significant(fn, xla)
        if saving_s / f <= XLA_PAYBACK_MIN_SAVING or not sig:
            continue
        extra_s = xla.first_call_s - fn.first_call_s
        steps = max(0, math.ceil(extra_s / saving_s))
        when = ("from the first step: its first call is not slower" if steps == 0
                else f"after {steps:,} steps")
        out.append((xla, suggestion(
            "xla-compile-payback", f"XLA's compile cost pays back {when}",
            f"XLA's first call takes {xla.first_call_s:.2f} s vs {fn.first_call_s:.2f} s for tf.function "
            f"({extra_s:+.2f} s); each step then saves {ms(saving_s)} ms ({ms(f)} → {ms(x)} ms/step; {_p_text(p)}): "
            f"payback = {max(extra_s, 0):.2f} s / {ms(saving_s)} ms = {steps:,} steps.",
            f"step = tf.function(step, jit_compile=True)  # pays off for runs longer than {steps:,} steps",
            f"XLA saves > {XLA_PAYBACK_MIN_SAVING:.0%} of the tf.function step",
            payback_steps=steps, xla_first_call_s=xla.first_call_s, function_first_call_s=fn.first_call_s,
            function_median_s=f, xla_median_s=x, p_value=p)))
    return out


def rule_avoid_xla(run: RunResult) -> list[Finding]:
    out = []
    for modes in by_job_without_mode(run).values():
        fn, xla = modes.get("function"), modes.get("xla")
        if fn and xla and fn.ok and xla.status == "failed" and xla.error and "XLA" in str(xla.error.get("message")):
            out.append((xla, suggestion(
                "avoid-xla", "XLA cannot compile this step: keep plain tf.function",
                f"the XLA run failed: {xla.error.get('message')}; tf.function ran at {ms(fn.median_s)} ms/step.",
                "step = tf.function(step)  # no jit_compile=True; or compile only the numeric part with XLA",
                "the XLA run failed while tf.function ran",
                function_median_s=fn.median_s, xla_error=xla.error.get("message"))))
            continue
        pair = _xla_pair(modes)
        if not pair:
            continue
        fn, xla = pair
        f, x = fn.median_s, xla.median_s
        loss = x / f - 1
        sig, p = significant(fn, xla)
        if loss > AVOID_XLA_MIN_LOSS and sig:
            out.append((xla, suggestion(
                "avoid-xla", f"XLA is {x / f:.2f}× slower than tf.function here: leave jit_compile off",
                f"XLA {ms(x)} ms/step vs tf.function {ms(f)} ms/step: {loss:.0%} slower, "
                f"{ms(x - f)} ms lost per step ({_p_text(p)}).",
                "step = tf.function(step)  # jit_compile=False; Keras: model.compile(..., jit_compile=False)",
                f"XLA step > {AVOID_XLA_MIN_LOSS:.0%} slower than tf.function",
                function_median_s=f, xla_median_s=x, slowdown=x / f, loss_per_step_s=x - f, p_value=p)))
    return out


# --- retracing ----------------------------------------------------------------------------------------------

def _describe_retrace(entry: dict) -> str:
    if entry.get("changed"):
        return str(entry["changed"])
    arg = entry.get("argument", "an argument")
    return f"{arg}: {entry.get('before')} -> {entry.get('after')} ({entry.get('kind', 'changed')})"


def fallback_retrace_fix(entries: list[dict]) -> str:
    """The fix when tfperf.retracing's own is unavailable: by the kind of change that caused the retrace."""
    entry = next((e for e in entries if e.get("kind")), entries[0] if entries else {})
    kind = str(entry.get("kind") or "").lower()
    arg = entry.get("argument") or "the argument"
    changed = str(entry.get("changed") or "")
    if "python" in kind or "python" in changed:
        return f"pass {arg} as a tensor, not a Python value: f(..., {arg}=tf.constant({entry.get('after', '...')}))"
    if "shape" in kind or "shape" in changed:
        return ("@tf.function(input_signature=[tf.TensorSpec([None, ...], dtype)])  # None in the dims that vary; "
                "or @tf.function(reduce_retracing=True)")
    return "@tf.function(reduce_retracing=True)  # or give a fixed input_signature"


def retrace_fix(result: Result) -> str:
    try:
        from .retracing import fix_for
    except ImportError:
        return fallback_retrace_fix(result.retraces)
    # fix_for(result) reads extra["trace_signature"] too, so a shape fix is a complete input_signature.
    for call in (lambda: fix_for(result), lambda: fix_for(result.retraces)):
        try:
            fix = call()
        except (TypeError, AttributeError, KeyError):
            continue
        if isinstance(fix, dict):
            fix = fix.get("fix") or fix.get("code")
        if fix:
            return str(fix)
    return fallback_retrace_fix(result.retraces)


def rule_retracing(run: RunResult) -> list[Finding]:
    out = []
    for r in run.results:
        # A first call that created variables traces twice (harness: extra.first_use_traces): not a retrace.
        first_use = int((r.extra or {}).get("first_use_traces") or 0)
        if r.mode == "eager" or r.tracing_count is None or r.tracing_count - first_use <= MAX_TRACES_OK:
            continue
        what = "; ".join(_describe_retrace(e) for e in r.retraces[:3]) or "the reason was not recorded"
        more = f" (and {len(r.retraces) - 3} more)" if len(r.retraces) > 3 else ""
        out.append((r, suggestion(
            "retracing", f"The step function traced {r.tracing_count} times: each retrace re-builds the graph",
            f"{r.tracing_count} traces during warm-up and timed steps ({MAX_TRACES_OK + first_use} expected); "
            f"changed: {what}{more}.",
            retrace_fix(r), f"tracing_count > {MAX_TRACES_OK}",
            tracing_count=r.tracing_count, retraces=len(r.retraces),
            arguments=sorted({str(e.get("argument")) for e in r.retraces if e.get("argument")}))))
    return out


# --- input pipeline -----------------------------------------------------------------------------------------

# What-if changes by code; a change whose name matches none (e.g. a combination) only informs `input-bound`.
WHAT_IF_CODES: tuple[tuple[str, str, str], ...] = (
    # (code, pattern over the change's name, fix when the what-if carries no code of its own)
    ("prefetch", r"prefetch", "dataset = dataset.prefetch(tf.data.AUTOTUNE)"),
    ("parallelize-map", r"parallel.?map|map.?parallel|num_parallel_calls",
     "dataset = dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)"),
    ("cache-dataset", r"cache", "dataset = dataset.cache()  # before shuffle/augment; the data must fit"),
    ("parallel-interleave", r"interleave",
     "dataset = files.interleave(read, num_parallel_calls=tf.data.AUTOTUNE)"),
    # tfperf.whatif's "larger batch (32 → 64)", compared per sample.
    ("small-batch", r"larger batch", "dataset = dataset.batch(2 * batch_size)"),
)
_COMBINED = re.compile(r"\+|,|\band\b|\bcombined\b|\ball\b", re.I)


def _what_if_speedup(w: dict) -> float | None:
    """The measured speed-up of a what-if; None when unmeasured or, if it was tested, not significant."""
    if w.get("p_value") is not None and w["p_value"] >= SIGNIFICANCE_ALPHA:
        return None
    if w.get("speedup") is not None:
        return float(w["speedup"])
    if w.get("median_s") and w.get("baseline_median_s"):
        return w["baseline_median_s"] / w["median_s"]
    return None


def what_if_code(change: str) -> str | None:
    if _COMBINED.search(change):
        return None
    for code, pattern, _ in WHAT_IF_CODES:
        if re.search(pattern, change, re.I):
            return code
    return None


def _best_what_if(r: Result) -> dict | None:
    # `helped: False` (tfperf.whatif: not faster by the margin, or not significantly): never a fix to suggest.
    measured = [w for w in (r.what_if or []) if _what_if_speedup(w) is not None and not w.get("error")
                and w.get("helped") is not False]
    best = max(measured, key=_what_if_speedup, default=None)
    return best if best and _what_if_speedup(best) > WHAT_IF_MIN_SPEEDUP else None


def rule_input_bound(run: RunResult) -> list[Finding]:
    out = []
    for r in _ok(run.results):
        frac = r.input_wait_fraction
        profile = r.profile or {}
        source = "measured"
        if frac is None and profile.get("input_bound_percent") is not None:
            frac, source = profile["input_bound_percent"] / 100, "profiler"
        if frac is None or frac <= INPUT_BOUND_FRACTION:
            continue
        wait = _mean(r.input_wait_s)
        # The fraction is total wait / total step time: quote the mean step beside the mean wait (a median
        # step next to a mean wait can read as a wait longer than the step).
        step_s = _mean(r.samples) if wait is not None else r.median_s
        wait_s = wait if wait is not None else frac * r.median_s
        conclusion = profile.get("input_conclusion")
        evidence = (f"the step waits {ms(wait_s)} ms for its next batch out of {ms(step_s)} ms on average "
                    f"({frac:.0%} of the step, {source})")
        if profile.get("input_bound_percent") is not None and source == "measured":
            evidence += f"; the profiler measured {profile['input_bound_percent']:.1f}% input"
        evidence += f"; profiler: \"{conclusion}\"." if conclusion else "."
        best = _best_what_if(r)
        if best:
            fix = best.get("code") or "dataset = dataset.prefetch(tf.data.AUTOTUNE)"
            evidence += f" Best measured fix: {best.get('change')} ({_what_if_speedup(best):.2f}× faster)."
        else:
            fix = ("dataset = dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)"
                   "  # run `tfperf run --what-if` to measure each change")
        out.append((r, suggestion(
            "input-bound", f"Input-bound: {frac:.0%} of each step waits for data",
            evidence, fix, f"input wait > {INPUT_BOUND_FRACTION:.0%} of the step (profiler: 'highly' input-bound)",
            input_wait_fraction=frac, input_wait_ms_per_step=wait_s * 1e3, median_s=r.median_s,
            input_bound_percent=profile.get("input_bound_percent"), source=source,
            best_what_if=best.get("change") if best else None)))
    return out


def rule_what_if(run: RunResult) -> list[Finding]:
    """prefetch / parallelize-map / cache-dataset / parallel-interleave: only what a re-run measured faster."""
    out = []
    for r in run.results:
        for w in r.what_if or []:
            code = what_if_code(str(w.get("change", "")))
            speedup = _what_if_speedup(w)
            if (code is None or speedup is None or w.get("error") or speedup <= WHAT_IF_MIN_SPEEDUP
                    or w.get("helped") is False):
                continue
            default_fix = next(fix for c, _, fix in WHAT_IF_CODES if c == code)
            base, new = w.get("baseline_median_s"), w.get("median_s")
            steps = f": {ms(base)} → {ms(new)} ms/step" if base and new else ""
            wait = (f"; input wait {w['input_wait_fraction']:.0%} of the step afterwards"
                    if w.get("input_wait_fraction") is not None else "")
            out.append((r, suggestion(
                code, f"{w.get('change')}: measured {speedup:.2f}× faster",
                f"re-run with {w.get('change')}: {speedup:.2f}× faster{steps}{wait}.",
                w.get("code") or default_fix, f"measured speed-up > {WHAT_IF_MIN_SPEEDUP:.2f}×",
                change=w.get("change"), speedup=speedup, median_s=new, baseline_median_s=base,
                input_wait_fraction=w.get("input_wait_fraction"))))
    return out


def rule_small_batch(run: RunResult) -> list[Finding]:
    sweeps: dict[tuple, list[Result]] = defaultdict(list)
    for r in _ok(run.results):
        if r.batch_size:
            sweeps[(r.case, r.mode, r.device, r.task, _config_name(r))].append(r)
    out = []
    for results in sweeps.values():
        by_size = {r.batch_size: r for r in results}
        if len(by_size) < 2:
            continue
        sizes = sorted(by_size)
        prev, last = by_size[sizes[-2]], by_size[sizes[-1]]
        t_prev, t_last = prev.throughput["samples_per_s"], last.throughput["samples_per_s"]
        gain = t_last / t_prev - 1
        if gain > SMALL_BATCH_MIN_GAIN:
            bigger = sizes[-1] * 2
            out.append((last, suggestion(
                "small-batch", f"Throughput still rises with batch size: try batch {bigger}",
                f"{t_prev:,.0f} samples/s at batch {sizes[-2]} → {t_last:,.0f} at batch {sizes[-1]} "
                f"(+{gain:.0%}): the largest batch measured does not yet fill the device.",
                f"dataset = dataset.batch({bigger})  # and scale the learning rate with the batch",
                f"throughput gain > {SMALL_BATCH_MIN_GAIN:.0%} between the two largest batches",
                batch_sizes=sizes, samples_per_s_prev=t_prev, samples_per_s_last=t_last, gain=gain)))
    return out


# --- device rules -------------------------------------------------------------------------------------------

def _compute_capability(run: RunResult, device: str) -> float | None:
    gpus = run.environment.get("gpus") or []
    index = int(device.partition(":")[2] or 0)
    if index >= len(gpus):
        return None
    cc = gpus[index].get("compute_capability")
    if cc is None:
        return None
    if isinstance(cc, (list, tuple)):
        cc = ".".join(str(c) for c in cc)
    try:
        return float(cc)
    except (TypeError, ValueError):
        return None


def _uses_mixed_precision(r: Result) -> bool:
    settings = _config_settings(r)
    policy = str(settings.get("mixed_precision") or (r.extra or {}).get("dtype_policy") or "")
    return "16" in policy


def rule_mixed_precision(run: RunResult) -> list[Finding]:
    # One per job (the fastest mode): the advice is about the model, not the mode.
    best: dict[tuple, Result] = {}
    for r in _ok(run.results):
        if not r.device.startswith("gpu") or _uses_mixed_precision(r):
            continue
        key = (r.case, r.device, r.task, r.batch_size, _config_name(r))
        if key not in best or r.median_s < best[key].median_s:
            best[key] = r
    out = []
    for r in best.values():
        cc = _compute_capability(run, r.device)
        if cc is None or cc < MIXED_PRECISION_MIN_CC:
            continue
        half = (r.profile or {}).get("fp16_percent")
        if half is not None and half >= MIXED_PRECISION_MAX_16BIT_PERCENT:
            continue
        gpu = (run.environment.get("gpus") or [{}])[int(r.device.partition(':')[2] or 0)].get("name", r.device)
        share = f"{half:.0f}% of device compute ran in 16-bit" if half is not None else "the model computes in float32"
        out.append((r, suggestion(
            "mixed-precision", "Use mixed precision: this GPU has tensor cores",
            f"{gpu} has compute capability {cc:g} (≥ {MIXED_PRECISION_MIN_CC:.1f}, tensor cores) and {share}; "
            f"{r.mode} runs at {ms(r.median_s)} ms/step.",
            'keras.mixed_precision.set_global_policy("mixed_float16")  # before building the model',
            f"GPU compute capability ≥ {MIXED_PRECISION_MIN_CC:.1f} and 16-bit share < "
            f"{MIXED_PRECISION_MAX_16BIT_PERCENT:g}%",
            compute_capability=cc, fp16_percent=half, median_s=r.median_s)))
    return out


def _profile_number(profile: dict, *names: str) -> float | None:
    """A number from the profile read-out, wherever the profiling module put it (top level or a breakdown)."""
    for holder in (profile, profile.get("step_time_breakdown_ms") or {}, profile.get("overview") or {}):
        for n in names:
            v = holder.get(n) if isinstance(holder, dict) else None
            if isinstance(v, (int, float)):
                return float(v)
    return None


def rule_host_bound(run: RunResult) -> list[Finding]:
    out = []
    for r in _ok(run.results):
        if not r.device.startswith("gpu") or not r.profile:
            continue
        p = r.profile
        step_ms = _profile_number(p, "step_time_ms", "steptime_ms_average") or r.median_s * 1e3
        launch = _profile_number(p, "kernel_launch_percent")
        if launch is None:
            launch_ms = _profile_number(p, "kernel_launch_ms", "kernel_launch")
            launch = 100 * launch_ms / step_ms if launch_ms is not None and step_ms else None
        idle = _profile_number(p, "device_idle_percent", "device_idle_time_percent")
        device_ms = _profile_number(p, "device_compute_ms", "device_compute")
        ops = _profile_number(p, "device_op_count", "ops_per_step") or (r.graph or {}).get("op_count")
        per_op_us = 1e3 * device_ms / ops if device_ms is not None and ops else None
        reasons = []
        if launch is not None and launch >= KERNEL_LAUNCH_PERCENT:
            reasons.append(f"kernel launch takes {launch:.1f}% of the step (≥ {KERNEL_LAUNCH_PERCENT:g}%)")
        if idle is not None and idle >= DEVICE_IDLE_PERCENT:
            reasons.append(f"the GPU idles {idle:.1f}% of the step (≥ {DEVICE_IDLE_PERCENT:g}%)")
        if per_op_us is not None and ops >= SMALL_OP_MIN_COUNT and per_op_us < SMALL_OP_US:
            reasons.append(f"{ops:.0f} ops per step average {per_op_us:.1f} us of device time each "
                           f"(< {SMALL_OP_US:g} us: launch overhead dominates)")
        if not reasons:
            continue
        fix = ("step = tf.function(step, jit_compile=True)  # XLA fuses small kernels"
               if r.mode != "xla" else "model.compile(..., steps_per_execution=32)  # fewer host round trips")
        out.append((r, suggestion(
            "host-bound", "Host-bound: the GPU waits for the host to launch work",
            "; ".join(reasons) + f" (step {step_ms:.3g} ms).", fix,
            f"kernel launch ≥ {KERNEL_LAUNCH_PERCENT:g}% or device idle ≥ {DEVICE_IDLE_PERCENT:g}% of the step, "
            f"or ≥ {SMALL_OP_MIN_COUNT} ops under {SMALL_OP_US:g} us",
            kernel_launch_percent=launch, device_idle_percent=idle, device_us_per_op=per_op_us, ops=ops)))
    return out


# --- measured configurations (tune, what-if) ----------------------------------------------------------------

_THREAD_KEYS = ("intra_op_threads", "inter_op_threads")


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
    for r in _ok(run.results):
        if r.device == "cpu":
            groups[(_base_case(r), r.mode, r.device, r.task, r.batch_size)].append(r)
    for results in groups.values():
        baseline = next((r for r in results if not any(k in _config_settings(r) for k in _THREAD_KEYS)
                         and _config_name(r) is not None and set(_config_settings(r)) <= {"mode"}), None)
        threaded = [r for r in results if set(_config_settings(r)) - {"mode"} <= set(_THREAD_KEYS)
                    and any(k in _config_settings(r) for k in _THREAD_KEYS)]
        if baseline is None or not threaded:
            continue
        best = min(threaded, key=lambda r: r.median_s)
        speedup = baseline.median_s / best.median_s
        sig, p = significant(baseline, best)
        if speedup > THREADING_MIN_SPEEDUP and sig:
            s = _config_settings(best)
            out.append((baseline, suggestion(
                "threading", f"Set TensorFlow's thread pools: measured {speedup:.2f}× faster",
                f"{_config_name(best)}: {ms(best.median_s)} ms/step vs {ms(baseline.median_s)} ms/step with the "
                f"default thread pools ({_p_text(p)}).",
                threading_fix(s), f"measured speed-up > {THREADING_MIN_SPEEDUP:.2f}×",
                speedup=speedup, median_s=best.median_s, baseline_median_s=baseline.median_s, p_value=p,
                **{k: s.get(k) for k in _THREAD_KEYS})))
    # What-if entries that changed thread counts (settings in the entry).
    for r in run.results:
        for w in r.what_if or []:
            if "thread" not in str(w.get("change", "")).lower():
                continue
            speedup = _what_if_speedup(w)
            if speedup is None or w.get("error") or speedup <= THREADING_MIN_SPEEDUP:
                continue
            out.append((r, suggestion(
                "threading", f"{w.get('change')}: measured {speedup:.2f}× faster",
                f"re-run with {w.get('change')}: {ms(w.get('baseline_median_s') or 0)} → "
                f"{ms(w.get('median_s') or 0)} ms/step.",
                w.get("code") or threading_fix(w.get("settings") or {}),
                f"measured speed-up > {THREADING_MIN_SPEEDUP:.2f}×", change=w.get("change"), speedup=speedup)))
    return out


# On the 2-core test VM the same matmul chain's median moved 59-62% between worker processes with TensorFlow's
# default thread pools (two sets of 10 processes) and 3-15% with one intra-op and one inter-op thread (three
# sets): the steady setting for a suite that tracks regressions, at the cost of timing single-threaded speed.
STEADY_THREADS = "tf_config: {intra_op_threads: 1, inter_op_threads: 1}"


def rule_noisy_measurement(run: RunResult) -> list[Finding]:
    out = []
    for r in _ok(run.results):
        if not r.noisy:
            continue
        st = r.step_time_s
        evidence = (f"the interquartile range is {st['iqr'] / st['median']:.0%} of the median "
                    f"({ms(st['iqr'])} of {ms(st['median'])} ms over {st['samples']} samples)")
        fix = "repeats: 5  # in the suite (and steps: 50): more samples; stop programs competing for the CPU/GPU"
        spread = r.process_spread
        between_processes = spread is not None and spread > NOISY_IQR_FRACTION
        if between_processes:
            medians = ", ".join(ms(stats.summarize(g)["median"]) for g in r.process_groups())
            evidence += f"; its {r.process_count} worker processes' medians were {spread:.0%} apart ({medians} ms)"
            threads_set = any(k in ((r.extra or {}).get("tf_config") or {}) for k in _THREAD_KEYS)
            if r.device.startswith("cpu") and not threads_set:
                fix = (f"{STEADY_THREADS}  # in the suite, to track regressions: one thread per op kept worker "
                       "processes within 3-15% of each other on a 2-core VM, against 60% with the default pools")
        out.append((r, suggestion(
            "noisy-measurement", "Noisy timing: treat small differences for this job with care", evidence + ".",
            fix, f"IQR > {NOISY_IQR_FRACTION:.0%} of the median",
            iqr_fraction=st["iqr"] / st["median"], samples=st["samples"], process_spread=spread)))
    return out


# --- deployment ---------------------------------------------------------------------------------------------

QUANTIZED_MODES = {
    "tflite-dynamic": "converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range: int8 weights",
    "tflite-int8": ("converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
                    "converter.representative_dataset = representative_batches  # ~100 real examples\n"
                    "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
                    "converter.inference_input_type = converter.inference_output_type = tf.int8"),
}
FLOAT_BASELINES = ("tflite", "function")


def within_quantization_tolerance(agreement: dict | None) -> bool:
    """Top-1 agreement >= 99% (when the output is a classifier's) and max error <= 5% of the largest output, over at
    least 100 examples."""
    if not agreement or agreement.get("max_rel_error") is None:
        return False
    if (agreement.get("samples") or 0) < QUANTIZE_MIN_AGREEMENT_SAMPLES:
        return False
    top1 = agreement.get("top1_agreement")
    return agreement["max_rel_error"] <= QUANTIZE_MAX_REL_ERROR and (top1 is None or top1 >= QUANTIZE_MIN_TOP1_AGREEMENT)


def rule_quantize_tflite(run: RunResult) -> list[Finding]:
    out = []
    for modes in by_job_without_mode(run).values():
        baselines = [modes[m] for m in FLOAT_BASELINES if m in modes and modes[m].ok and modes[m].samples]
        if not baselines:
            continue
        candidates = []
        for mode in QUANTIZED_MODES:
            q = modes.get(mode)
            if not (q and q.ok and q.samples and within_quantization_tolerance(q.output_agreement)):
                continue
            tests = [(b, 1 - q.median_s / b.median_s, *significant(b, q)) for b in baselines]
            if all(saving > QUANTIZE_MIN_SAVING and sig for _, saving, sig, _ in tests):
                candidates.append((q, tests))
        if not candidates:
            continue
        q, tests = min(candidates, key=lambda c: c[0].median_s)
        a = q.output_agreement
        versus = "; ".join(f"{b.mode} {ms(b.median_s)} ms/step ({b.median_s / q.median_s:.2f}× slower, {_p_text(p)})"
                           for b, _, _, p in tests)
        float_tflite = modes.get("tflite")
        size = (f"; model {q.model_size_bytes / 1e6:.2f} MB vs {float_tflite.model_size_bytes / 1e6:.2f} MB float"
                if q.model_size_bytes and float_tflite and float_tflite.model_size_bytes else "")
        top1 = f"top-1 agreement {a['top1_agreement']:.1%}, " if a.get("top1_agreement") is not None else ""
        out.append((q, suggestion(
            "quantize-tflite",
            f"Deploy with {q.mode}: {baselines[0].median_s / q.median_s:.2f}× faster than {baselines[0].mode}, "
            "within the accuracy tolerance",
            f"{q.mode} {ms(q.median_s)} ms/step vs {versus}{size}; against the eager Keras outputs on "
            f"{a.get('samples')} examples: {top1}max abs error {a['max_abs_error']:.3g} "
            f"({a['max_rel_error']:.1%} of the largest output).",
            "converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)\n" + QUANTIZED_MODES[q.mode],
            f"saves > {QUANTIZE_MIN_SAVING:.0%} of the step of {' and '.join(b.mode for b in baselines)}; top-1 "
            f"agreement >= {QUANTIZE_MIN_TOP1_AGREEMENT:.0%}; max abs error <= {QUANTIZE_MAX_REL_ERROR:.0%} of the "
            "largest output",
            quantized_median_s=q.median_s, **{f"{b.mode}_median_s": b.median_s for b in baselines},
            **{f"p_value_vs_{b.mode}": p for b, _, _, p in tests},
            top1_agreement=a.get("top1_agreement"), max_abs_error=a["max_abs_error"],
            max_rel_error=a["max_rel_error"], model_size_bytes=q.model_size_bytes)))
    return out


RULES: tuple[Callable[[RunResult], list[Finding]], ...] = (
    rule_use_tf_function, rule_enable_xla, rule_xla_compile_payback, rule_avoid_xla, rule_retracing,
    rule_input_bound, rule_what_if, rule_small_batch, rule_mixed_precision, rule_host_bound, rule_threading,
    rule_noisy_measurement, rule_quantize_tflite,
)


def advise(run: RunResult) -> list[Finding]:
    """Every finding of every rule, in rule order. Pure: the results are not modified."""
    return [finding for rule in RULES for finding in rule(run)]


def attach_suggestions(run: RunResult) -> None:
    """Replace each result's suggestions with the advisor's (idempotent: re-running gives the same lists)."""
    findings: dict[int, list[Suggestion]] = defaultdict(list)
    for result, s in advise(run):
        findings[id(result)].append(s)
    for r in run.results:
        r.suggestions = findings.get(id(r), [])


def suggestions_by_code(run: RunResult) -> dict[str, list[tuple[Result, Suggestion]]]:
    """The suggestions already attached to the run's results, grouped by code (in CODES order)."""
    out: dict[str, list[tuple[Result, Suggestion]]] = {}
    order = {c: i for i, c in enumerate(CODES)}
    pairs = [(r, s) for r in run.results for s in r.suggestions]
    for r, s in sorted(pairs, key=lambda rs: order.get(rs[1]["code"], len(order))):
        out.setdefault(s["code"], []).append((r, s))
    return out
