"""How `tfperf tune` judges a measured configuration against the baseline: speed-up per sample, its interval
and significance, the output check, the verdicts and the best.

A configuration is judged against the baseline with `tfperf compare`'s own decision
(`tfperf.analysis.row_comparison.compare_results`) on time per sample, at tune's threshold `TUNE_MIN_GAIN`
(5%): it is "faster" only when it is significantly faster (p < REGRESSION_ALPHA, two-sided Mann-Whitney U),
more than 5% faster, its bootstrap interval (resampling whole repeats) excludes no change, and the gain is
larger than either side's own spread between its repeats and worker processes. The best is the fastest such
configuration, and it must clear the same test again when re-measured against the baseline in fresh workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from tfperf.analysis.row_comparison import compare_results
from tfperf.figures.decisions import per_sample
from tfperf.figures.thresholds import REGRESSION_ALPHA, TUNE_MIN_GAIN, output_tolerance
from tfperf.measure.tf_config import output_difference
from tfperf.results.model import Result, RunResult
from tfperf.suite.tf_config import code_for
from tfperf.tune.candidates import Candidate, pipeline_code

# The best configuration must be faster by more than this, per sample, by compare's decision (tune.json's
# min_gain).
MIN_GAIN = TUNE_MIN_GAIN

# compare's verdict on (baseline, configuration), current / base, in tune's words.
VERDICTS = {"improvement": "faster", "regression": "slower"}


@dataclass(frozen=True)
class Gain:
    """One configuration against a reference, per sample: reference median / its median, the interval of that
    speed-up, the U test's p (None with too few samples to test), and compare's verdict with its reason."""

    speedup: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    verdict: str = "inconclusive"  # compare's: improvement | regression | unchanged | inconclusive
    reason: str = ""

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < REGRESSION_ALPHA

    @property
    def faster(self) -> bool:
        """Faster by compare's decision at MIN_GAIN: significant, beyond the threshold, the interval and the
        spread."""
        return self.verdict == "improvement"

    @property
    def wins(self) -> bool:
        """Faster by enough to recommend (compare's improvement already means more than MIN_GAIN faster)."""
        return self.faster and self.speedup is not None and self.speedup > 1 + MIN_GAIN


@dataclass
class Row:
    """One measured configuration: a candidate's result in one mode at one batch size."""

    candidate: Candidate
    result: Result
    speedup: float | None = None  # baseline time per sample / this time per sample
    ci: tuple[float, float] | None = None  # of the speed-up
    p_value: float | None = None
    verdict: str = ""  # baseline | faster | slower | within ±5% | inconclusive | excluded | failed
    excluded: str | None = None  # why it is not ranked (outputs differ, failed)
    output_difference: float | None = None
    output_tolerance: float | None = None  # what output_difference was held to (thresholds.output_tolerance)
    reason: str = ""  # compare's one-line reason for the verdict

    @property
    def mode(self) -> str:
        return self.result.mode

    @property
    def batch_size(self) -> int | None:
        return self.result.batch_size

    @property
    def name(self) -> str:
        bits = [self.candidate.id, self.mode]
        if self.batch_size is not None:
            bits.append(f"bs={self.batch_size}")
        return " · ".join(bits)

    def per_sample(self) -> list[float]:
        return per_sample(self.result)

    def code(self) -> list[str]:
        lines = code_for(self.candidate.settings)
        if self.candidate.settings.get("jit") == "autoclustering":
            lines.append("step = tf.function(step)  # auto-clustering compiles clusters of it with XLA")
        elif self.mode == "xla":
            lines.append(
                "step = tf.function(step, jit_compile=True)  # Keras: model.compile(..., jit_compile=True)"
            )
        else:
            lines.append("step = tf.function(step)")
        if "steps_per_execution" in self.candidate.case_changes:
            lines.append(
                "model.compile(..., "
                f"steps_per_execution={self.candidate.case_changes['steps_per_execution']})"
            )
        lines.extend(pipeline_code(self.candidate.pipeline))
        if self.batch_size is not None:
            lines.append(f"dataset = dataset.batch({self.batch_size})")
        return lines

    def to_json(self) -> dict:
        return {
            "config": self.candidate.id,
            "group": self.candidate.group,
            "label": self.candidate.label,
            "settings": self.candidate.settings,
            "pipeline": self.candidate.pipeline,
            "note": self.candidate.note,
            "mode": self.mode,
            "batch_size": self.batch_size,
            "status": self.result.status,
            "median_s": self.result.median_s,
            "samples_per_s": (self.result.throughput or {}).get("samples_per_s"),
            "speedup": self.speedup,
            "speedup_ci": list(self.ci) if self.ci else None,
            "p_value": self.p_value,
            "verdict": self.verdict,
            "reason": self.reason,
            "excluded": self.excluded,
            "output_difference": self.output_difference,
            "output_tolerance": self.output_tolerance,
            "processes": self.result.process_count,
            "code": self.code(),
        }


@dataclass
class CaseTuning:
    case: str
    budget_s: float
    rows: list[Row] = field(default_factory=list)
    baseline: Row | None = None
    best: Row | None = None
    not_run: list[dict] = field(default_factory=list)  # [{config, reason}]
    confirmation: dict | None = None
    unconfirmed: Row | None = None  # the winner that did not hold when re-measured
    elapsed_s: float = 0.0
    message: str | None = None  # why the case could not be tuned

    def ranked(self) -> list[Row]:
        ok = [r for r in self.rows if r.speedup is not None and not r.excluded]
        return sorted(ok, key=lambda r: -r.speedup) + [r for r in self.rows if r not in ok]

    @property
    def recommended(self) -> Row | None:
        return self.best or self.baseline

    def recommended_code(self) -> list[str]:
        """The lines to change: the best's code without the lines the baseline's code has too (its mode line
        when it runs the baseline's mode, its batch line at the baseline's batch size). Empty when the
        baseline stayed best: there is nothing to change."""
        if self.best is None:
            return []
        unchanged = set(self.baseline.code()) if self.baseline else set()
        return [line for line in self.best.code() if line not in unchanged]

    def to_json(self) -> dict:
        return {
            "case": self.case,
            "budget_s": self.budget_s,
            "elapsed_s": self.elapsed_s,
            "message": self.message,
            "baseline": self.baseline.to_json() if self.baseline else None,
            "best": self.best.to_json() if self.best else None,
            # [] when the baseline stayed best: no change to make.
            "recommended_code": self.recommended_code() if self.baseline else None,
            "confirmation": self.confirmation,
            "ranking": [r.to_json() for r in self.ranked()],
            "not_run": self.not_run,
        }


@dataclass
class TuneRun:
    """A whole `tfperf tune`: the run written to results.json, and each case's tuning."""

    run: RunResult
    cases: list[CaseTuning]
    out_dir: Path


def per_sample_result(r: Result) -> Result:
    """The result with its step times per sample (same repeats and processes): what compare's decision is
    given, so two batch sizes compare fairly and the spread rule still sees each repeat and process."""
    return dataclasses.replace(r, samples=per_sample(r))


def gain(base: Row, row: Row) -> Gain:
    """`row` against `base`, per sample, by `tfperf compare`'s decision at the MIN_GAIN threshold."""
    if not base.result.samples or not row.result.samples:
        return Gain(None, None, None)
    cmp = compare_results(per_sample_result(base.result), per_sample_result(row.result), MIN_GAIN)
    speedup = 1 / cmp.ratio if cmp.ratio else None
    ci = (1 / cmp.ci_high, 1 / cmp.ci_low) if cmp.ci_low and cmp.ci_high else None
    # Tune ranks step times: compare's verdict from time alone (a tracing count that grew would make its row a
    # regression whatever the time; a configuration that changes what the step computes is the output
    # check's).
    verdict = cmp.time_verdict or cmp.verdict
    return Gain(speedup, ci, cmp.p_value, verdict, cmp.reason)


def fingerprint(result: Result, first_step: bool) -> dict:
    """The outputs tune compares (as JSON): a stateful step's first call from the same state
    (`output_check.first_step`, tfperf.measure.step_state) when `first_step`, else the forward pass on a fixed
    input (`output_check.fingerprint`)."""
    check = result.output_check
    values = (check.first_step if first_step else check.fingerprint) if check else None
    return values.to_json() if values else {}


def compute_dtype(row: Row) -> str:
    """What the row computed in: the built model's measured compute dtype (`setup.model_compute_dtype`) when
    the worker recorded one, else the candidate's mixed-precision policy (a `function:` case has no model to
    ask)."""
    measured = str((row.result.setup.model_compute_dtype if row.result.setup else None) or "")
    if measured and measured != "None":
        return measured
    return str(row.candidate.settings.get("mixed_precision") or "float32")


def compiled_mode(row: Row) -> str:
    """ "xla" when XLA compiled the row's step (jit_compile, or auto-clustering of a tf.function), else its
    mode."""
    return "xla" if row.mode == "xla" or row.candidate.settings.get("jit") == "autoclustering" else row.mode


def row_tolerance(row: Row, base: Row | None) -> float:
    """The output tolerance between `row` and the baseline: the looser of the two sides' (a float32 baseline
    compiled by XLA reorders as much as a compiled candidate; a 16-bit side rounds for both)."""
    sides = [row] + ([base] if base is not None else [])
    return max(output_tolerance(compute_dtype(r), compiled_mode(r)) for r in sides)


def tolerance_basis(row: Row, base: Row | None) -> str:
    """Which side set the tolerance, in words: "16-bit compute (bfloat16)", "float32 under XLA", "float32"."""
    sides = [row] + ([base] if base is not None else [])
    low = sorted({compute_dtype(r).removeprefix("mixed_") for r in sides if "16" in compute_dtype(r)})
    if low:
        return f"16-bit compute ({', '.join(low)})"
    return "float32 under XLA" if any(compiled_mode(r) == "xla" for r in sides) else "float32"


def output_exclusion(
    row: Row, reference: list | None, first_step: bool = False, base: Row | None = None
) -> str | None:
    """Why a row's output disqualifies it (it differs from the baseline's beyond row_tolerance), or None;
    records the difference and the tolerance on the row. `first_step`: compare the first step's outputs from
    the same state (a user's stateful training step): later outputs of a step that trains depend on how many
    steps ran before them."""
    fp = fingerprint(row.result, first_step)
    tol = row.output_tolerance = row_tolerance(row, base)
    row.output_difference = output_difference(fp.get("values") or [], reference)
    if fp.get("error"):
        return f"output check failed: {fp['error']}"
    if row.output_difference is None:
        return "output check not comparable with the baseline's"
    if row.output_difference > tol:
        return (
            f"outputs differ from the baseline's by {row.output_difference:.2g} (relative; tolerance "
            f"{tol:g}, "
            f"{tolerance_basis(row, base)})"
        )
    return None


def evaluate(tuning: CaseTuning) -> None:
    """Speed-up, significance, verdict and output check of every row against the baseline; pick the best."""
    base = tuning.baseline
    first_step = base is not None and bool(fingerprint(base.result, True).get("values"))
    reference = fingerprint(base.result, first_step).get("values") if base else None
    for row in tuning.rows:
        if not row.result.ok or not row.result.samples:
            row.verdict, row.excluded = (
                "failed",
                (row.result.error and row.result.error.message) or row.result.status,
            )
            continue
        if reference is not None and row is not base:
            row.excluded = output_exclusion(row, reference, first_step, base)
        row.excluded = row.excluded or not_applied(row)
        if row.excluded:
            row.verdict = "excluded"
        if base is None or not base.result.ok:
            continue
        g = gain(base, row)
        row.speedup, row.ci, row.p_value, row.reason = g.speedup, g.ci, g.p_value, g.reason
        if row is base:
            row.verdict, row.reason = "baseline", ""
        elif not row.excluded:
            row.verdict = verdict_of(g)
    winners = [r for r in tuning.rows if r.verdict == "faster" and gain_wins(r)]
    tuning.best = max(winners, key=lambda r: r.speedup, default=None)


def not_applied(row: Row) -> str | None:
    """A configuration's case change the worker did not run with (it records `setup.steps_per_execution`): its
    timing would be the baseline's under another name."""
    wanted = row.candidate.case_changes.get("steps_per_execution")
    ran = row.result.setup.steps_per_execution if row.result.setup else None
    if wanted is not None and ran != wanted:
        return f"steps_per_execution={wanted} was not applied (the job ran {ran})"
    return None


def verdict_of(g: Gain) -> str:
    """compare's verdict in tune's words: faster / slower beyond MIN_GAIN, within ±MIN_GAIN, or inconclusive
    (the reason says which test it failed: too few samples, not significant, the interval, the spread)."""
    if g.verdict in VERDICTS:
        return VERDICTS[g.verdict]
    if g.verdict == "unchanged":
        return f"within ±{MIN_GAIN:.0%}" if g.significant else "no significant difference"
    return "inconclusive"


def gain_wins(r: Row) -> bool:
    return r.speedup is not None and r.speedup > 1 + MIN_GAIN
