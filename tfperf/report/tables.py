"""Terminal and Markdown tables, and the flat frame behind results.csv: rendered from results.json only.

Figures come from `tfperf.figures.measures`, numbers are written by `tfperf.units` and verdicts are worded by
`tfperf.report.verdicts`, as on the HTML page, so the three outputs say the same about the same result. The
terminal table writes a missing value as "-" (plain text); report.md and the page as "–".
"""

from __future__ import annotations

import json

from tabulate import tabulate

from tfperf import units
from tfperf.figures import measures
from tfperf.figures.thresholds import NOISY_FRACTION, WHAT_IF_MIN_SPEEDUP
from tfperf.report import noise
from tfperf.report.headline import verdict_lines
from tfperf.report.ranked import markdown_lines, ranked_cards, terminal_lines
from tfperf.report.verdicts import input_bound_cell, input_bound_difference, xla_verdict
from tfperf.results.model import Result, RunResult
from tfperf.results.serve_records import ServeBench

FORMATS = ("table", "markdown", "json")


NA = "-"  # a missing value in these plain-text tables


def summary_rows(run: RunResult) -> list[dict]:
    """One row per result, in run order: the numbers a reader compares across modes."""
    rows = []
    for r in run.results:
        notes = []
        if r.ok and r.noisy:
            spread = r.process_spread
            # Say where the noise is: between worker processes, or within them.
            notes.append(
                f"noisy (processes {units.percent(spread)} apart)"
                if spread and spread > NOISY_FRACTION
                else "noisy"
            )
        if r.timing and r.timing.method == "blocked":
            notes.append(f"blocked x{r.timing.block_size}")
        if r.profile and r.profile.error:
            notes.append(f"profile failed: {r.profile.error}"[:120])
        if r.error:
            notes.append(f"{r.error.type}: {r.error.message}"[:120])
        row = {
            "case": r.case,
            "mode": r.mode,
            "batch": "-" if r.batch_size is None else r.batch_size,
            "status": r.status,
            "median ms": units.ms_column(r.median_s, NA),
            "samples/s": throughput_cell(r),
            "first call": units.seconds(r.first_call_s, NA),
            "vs eager": units.speedup(measures.speedup_over_eager(r, run.results), NA),
            "traces": NA if r.tracing_count is None else r.tracing_count,
            # tfperf's input-bound verdict: the measured wait, else the profiler's figure (marked).
            "input-bound": input_bound_cell(r, NA),
        }
        _extension_columns(r, row)
        row["notes"] = "; ".join(notes)
        rows.append(row)
    _drop_empty_columns(rows)
    return rows


def throughput_cell(r: Result) -> str:
    """The "samples/s" column: the number alone for samples (and serve-bench's instances) per second, with its
    unit when the job has no batch size and the figure is steps per second."""
    tp = measures.throughput(r)
    if tp is None:
        return NA
    value, unit = tp
    return units.number(value) if unit != "steps/s" else f"{units.number(value)} {unit}"


def _extension_columns(r: Result, row: dict) -> None:
    """Columns the profiler, graph, deployment and distribution read-outs add when they measured something."""
    top = ((r.profile.top_ops if r.profile else None) or [None])[0]
    row["top op"] = f"{top['name']} ({units.percent(top.get('share', 0))})"[:48] if top else ""
    fusions = r.graph.fusions if r.graph and r.mode == "xla" else None
    row["fusions"] = fusions if fusions is not None else ""
    row["replicas"] = r.replicas if r.replicas is not None else ""
    row["global batch"] = (
        r.global_batch_size if r.global_batch_size is not None else ""
    )  # batch is per replica
    row["scaling"] = units.percent(r.scaling_efficiency, missing="")
    row["size"] = units.size(r.model_size_bytes) if r.model_size_bytes else ""
    agreement = r.output_agreement
    row["top-1 agree"] = units.percent(agreement.top1_agreement if agreement else None, missing="") + (
        " (not meaningful)" if agreement and agreement.meaningful is False else ""
    )
    row["max err"] = units.error_figure(agreement.max_abs_error if agreement else None, missing="")
    serve = (r.serve if r.mode == measures.SERVE_MODE else None) or ServeBench()
    row["p99 ms"] = units.ms_column(serve.latency_s.p99, NA) if serve.latency_s else ""
    # Beside the client's p99: the server's own (its request-latency histogram; within a 1.8x bucket).
    server = serve.server.request_latency_s if serve.server else None
    server_p99 = server.p99 if server else None
    row["server p99 ms"] = units.ms_column(server_p99, NA) if server_p99 is not None else ""
    row["clients"] = serve.concurrency if serve.concurrency is not None else ""
    row["errors"] = serve.requests_failed if serve.requests_failed is not None else ""


