"""Writes a run's files: results.json (the source of truth) and everything rendered from it."""
from __future__ import annotations

from pathlib import Path

from .results import RunResult, atomic_write_text, write_results
from .tables import render_markdown, to_dataframe


def write_outputs(run: RunResult, out_dir: str | Path) -> list[Path]:
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
    from .html_report import write_html  # matplotlib + jinja2: imported only when a run is written

    written.append(write_html(run, out_dir / "report.html"))
    return written
