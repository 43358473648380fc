"""The command line: each command parses options and calls the library. Expected errors (TfperfError) become
one line on stderr and exit code 2, here and nowhere else; a traceback means a bug.

TensorFlow is imported only by commands that measure (`env` here; `run` in its worker processes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from tfperf.errors import TfperfError
from tfperf.version import __version__

app = typer.Typer(
    name="tfperf",
    help="How fast does a TensorFlow model run here, in eager, tf.function and XLA; why; and what to change.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _split_csv(values: Optional[List[str]]) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@app.command()
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
    from tfperf.analysis.advisor import attach_suggestions
    from tfperf.report.outputs import finish_run
    from tfperf.report.tables import FORMATS, render
    from tfperf.run.outdir import choose_out_dir, update_latest
    from tfperf.run.progress import reporter_for
    from tfperf.run.runner import RunInterrupted, run_suite
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
        result = run_suite(
            planned,
            out_dir,
            reporter=reporter_for(quiet),
            fail_on_retrace=fail_on_retrace,
            command=["tfperf", *sys.argv[1:]],
            annotate=attach_suggestions,
        )
    except RunInterrupted as exc:
        finish_run(exc.run, exc.out_dir)
        typer.echo(render(exc.run, fmt))
        typer.echo(
            f"tfperf: interrupted; {len(exc.run.results)} finished result(s) kept in "
            f"{exc.out_dir}/results.json",
            err=True,
        )
        raise typer.Exit(130) from None
    finish_run(result, out_dir)
    update_latest(out_dir)
    typer.echo(render(result, fmt))
    typer.echo(f"\nwrote {out_dir}/results.json, results.csv, report.md, report.html", err=True)
    raise typer.Exit(result.exit_code)


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
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


@app.command("list")
def list_models(fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """List the built-in models (zoo:NAME) with their parameters and defaults."""
    import json

    from tabulate import tabulate

    from tfperf.zoo import describe_models

    if fmt not in ("table", "json"):
        raise TfperfError(f"--format {fmt}: choose one of table, json")
    models = describe_models()
    if fmt == "json":
        typer.echo(json.dumps(models, indent=2, default=str))
        return
    rows = [
        {
            "model": f"zoo:{m['name']}",
            "params (defaults)": ", ".join(f"{k}={v}" for k, v in (m.get("params") or {}).items()),
            "input": m.get("input"),
            "labels": m.get("labels"),
            "description": m.get("description"),
        }
        for m in models
    ]
    typer.echo(tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True))


@app.command()
def schema(what: str = typer.Argument(..., help="suite | results")) -> None:
    """Print the JSON Schema of a suite file or of results.json, generated from the models that read them."""
    import json

    if what == "suite":
        from tfperf.suite.json_schema import suite_schema

        document = suite_schema()
    elif what == "results":
        from tfperf.results.json_schema import results_schema

        document = results_schema()
    else:
        raise TfperfError(f"schema: unknown schema '{what}'; choose suite or results")
    typer.echo(json.dumps(document, indent=2))


@app.command()
def env(fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """What TensorFlow sees here: versions, CPU, GPUs, XLA, threads and the flags that change performance."""
    import json
    import os

    if fmt not in ("table", "json"):  # before TensorFlow is imported: a typo costs no wait
        raise TfperfError(f"--format {fmt}: choose one of table, json")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfperf.host.environment import gpu_memory, host_environment, tensorflow_environment

    info = {**host_environment(), **tensorflow_environment()}
    info["gpus"] = gpu_memory(info["gpus"])
    if fmt == "json":
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    lines = [
        f"tfperf       {__version__}",
        f"tensorflow   {info['tensorflow']}   keras {info['keras']}   python {info['python']}",
        f"platform     {info['platform']}",
        f"cpu          {info['cpu_model']} ({info['cpu_count']} logical cores)",
        f"threads      intra-op {info['intra_op_threads'] or 'auto'}, inter-op "
        f"{info['inter_op_threads'] or 'auto'}",
        f"xla          {'available' if info['xla_available'] else 'NOT available'}",
        f"onednn       {info['onednn']}",
        f"cuda/cudnn   {info['cuda'] or '-'} / {info['cudnn'] or '-'}",
    ]
    if info["gpus"]:
        for g in info["gpus"]:
            lines.append(
                f"gpu          {g['device']}: {g['name']}, compute capability {g['compute_capability']}"
            )
    else:
        lines.append("gpu          none visible to TensorFlow (runs use the CPU)")
    flags = info["env"]
    lines.append("flags        " + (", ".join(f"{k}={v}" for k, v in flags.items()) or "none set"))
    typer.echo("\n".join(lines))


@app.command()
def tensorboard(
    out: Optional[Path] = typer.Argument(None, help="A run folder (default: the latest under reports/)."),
    port: Optional[int] = typer.Option(
        None, "--port", min=1, max=65535, help="Port on 127.0.0.1 (default: a free one)."
    ),
) -> None:
    """Serve a run's profiler traces and HParams in TensorBoard on 127.0.0.1; Ctrl-C stops it."""
    import time

    from tfperf.profile.tensorboard_server import start_tensorboard, tensorboard_logdir

    logdir = tensorboard_logdir(out)
    server = start_tensorboard(logdir, port=port)
    typer.echo(
        f"TensorBoard on {server.url}  (logdir {logdir}; profile tab: {server.url}#profile). Ctrl-C stops it."
    )
    try:
        while server.process.poll() is None:
            time.sleep(0.5)
        typer.echo(
            f"tfperf: TensorBoard exited with code {server.process.returncode}:\n{server.log_tail()}",
            err=True,
        )
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("stopping TensorBoard", err=True)
    finally:
        server.stop()