def _drop_empty_columns(rows: list[dict]) -> None:
    if not rows:
        return
    for key in list(rows[0]):
        if all(row.get(key) in ("", None) for row in rows):
            for row in rows:
                row.pop(key, None)


def what_if_rows(run: RunResult) -> list[dict]:
    """One row per what-if re-run (tfperf.measure.whatif): the change, the step before → after, its speed-up,
    the input wait after it, and whether it helped (only changes that helped become suggestions)."""
    rows = []
    for r in run.results:
        for w in r.what_if or []:
            helped = (
                "failed: " + str(w.error)[:60]
                if w.error
                else "skipped (timeout_s)"
                if w.skipped
                else "yes"
                if w.helped
                else "no"
            )
            # An entry that did not record the wait before the change: the job's own wait is that baseline.
            wait_before = (
                w.baseline_input_wait_fraction
                if w.baseline_input_wait_fraction is not None
                else r.input_wait_fraction
            )
            rows.append(
                {
                    "job": r.spec.label,
                    "change": w.change or "?",
                    "ms/step": f"{units.ms_column(w.baseline_median_s, NA)} → "
                    f"{units.ms_column(w.median_s, NA)}",
                    "speed-up": units.speedup(w.speedup, NA)
                    + (" (per sample)" if w.speedup is not None and w.batch_size else ""),
                    "input wait": units.percent(wait_before, missing=NA)
                    + " → "
                    + units.percent(w.input_wait_fraction, missing=NA),
                    "helped": helped,
                }
            )
    return rows


def failures(run: RunResult) -> list[Result]:
    return [r for r in run.results if r.status in ("failed", "timeout")]


def render_table(run: RunResult) -> str:
    rows = summary_rows(run)
    notice = interrupted_notice(run)
    if not rows:
        return f"{notice}\nno results" if notice else "no results"
    text = tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True)
    lines = [notice, text] if notice else [text]
    what_ifs = what_if_rows(run)
    if what_ifs:
        lines.append("\nwhat-if runs (each tf.data change re-measured on the input-bound job):")
        lines.append(tabulate(what_ifs, headers="keys", tablefmt="simple", disable_numparse=True))
    for r in failures(run):
        hint = f"\n    hint: {r.error.hint}" if r.error and r.error.hint else ""
        lines.append(f"{r.status.upper()} {r.spec.label}: {r.error.message if r.error else ''}{hint}")
    noted = noise.warning_lines(run)
    if noted:
        lines.append("\nprocess noise (the worker processes' records warn):")
        lines.extend(f"  {line}" for line in noted)
    ranked = terminal_lines(ranked_cards(run))
    if ranked:
        lines.append("\nsuggestions, largest measured gain first:")
        lines.extend(ranked)
    return "\n".join(lines)


def render_terminal(run: RunResult) -> str:
    """What `tfperf run` and `tfperf report` print: the verdict per case first, then the table and the ranked
    suggestions (`render_table`)."""
    verdicts = verdict_lines(run)
    head = ["verdict per case (details below):", *verdicts, ""] if verdicts else []
    return "\n".join(head + [render_table(run)])


