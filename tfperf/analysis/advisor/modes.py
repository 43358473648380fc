"""Mode rules: tf.function over eager, XLA over tf.function (or not), and when XLA's compile time pays back.

Each compares the modes of one job (`figures.measures.job_without_mode`) and fires only when the difference is
beyond its threshold and real (`figures.decisions.significant`: the U test, and larger than either side's own
spread between repeats and processes).
"""

from __future__ import annotations

from tfperf import units
from tfperf.analysis.advisor.suggestion import Finding, by_job_without_mode, suggestion
from tfperf.figures.decisions import saves_more_than, slower_by_more_than, step_saving
from tfperf.figures.measures import measured, payback
from tfperf.figures.thresholds import (
    AVOID_XLA_MIN_LOSS,
    EAGER_OP_PERCENT,
    ENABLE_XLA_MIN_SAVING,
    LAYER_SPLIT_MAX_UNATTRIBUTED,
    LAYER_SPLIT_MIN_RATIO,
    LAYER_SPLIT_MIN_SHARE,
    USE_TF_FUNCTION_MIN_SAVING,
    XLA_PAYBACK_MIN_SAVING,
)
from tfperf.profile import layers as layer_split
from tfperf.results.model import Result, RunResult
from tfperf.units import ms


def rule_use_tf_function(run: RunResult) -> list[Finding]:
    out = []
    for modes in by_job_without_mode(run).values():
        pair = measured_pair(modes, "eager", "function")
        if not pair:
            continue
        eager, fn = pair
        e, f = eager.median_s, fn.median_s
        saving = step_saving(eager, fn)
        wins, p = saves_more_than(eager, fn, USE_TF_FUNCTION_MIN_SAVING)
        if wins:
            out.append(
                (
                    eager,
                    suggestion(
                        "use-tf-function",
                        f"Wrap the step in tf.function: measured {e / f:.2f}× faster than eager",
                        f"{units.versus('tf.function', f, 'eager', e)}: saves {saving:.0%} of the step "
                        f"({units.p_value(p)}).",
                        "step = tf.function(step)  # Keras: model.compile(..., run_eagerly=False)",
                        f"tf.function saves > {USE_TF_FUNCTION_MIN_SAVING:.0%} of the eager step",
                        eager_median_s=e,
                        function_median_s=f,
                        speedup=e / f,
                        p_value=p,
                    ),
                )
            )
    # In a traced mode, the profiler still sees ops run eagerly: part of the step is outside the tf.function.
    for r in measured(run.results):
        eager_pct = ((r.profile.overview if r.profile else None) or {}).get("host_op_time_eager_percent")
        if r.mode == "eager" or not isinstance(eager_pct, (int, float)) or eager_pct <= EAGER_OP_PERCENT:
            continue
        out.append(
            (
                r,
                suggestion(
                    "use-tf-function",
                    f"{eager_pct:.0f}% of host op time still runs eagerly in {r.mode} mode",
                    f"the profiler's overview: {eager_pct:.1f}% of op time on the host used eager execution "
                    f"(profiled {r.mode} step of {ms(r.median_s)} ms): part of the step runs outside the "
                    "tf.function.",
                    "move the eager part (preprocessing, metrics, Python loops over tensors) inside the "
                    "tf.function",
                    f"host op time eager > {EAGER_OP_PERCENT:g}% (profiler: kEagerReportThresholdInPercent)",
                    host_op_time_eager_percent=eager_pct,
                ),
            )
        )
    return out


def measured_pair(modes: dict[str, Result], a: str, b: str) -> tuple[Result, Result] | None:
    """The job's measured results in modes a and b, when both ran."""
    ra, rb = modes.get(a), modes.get(b)
    if ra and rb and ra.ok and rb.ok and ra.samples and rb.samples:
        return ra, rb
    return None


def xla_pair(modes: dict[str, Result]) -> tuple[Result, Result] | None:
    """The job's measured tf.function and XLA results, when both ran."""
    return measured_pair(modes, "function", "xla")


