"""Compare two runs: tell a real regression from noise, row by row, from the raw samples.

Rows are matched by their job (`JobSpec.key`: case, mode, batch size, task, device). For each pair of ok rows:

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

The gate fails closed (`gate_failures`, exit `EXIT_GATE_FAILED`): a base row missing, failed or with too few
samples in the current run, or an interrupted current run, is not "no regression" (`--allow-missing` accepts
it).

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tfperf import units
from tfperf.errors import TfperfError
from tfperf.figures.measures import input_bound, noise_fraction
from tfperf.figures.thresholds import NOISY_FRACTION, REGRESSION_ALPHA, REGRESSION_THRESHOLD, SHARE_MARGIN
from tfperf.results.model import JobSpec, Result, RunResult
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

# Exit codes of `tfperf compare` and of any command that gates on a comparison (2, unreadable input, is raised
# by load_results). A failed gate is distinct from a regression, so CI can tell "slower" from "not measured".
EXIT_REGRESSED = 1
EXIT_GATE_FAILED = 3


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


@dataclass
class GateFailure:
    """Why the gate cannot say "no regression", the sentence, and the row it is about."""

    kind: str  # interrupted | missing | failed | too_few_samples | nothing_compared
    message: str
    label: str | None = None


@dataclass
class Comparison:
    base_path: str | None
    current_path: str | None
    threshold: float
    method: str
    rows: list[RowComparison] = field(default_factory=list)
    only_in_base: list[dict] = field(default_factory=list)  # {case, mode, batch_size, task, device, status}
    only_in_current: list[dict] = field(default_factory=list)
    # What differs between the two machines or software stacks (TensorFlow, CPU, GPUs, environment variables).
    environment_warnings: list[str] = field(default_factory=list)
    # What makes the verdicts less safe without being a difference: a busy machine, drift, one process per
    # job.
    warnings: list[str] = field(default_factory=list)
    gate_failures: list[GateFailure] = field(default_factory=list)
    allow_missing: bool = False  # --allow-missing: gate failures are listed but do not fail the comparison

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for r in self.rows if r.verdict == v) for v in VERDICTS}

    @property
    def regressed(self) -> bool:
        return any(r.verdict == "regression" for r in self.rows)

    @property
    def gate_failed(self) -> bool:
        return bool(self.gate_failures) and not self.allow_missing

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["counts"] = self.counts()
        d["gate_failed"] = self.gate_failed
        d["exit_code"] = exit_code(self)
        return d


def exit_code(cmp: Comparison) -> int:
    """EXIT_GATE_FAILED (3) when the gate failed, else EXIT_REGRESSED (1) when any row regressed, else 0. A
    failed gate comes first: with rows unmeasured, "regressed" would not be the whole answer."""
    return EXIT_GATE_FAILED if cmp.gate_failed else EXIT_REGRESSED if cmp.regressed else 0


@dataclass(frozen=True)
class Threshold:
    """A threshold as read: `value` is a fraction (0.1 = 10%), `reading` says how the text was read."""

    value: float
    reading: str


THRESHOLD_FORMS = "a percentage such as 10% or a fraction below 1 such as 0.1"


def read_threshold(text: str | float) -> Threshold:
    """'10%' and '1000%' are percentages; a bare number below 1 ('0.1') is a fraction. A bare number of 1 or
    more ('5', '1.5') is refused: either reading is a plausible threshold (5% or 500%), so the user writes
    which one they mean. A Python number is a fraction, as REGRESSION_THRESHOLD is."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, reading = float(text), "a fraction"
    else:
        s = str(text).strip()
        percent = s.endswith("%")
        try:
            value = float(s[:-1] if percent else s)
        except ValueError:
            raise TfperfError(f"--threshold {text}: expected {THRESHOLD_FORMS}") from None
        if math.isfinite(value) and not percent and value >= 1:
            raise TfperfError(
                f"--threshold {text}: ambiguous: write {s}% for a percentage, or "
                f"{threshold_text(value)} if {s} is a fraction"
            )
        value, reading = (value / 100.0, "a percentage") if percent else (value, "a fraction")
    if not math.isfinite(value):
        raise TfperfError(f"--threshold {text}: must be a finite number, {THRESHOLD_FORMS}")
    if value <= 0:
        raise TfperfError(f"--threshold {text}: must be above 0%")
    return Threshold(value, f"--threshold {text} read as {reading}: {threshold_text(value)}")


