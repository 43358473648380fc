"""The profiler's commands: `tensorboard` serves a run's traces, `doctor` checks the profiler works here,
`capture` traces a TensorFlow process tfperf did not start."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tfperf.errors import TfperfError


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
