"""tfperf: how fast does a TensorFlow model run here, in eager, tf.function and XLA, why, and what to change.

Public API (importing tfperf does not import TensorFlow; only measuring does):

    MODES            the execution modes: ("eager", "function", "xla")
    load_suite(path) validate a suite YAML file -> Suite (raises SuiteError naming file:line and key)
    run_suite(suite, out_dir, ...) run every case in isolated workers -> RunResult (also written to
    results.json) load_results(path) read a results.json -> RunResult
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


def run_suite(suite, out_dir, **kwargs):
    """Run a suite, attach the advisor's suggestions and write every output (results.json and the reports)."""
    from tfperf.analysis.advisor import attach_suggestions
    from tfperf.report.outputs import finish_run
    from tfperf.run.runner import run_suite as _run

    kwargs.setdefault("annotate", attach_suggestions)
    run = _run(suite, out_dir, **kwargs)
    finish_run(run, out_dir)
    return run
