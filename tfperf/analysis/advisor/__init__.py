"""The advisor: rules over measured results that say what to change, each backed by the numbers that fired it.

Every rule is a plain function `rule(run) -> list[(Result, suggestion)]` over a RunResult: no TensorFlow, no
re-measuring. A suggestion (`advisor.suggestion`) is a `Suggestion` record (`tfperf.results.records`) with the
public fields `code, title, evidence, fix` plus `evidence_data` (the numbers behind the evidence sentence, for
scripts) and `threshold` (what the rule compares against). A suggestion is attached to the result it concerns:
`use-tf-function` to the eager result of a case whose function mode is faster, `avoid-xla` to the xla result,
`prefetch` to the result whose what-if run measured it, and so on.

The rules live by concept: `modes` (tf.function, XLA, compile payback), `retracing`, `input` (input-bound,
what-ifs, batch size), `precision` (mixed precision, measured or on a tensor-core GPU), `device` (host-bound,
threading), `noise`, `deploy` (quantization). Their
figures (`tfperf.figures.measures`), the "does A beat B" decision (`tfperf.figures.decisions.significant`: the
U test, and a difference larger than either side's own spread between repeats and processes) and the
thresholds (`tfperf.figures.thresholds`, quoted in docs/suggestions.md) are defined once,
outside the advisor, so the tables, report.md, the HTML page, `compare` and `tune` say the same thing about
the same result.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

from tfperf.analysis.advisor.deploy import (
    FLOAT_BASELINES,
    QUANTIZED_MODES,
    rule_quantize_tflite,
    within_quantization_tolerance,
)
from tfperf.analysis.advisor.device import THREAD_KEYS, rule_host_bound, rule_threading, threading_fix
from tfperf.analysis.advisor.input import (
    WHAT_IF_CODES,
    best_what_if,
    rule_input_bound,
    rule_small_batch,
    rule_what_if,
    what_if_code,
    what_if_speedup,
)
from tfperf.analysis.advisor.modes import (
    rule_avoid_xla,
    rule_enable_xla,
    rule_use_tf_function,
    rule_xla_compile_payback,
)
from tfperf.analysis.advisor.noise import STEADY_THREADS, rule_noisy_measurement
from tfperf.analysis.advisor.precision import rule_mixed_precision, uses_mixed_precision
from tfperf.analysis.advisor.retracing import fallback_retrace_fix, retrace_fix, rule_retracing
from tfperf.analysis.advisor.suggestion import Finding, by_job_without_mode, suggestion
from tfperf.results.model import Result, RunResult
from tfperf.results.records import Suggestion

# Every code, in the order docs/suggestions.md documents them and reports group them.
CODES: tuple[str, ...] = (
    "use-tf-function",
    "enable-xla",
    "avoid-xla",
    "jit-compile-part",
    "xla-compile-payback",
    "retracing",
    "input-bound",
    "prefetch",
    "parallelize-map",
    "cache-dataset",
    "parallel-interleave",
    "small-batch",
    "mixed-precision",
    "host-bound",
    "threading",
    "noisy-measurement",
    "quantize-tflite",
)

RULES: tuple[Callable[[RunResult], list[Finding]], ...] = (
    rule_use_tf_function,
    rule_enable_xla,
    rule_xla_compile_payback,
    rule_avoid_xla,
    rule_retracing,
    rule_input_bound,
    rule_what_if,
    rule_small_batch,
    rule_mixed_precision,
    rule_host_bound,
    rule_threading,
    rule_noisy_measurement,
    rule_quantize_tflite,
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
    for r, s in sorted(pairs, key=lambda rs: order.get(rs[1].code, len(order))):
        out.setdefault(s.code, []).append((r, s))
    return out


__all__ = [
    "CODES",
    "RULES",
    "advise",
    "attach_suggestions",
    "suggestions_by_code",
    "suggestion",
    "Suggestion",
    "Finding",
    "by_job_without_mode",
    "STEADY_THREADS",
    "within_quantization_tolerance",
    "QUANTIZED_MODES",
    "FLOAT_BASELINES",
    "what_if_code",
    "what_if_speedup",
    "best_what_if",
    "WHAT_IF_CODES",
    "threading_fix",
    "THREAD_KEYS",
    "uses_mixed_precision",
    "fallback_retrace_fix",
    "retrace_fix",
    "rule_use_tf_function",
    "rule_enable_xla",
    "rule_xla_compile_payback",
    "rule_avoid_xla",
    "rule_retracing",
    "rule_input_bound",
    "rule_what_if",
    "rule_small_batch",
    "rule_mixed_precision",
    "rule_host_bound",
    "rule_threading",
    "rule_noisy_measurement",
    "rule_quantize_tflite",
]