def parse_threshold(text: str | float) -> float:
    """The threshold as a fraction (see `read_threshold`): '10%' -> 0.10, '0.1' -> 0.1."""
    return read_threshold(text).value


def threshold_text(value: float) -> str:
    """A threshold as a percentage with the digits it has (1.5% stays 1.5%, not 2%), up to three decimals."""
    pct = value * 100
    digits = next((d for d in range(4) if abs(round(pct, d) - pct) <= 1e-9 * max(1.0, abs(pct))), 3)
    return units.percent(value, digits)


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


# ---------------------------------------------------------------------------------------------------------
# Rows and runs
# ---------------------------------------------------------------------------------------------------------


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


def _brief(r: Result) -> dict:
    return {
        "case": r.case,
        "mode": r.mode,
        "batch_size": r.batch_size,
        "task": r.task,
        "device": r.device,
        "status": r.status,
        "label": r.spec.full_label,
    }


def environment_warnings(base: dict, current: dict) -> list[str]:
    """What differs between the two machines or software stacks, in the terms a reader checks first."""
    out = []

    def gpus(env: dict) -> list[str]:
        return [g.get("name", str(g)) if isinstance(g, dict) else str(g) for g in env.get("gpus") or []]

    for key, label in (
        ("tensorflow", "TensorFlow version"),
        ("keras", "Keras version"),
        ("python", "Python version"),
        ("cpu_model", "CPU model"),
        ("cpu_count", "CPU count"),
    ):
        bv, cv = base.get(key), current.get(key)
        if bv != cv and (bv is not None or cv is not None):
            out.append(f"{label} differs: {bv} (base) vs {cv} (current)")
    bg, cg = gpus(base), gpus(current)
    if bg != cg:
        out.append(f"GPUs differ: {', '.join(bg) or 'none'} (base) vs {', '.join(cg) or 'none'} (current)")
    be, ce = base.get("env") or {}, current.get("env") or {}
    for k in sorted(set(be) | set(ce)):
        if be.get(k) != ce.get(k):
            out.append(f"environment variable {k} differs: {be.get(k)!r} (base) vs {ce.get(k)!r} (current)")
    return out


def busy_warnings(base: dict, current: dict) -> list[str]:
    """A run that recorded a load average (1-minute first) above one runnable process per CPU: other processes
    shared the cores its steps were timed on. Not a difference between the runs: the same run can be busy."""
    out = []
    for label, env in (("base", base), ("current", current)):
        load = env.get("load_average")
        load = load[0] if isinstance(load, (list, tuple)) and load else load
        cpus = env.get("cpu_count")
        if isinstance(load, (int, float)) and isinstance(cpus, int) and cpus > 0 and load > cpus:
            out.append(
                f"the machine was busy during the {label} run (load average {load:.1f} on {cpus} CPUs): "
                f"its timings include waiting for other processes"
            )
    return out


def compare_runs(
    base: RunResult,
    current: RunResult,
    threshold: float = REGRESSION_THRESHOLD,
    base_path: str | Path | None = None,
    current_path: str | Path | None = None,
    allow_missing: bool = False,
) -> Comparison:
    """Match rows by (case, mode, batch size, task, device) and compare each pair; list the unmatched ones,
    and what keeps the gate from vouching for the base's rows (`gate_failures`)."""
    cmp = Comparison(
        base_path=str(base_path) if base_path else None,
        current_path=str(current_path) if current_path else None,
        threshold=threshold,
        method=METHOD,
        allow_missing=allow_missing,
    )
    base_by_key = {}
    for r in base.results:
        base_by_key.setdefault(
            r.spec.key, r
        )  # a duplicated key keeps the first, like the runner would never write
    seen = set()
    for r in current.results:
        k = r.spec.key
        if k in seen:
            continue
        seen.add(k)
        if k in base_by_key:
            cmp.rows.append(compare_results(base_by_key[k], r, threshold))
        else:
            cmp.only_in_current.append(_brief(r))
    cmp.only_in_base = [_brief(r) for k, r in base_by_key.items() if k not in seen]
    cmp.gate_failures = gate_failures(cmp, current)
    cmp.environment_warnings = environment_warnings(base.environment or {}, current.environment or {})
    cmp.warnings = busy_warnings(base.environment or {}, current.environment or {})
    if base.interrupted:
        cmp.warnings.append("the base run was interrupted: rows it did not reach are not compared")
    drift = drift_warning(cmp.rows, threshold)
    if drift:
        cmp.warnings.append(drift)
    cmp.warnings += single_process_warnings(cmp.rows) + [w for w in (separate_runs_warning(cmp.rows),) if w]
    return cmp


