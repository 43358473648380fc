"""The commands that describe rather than measure: `list` (the built-in models), `schema` (the JSON Schemas)
and `env` (what TensorFlow sees on this machine)."""

from __future__ import annotations

import typer

from tfperf.errors import TfperfError
from tfperf.version import __version__


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
