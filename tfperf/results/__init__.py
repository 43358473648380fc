"""The results contract (schema_version 1): what ran, what was measured, and the file that holds it."""

from tfperf.results.model import (
    SCHEMA_VERSION,
    JobSpec,
    Result,
    RunResult,
    atomic_write_text,
    load_results,
    now_iso,
    write_results,
)
from tfperf.results.shapes import STATUSES

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "JobSpec",
    "Result",
    "RunResult",
    "atomic_write_text",
    "load_results",
    "now_iso",
    "write_results",
]
