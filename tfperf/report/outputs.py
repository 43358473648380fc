"""Writes a run's files: results.json (the source of truth) and everything rendered from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tfperf.analysis.advisor import attach_suggestions
from tfperf.report.tables import render_markdown, to_dataframe
from tfperf.results.model import RunResult, atomic_write_text, now_iso, write_results
from tfperf.run.runner import RunInterrupted, run_suite
from tfperf.suite.spec import Suite


def write_outputs(run: RunResult, out_dir: str | Path) -> list[Path]:
    """results.json, results.csv, report.md and report.html for a run, as it is."""
    out_dir = Path(out_dir)
    written = []
    path = out_dir / "results.json"
    write_results(run, path)
    written.append(path)
    path = out_dir / "results.csv"
    atomic_write_text(path, to_dataframe(run).to_csv(index=False))
    written.append(path)
    path = out_dir / "report.md"
    atomic_write_text(path, render_markdown(run))
    written.append(path)
    from tfperf.report.html import write_html  # matplotlib + jinja2: imported only when a run is written

    written.append(write_html(run, out_dir / "report.html"))
    return written


def finish_run(run: RunResult, out_dir: str | Path) -> list[Path]:
    """The end of every run (`run`, `tune`, `serve-bench`, an interrupted run): stamp when it finished if the
    measuring side did not, attach the advisor's suggestions, write every output."""
    if not run.finished_at:
        run.finished_at = now_iso()
    attach_suggestions(run)
    return write_outputs(run, out_dir)


def run_and_finish(suite: Suite, out_dir: str | Path, **options: Any) -> RunResult:
    """`tfperf run` and `tfperf.run_suite`: measure the suite (`run.runner.run_suite`, which takes `options`),
    then attach the advisor's suggestions and write every output. Interrupted (Ctrl-C, SIGTERM), the finished
    results get the same, and RunInterrupted goes on with the partial run."""
    try:
        run = run_suite(suite, out_dir, **options)
    except RunInterrupted as exc:
        finish_run(exc.run, exc.out_dir)
        raise
    finish_run(run, out_dir)
    return run