def render_markdown(run: RunResult) -> str:
    suite = run.suite.get("name", "?")
    env = run.environment
    out = [f"# tfperf: {suite}", ""]
    out.append(
        f"TensorFlow {env.get('tensorflow', '?')}, Keras {env.get('keras', '?')}, "
        f"{env.get('cpu_model', '?')} ({env.get('cpu_count', '?')} cores), "
        f"GPUs: {', '.join(g.get('name', '?') for g in env.get('gpus') or []) or 'none'}. "
        f"Started {run.started_at}, finished {run.finished_at or 'not finished'}"
        + (" (interrupted)" if run.interrupted else "")
        + "."
    )
    out.append("")
    counts = {s: sum(1 for r in run.results if r.status == s) for s in ("ok", "failed", "timeout", "skipped")}
    out.append(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no results")
    out.append("")
    verdicts = verdict_lines(run)
    if verdicts:
        # The answer first: the mode to use, the best measured fix, what was not recommended and why.
        out.append("## Verdict")
        out.append("")
        out.extend(f"- {ln}" if not ln.startswith("  ") else f"  - {ln.strip()}" for ln in verdicts)
        out.append("")
    cards = ranked_cards(run)
    if cards:
        out.append("## Suggestions, largest measured gain first")
        out.append("")
        out.extend(markdown_lines(cards))
        out.append("")
    rows = summary_rows(run)
    if rows:
        out.append("## Results")
        out.append("")
        out.append(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))
        out.append("")
    fails = failures(run)
    if fails:
        out.append("## Failures")
        out.append("")
        for r in fails:
            out.append(
                f"- **{r.spec.label}** ({r.status}): `{r.error.type if r.error else ''}` "
                f"{r.error.message if r.error else ''}"
            )
            if r.error and r.error.hint:
                out.append(f"  - hint: {r.error.hint}")
        out.append("")
    noted = noise.warning_lines(run)
    if noted:
        out.append("## Process noise")
        out.append("")
        out.extend(f"- {line}" for line in noted)
        out.append("")
    what_ifs = what_if_rows(run)
    if what_ifs:
        out.append("## What-if runs")
        out.append("")
        out.append(
            "Each input-bound job re-run with one tf.data change at a time, then all of them combined "
            "(`tfperf run --what-if`, or `what_if: true`); a larger batch is compared per sample. "
            f"Only a change that helped (faster by more than {WHAT_IF_MIN_SPEEDUP:.2f}×, significantly when "
            "there are enough samples) becomes a suggestion."
        )
        out.append("")
        out.append(tabulate(what_ifs, headers="keys", tablefmt="github", disable_numparse=True))
        out.append("")
    out.extend(_xla_markdown(run))
    out.extend(_profile_markdown(run))
    out.append(
        "Timing: median of repeats × steps timed steps after warm-up, pooled over each job's worker "
        "processes (`processes`); completion forced before each clock read; first call (tracing + "
        "compilation + one step) timed separately, in the first process. `noisy`: interquartile range above "
        f"{units.percent(NOISY_FRACTION)} of the median; `processes N% apart`: the processes' own medians "
        "differ by that much. `input-bound`: the share of the step spent waiting for input, measured around "
        "`next(iterator)` on every timed step; the profiler's figure, marked, only when nothing was measured."
    )
    return "\n".join(out) + "\n"


def _xla_markdown(run: RunResult) -> list[str]:
    """XLA's compile cost per case, worded as on the HTML page: its payback, or why there is no suggestion."""
    lines = []
    for case in dict.fromkeys(r.case for r in run.results):
        verdict = xla_verdict([r for r in run.results if r.case == case])
        if verdict:
            lines.append(f"- **{case}**: {verdict.text}.")
    return ["## XLA compile cost", "", *lines, ""] if lines else []