def separate_runs_warning(rows: Sequence[RowComparison]) -> str | None:
    """Runs made at different times carry their own moment's machine: a change smaller than how far the same
    code moves between worker processes is not visible. `tfperf ab` interleaves both versions in one run
    instead."""
    spreads = [
        x for r in rows if r.ratio is not None for x in (r.base_spread, r.current_spread) if x is not None
    ]
    return (
        (
            "these runs were made at different times: a change smaller than their process-to-process spread "
            "(up "
            f"to {max(spreads):.0%} here) cannot be seen; to gate on a small change, measure both versions "
            "in one "
            f"interleaved run with `tfperf ab`"
        )
        if spreads
        else None
    )


def gate_failures(cmp: Comparison, current: RunResult) -> list[GateFailure]:
    """What keeps "no regression" from being a claim about every row of the base: the gate fails closed.

    A row the base measured must have been measured again, with enough samples to test; a row the base has
    must be in the current run at all; an interrupted current run never passes. A row that failed in both runs
    is not here: the base vouched for nothing, and the current run's own exit code reports its failure.
    """
    out = []
    if current.interrupted:
        out.append(
            GateFailure(
                "interrupted",
                f"the current run was interrupted ({len(current.results)} "
                f"result(s) written): rows it did not reach were not measured",
            )
        )
    for b in cmp.only_in_base:
        out.append(
            GateFailure(
                "missing",
                f"{b['label']}: in the base ({b['status']}), missing from the current run",
                b["label"],
            )
        )
    for r in cmp.rows:
        base_measured, current_measured = (
            r.base_status == "ok" and r.base_n,
            r.current_status == "ok" and r.current_n,
        )
        if base_measured and not current_measured:
            out.append(GateFailure("failed", f"{r.label}: {r.reason}", r.label))
        elif base_measured and min(r.base_n, r.current_n) < MIN_SAMPLES:
            out.append(
                GateFailure(
                    "too_few_samples",
                    f"{r.label}: {r.base_n} sample(s) in base, {r.current_n} now; "
                    f"a verdict needs {MIN_SAMPLES} in each",
                    r.label,
                )
            )
    if not out and not any(
        r.base_status == "ok" and r.base_n and r.current_status == "ok" and r.current_n for r in cmp.rows
    ):
        out.append(GateFailure("nothing_compared", "no row was measured in both runs: nothing was compared"))
    return out


def single_process_warnings(rows: Sequence[RowComparison]) -> list[str]:
    """A run whose jobs each ran in one worker process cannot show how far the same code moves between
    processes, so its spread understates the noise and a verdict on it is less safe than it looks."""
    timed = [r for r in rows if r.ratio is not None]
    sides = [
        side
        for side in ("base", "current")
        if timed and all(getattr(r, f"{side}_processes") == 1 for r in timed)
    ]
    if not sides:
        return []
    which = "both runs" if len(sides) == 2 else f"the {sides[0]} run"
    return [
        f"{which} timed each job in one worker process: process-to-process variation is not in "
        f"{'their' if len(sides) == 2 else 'its'} spread, so verdicts are less safe (run with processes: 2 "
        f"or more)"
    ]


def drift_warning(rows: Sequence[RowComparison], threshold: float) -> str | None:
    """Every timed row moved the same way by a similar amount: more likely the machine than the code.

    A code change usually moves some rows; a busier machine, a different CPU governor or a thermal limit
    moves all of them. Needs at least three timed rows to say anything.
    """
    ratios = sorted(r.ratio for r in rows if r.ratio is not None and r.p_value is not None)
    if len(ratios) < 3:
        return None
    half = threshold / 2
    if ratios[0] > 1 + half or ratios[-1] < 1 / (1 + half):
        mid = ratios[len(ratios) // 2]
        return (
            f"all {len(ratios)} timed rows moved the same way (median ratio {mid:.2f}): the machine's state "
            f"(load, frequency scaling, thermal limits) may differ between the runs"
        )
    return None
