"""`serve-bench`: load-tests a TF Serving endpoint and writes a run folder like `run` does."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


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
