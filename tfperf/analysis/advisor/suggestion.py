"""What a rule returns: a `Suggestion` record, and the groupings of results the rules share.

A suggestion (`tfperf.results.records.Suggestion`) has the public fields `code, title, evidence, fix`
(docs/suggestions.md lists every code) plus `evidence_data` (the numbers behind the evidence
sentence, for scripts) and `threshold` (what the rule compares against). `suggestion()` lives in its own
module, not the package's `__init__`, because every rule module builds suggestions and the `__init__` imports
every rule module: one of them importing the package back would be an import circle.
"""

from __future__ import annotations

import math
from collections import defaultdict

from tfperf.figures.measures import job_without_mode
from tfperf.results.model import Result, RunResult
from tfperf.results.records import Suggestion

Finding = tuple[Result, Suggestion]


def suggestion(
    code: str, title: str, evidence: str, fix: str, threshold: str | None = None, **evidence_data
) -> Suggestion:
    return Suggestion(
        code=code,
        title=title,
        evidence=evidence,
        fix=fix,
        threshold=threshold,
        evidence_data={k: _round(v) for k, v in evidence_data.items()},
    )


def _round(v):
    # Six significant digits: the evidence_data of two runs of the same numbers compare equal in a diff.
    if isinstance(v, float) and math.isfinite(v):
        return float(f"{v:.6g}")
    return v


def config_settings(r: Result) -> dict:
    """The settings of the `tfperf tune` configuration a result measured ({} for a suite's own results)."""
    return r.tune.settings if r.tune is not None else {}


def base_case(r: Result) -> str:
    """The suite's case a tune configuration belongs to (a configuration is a variant of the case's job)."""
    return r.case


def by_job_without_mode(run: RunResult) -> dict[tuple, dict[str, Result]]:
    """The modes of one job side by side: `figures.measures.job_without_mode(r)` -> {mode: result}."""
    groups: dict[tuple, dict[str, Result]] = defaultdict(dict)
    for r in run.results:
        groups[job_without_mode(r)][r.mode] = r
    return groups
