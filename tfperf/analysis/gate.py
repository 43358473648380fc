"""The gate fails closed: a comparison says "no regression" only about rows it measured in both runs. A base
row missing, failed or with too few samples in the current run, or an interrupted current run, is a
`GateFailure` (exit `tfperf.analysis.compare.EXIT_GATE_FAILED`; `--allow-missing` accepts it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from tfperf.analysis.row_comparison import RowComparison
from tfperf.results.model import RunResult
from tfperf.stats.significance import MIN_SAMPLES


@dataclass
class GateFailure:
    """Why the gate cannot say "no regression", the sentence, and the row it is about."""

    kind: str  # interrupted | missing | failed | too_few_samples | nothing_compared
    message: str
    label: str | None = None


def gate_failures(
    rows: Sequence[RowComparison], only_in_base: Sequence[dict], current: RunResult
) -> list[GateFailure]:
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
    for b in only_in_base:
        out.append(
            GateFailure(
                "missing",
                f"{b['label']}: in the base ({b['status']}), missing from the current run",
                b["label"],
            )
        )
    for r in rows:
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
        r.base_status == "ok" and r.base_n and r.current_status == "ok" and r.current_n for r in rows
    ):
        out.append(GateFailure("nothing_compared", "no row was measured in both runs: nothing was compared"))
    return out