def rule_enable_xla(run: RunResult) -> list[Finding]:
    out = []
    for modes in by_job_without_mode(run).values():
        pair = xla_pair(modes)
        if not pair:
            continue
        fn, xla = pair
        f, x = fn.median_s, xla.median_s
        saving = step_saving(fn, xla)
        wins, p = saves_more_than(fn, xla, ENABLE_XLA_MIN_SAVING)
        if wins:
            out.append(
                (
                    fn,
                    suggestion(
                        "enable-xla",
                        f"Compile the step with XLA: measured {f / x:.2f}× faster than tf.function",
                        f"tf.function {ms(f)} ms/step vs XLA {ms(x)} ms/step (saves {saving:.0%} of the "
                        "step; "
                        f"{units.p_value(p)}).{_layer_sentence(fn, xla, faster=True)}",
                        "step = tf.function(step, jit_compile=True)  # Keras: model.compile(..., "
                        "jit_compile=True)",
                        f"XLA saves > {ENABLE_XLA_MIN_SAVING:.0%} of the tf.function step",
                        function_median_s=f,
                        xla_median_s=x,
                        speedup=f / x,
                        p_value=p,
                        **_layer_evidence(fn, xla),
                    ),
                )
            )
    return out


def rule_xla_compile_payback(run: RunResult) -> list[Finding]:
    out = []
    for modes in by_job_without_mode(run).values():
        pair = xla_pair(modes)
        if not pair or pair[0].first_call_s is None or pair[1].first_call_s is None:
            continue
        fn, xla = pair
        f, x = fn.median_s, xla.median_s
        wins, p = saves_more_than(fn, xla, XLA_PAYBACK_MIN_SAVING)
        if not wins:
            continue
        # Cheaper steps are guaranteed above, so the payback point is a number of steps, never None.
        pb = payback(xla.first_call_s, x, fn.first_call_s, f)
        steps, extra_s, saving_s = pb.steps, pb.extra_first_call_s, pb.saving_per_step_s
        when = "from the first step: its first call is not slower" if steps == 0 else f"after {steps:,} steps"
        out.append(
            (
                xla,
                suggestion(
                    "xla-compile-payback",
                    f"XLA's compile cost pays back {when}",
                    f"XLA's first call takes {xla.first_call_s:.2f} s vs {fn.first_call_s:.2f} s for "
                    "tf.function "
                    f"({extra_s:+.2f} s); each step then saves {ms(saving_s)} ms ({ms(f)} → {ms(x)} ms/step; "
                    f"{units.p_value(p)}): payback = {max(extra_s, 0):.2f} s / {ms(saving_s)} ms = {steps:,} "
                    "steps.",
                    f"step = tf.function(step, jit_compile=True)  # pays off for runs longer than {steps:,} "
                    "steps",
                    f"XLA saves > {XLA_PAYBACK_MIN_SAVING:.0%} of the tf.function step",
                    payback_steps=steps,
                    xla_first_call_s=xla.first_call_s,
                    function_first_call_s=fn.first_call_s,
                    function_median_s=f,
                    xla_median_s=x,
                    p_value=p,
                ),
            )
        )
    return out


def rule_avoid_xla(run: RunResult) -> list[Finding]:
    out = []
    for modes in by_job_without_mode(run).values():
        fn, xla = modes.get("function"), modes.get("xla")
        if fn and xla and fn.ok and xla.status == "failed" and xla.error and "XLA" in str(xla.error.message):
            out.append(
                (
                    xla,
                    suggestion(
                        "avoid-xla",
                        "XLA cannot compile this step: keep plain tf.function",
                        f"the XLA run failed: {xla.error.message}; tf.function ran at {ms(fn.median_s)} "
                        "ms/step.",
                        "step = tf.function(step)  # no jit_compile=True; or compile only the numeric part "
                        "with XLA",
                        "the XLA run failed while tf.function ran",
                        function_median_s=fn.median_s,
                        xla_error=xla.error.message,
                    ),
                )
            )
            continue
        pair = xla_pair(modes)
        if not pair:
            continue
        fn, xla = pair
        f, x = fn.median_s, xla.median_s
        loss = -step_saving(fn, xla)
        loses, p = slower_by_more_than(fn, xla, AVOID_XLA_MIN_LOSS)
        if loses:
            out.append(
                (
                    xla,
                    suggestion(
                        "avoid-xla",
                        f"XLA is {x / f:.2f}× slower than tf.function here: leave jit_compile off",
                        f"XLA {ms(x)} ms/step vs tf.function {ms(f)} ms/step: {loss:.0%} slower, "
                        f"{ms(x - f)} ms lost per step "
                        f"({units.p_value(p)}).{_layer_sentence(fn, xla, faster=False)}",
                        "step = tf.function(step)  # jit_compile=False; Keras: model.compile(..., "
                        "jit_compile=False)",
                        f"XLA step > {AVOID_XLA_MIN_LOSS:.0%} slower than tf.function",
                        function_median_s=f,
                        xla_median_s=x,
                        slowdown=x / f,
                        loss_per_step_s=x - f,
                        p_value=p,
                        **_layer_evidence(fn, xla),
                    ),
                )
            )
        # Every measured pair, whatever the whole step's verdict: XLA can win on some layers and lose on
        # others. (Run from here so the code needs no new entry in the advisor's rule list; see
        # jit_compile_part.)
        part = jit_compile_part(fn, xla)
        if part is not None:
            out.append(part)
    return out


