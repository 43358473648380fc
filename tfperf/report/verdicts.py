"""The sentences every output writes about one figure: the terminal table, report.md and the HTML page call
these, so they cannot word the same verdict two ways.

The figures themselves come from `tfperf.figures.measures`, the decisions from `tfperf.figures.decisions` and
the advisor's suggestions; this module only puts them into words. No TensorFlow, no markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tfperf import units
from tfperf.figures import measures
from tfperf.figures.decisions import significant, step_saving, within_spread
from tfperf.figures.thresholds import (
    AVOID_XLA_MIN_LOSS,
    SHARE_MARGIN,
    SIGNIFICANCE_ALPHA,
    XLA_PAYBACK_MIN_SAVING,
)
from tfperf.results.model import Result
from tfperf.results.records import Suggestion


def suggestions_of(r: Result, code: str) -> list[Suggestion]:
    """The advisor's suggestions with this code attached to one result."""
    return [s for s in r.suggestions if s.code == code]


def job(r: Result) -> str:
    """A result named within its case: its mode and, when it has one, its batch size."""
    return r.mode + (f" (batch {r.batch_size})" if r.batch_size is not None else "")


# --- input-bound --------------------------------------------------------------------------------------------

SOURCE_WORDS = {
    "measured": "measured wait in next(iterator) on every timed step",
    "profiler": "the profiler's input share, one profiled pass",
}


def input_bound_cell(r: Result, missing: str = units.MISSING) -> str:
    """tfperf's input-bound share of the step for a table cell: "3.0%", or "31.0% (profiler)" when no wait was
    measured and the profiler's figure decides."""
    ib = measures.input_bound(r)
    if ib is None:
        return missing
    return units.percent(ib.fraction, 1) + (" (profiler)" if ib.source == "profiler" else "")


def input_bound_verdict(r: Result) -> str | None:
    """tfperf's verdict in words: "2.0% of the step waits for input (measured wait ...): not input-bound"."""
    ib = measures.input_bound(r)
    if ib is None:
        return None
    level = f"{ib.level} input-bound" if ib.level else "not input-bound"
    return f"{units.percent(ib.fraction, 1)} of the step waits for input ({SOURCE_WORDS[ib.source]}): {level}"


def profiler_conclusion(r: Result) -> str | None:
    c = r.profile.input_conclusion if r.profile else None
    return c if isinstance(c, str) and c.strip() else None


def input_bound_difference(r: Result) -> str | None:
    """Why the profiler's words or number differ from tfperf's verdict, when they do; None when they agree."""
    ib = measures.input_bound(r)
    conclusion = profiler_conclusion(r) or ""
    if "All Others" in conclusion:
        ours = (
            "tfperf counts only the wait measured around next(iterator)"
            if ib and ib.source == "measured"
            else "tfperf counts only the profiler's input time"
        )
        return (
            "xprof's conclusion quotes its 'All Others' time: host time outside TensorFlow ops (in eager "
            "mode, "
            f"Python dispatching each op), not time waiting for input; {ours}"
        )
    if (
        ib
        and ib.source == "measured"
        and ib.profiler is not None
        and abs(ib.profiler - ib.fraction) > SHARE_MARGIN
    ):
        return (
            "the profiler's figure comes from one profiled pass and counts what xprof attributes to input; "
            "tfperf's verdict is the wait measured around next(iterator) on every timed step"
        )
    return None


# --- XLA against tf.function --------------------------------------------------------------------------------


@dataclass(frozen=True)
class XlaVerdict:
    """What the report says about XLA's compile cost against a reference mode for one job.

    `steps` (steps after the first call for XLA's total time to drop below the reference's,
    `figures.measures.payback`) is set only when the advisor found the saving real, so the page never shows a
    payback point for a difference the suggestions call noise.
    """

    text: str
    ref_mode: str
    batch_size: int | None
    steps: int | None
    label: str
    p_value: float | None


def _ref_name(mode: str) -> str:
    return "tf.function" if mode == "function" else mode


def xla_verdict(case_results: Iterable[Result]) -> XlaVerdict | None:
    """XLA's payback against tf.function (or eager when no function mode ran), in the advisor's terms: the
    payback step count of its `xla-compile-payback` suggestion, or why there is none (not significant, or
    inside the advisor's margins)."""
    results = list(case_results)
    for x in measures.measured(results):
        if x.mode != "xla":
            continue
        ref = measures.same_job_in_mode(results, x, "function") or measures.same_job_in_mode(
            results, x, "eager"
        )
        if ref is None or x.first_call_s is None or ref.first_call_s is None:
            continue
        return _verdict(x, ref)
    return None


def significance_words(a: Result, b: Result, p: float | None) -> str:
    """The test's outcome in words: the p-value, and when the test passed but `decisions.significant` still
    refused, that the difference is inside the spread the same code shows between its repeats and
    processes."""
    spread = within_spread(a, b)
    if spread is not None and p is not None and p < SIGNIFICANCE_ALPHA:
        return (
            f"{units.p_value(p)} yet inside the {units.percent(spread)} spread between repeats and processes"
        )
    return units.p_value(p)


def _verdict(x: Result, ref: Result) -> XlaVerdict:
    """The advisor's decision (`figures.decisions.significant` and its margins), put into words. Without a
    tf.function run no rule concerns XLA's payback against eager; significance still gates it."""
    name = _ref_name(ref.mode)
    sig, p = significant(ref, x)
    pb = measures.payback(x.first_call_s, x.median_s, ref.first_call_s, ref.median_s)
    saving = step_saving(ref, x)
    p_text = significance_words(ref, x, p)
    head = f"XLA is {units.percent(abs(saving))} {'faster' if saving > 0 else 'slower'} than {name}"

    def verdict(text: str, steps: int | None = None) -> XlaVerdict:
        label = f"XLA pays back: {steps:,} steps" if steps is not None else ""
        return XlaVerdict(text, ref.mode, x.batch_size, steps, label, p)

    if saving > 0:
        if not sig:
            return verdict(f"{head} but not significantly ({p_text}): no XLA suggestion")
        if ref.mode == "function" and saving <= XLA_PAYBACK_MIN_SAVING:
            return verdict(
                f"{head}, within the {units.percent(XLA_PAYBACK_MIN_SAVING)} the advisor treats as a "
                "tie: no XLA suggestion"
            )
        return verdict(
            f"XLA pays back against {name} after {pb.steps:,} steps (first call "
            f"{units.seconds(x.first_call_s)} vs {units.seconds(ref.first_call_s)}, step "
            f"{units.seconds(x.median_s)} vs {units.seconds(ref.median_s)}; {p_text})",
            pb.steps,
        )
    never = f"XLA never pays back against {name}: its step is {x.median_s / ref.median_s:.2f}× {name}'s"
    if not sig:
        return verdict(f"{never}, but not significantly slower ({p_text}): no XLA suggestion")
    if ref.mode == "function" and -saving <= AVOID_XLA_MIN_LOSS:
        return verdict(
            f"{never}, within the {units.percent(AVOID_XLA_MIN_LOSS)} margin: no avoid-xla suggestion"
        )
    return verdict(f"{never} ({p_text})")