def _profile_markdown(run: RunResult) -> list[str]:
    """Where the profiled step's time went, per case × mode: phases, top layers, top ops (from
    result.profile), beside tfperf's input-bound verdict and the profiler's own figure; why the two differ,
    when they do."""
    rows, differences = [], []
    for r in run.results:
        prof = r.profile
        phases = (prof.phases if prof else None) or {}
        top_ops = (prof.top_ops if prof else None) or []
        if not (top_ops or phases):
            continue
        split = ", ".join(
            f"{k} {units.percent(v['share'])}"
            for k, v in phases.items()
            if isinstance(v, dict) and v.get("share")
        )
        layers = ", ".join(
            f"{e['layer']} {units.percent(e['share'])}"
            for e in (prof.layers or [])[:3]
            if e.get("share") is not None
        )
        ops = ", ".join(
            f"`{o['name']}` {units.percent(o['share'])}" for o in top_ops[:3] if o.get("share") is not None
        )
        why = input_bound_difference(r)
        if why:
            differences.append(f"- {r.spec.label}: {why}.")
        rows.append(
            {
                "case": r.case,
                "mode": r.mode,
                "batch": "-" if r.batch_size is None else r.batch_size,
                "input-bound": input_bound_cell(r, NA),
                "profiler input": units.percent(measures.profiler_input_bound_fraction(r), 1, NA),
                "phases": split or "-",
                "top layers": layers or "-",
                "top ops": ops or "-",
                "trace": f"`{prof.run}`" if prof.run else "-",
            }
        )
    if not rows:
        return []
    return [
        "## Where the time goes (profiled pass)",
        "",
        tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True),
        "",
        "Shares of op self time in the untimed profiled pass; phases and layers come from the op names' "
        "scopes "
        "(eager ops and XLA clusters carry none). Open the traces with `tfperf tensorboard`. `input-bound` "
        "is "
        "tfperf's verdict (as in the table above); `profiler input` is xprof's share from the profiled pass.",
        "",
        *(
            [
                "Where the profiler's conclusion differs from tfperf's input-bound verdict:",
                "",
                *differences,
                "",
            ]
            if differences
            else []
        ),
    ]


def render_json(run: RunResult) -> str:
    """The rows as numbers (results.csv's columns, not the table's display strings), and whether the run was
    interrupted: a script reading it must not take a stopped run's rows for a whole run."""
    return json.dumps(
        {
            "suite": run.suite.get("name"),
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "interrupted": bool(run.interrupted),
            "rows": flat_rows(run),
        },
        indent=2,
        default=str,
    )


def interrupted_notice(run: RunResult) -> str | None:
    """What the terminal table says about a run stopped before it finished (report.md says it in its
    header)."""
    if not run.interrupted:
        return None
    return (
        f"INTERRUPTED: this run was stopped before it finished; the {len(run.results)} result(s) below are "
        "those that finished"
    )


def render(run: RunResult, fmt: str) -> str:
    if fmt == "table":
        return render_terminal(run)
    if fmt == "markdown":
        return render_markdown(run)
    if fmt == "json":
        return render_json(run)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def to_dataframe(run: RunResult):
    """One flat row per result (results.csv). The raw samples stay in results.json."""
    import pandas as pd

    return pd.DataFrame.from_records(flat_rows(run))


def flat_rows(run: RunResult) -> list[dict]:
    """One flat record of numbers per result: results.csv's rows and `--format json`'s."""
    records = []
    for r in run.results:
        d = r.to_json()
        rec = {
            k: d[k]
            for k in (
                "case",
                "mode",
                "device",
                "task",
                "batch_size",
                "status",
                "model",
                "first_call_s",
                "tracing_count",
                "input_wait_fraction",
                "peak_memory_bytes",
                "noisy",
                "replicas",
                "global_batch_size",
                "scaling_efficiency",
                "model_size_bytes",
                "load_time_s",
            )
        }
        for k, v in (d.get("step_time_s") or {}).items():
            rec[f"step_time_s.{k}"] = v
        for k, v in (d.get("throughput") or {}).items():
            rec[f"throughput.{k}"] = v
        rec["speedup_over_eager"] = measures.speedup_over_eager(r, run.results)
        ib = measures.input_bound(r)
        rec["input_bound_fraction"] = ib.fraction if ib else None
        rec["input_bound_source"] = ib.source if ib else None
        rec["timing_method"] = r.timing.method if r.timing else None
        rec["retraces"] = len(r.retraces)
        rec["profile.input_bound_percent"] = r.profile.input_bound_percent if r.profile else None
        top = ((r.profile.top_ops if r.profile else None) or [None])[0]
        rec["profile.top_op"] = top["name"] if top else None
        rec["error.type"] = r.error.type if r.error else None
        rec["error.message"] = r.error.message if r.error else None
        rec["suggestions"] = ";".join(s.code for s in r.suggestions)
        records.append(rec)
    return records
