"""The verdict per case, the first thing every output shows: the mode to use and by how much, the best
measured fix, what was not recommended and why.

Nothing is decided here. The mode to use is the one the advisor's suggestions name (`quantize-tflite`,
`enable-xla`, `use-tf-function`); without one, tf.function (the mode a model is deployed in) is compared with
eager by `tfperf.figures.decisions.significant`, the test every suggestion passes. What is not recommended is
worded by `verdicts.xla_verdict` (XLA against tf.function, with the advisor's margins) and by the what-if
re-runs the advisor did not turn into suggestions. The best measured fix is the top card of
`ranked.ranked_cards`. The HTML page, report.md and the terminal print `case_verdicts(run)`, so the three say
the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tfperf import units
from tfperf.figures import measures
from tfperf.figures.decisions import significant
from tfperf.figures.thresholds import USE_TF_FUNCTION_MIN_SAVING
from tfperf.report.ranked import ranked_cards
from tfperf.report.sections import allreduce_share
from tfperf.report.summary import failures
from tfperf.report.verdicts import job, significance_words, xla_verdict
from tfperf.results.model import Result, RunResult

# The codes that choose a mode, in the order they win: a deployment choice, then XLA, then tf.function.
MODE_CODES = ("quantize-tflite", "enable-xla", "use-tf-function")
# Codes that are about the mode choice or the measurement, not a fix to the model or its pipeline.
NOT_A_FIX = MODE_CODES + ("avoid-xla", "xla-compile-payback", "noisy-measurement")
MODE_WORDS = {"function": "tf.function", "xla": "XLA (jit_compile=True)", "eager": "eager"}


@dataclass(frozen=True)
class CaseVerdict:
    """What one case answers. `use_mode` is the recommended mode (None when nothing ran)."""

    case: str
    use_mode: str | None
    use: str  # "Use XLA (jit_compile=True)"
    gain: str  # "measured 2.67× faster than tf.function", or why there is no measured gain
    best_fix: str | None  # "cache(): measured 2.39× faster (125.50 ms → 52.50 ms)"
    not_recommended: tuple[str, ...]
    notes: tuple[str, ...]  # scaling, failures
    compared: tuple[str, ...] = ()  # every mode's median at one batch size, against tf.function (else eager)
    compared_to: str | None = None  # the mode the factors in `compared` are against

    def lines(self) -> list[str]:
        """The verdict as plain lines, for report.md and the terminal."""
        out = [f"{self.case}: {self.use}" + (f" — {self.gain}" if self.gain else "")]
        if self.compared:
            out.append(f"  measured (vs {self.compared_to}): " + " · ".join(self.compared))
        if self.best_fix:
            out.append(f"  best measured fix: {self.best_fix}")
        out += [f"  not recommended: {t}" for t in self.not_recommended]
        out += [f"  note: {t}" for t in self.notes]
        return out


def _after_colon(title: str) -> str:
    """The factor half of an advisor title ("Compile the step with XLA: measured 2.67× faster ...")."""
    return title.split(": ", 1)[1] if ": " in title else title


def _mode_choice(results: list[Result]) -> tuple[str | None, str, str]:
    """(mode, "Use ..." words, gain words) from the advisor's mode suggestions, else the significance test."""
    for code in MODE_CODES:
        for r in results:
            for s in r.suggestions:
                # use-tf-function also flags eager ops inside a traced step; only the eager comparison has a
                # speed-up.
                if s.code != code or (code == "use-tf-function" and "speedup" not in (s.evidence_data or {})):
                    continue
                mode = r.mode if code == "quantize-tflite" else "xla" if code == "enable-xla" else "function"
                verb = "Deploy with" if code == "quantize-tflite" else "Use"
                return mode, f"{verb} {MODE_WORDS.get(mode, mode)}", _after_colon(units.text(s.title))
    best = measures.fastest(results)
    if best is None:
        return None, "nothing measured", ""
    if len({r.mode for r in measures.measured(results)}) == 1:
        # A one-mode case (a pipeline, a distributed job): the answer is its fix or its scaling, not a mode.
        return best.mode, f"{MODE_WORDS.get(best.mode, best.mode)} (the one mode measured)", ""
    fn = measures.same_job_in_mode(results, best, "function") or next(
        (r for r in measures.measured(results) if r.mode == "function"), None
    )
    if fn is None:
        return best.mode, f"{MODE_WORDS.get(best.mode, best.mode)} (fastest measured)", ""
    eager = measures.same_job_in_mode(results, fn, "eager")
    if eager is None:
        return "function", "Use tf.function", "no eager run to compare with"
    sig, p = significant(eager, fn)
    versus = units.versus("tf.function", fn.median_s, "eager", eager.median_s)
    if sig and fn.median_s > eager.median_s:
        return "eager", "Use eager", f"{versus}, {units.p_value(p)}: tracing does not pay here"
    why = (
        f"not significantly ({significance_words(eager, fn, p)})"
        if not sig
        else f"under the {units.percent(USE_TF_FUNCTION_MIN_SAVING)} the advisor asks for"
    )
    return "function", "Keep tf.function", f"{versus}, {why}: no speed-up to claim"


