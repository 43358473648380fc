"""The worker processes' noise records in a run's reports: what else went on while each process timed its
steps.

A record is read, worded and judged in tfperf/host/noise.py (`fields` for its figures, `warnings`, stored with
the record when the worker wrote it); here they are only laid out: a table per result in the HTML details, and
in the terminal and Markdown one note line per result whose records warn.
"""

from __future__ import annotations

from typing import Any

from tfperf.host.noise import FIELDS, fields
from tfperf.results.model import Result, RunResult

COLUMNS = ("process", *FIELDS)


def process_records(r: Result) -> list[tuple[int, dict[str, Any]]]:
    """(process number, noise record) of each worker process that timed the result, as `timing.by_process`
    numbers them; one process: the result's own record."""
    t = r.timing
    if t is None:
        return []
    if t.by_process:
        return [(p.process, p.noise) for p in t.by_process if p.noise]
    return [(0, t.noise)] if t.noise else []


def noise_view(r: Result) -> dict | None:
    """The HTML details' table: one row per process, the columns of `tfperf.host.noise.FIELDS`."""
    records = process_records(r)
    if not records:
        return None
    return {
        "columns": COLUMNS,
        "rows": [[str(p), *fields(rec)] for p, rec in records],
        "warnings": result_warnings(records),
    }


def result_warnings(records: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Each process's warnings, as recorded, with the process they came from."""
    return [f"process {p}: {w}" for p, rec in records for w in rec.get("warnings") or []]


def warning_lines(run: RunResult) -> list[str]:
    """One line per result whose processes' records warn (oversubscribed threads, a busy machine)."""
    out = []
    for r in run.results:
        by_text: dict[str, list[int]] = {}  # the same warning from several processes is said once
        for p, rec in process_records(r):
            for w in rec.get("warnings") or []:
                by_text.setdefault(w, []).append(p)
        if by_text:
            out.append(
                f"{r.spec.label}: "
                + "; ".join(
                    f"{w} (process{'es' if len(ps) > 1 else ''} {', '.join(map(str, ps))})"
                    for w, ps in by_text.items()
                )
            )
    return out
