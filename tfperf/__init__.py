"""tfperf: how fast does a TensorFlow model run here, in eager, tf.function and XLA, why, and what to change.

Public API (importing tfperf does not import TensorFlow; only measuring does):

    MODES            the execution modes: ("eager", "function", "xla")
    load_suite(path) validate a suite YAML file -> Suite (raises SuiteError naming file:line and key)
    run_suite(suite, out_dir, ...)
                     run every case in isolated workers, write results.json and the reports -> RunResult
    load_results(path) read a results.json -> RunResult
"""

from __future__ import annotations

from tfperf.errors import ResultsFileError, SuiteError, TfperfError
from tfperf.results.model import JobSpec, Result, RunResult, load_results
from tfperf.suite.spec import MODES, TASKS, CaseSpec, Suite
from tfperf.version import __version__

__all__ = [
    "MODES",
    "TASKS",
    "CaseSpec",
    "Suite",
    "JobSpec",
    "Result",
    "RunResult",
    "SuiteError",
    "TfperfError",
    "ResultsFileError",
    "load_suite",
    "run_suite",
    "load_results",
    "__version__",
]


def load_suite(path, **kwargs):
    from tfperf.suite.loader import load_suite as _load

    return _load(path, **kwargs)


def run_suite(suite, out_dir, *, fail_on_retrace=False, **kwargs):
    """Run a suite, attach the advisor's suggestions and write every output (results.json and the reports), as
    `tfperf run` does; also when interrupted (then RunInterrupted carries the partial run). `kwargs`: the
    runner's `reporter`, `python`, `command`. `fail_on_retrace`: a function/xla job that traces its step more
    than once fails (the suite's `max_traces: 1` for every case that sets none)."""
    from tfperf.report.outputs import run_and_finish
    from tfperf.suite.plan import apply_overrides

    if fail_on_retrace:
        suite = apply_overrides(suite, max_traces=1)
    return run_and_finish(suite, out_dir, **kwargs)
