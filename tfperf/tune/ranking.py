"""How `tfperf tune` judges a measured configuration against the baseline: speed-up per sample, its interval and
significance, the output check, the verdicts and the best.

A configuration is "faster" when the two-sided Mann-Whitney U test on per-sample step times gives
p < REGRESSION_ALPHA (the between-runs level `tfperf compare` uses: configurations run in different worker
processes), and the best must also be `MIN_GAIN` faster.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tfperf.figures.thresholds import REGRESSION_ALPHA
from tfperf.measure.tf_config import output_difference
from tfperf.results.model import Result, RunResult
from tfperf.stats.descriptive import summarize
from tfperf.stats import significance
from tfperf.suite.tf_config import code_for
from tfperf.tune.candidates import Candidate, pipeline_code

# A configuration whose forward output differs from the baseline's by more than this (max |diff| relative to
# the baseline's largest magnitude) changed the model, not just its speed. float16 rounds at ~1e-3.
OUTPUT_TOLERANCE = 1e-3
MIXED_PRECISION_OUTPUT_TOLERANCE = 3e-2
# The best configuration must be significantly faster AND at least this much faster than the baseline.
MIN_GAIN = 0.05


@dataclass(frozen=True)
class Gain:
    """One configuration against a reference, per sample: reference median / its median, the interval of that
    speed-up, and the U test's p (None with too few samples to test)."""

    speedup: float | None
    ci: tuple[float, float] | None
    p_value: float | None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < REGRESSION_ALPHA

    @property
    def faster(self) -> bool:
        return self.significant and self.speedup > 1

    @property
    def wins(self) -> bool:
        """Faster by enough to recommend."""
        return self.faster and self.speedup >= 1 + MIN_GAIN


@dataclass
class Row:
    """One measured configuration: a candidate's result in one mode at one batch size."""

    candidate: Candidate
    result: Result
    speedup: float | None = None  # baseline time per sample / this time per sample
    ci: tuple[float, float] | None = None  # of the speed-up
    p_value: float | None = None
    verdict: str = ""  # baseline | faster | slower | no significant difference | excluded | failed
    excluded: str | None = None  # why it is not ranked (outputs differ, failed)
    output_difference: float | None = None

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
        bs = self.batch_size or 1
        return [s / bs for s in self.result.samples]

    def code(self) -> list[str]:
        lines = code_for(self.candidate.settings)
        if self.candidate.settings.get("jit") == "autoclustering":
            lines.append("step = tf.function(step)  # auto-clustering compiles clusters of it with XLA")
        elif self.mode == "xla":
            lines.append("step = tf.function(step, jit_compile=True)  # Keras: model.compile(..., jit_compile=True)")
        else:
            lines.append("step = tf.function(step)")
        lines.extend(pipeline_code(self.candidate.pipeline))
        if self.batch_size is not None:
            lines.append(f"dataset = dataset.batch({self.batch_size})")
        return lines

    def to_json(self) -> dict:
        return {
            "config": self.candidate.id, "group": self.candidate.group, "label": self.candidate.label,
            "settings": self.candidate.settings, "pipeline": self.candidate.pipeline, "note": self.candidate.note,
            "mode": self.mode, "batch_size": self.batch_size, "status": self.result.status,
            "median_s": self.result.median_s, "samples_per_s": (self.result.throughput or {}).get("samples_per_s"),
            "speedup": self.speedup, "speedup_ci": list(self.ci) if self.ci else None, "p_value": self.p_value,
            "verdict": self.verdict, "excluded": self.excluded, "output_difference": self.output_difference,
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

    def to_json(self) -> dict:
        rec = self.recommended
        return {
            "case": self.case, "budget_s": self.budget_s, "elapsed_s": self.elapsed_s, "message": self.message,
            "baseline": self.baseline.to_json() if self.baseline else None,
            "best": self.best.to_json() if self.best else None,
            "recommended_code": rec.code() if rec else None,
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


def gain(base: Row, row: Row) -> Gain:
    """`row` against `base`, per sample (so batch sizes compare fairly)."""
    b, c = base.per_sample(), row.per_sample()
    if not b or not c:
        return Gain(None, None, None)
    speedup = summarize(b)["median"] / summarize(c)["median"]
    p = significance.p_value(b, c)  # None with too few samples for the test
    if p is None:
        return Gain(speedup, None, None)
    lo, hi = significance.bootstrap_ratio_ci(b, c)  # of median(current) / median(base): invert for a speed-up
    return Gain(speedup, (1 / hi, 1 / lo), p)


def output_exclusion(row: Row, reference: list | None) -> str | None:
    """Why a row's forward output disqualifies it (it differs from the baseline's), or None; records the
    difference on the row."""
    fp = (row.result.extra or {}).get("output_fingerprint") or {}
    tol = (MIXED_PRECISION_OUTPUT_TOLERANCE if "16" in str(row.candidate.settings.get("mixed_precision", ""))
           else OUTPUT_TOLERANCE)
    row.output_difference = output_difference(fp.get("values") or [], reference)
    if fp.get("error"):
        return f"output check failed: {fp['error']}"
    if row.output_difference is None:
        return "output check not comparable with the baseline's"
    if row.output_difference > tol:
        return f"outputs differ from the baseline's by {row.output_difference:.2g} (relative; tolerance {tol:g})"
    return None


def evaluate(tuning: CaseTuning) -> None:
    """Speed-up, significance, verdict and output check of every row against the baseline; pick the best."""
    base = tuning.baseline
    reference = ((base.result.extra or {}).get("output_fingerprint") or {}).get("values") if base else None
    for row in tuning.rows:
        if not row.result.ok or not row.result.samples:
            row.verdict, row.excluded = "failed", (row.result.error and row.result.error.message) or row.result.status
            continue
        if reference is not None and row is not base:
            row.excluded = output_exclusion(row, reference)
            if row.excluded:
                row.verdict = "excluded"
        if base is None or not base.result.ok:
            continue
        g = gain(base, row)
        row.speedup, row.ci, row.p_value = g.speedup, g.ci, g.p_value
        if row is base:
            row.verdict = "baseline"
        elif not row.excluded:
            if g.significant:
                row.verdict = "faster" if g.faster else "slower"
            else:
                row.verdict = "no significant difference"
    winners = [r for r in tuning.rows if r.verdict == "faster" and r.speedup >= 1 + MIN_GAIN]
    tuning.best = max(winners, key=lambda r: r.speedup, default=None)
