"""Compare two runs: tell a real regression from noise, row by row, from the raw samples.

Rows are matched by their job (`JobSpec.key`: case, mode, batch size, task, device) and each pair is
compared by `tfperf.analysis.row_comparison` (ratio of medians, its interval, the U test, each run's own
spread, and the diagnostics). The gate (`tfperf.analysis.gate`) fails closed on base rows the current run did
not measure, and `tfperf.analysis.compare_warnings` says what makes the verdicts less safe. The threshold is
read by `tfperf.analysis.threshold`.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from tfperf.analysis.compare_warnings import (
    busy_warnings,
    drift_warning,
    environment_warnings,
    separate_runs_warning,
    single_process_warnings,
)
from tfperf.analysis.gate import GateFailure, gate_failures
from tfperf.analysis.row_comparison import METHOD, VERDICTS, RowComparison, compare_results
from tfperf.figures.thresholds import REGRESSION_THRESHOLD
from tfperf.results.model import Result, RunResult

# Exit codes of `tfperf compare` and of any command that gates on a comparison (2, unreadable input, is raised
# by load_results). A failed gate is distinct from a regression, so CI can tell "slower" from "not measured".
EXIT_REGRESSED = 1
EXIT_GATE_FAILED = 3


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
    cmp.gate_failures = gate_failures(cmp.rows, cmp.only_in_base, current)
    cmp.environment_warnings = environment_warnings(base.environment or {}, current.environment or {})
    cmp.warnings = busy_warnings(base.environment or {}, current.environment or {})
    if base.interrupted:
        cmp.warnings.append("the base run was interrupted: rows it did not reach are not compared")
    drift = drift_warning(cmp.rows, threshold)
    if drift:
        cmp.warnings.append(drift)
    cmp.warnings += single_process_warnings(cmp.rows) + [w for w in (separate_runs_warning(cmp.rows),) if w]
    return cmp
