"""The command line: each command parses options and calls the library. Expected errors (TfperfError) become
one line on stderr and exit code 2, here and nowhere else; a traceback means a bug.

One module per group of commands (measuring, reports, info, profiling, serving); this module makes the Typer
application from them and is the entry point (`tfperf`, `python -m tfperf`).

TensorFlow is imported only by commands that measure (`env` here; `run` in its worker processes).
"""

from __future__ import annotations

import typer

from tfperf.cli import info, measuring, profiling, reports, serving
from tfperf.errors import TfperfError

app = typer.Typer(
    name="tfperf",
    help="How fast does a TensorFlow model run here, in eager, tf.function and XLA; why; and what to change.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Registered here rather than by decorators in each module, so `tfperf --help` lists the commands in this
# order whatever order their modules are imported in.
app.command()(measuring.run)
app.command()(reports.report)
app.command()(reports.compare)
app.command()(measuring.ab)
app.command()(reports.export)
app.command("list")(info.list_models)
app.command()(info.schema)
app.command()(info.env)
app.command()(profiling.tensorboard)
app.command()(profiling.doctor)
app.command()(profiling.capture)
app.command()(measuring.tune)
app.command("serve-bench")(serving.serve_bench)


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
