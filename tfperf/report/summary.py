"""The HTML page's findings and summary: what the advisor said, ranked, plus what failed.

Findings are not a second rule set. They are the failures (a job that failed or timed out, a load test with
failed requests) and the suggestions the advisor attached to the case's results (`tfperf.analysis.advisor`),
ranked by how much each kind of suggestion costs a reader who ignores it. So the summary's worst finding is
always one of the suggestions on the same page, or a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tfperf import units
from tfperf.figures import measures
from tfperf.report.verdicts import job
from tfperf.results.model import Result

# A job that did not run: nothing else about the case can be trusted to be complete.
FAILED_SEVERITY = 5
# Per advisor code, worst first: 4 costs a large share of every step or breaks the measurement (retraces,
# waiting for input, a load test's failed requests); 3 is a mode or setting measured slower than another;
# 2 is a measured opportunity; 1 is context (how long a win takes to pay back, noisy timing).
SEVERITY = {
    "retracing": 4,
    "input-bound": 4,
    "avoid-xla": 3,
    "use-tf-function": 3,
    "host-bound": 3,
    "prefetch": 2,
    "parallelize-map": 2,
    "cache-dataset": 2,
    "parallel-interleave": 2,
    "enable-xla": 2,
    "small-batch": 2,
    "mixed-precision": 2,
    "threading": 2,
    "quantize-tflite": 2,
    "jit-compile-part": 2,
    "xla-compile-payback": 1,
    "noisy-measurement": 1,
}
UNKNOWN_CODE_SEVERITY = 1  # a code written by a newer tfperf than this one


@dataclass(frozen=True)
class Finding:
    """Something worth a reader's attention in one case. Higher severity is worse."""

    severity: int
    kind: str  # "failed" or the advisor's suggestion code
    text: str


def failures(case_results: Iterable[Result]) -> list[Finding]:
    out = []
    for r in case_results:
        if r.status in ("failed", "timeout"):
            kind = (r.error.type if r.error else None) or r.status
            out.append(Finding(FAILED_SEVERITY, "failed", f"{job(r)} {r.status}: {kind}"))
        if r.ok and r.mode == measures.SERVE_MODE and r.serve and r.serve.requests_failed:
            out.append(
                Finding(
                    4,
                    "failed",
                    f"{job(r)}: {units.number(r.serve.requests_failed)} of "
                    f"{units.number(r.serve.requests_sent)} requests failed",
                )
            )
    return out


def case_findings(case_results: list[Result]) -> list[Finding]:
    """What stands out in one case, worst first: failures, then the advisor's suggestions by severity."""
    out = failures(case_results)
    for r in case_results:
        for s in r.suggestions:
            if not s.code:
                continue
            out.append(
                Finding(
                    SEVERITY.get(s.code, UNKNOWN_CODE_SEVERITY),
                    s.code,
                    f"{job(r)}: {units.text(s.title) if s.title else s.code}",
                )
            )
    return sorted(out, key=lambda f: -f.severity)  # stable: within a severity, in run order


def case_summary(
    name: str, anchor: str, findings: list[Finding], counts: dict, results: list[Result]
) -> dict:
    """One row of the page's summary table: the fastest job, its speed-up over eager, the worst finding."""
    best = measures.fastest(results)
    swept = len({r.batch_size for r in results}) > 1
    return {
        "name": name,
        "anchor": anchor,
        "fastest": (
            best.mode + (f" (batch {best.batch_size})" if best.batch_size is not None and swept else "")
        )
        if best
        else units.MISSING,
        "fastest_median": units.seconds(best.median_s) if best else units.MISSING,
        "speedup": units.speedup(measures.speedup_over_eager(best, results)) if best else units.MISSING,
        "worst": findings[0].text if findings else "none",
        "worst_severity": findings[0].severity if findings else 0,
        **counts,
    }
