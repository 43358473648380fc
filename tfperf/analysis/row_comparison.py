"""One row of a comparison: the same job in two runs, and whether the change between them is real.

For a pair of ok rows:

- the ratio of medians, current / base (above 1 = slower), with a 99% bootstrap confidence interval that
  resamples whole repeats, then the steps within them (`BOOTSTRAP_RESAMPLES` times, fixed seed, so the same
  files give the same interval), because steps within one repeat are not independent;
- a two-sided Mann–Whitney U test on the raw samples (scipy.stats.mannwhitneyu), significant at p < 0.01,
  as asv does before applying its factor;
- each run's own spread: how far apart the medians of its repeats are (max / min − 1). With `processes: 2`
  or more, the repeats come from several worker processes, so this includes the process-to-process offsets
  that no single process shows (measured on a 2-core VM: a ~1 ms step moved 20–40% between processes).

A row is a `regression` only when it is significantly slower, its ratio is beyond the threshold (default
10%), its interval excludes no change, AND the change is larger than either run's spread: a move the same
code makes between its own repeats is not evidence of anything. An `improvement` likewise the other way.
When either side is noisy (IQR above `figures.thresholds.NOISY_FRACTION` of the median, where
torch.utils.benchmark warns) the verdict also needs the two interquartile ranges apart by more than the
threshold (`iqr_separation`). A change beyond the threshold that fails any of these is `inconclusive`, and the
reason says which test it failed, instead of passing silently. Everything else is `unchanged`.

Beside time, the diagnostics are compared: a tracing count that grew makes the row a regression (retracing
is a bug, not noise); the input-bound share of the step, first-call time and peak memory are reported as
worse / better when they move beyond their margins, as warnings. The input-bound share is the one figure
`tfperf.figures.measures.input_bound` defines (the measured wait when there is one, else the profiler's),
compared once and only between figures of the same source; the other figure is quoted beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tfperf import units
from tfperf.analysis.threshold import threshold_text
from tfperf.figures.measures import input_bound, noise_fraction
from tfperf.figures.thresholds import NOISY_FRACTION, REGRESSION_ALPHA, REGRESSION_THRESHOLD, SHARE_MARGIN
from tfperf.results.model import JobSpec, Result
from tfperf.stats.significance import (
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE,
    MIN_SAMPLES,
    iqr_separation,
    mann_whitney_p,
    repeat_bootstrap_ratio_ci,
    repeat_spread,
)

METHOD = (
    f"ratio of medians (current / base) with a {CONFIDENCE:.0%} bootstrap interval ({BOOTSTRAP_RESAMPLES} "
    f"resamples of whole repeats, then of steps within them); two-sided Mann-Whitney U test on the raw "
    f"samples, significant at p < {REGRESSION_ALPHA}; a change must also exceed each run's own "
    f"repeat-to-repeat spread"
)

VERDICTS = ("regression", "improvement", "inconclusive", "unchanged")


@dataclass
class DiagnosticDelta:
    """One diagnostic figure in both runs. `verdict` is worse | better | same | n/a."""

    name: str
    base: float | None
    current: float | None
    verdict: str
    note: str = ""


@dataclass
class RowComparison:
    case: str
    mode: str
    batch_size: int | None
    task: str
    device: str
    verdict: str  # regression | improvement | inconclusive | unchanged
    reason: str
    base_status: str = "ok"
    current_status: str = "ok"
    base_median_s: float | None = None
    current_median_s: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    base_n: int = 0
    current_n: int = 0
    base_iqr_fraction: float | None = None
    current_iqr_fraction: float | None = None
    base_processes: int = 0
    current_processes: int = 0
    base_spread: float | None = None  # max / min - 1 over the run's repeat medians (None: one repeat)
    current_spread: float | None = None
    noisy: bool = False
    time_verdict: str | None = None  # the verdict from step time alone
    diagnostics: list[DiagnosticDelta] = field(default_factory=list)

    @property
    def spec(self) -> JobSpec:
        return JobSpec(self.case, self.mode, self.device, self.task, self.batch_size)

    @property
    def key(self) -> tuple:
        return self.spec.key

    @property
    def label(self) -> str:
        return self.spec.full_label


def classify_time(
    ratio: float,
    ci: tuple[float, float],
    p: float,
    noisy: bool,
    threshold: float,
    separation: int = 0,
    spread: float | None = None,
) -> tuple[str, str]:
    """The step-time verdict and a one-line reason, from the ratio, its interval, the U test's p, for noisy
    samples whether the interquartile ranges are separated by more than the threshold, and the larger of the
    two runs' own repeat-to-repeat spreads (None when neither run has two repeats)."""
    slower, faster = 1 + threshold, 1 / (1 + threshold)
    significant = p < REGRESSION_ALPHA
    change = f"{ratio - 1:+.1%}"
    sig = units.p_value(p)
    interval = f"interval {ci[0]:.2f}–{ci[1]:.2f}"
    if ratio > slower or ratio < faster:
        word = "slower" if ratio > 1 else "faster"
        apart = separation > 0 if ratio > 1 else separation < 0
        if noisy and not apart:
            return "inconclusive", (
                f"{change} {word}, samples too noisy to decide (IQR above "
                f"{NOISY_FRACTION:.0%} of the median; {interval})"
            )
        if not significant:
            return (
                "inconclusive",
                f"{change} {word} but not significant ({sig}): too few or scattered samples",
            )
        if ci[0] <= 1 <= ci[1]:
            return "inconclusive", f"{change} {word} ({sig}), but the {interval} includes no change"
        if spread is not None and abs(math.log(ratio)) <= math.log1p(spread):
            return "inconclusive", (
                f"{change} {word} ({sig}), but within the runs' own spread: the same code's "
                f"repeats differed by up to {spread:.0%}"
            )
        if noisy:
            return (
                "regression" if ratio > 1 else "improvement",
                f"{change} {word} ({sig}), clear-cut despite noisy samples (quartiles apart)",
            )
        beyond = f"beyond the {threshold_text(threshold)} threshold" + (
            f" and the runs' {spread:.0%} spread" if spread else ""
        )
        return ("regression" if ratio > 1 else "improvement"), f"{change} {word} ({sig}), {beyond}"
    if significant:
        return (
            "unchanged",
            f"{change} ({sig}): significant but within the {threshold_text(threshold)} threshold",
        )
    return "unchanged", f"{change} ({sig}): within noise"


