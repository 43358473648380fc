"""The `retracing` rule: a step function that traced more than once re-built its graph; name what changed."""

from __future__ import annotations

from tfperf.analysis.advisor.suggestion import Finding, suggestion
from tfperf.figures.thresholds import MAX_TRACES_OK
from tfperf.measure.retrace_fixes import effective_traces, fix_for
from tfperf.results.model import Result, RunResult
from tfperf.results.records import Retrace


def describe_retrace(entry: Retrace) -> str:
    if entry.changed:
        return str(entry.changed)
    arg = entry.argument or "an argument"
    return f"{arg}: {entry.before} -> {entry.after} ({entry.kind or 'changed'})"


def fallback_retrace_fix(entries: list[Retrace]) -> str:
    """The fix when `tfperf.measure.retrace_fixes.fix_for` has none: by the kind of change that caused the
    retrace."""
    entry = next((e for e in entries if e.kind), entries[0] if entries else Retrace())
    kind = str(entry.kind or "").lower()
    arg = entry.argument or "the argument"
    changed = str(entry.changed or "")
    if "python" in kind or "python" in changed:
        after = "..." if entry.after is None else entry.after
        return f"pass {arg} as a tensor, not a Python value: f(..., {arg}=tf.constant({after}))"
    if "shape" in kind or "shape" in changed:
        return (
            "@tf.function(input_signature=[tf.TensorSpec([None, ...], dtype)])  # None in the dims that "
            "vary; "
            "or @tf.function(reduce_retracing=True)"
        )
    return "@tf.function(reduce_retracing=True)  # or give a fixed input_signature"


def retrace_fix(result: Result) -> str:
    # fix_for(result) reads tracing.signature too, so a shape fix is a complete input_signature. It has
    # nothing to say when no retrace reason was recorded (e.g. an old results file): then the generic fix.
    return fix_for(result) or fallback_retrace_fix(result.retraces)


def rule_retracing(run: RunResult) -> list[Finding]:
    out = []
    for r in run.results:
        # A first call that created variables traces twice (tracing.first_use_traces): not a retrace.
        if r.mode == "eager" or r.tracing_count is None or effective_traces(r) <= MAX_TRACES_OK:
            continue
        first_use = r.tracing_count - effective_traces(r)
        what = "; ".join(describe_retrace(e) for e in r.retraces[:3]) or "the reason was not recorded"
        more = f" (and {len(r.retraces) - 3} more)" if len(r.retraces) > 3 else ""
        out.append(
            (
                r,
                suggestion(
                    "retracing",
                    f"The step function traced {r.tracing_count} times: each retrace re-builds the graph",
                    f"{r.tracing_count} traces during warm-up and timed steps ({MAX_TRACES_OK + first_use} "
                    "expected); "
                    f"changed: {what}{more}.",
                    retrace_fix(r),
                    f"tracing_count > {MAX_TRACES_OK}",
                    tracing_count=r.tracing_count,
                    retraces=len(r.retraces),
                    arguments=sorted({str(e.argument) for e in r.retraces if e.argument}),
                ),
            )
        )
    return out