@app.command()
def doctor(
    no_trace: bool = typer.Option(False, "--no-trace", help="Skip the check that records a real trace."),
) -> None:
    """Pre-flight checks for profiling: TensorBoard and its profile plugin, a real trace, step markers,
    CUPTI."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfperf.profile.doctor import render as render_checks
    from tfperf.profile.doctor import run_checks

    checks = run_checks(trace=not no_trace)
    typer.echo(render_checks(checks))
    raise typer.Exit(1 if any(c.failed for c in checks) else 0)


@app.command()
def capture(
    addresses: str = typer.Argument(
        ...,
        help="grpc://HOST:PORT of a process that called "
        "tf.profiler.experimental.server.start(PORT); comma-separate several.",
    ),
    duration_ms: int = typer.Option(2000, "--duration-ms", min=1, help="How long to trace, in ms."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output folder (default: reports/capture/<timestamp>/)."
    ),
    fmt: str = typer.Option("text", "--format", help="text | json"),
) -> None:
    """Capture a trace from a running TensorFlow process and print what tfperf reads out of it."""
    import json
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfperf.profile.capture import capture as capture_trace
    from tfperf.profile.capture import default_out_dir, parse_addresses
    from tfperf.profile.readout import summarize
    from tfperf.run.outdir import check_out_folder

    if fmt not in ("text", "json"):
        raise TfperfError(f"--format {fmt}: choose one of text, json")
    parsed = parse_addresses(addresses)
    out = out or default_out_dir()
    check_out_folder(out, "--out")  # before TensorFlow is imported and the target asked for a trace
    profile = capture_trace(parsed, duration_ms, out)
    if fmt == "json":
        typer.echo(json.dumps(profile, indent=2, default=str))
    else:
        typer.echo(
            f"captured {duration_ms} ms from {', '.join(profile['addresses'])} into {profile['logdir']}"
        )
        typer.echo(summarize(profile))
        typer.echo(f"open it: tfperf tensorboard {Path(profile['logdir']).parent.parent}")


@app.command()
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


@app.command("serve-bench")
def serve_bench(
    url: str = typer.Argument(..., help="The TF Serving REST base URL, e.g. http://127.0.0.1:8501"),
    model: str = typer.Option(..., "--model", help="The model name: POST URL/v1/models/NAME:predict."),
    signature: Optional[str] = typer.Option(
        None, "--signature", help="signature_name (default: the server's, serving_default)."
    ),
    version: Optional[str] = typer.Option(None, "--version", help="Model version: .../versions/V:predict."),
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", min=1, help="Connections (1; 16 with --qps)."
    ),
    requests: Optional[int] = typer.Option(
        None, "--requests", min=1, help="Request cap (default 1000, or 1e6 when --duration is given)."
    ),
    duration: Optional[float] = typer.Option(None, "--duration", help="Time cap in seconds (default 60)."),
    input_from: Optional[str] = typer.Option(
        None, "--input-from", help="SUITE.yaml:CASE whose input spec shapes the instances."
    ),
    instances: Optional[Path] = typer.Option(
        None, "--instances", help="A JSON file with the instances to send."
    ),
    batch: int = typer.Option(1, "--batch", min=1, help="Instances per request (synthetic inputs)."),
    request_format: str = typer.Option(
        "instances", "--request-format", help="instances (row) | inputs (columnar)."
    ),
    timeout: float = typer.Option(10.0, "--timeout", help="Per-request timeout in seconds."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Untimed requests sent first."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output folder (default: reports/serve-bench-NAME/<timestamp>/)."
    ),
    force: bool = typer.Option(False, "--force", help="Allow a non-empty --out folder."),
    qps: Optional[float] = typer.Option(
        None, "--qps", help="Open loop: Poisson arrivals at this many requests/s."
    ),
    p99_bound_ms: Optional[float] = typer.Option(
        None, "--p99-bound-ms", help="Open loop: VALID / INVALID bound."
    ),
    metrics_path: str = typer.Option(
        "/monitoring/prometheus/metrics", "--metrics-path", help="The server's page."
    ),
    no_server_metrics: bool = typer.Option(
        False, "--no-server-metrics", help="Do not read the server's page."
    ),
) -> None:
    """Load-test a TF Serving REST predict endpoint: throughput, latency p50/p90/p99/max, errors by HTTP
    status and connection error kind. Bounded by a request cap and a time cap. Writes results.json (mode
    "serve") and reports."""
    from tfperf.deploy.open_loop import OPEN_LOOP_CONNECTIONS
    from tfperf.deploy.serve_bench import (
        ServeBenchConfig,
        ServeBenchError,
        bench_exit_code,
        instances_from_file,
        instances_from_metadata,
        instances_from_suite,
        render_summary,
    )
    from tfperf.deploy.serve_bench import (
        serve_bench as bench,
    )
    from tfperf.report.outputs import finish_run
    from tfperf.run.outdir import choose_out_dir

    config = ServeBenchConfig(
        url=url.rstrip("/"),
        model=model,
        signature=signature,
        version=version,
        concurrency=concurrency or (OPEN_LOOP_CONNECTIONS if qps is not None else 1),
        max_requests=requests,
        duration_s=duration,
        timeout_s=timeout,
        warmup_requests=warmup,
        request_format=request_format,
        qps=qps,
        p99_bound_s=p99_bound_ms / 1e3 if p99_bound_ms is not None else None,
        metrics_path=None if no_server_metrics else metrics_path,
    )
    config.validate()
    if input_from and instances:
        raise ServeBenchError("give --input-from or --instances, not both")
    if instances:
        payload = instances_from_file(instances)
    elif input_from:
        payload = instances_from_suite(input_from, batch)
    else:
        payload = instances_from_metadata(config, batch)
    out_dir = choose_out_dir(f"serve-bench-{model}", out, force)
    run = bench(config, payload, command=["tfperf", *sys.argv[1:]])
    out_dir.mkdir(parents=True, exist_ok=True)
    finish_run(run, out_dir)
    typer.echo(render_summary(run.results[0]))
    typer.echo(f"\nwrote {out_dir}/results.json, results.csv, report.md, report.html", err=True)
    raise typer.Exit(bench_exit_code(run))


def main(argv: list[str] | None = None) -> int:
    """Entry point for `tfperf` and `python -m tfperf`."""
    try:
        rc = app(args=argv, prog_name="tfperf", standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except TfperfError as exc:
        typer.echo(f"tfperf: {exc}" if "\n" not in str(exc) else f"tfperf: invalid input\n{exc}", err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("tfperf: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("tfperf: interrupted", err=True)
        return 130
    except Exception as exc:  # click's usage errors arrive here in standalone_mode=False
        if isinstance(exc, click_exception_types()):
            exc.show()  # "Usage: ... Error: ...", or the help for a bare command, as click prints them
            return exc.exit_code  # 2 for every usage error
        raise


def click_exception_types() -> tuple[type[Exception], ...]:
    """The ClickException classes typer may raise. Typer 0.29 raises its own vendored copy of click
    (`typer._click`), which is not the click package's class; older typer raises the click package's. Both are
    matched, so a usage error is click's message and exit 2 whichever typer is installed."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


if __name__ == "__main__":
    sys.exit(main())