def _not_recommended(results: list[Result], use_mode: str | None) -> list[str]:
    out = []
    if use_mode != "xla":
        xla = xla_verdict(results)
        avoid = [units.text(s.title) for r in results for s in r.suggestions if s.code == "avoid-xla"]
        if avoid:
            out += avoid
        elif xla is not None:
            out.append(xla.text)
    # What-if re-runs the advisor did not keep: measured, and not faster by its rule.
    for r in results:
        for w in r.what_if or []:
            if w.helped is False and not w.error and not w.skipped and w.speedup is not None:
                out.append(f"{w.change}: {units.speedup(w.speedup)}, did not help ({job(r)})")
    return list(dict.fromkeys(out))


def _notes(results: list[Result], use_mode: str | None) -> list[str]:
    out = []
    if use_mode == "xla":
        xla = xla_verdict(results)
        if xla is not None:
            out.append(xla.text)
    for r in results:
        if r.replicas and r.scaling_efficiency is not None:
            share = allreduce_share(r)
            out.append(
                f"{job(r)} on {r.replicas} replicas: {units.percent(r.scaling_efficiency)} scaling efficiency"
                + (f", all-reduce {units.percent(share)} of op time" if share is not None else "")
            )
    out += [f.text for f in failures(results)]
    return out


def modes_compared(results: list[Result]) -> tuple[tuple[str, ...], str | None]:
    """Every mode of the fastest job's batch size, fastest first, each against tf.function (else eager):
    (("xla 5.59 ms, 1.26x", "function 7.06 ms", "eager 41.38 ms, 0.17x (slower)"), "function")."""
    best = measures.fastest(results)
    if best is None:
        return (), None
    same = [
        r
        for r in measures.measured(results)
        if measures.job_without_mode(r) == measures.job_without_mode(best)
    ]
    if len(same) < 2:
        return (), None
    modes = {r.mode for r in same}
    ref = "function" if "function" in modes else "eager" if "eager" in modes else None
    parts = []
    for r in sorted(same, key=lambda r: r.median_s):
        factor = measures.speedup_over(r, same, ref) if ref and r.mode != ref else None
        parts.append(
            f"{r.mode} {units.seconds(r.median_s)}" + (f", {units.speedup(factor)}" if factor else "")
        )
    return tuple(parts), ref


def case_verdict(case: str, results: list[Result]) -> CaseVerdict:
    use_mode, use, gain = _mode_choice(results)
    fixes = [c for c in ranked_cards(results) if c.code not in NOT_A_FIX and c.gain is not None]
    best_fix = None
    if fixes:
        card = fixes[0]
        place = next((p for p in card.places if p.gain == card.gain), card.places[0])
        steps = (
            f" ({units.seconds(place.before_s)} → {units.seconds(place.after_s)})"
            if place.before_s and place.after_s
            else ""
        )
        best_fix = (
            card.title + steps
            if card.gain.measured
            else f"none measured (`tfperf run --what-if` re-runs each change); {card.title}: "
            f"{card.gain_text} if the wait went away"
        )
    return CaseVerdict(
        case,
        use_mode,
        use,
        gain,
        best_fix,
        tuple(_not_recommended(results, use_mode)),
        tuple(_notes(results, use_mode)),
        *modes_compared(results),
    )


def one_question(run: RunResult) -> list[Result] | None:
    """The suite's one job per case, first case first, when every case measured exactly one job (an
    input-pipeline suite: naive, prefetch, cache ...): its cases are answers to one question, compared with
    the first. None otherwise (fewer than three such cases, or a case with several modes or batch sizes)."""
    by_case: dict[str, list[Result]] = {}
    for r in measures.measured(run.results):
        if r.mode != measures.SERVE_MODE:
            by_case.setdefault(r.case, []).append(r)
    if len(by_case) < 3 or any(len(rs) != 1 for rs in by_case.values()):
        return None
    return [rs[0] for rs in by_case.values()]


def against_first(first: Result, r: Result) -> tuple[str, bool]:
    """A one-question case against the first case, in words, and whether it is faster by the advisor's
    test."""
    sig, p = significant(first, r)
    faster = sig and r.median_s < first.median_s
    versus = units.versus(r.case, r.median_s, first.case, first.median_s)
    return (
        f"{versus}, {units.p_value(p)}"
        if sig
        else f"{versus}, not significantly ({significance_words(first, r, p)})"
    ), faster


def case_verdicts(run: RunResult) -> list[CaseVerdict]:
    """One verdict per case, in run order; in a one-question suite, each case's gain is against the first."""
    cases = dict.fromkeys(r.case for r in run.results)
    verdicts = [case_verdict(c, [r for r in run.results if r.case == c]) for c in cases]
    jobs = one_question(run)
    if jobs:
        first, gains = jobs[0], {r.case: against_first(jobs[0], r)[0] for r in jobs[1:]}
        verdicts = [
            dataclasses.replace(v, gain=gains[v.case])
            if v.case in gains and not v.gain
            else dataclasses.replace(v, gain="the baseline the other cases are compared with")
            if v.case == first.case
            else v
            for v in verdicts
        ]
    return verdicts


def verdict_lines(run: RunResult) -> list[str]:
    return [line for v in case_verdicts(run) for line in v.lines()]