# ---------------------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def compare_input_bound(base: Result, current: Result) -> DiagnosticDelta | None:
    """The input-bound share of the step in both runs, compared once (`figures.measures.input_bound`).

    Figures of different sources are not compared: the profiler's counts what xprof attributes to input from
    one profiled pass (for an eager step, Python dispatch too), the measured one is the wait in next(iterator)
    on every timed step. The other figure, when recorded, is quoted in the note for readers."""
    b, c = input_bound(base), input_bound(current)
    if b is None and c is None:
        return None
    if b is None or c is None:
        return DiagnosticDelta(
            "input_bound", b and b.fraction, c and c.fraction, "n/a", "recorded in one run only"
        )
    if b.source != c.source:
        return DiagnosticDelta(
            "input_bound",
            b.fraction,
            c.fraction,
            "n/a",
            f"{b.source} in base, {c.source} now: not comparable",
        )
    d = c.fraction - b.fraction
    verdict = "worse" if d > SHARE_MARGIN else "better" if d < -SHARE_MARGIN else "same"
    note = f"{b.fraction:.0%} → {c.fraction:.0%} of the step, {b.source}"
    if b.source == "measured" and b.profiler is not None and c.profiler is not None:
        note += f"; the profiler's figure {b.profiler:.0%} → {c.profiler:.0%}"
    return DiagnosticDelta("input_bound", b.fraction, c.fraction, verdict, note)


def compare_diagnostics(base: Result, current: Result, threshold: float) -> list[DiagnosticDelta]:
    out = []
    b, c = base.tracing_count, current.tracing_count
    if b is not None or c is not None:
        if b is None or c is None:
            out.append(DiagnosticDelta("tracing_count", b, c, "n/a", "recorded in one run only"))
        elif c > b:
            out.append(
                DiagnosticDelta("tracing_count", b, c, "worse", f"traced {c} times, was {b}: retracing grew")
            )
        elif c < b:
            out.append(DiagnosticDelta("tracing_count", b, c, "better", f"traced {c} times, was {b}"))
        else:
            out.append(DiagnosticDelta("tracing_count", b, c, "same"))
    inputs = compare_input_bound(base, current)
    if inputs:
        out.append(inputs)
    for name, bv, cv in (
        ("first_call_s", _num(base.first_call_s), _num(current.first_call_s)),
        ("peak_memory_bytes", _num(base.peak_memory_bytes), _num(current.peak_memory_bytes)),
    ):
        if bv is None and cv is None:
            continue
        if bv is None or cv is None:
            out.append(DiagnosticDelta(name, bv, cv, "n/a", "recorded in one run only"))
            continue
        if bv <= 0:
            verdict = "worse" if cv > 0 else "same"
            out.append(DiagnosticDelta(name, bv, cv, verdict))
            continue
        ratio = cv / bv
        verdict = "worse" if ratio > 1 + threshold else "better" if ratio < 1 / (1 + threshold) else "same"
        out.append(DiagnosticDelta(name, bv, cv, verdict, f"{ratio - 1:+.0%}"))
    return out


