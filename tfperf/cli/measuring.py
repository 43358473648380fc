"""The commands that measure: `run`, `ab` and `tune` start worker processes (which import TensorFlow) and
write a run folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from tfperf.errors import TfperfError


def _split_csv(values: Optional[List[str]]) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def run(
    suite: Path = typer.Argument(..., help="The suite YAML file."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output folder (default: reports/<suite>/<timestamp>/)."
    ),
    modes: Optional[List[str]] = typer.Option(
        None, "--modes", help="Comma-separated modes: eager,function,xla."
    ),
    device: Optional[str] = typer.Option(
        None, "--device", help="auto | cpu | gpu | gpu:N (overrides the suite)."
    ),
    case: Optional[List[str]] = typer.Option(None, "--case", help="Run only this case (repeatable)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Timed steps per repeat."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Repeats of the timed steps."),
    processes: Optional[int] = typer.Option(
        None,
        "--processes",
        min=1,
        help="Worker processes that time each job (default 3); compare needs 2+ "
        "to see how far the same code moves between processes.",
    ),
    no_profile: bool = typer.Option(False, "--no-profile", help="Skip the profiled pass."),
    fail_on_retrace: bool = typer.Option(
        False, "--fail-on-retrace", help="A function/xla case that traces more than once fails."
    ),
    force: bool = typer.Option(False, "--force", help="Allow a non-empty --out folder."),
    quiet: bool = typer.Option(False, "--quiet", help="Plain progress lines, no progress bar."),
    fmt: str = typer.Option("table", "--format", help="Final table: table | markdown | json."),
    what_if: bool = typer.Option(
        False,
        "--what-if",
        help="Re-run each input-bound job with each tf.data change (prefetch, parallel "
        "map, interleave, cache, larger batch) and measure its speed-up.",
    ),
) -> None:
    """Run every case of SUITE in every mode and batch size; write results.json, results.csv, report.md,
    report.html."""
    from tfperf.report.outputs import run_and_finish
    from tfperf.report.tables import FORMATS, render
    from tfperf.run.outdir import choose_out_dir, update_latest
    from tfperf.run.progress import reporter_for
    from tfperf.run.runner import RunInterrupted
    from tfperf.suite.loader import load_suite
    from tfperf.suite.plan import apply_overrides

    if fmt not in FORMATS:
        raise TfperfError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    loaded = load_suite(suite)
    planned = apply_overrides(
        loaded,
        cases=case,
        modes=_split_csv(modes),
        device=device,
        steps=steps,
        repeats=repeats,
        processes=processes,
        profile=False if no_profile else None,
        max_traces=1 if fail_on_retrace else None,
    )
    if what_if:
        import dataclasses

        planned = dataclasses.replace(planned, cases=tuple(c.replace(what_if=True) for c in planned.cases))
    out_dir = choose_out_dir(planned.name, out, force)
    try:
        result = run_and_finish(
            planned, out_dir, reporter=reporter_for(quiet), command=["tfperf", *sys.argv[1:]]
        )
    except RunInterrupted as exc:
        typer.echo(render(exc.run, fmt))
        typer.echo(
            f"tfperf: interrupted; {len(exc.run.results)} finished result(s) kept in "
            f"{exc.out_dir}/results.json",
            err=True,
        )
        raise typer.Exit(130) from None
    update_latest(out_dir)
    typer.echo(render(result, fmt))
    typer.echo(f"\nwrote {out_dir}/results.json, results.csv, report.md, report.html", err=True)
    raise typer.Exit(result.exit_code)


def ab(
    suite: Path = typer.Argument(..., help="The suite YAML file, in the working tree."),
    baseline: Optional[str] = typer.Option(
        None,
        "--baseline",
        help="A git ref (origin/main, the merge base) checked out in a temporary worktree.",
    ),
    baseline_dir: Optional[Path] = typer.Option(None, "--baseline-dir", help="Or a second checkout or copy."),
    threshold: str = typer.Option("10%", "--threshold", help="As in compare: 10% or 0.1."),
    confidence: str = typer.Option(
        "99%", "--confidence", help="Of the ratio's interval (99%: at least 8 pairs)."
    ),
    statistic: str = typer.Option(
        "min", "--statistic", help="Each process's figure: min | p10 | median of its steps."
    ),
    max_pairs: int = typer.Option(
        20, "--max-pairs", min=1, help="Stop after this many pairs (then inconclusive)."
    ),
    budget_s: float = typer.Option(900.0, "--budget-s", min=1, help="Stop before a round would pass this."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the random order within rounds."),
    case: Optional[List[str]] = typer.Option(None, "--case", help="Run only this case (repeatable)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Timed steps per repeat."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Repeats per process."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output folder (default: reports/<suite>-ab/<timestamp>/)."
    ),
    force: bool = typer.Option(False, "--force", help="Allow a non-empty --out folder."),
    fmt: str = typer.Option("table", "--format", help="table | markdown | json | html"),
) -> None:
    """Run SUITE from the baseline and the working tree in one run, their worker processes interleaved, and
    compare them pair by pair. Exit 0 no regression, 1 a regression, 2 bad input, 3 a row missing or
    failed."""
    from tfperf.ab import ABOptions, read_confidence, render, run_ab
    from tfperf.analysis.compare import exit_code
    from tfperf.analysis.threshold import read_threshold
    from tfperf.report.compare import RENDERERS

    if fmt not in RENDERERS:
        raise TfperfError(f"--format {fmt}: choose one of {', '.join(RENDERERS)}")
    options = ABOptions(
        baseline=baseline,
        baseline_dir=baseline_dir,
        threshold=read_threshold(threshold).value,
        confidence=read_confidence(confidence),
        statistic=statistic,
        max_pairs=max_pairs,
        budget_s=budget_s,
        seed=seed,
        cases=case,
        steps=steps,
        repeats=repeats,
    )
    cmp, out_dir = run_ab(
        suite,
        out,
        force,
        options,
        progress=lambda line: typer.echo(line, err=True),
        command=["tfperf", *sys.argv[1:]],
    )
    typer.echo(render(cmp, fmt), nl=False)
    typer.echo(
        f"wrote {out_dir}/base/, {out_dir}/current/ (results.json and reports), ab.json, ab.md, ab.html",
        err=True,
    )
    raise typer.Exit(exit_code(cmp))


def tune(
    suite: Path = typer.Argument(..., help="The suite YAML file."),
    case: Optional[List[str]] = typer.Option(None, "--case", help="Tune only this case (repeatable)."),
    budget_s: float = typer.Option(300.0, "--budget-s", min=1, help="Time budget per case, in seconds."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output folder (default: reports/<suite>-tune/<timestamp>/)."
    ),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Timed steps per repeat."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Repeats of the timed steps."),
    force: bool = typer.Option(False, "--force", help="Allow a non-empty --out folder."),
    quiet: bool = typer.Option(False, "--quiet", help="Plain progress lines, no progress bar."),
) -> None:
    """Measure configurations of each case (mode, batch, threads, XLA auto-clustering, Grappler, tf.data,
    mixed precision), each in its own worker, rank them against the baseline and write tuned.yaml."""
    from tfperf.run.outdir import choose_out_dir
    from tfperf.suite.loader import load_suite
    from tfperf.suite.plan import apply_overrides
    from tfperf.tune import progress_for, render_text, tune_suite

    loaded = load_suite(suite)
    planned = apply_overrides(loaded, cases=case, steps=steps, repeats=repeats)
    out_dir = choose_out_dir(f"{planned.name}-tune", out, force)
    result = tune_suite(
        planned, out_dir, budget_s=budget_s, progress=progress_for(quiet), command=["tfperf", *sys.argv[1:]]
    )
    typer.echo(render_text(result))
    typer.echo(f"wrote {out_dir}/tune.md, tune.json, tuned.yaml, results.json, report.html", err=True)
    # 1 when a case could not be tuned at all (its baseline failed), like `run` for a failed case.
    raise typer.Exit(1 if any(t.message for t in result.cases) else 0)