def _split(fn: Result, xla: Result) -> layer_split.ModeSplit | None:
    return layer_split.split_of(fn, xla)


def _layer_sentence(fn: Result, xla: Result, faster: bool, top: int = 2) -> str:
    """ " Per layer (timed step split by profiled op time): conv_1 (mostly Conv2D) takes 9.8 ms under XLA vs
    3.1 ms in the graph; ..." naming the layers that decide the verdict (most saved, or most lost, first);
    empty without both profiles."""
    split = _split(fn, xla)
    if split is None:
        return ""
    key = (
        (lambda lt: (lt.function_us or 0) - (lt.xla_us or 0))
        if faster
        else (lambda lt: (lt.xla_us or 0) - (lt.function_us or 0))
    )
    deciding = [
        lt
        for lt in sorted(split.layers, key=key, reverse=True)
        if lt.function_us is not None and lt.xla_us is not None and key(lt) > 0
    ][:top]
    if not deciding:
        return ""
    return f" Per layer ({split.basis}): " + "; ".join(layer_split.describe(lt) for lt in deciding) + "."


def _layer_evidence(fn: Result, xla: Result) -> dict:
    split = _split(fn, xla)
    if split is None:
        return {}
    return {"layers": [lt.to_json() for lt in split.layers], "phases": split.phases}


def jit_compile_part(fn: Result, xla: Result) -> Finding | None:
    """`jit-compile-part`: XLA made some layers faster and others slower, each by LAYER_SPLIT_MIN_RATIO or
    more and by at least LAYER_SPLIT_MIN_SHARE of the tf.function step, with both profiles attributing all but
    LAYER_SPLIT_MAX_UNATTRIBUTED of their op time: compile only the faster part."""
    split = _split(fn, xla)
    if split is None or not split.attributed:
        return None
    step_us = fn.median_s * 1e6
    faster, slower = split.faster(step_us), split.slower(step_us)
    if not faster or not slower:
        return None
    names = ", ".join(lt.layer for lt in faster)
    return (
        xla,
        suggestion(
            "jit-compile-part",
            f"Compile only {names} with XLA: it speeds those layers up and slows others down",
            f"per layer ({split.basis}), XLA speeds up: "
            f"{'; '.join(layer_split.describe(lt) for lt in faster[:3])}. "
            f"It slows down: {'; '.join(layer_split.describe(lt) for lt in slower[:3])} "
            f"(whole step: {units.versus('XLA', xla.median_s, 'tf.function', fn.median_s)}).",
            f"wrap the part computing {names} in its own tf.function(jit_compile=True) and call it from the "
            "plain tf.function step (keep jit_compile off on the step)",
            f"some layers >= {LAYER_SPLIT_MIN_RATIO:g}x faster and others >= {LAYER_SPLIT_MIN_RATIO:g}x "
            "slower under "
            f"XLA, each difference >= {LAYER_SPLIT_MIN_SHARE:.0%} of the tf.function step, <= "
            f"{LAYER_SPLIT_MAX_UNATTRIBUTED:.0%} of either mode's op time unattributed",
            faster_layers=[lt.layer for lt in faster],
            slower_layers=[lt.layer for lt in slower],
            layers=[lt.to_json() for lt in split.layers],
            function_median_s=fn.median_s,
            xla_median_s=xla.median_s,
        ),
    )
