"""The commands that read results.json and write what it says: `report`, `compare` and `export`. None of
them imports TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tfperf.errors import TfperfError


def report(
    results: Path = typer.Argument(..., help="A results.json (or the run folder holding one)."),
    fmt: str = typer.Option("table", "--format", help="table | markdown | json | html"),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write to this file instead of stdout."
    ),
) -> None:
    """Re-render a run's tables from its results.json, without running anything."""
    from tfperf.report.tables import FORMATS, render
    from tfperf.results.model import atomic_write_text, load_results
    from tfperf.run.outdir import check_output_file

    if fmt not in (*FORMATS, "html"):
        raise TfperfError(f"--format {fmt}: choose one of {', '.join((*FORMATS, 'html'))}")
    if output:
        check_output_file(output)
    if fmt == "html":
        from tfperf.report.html import render_html

        run_dir = results if results.is_dir() else results.parent
        text = render_html(load_results(results), out_dir=run_dir)
    else:
        text = render(load_results(results), fmt)
    if output:
        atomic_write_text(output, text if text.endswith("\n") else text + "\n")
    else:
        typer.echo(text)


def compare(
    base: Path = typer.Argument(..., help="The baseline results.json (or its run folder)."),
    current: Path = typer.Argument(..., help="The results.json to check against it."),
    threshold: str = typer.Option(
        "10%",
        "--threshold",
        help="Slowdown beyond which a significant change counts: a percentage (10%, "
        "150%) or a fraction below 1 (0.1). A bare 1 or more is refused as "
        "ambiguous.",
    ),
    fmt: str = typer.Option("table", "--format", help="table | markdown | json | html"),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write to this file instead of stdout."
    ),
    allow_missing: bool = typer.Option(
        False,
        "--allow-missing",
        help="Pass the gate even when base rows are missing, failed or under-sampled "
        "in the current run, or the current run was interrupted (still listed).",
    ),
) -> None:
    """Compare two runs row by row.

    Exit codes: 0 no regression; 1 a row regressed (significantly slower beyond the threshold); 2 unreadable
    input.

    3 the gate failed: a base row missing, failed or under-sampled now, or an interrupted run (see
    --allow-missing).
    """
    from tfperf.analysis.compare import compare_runs, exit_code
    from tfperf.analysis.threshold import read_threshold
    from tfperf.report.compare import RENDERERS, render
    from tfperf.results.model import atomic_write_text, load_results
    from tfperf.run.outdir import check_output_file

    if fmt not in RENDERERS:
        raise TfperfError(f"--format {fmt}: choose one of {', '.join(RENDERERS)}")
    if output:
        check_output_file(output)  # before any work: a bad -o is exit 2 with nothing written
    limit = read_threshold(threshold)
    typer.echo(f"tfperf: compare: {limit.reading}", err=True)
    cmp = compare_runs(
        load_results(base),
        load_results(current),
        limit.value,
        base_path=base,
        current_path=current,
        allow_missing=allow_missing,
    )
    text = render(cmp, fmt)
    if output:
        atomic_write_text(output, text)
        typer.echo(f"wrote {output}", err=True)
    else:
        typer.echo(text, nl=False)
    raise typer.Exit(exit_code(cmp))


def export(
    results: Path = typer.Argument(..., help="A results.json (or the run folder holding one)."),
    fmt: str = typer.Option("pytest-benchmark", "--format", help="pytest-benchmark | prometheus"),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write to this file instead of stdout."
    ),
    push: Optional[str] = typer.Option(
        None, "--push", help="prometheus: also push to this Pushgateway URL (job tfperf, grouped by suite)."
    ),
) -> None:
    """Export a run as pytest-benchmark JSON (for `pytest-benchmark compare` and github-action-benchmark), or
    as Prometheus text (node_exporter's textfile collector; --push to a Pushgateway). pytest-benchmark leaves
    out failed, timed-out and skipped results, each named on stderr."""
    import json

    from tfperf.report import prometheus
    from tfperf.report.export import FORMATS, to_pytest_benchmark
    from tfperf.results.model import atomic_write_text, load_results
    from tfperf.run.outdir import check_output_file

    if fmt not in (*FORMATS, prometheus.FORMAT):
        raise TfperfError(f"--format {fmt}: choose one of {', '.join((*FORMATS, prometheus.FORMAT))}")
    prometheus.check_push_option(push, fmt)
    if output:
        check_output_file(output)
    if fmt == prometheus.FORMAT:  # the file (or stdout) first; then the push, whose failure is exit 1
        stdout = prometheus.write_and_push(
            load_results(results), output, push, note=lambda line: typer.echo(line, err=True)
        )
        if stdout:
            typer.echo(stdout, nl=False)
        return
    exported = to_pytest_benchmark(load_results(results))
    for line in exported.skipped:
        typer.echo(f"tfperf: export: left out {line}", err=True)
    if not exported.document["benchmarks"]:
        raise TfperfError(f"{results}: no ok result with timed samples to export")
    text = json.dumps(exported.document, indent=2, allow_nan=False, default=str) + "\n"
    if output:
        atomic_write_text(output, text)
        typer.echo(f"wrote {output} ({len(exported.document['benchmarks'])} benchmarks)", err=True)
    else:
        typer.echo(text, nl=False)