def compare_results(base: Result, current: Result, threshold: float = REGRESSION_THRESHOLD) -> RowComparison:
    row = RowComparison(
        case=current.case,
        mode=current.mode,
        batch_size=current.batch_size,
        task=current.task,
        device=current.device,
        verdict="unchanged",
        reason="",
        base_status=base.status,
        current_status=current.status,
        base_n=len(base.samples),
        current_n=len(current.samples),
        base_processes=base.process_count,
        current_processes=current.process_count,
    )
    row.diagnostics = compare_diagnostics(base, current, threshold)
    b_ok, c_ok = base.ok and base.samples, current.ok and current.samples
    if base.samples:
        row.base_median_s = base.median_s
        row.base_iqr_fraction = noise_fraction(base)
    if current.samples:
        row.current_median_s = current.median_s
        row.current_iqr_fraction = noise_fraction(current)

    if b_ok and not c_ok:
        err = current.error.type if current.error else None
        row.verdict, row.reason = (
            "regression",
            f"ran in base, {current.status} now" + (f" ({err})" if err else ""),
        )
        return row
    if c_ok and not b_ok:
        row.verdict, row.reason = "improvement", f"{base.status} in base, runs now"
        return row
    if not b_ok and not c_ok:
        row.verdict, row.reason = (
            "inconclusive",
            f"no timing to compare ({base.status} in base, {current.status} now)",
        )
        return row
    if not (
        row.base_median_s and row.base_median_s > 0 and row.current_median_s and row.current_median_s > 0
    ):
        row.verdict, row.reason = "inconclusive", "a median step of zero: nothing to divide by"
        return row
    if len(base.samples) < MIN_SAMPLES or len(current.samples) < MIN_SAMPLES:
        row.ratio = row.current_median_s / row.base_median_s if row.base_median_s else None
        row.verdict, row.reason = (
            "inconclusive",
            (f"too few samples to test ({len(base.samples)} vs {len(current.samples)}; need {MIN_SAMPLES})"),
        )
    else:
        row.ratio = row.current_median_s / row.base_median_s
        base_groups, current_groups = base.repeat_groups(), current.repeat_groups()
        row.ci_low, row.ci_high = repeat_bootstrap_ratio_ci(base_groups, current_groups)
        row.p_value = mann_whitney_p(base.samples, current.samples)
        row.noisy = base.noisy or current.noisy
        row.base_spread, row.current_spread = repeat_spread(base_groups), repeat_spread(current_groups)
        spreads = [x for x in (row.base_spread, row.current_spread) if x is not None]
        method = _timing_difference(base, current)
        row.verdict, row.reason = classify_time(
            row.ratio,
            (row.ci_low, row.ci_high),
            row.p_value,
            row.noisy or bool(method),
            threshold,
            iqr_separation(base.samples, current.samples, threshold),
            max(spreads) if spreads else None,
        )
        if method:
            row.reason += f"; {method}"
    row.time_verdict = row.verdict
    grew = next((d for d in row.diagnostics if d.name == "tracing_count" and d.verdict == "worse"), None)
    if grew:
        row.verdict = "regression"
        row.reason = f"{grew.note}; time: {row.reason}"
    return row


def _timing_difference(base: Result, current: Result) -> str | None:
    """The two runs timed the step differently (one sync per step vs per block): the per-step sync cost is
    in one set of samples and not the other, so the row is held to the noisy rows' clear-cut standard."""

    def method(r: Result) -> str | None:
        t = r.timing
        if t is None or not t.method:
            return None
        return t.method + (f"×{t.block_size}" if t.method == "blocked" and t.block_size else "")

    b, c = method(base), method(current)
    if b and c and b.split("×")[0] != c.split("×")[0]:
        return f"timed differently ({b} in base, {c} now)"
    return None
