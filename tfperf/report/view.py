"""The page's view of one case: its result rows, each result's details and the case section around them.

Every figure comes from `tfperf.figures.measures` (speed-up over eager, input-bound share, noise, rate) and
every number is written by `tfperf.units`, so a row here says what the terminal table and report.md say.
"""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup

from tfperf import units
from tfperf.figures import measures
from tfperf.report import charts, inside_step, plain, sections
from tfperf.report.noise import noise_view
from tfperf.report.summary import case_findings, case_summary
from tfperf.report.verdicts import (
    input_bound_cell,
    input_bound_difference,
    input_bound_verdict,
    job,
    profiler_conclusion,
    xla_verdict,
)
from tfperf.results.model import Result, process_timing

TOP_OPS = 10


def result_row(r: Result, case_results: list[Result], swept: bool) -> dict:
    """One row of the results tables."""
    st = r.step_time_s
    tp = measures.throughput(r)
    throughput = f"{units.number(tp[0])} {tp[1]}" if tp else units.MISSING
    return {
        "case": r.case,
        "mode": r.mode,
        "batch_size": r.batch_size,
        "label": r.mode + (f" bs={r.batch_size}" if swept and r.batch_size is not None else ""),
        "task": r.task,
        "device": r.device,
        "status": r.status,
        "median": units.seconds(st["median"]) if st else units.MISSING,
        "iqr_pct": units.percent(measures.noise_fraction(r)),
        "noisy": bool(r.samples) and r.noisy,
        "samples": len(r.samples),
        "throughput": throughput,
        "speedup": units.speedup(measures.speedup_over_eager(r, case_results)),
        "first_call": units.seconds(r.first_call_s),
        "tracing_count": units.number(r.tracing_count),
        "retraces": len(r.retraces),
        "input_bound": input_bound_cell(r),
        "peak_memory": peak_memory_cell(r),
        "error_type": r.error.type if r.error else None,
    }


def peak_memory_cell(r: Result) -> str:
    """A real peak only (`tfperf.figures.measures.peak_memory`): the GPU allocator's, or the profiled pass's
    memory profile, marked as such; a CPU job without a memory profile has no peak to show."""
    peak = measures.peak_memory(r)
    if peak is None:
        return units.MISSING
    return units.size(peak.bytes) + (" (profile)" if peak.source == "profile" else "")


# The profiler figures a reader looks for first; every other scalar of the read-out goes under "more". The
# input-bound figure and conclusion are not here: they are shown with tfperf's verdict (`input_facts`).
PROFILE_HEADLINE = (
    ("step_time_ms", "profiled step", "ms"),
    ("host_compute_ms", "host compute", "ms"),
    ("device_compute_ms", "device compute", "ms"),
    ("step_time_breakdown_ms", "step breakdown (ms)", ""),
    ("breakdown", "breakdown", ""),
    ("run", "TensorBoard run", ""),
)
INPUT_KEYS = ("input_bound_percent", "input_conclusion")


def is_device_key(key: str) -> bool:
    """A profile figure about the accelerator: left out for a CPU job, where xprof writes it as a zero."""
    return key.startswith(("device_", "kernel_launch"))


def profile_value(v: Any, unit: str) -> str:
    if unit == "ms" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return units.seconds(v / 1e3)
    if isinstance(v, dict):  # a breakdown: drop the zero phases (device ones on a CPU), they only add noise
        return units.text({k: x for k, x in v.items() if x}) or units.MISSING
    return units.text(v)


def input_facts(r: Result) -> list[tuple[str, str]]:
    """tfperf's input-bound verdict first, then the profiler's figure and words as evidence, and why they
    differ when they do (xprof's "All Others" time is not input time)."""
    verdict = input_bound_verdict(r)
    if verdict is None and profiler_conclusion(r) is None:
        return []
    ib = measures.input_bound(r)
    facts = [("input-bound (tfperf)", verdict or units.MISSING)]
    if ib and ib.profiler is not None:
        facts.append(("profiler's input share", units.percent(ib.profiler, 1)))
    if profiler_conclusion(r):
        facts.append(("profiler's conclusion", profiler_conclusion(r)))
    why = input_bound_difference(r)
    if why:
        facts.append(("why they differ", why))
    return facts


PROCESS_COLUMNS = ("process", "method", "block size", "warm-up", "median", "first call", "load average")
# Run-level timing fields shown beside the per-process table; `by_process` and `processes` are the table.
TIMING_FIELDS = (
    ("steps", "timed steps per repeat"),
    ("repeats", "repeats"),
    ("warmup_steps", "warm-up steps"),
    ("warmup_steps_run", "warm-up steps run"),
    ("sync", "completion forced by"),
    ("sync_cost_s", "cost of forcing completion"),
    ("gc_disabled_while_timing", "gc off while timing"),
)


def timing_view(r: Result) -> dict | None:
    """A result's timing as one row per worker process (`timing.by_process`) plus the run-level fields."""
    timing = r.timing
    d = timing.to_json() if timing else {}
    if not d:
        return None
    # One process: its row is the result itself, as merge_process records the first of several.
    procs = timing.by_process or [process_timing(r, 0)]
    rows = [
        [
            units.number(p.process),
            units.text(p.method),
            units.number(p.block_size),
            units.seconds(p.warmup_s),
            units.seconds(p.median_s),
            units.seconds(p.first_call_s),
            units.number(p.load_average_1m),
        ]
        for p in procs
    ]
    fields = []
    for key, label in TIMING_FIELDS:
        v = d.get(key)
        if v is not None:
            fields.append((label, units.seconds(v) if key.endswith("_s") else units.number(v)))
    known = {k for k, _ in TIMING_FIELDS} | {
        "by_process",
        "processes",
        "method",
        "block_size",
        "warmup_s",
        "load_average_1m",
        "median_s",
        "first_call_s",
        "process",
        "noise",
    }  # the noise records have their own table (noise_view)
    fields += [(k, units.text(v)) for k, v in d.items() if k not in known and v is not None]
    return {"columns": PROCESS_COLUMNS, "rows": rows, "fields": fields}


def result_details(r: Result) -> dict:
    """The per-result extras, each only when present: profile, graph, deployment, distribution, what-if."""
    # The read-out as its JSON object: the page lists every figure it holds, declared or written by a newer
    # tfperf.
    prof = r.profile.to_json() if r.profile else {}
    top_ops = []
    for op in ((r.profile.top_ops if r.profile else None) or [])[:TOP_OPS]:
        self_us = op.get("self_time_us")
        top_ops.append(
            {
                "name": units.text(op.get("name")),
                "type": units.text(op.get("type")),
                "self_time": units.seconds(self_us / 1e6)
                if isinstance(self_us, (int, float))
                else units.MISSING,
                "share": units.percent(op.get("share"), 1),
                "phase": units.text(op.get("phase")) if op.get("phase") else "",
            }
        )
    # A CPU job has no device: its device-side figures are zeros that read like a measurement.
    cpu = not r.device.startswith("gpu")
    headline = [
        (label, profile_value(prof.get(key), unit))
        for key, label, unit in PROFILE_HEADLINE
        if prof.get(key) not in (None, "", {}, []) and not (cpu and is_device_key(key))
    ]
    # xprof's tip, unless it only speaks of xprof's own page ("You may skip the rest of this page.").
    if prof.get("input_next_step") and "skip the rest of this page" not in str(prof["input_next_step"]):
        headline.append(("profiler's next step", plain.safe_links(prof["input_next_step"])))
    shown = {key for key, _, _ in PROFILE_HEADLINE} | {"top_ops", "input_next_step"} | set(INPUT_KEYS)
    more = [
        (
            k,
            units.text(
                {x: y for x, y in v.items() if not (cpu and is_device_key(x))} if isinstance(v, dict) else v
            ),
        )
        for k, v in prof.items()
        if k not in shown
        and v not in (None, "", {}, [])
        and not isinstance(v, list)
        and not (cpu and is_device_key(k))
    ]
    deployment = [
        (k, v)
        for k, v in (
            ("model size", units.size(r.model_size_bytes)),
            ("load time", units.seconds(r.load_time_s) if r.load_time_s is not None else None),
            ("output agreement", units.text(r.output_agreement.to_json()) if r.output_agreement else None),
        )
        if v not in (None, units.MISSING)
    ]
    distribution = [
        (k, v)
        for k, v in (
            ("replicas", units.number(r.replicas) if r.replicas else None),
            ("global batch size", units.number(r.global_batch_size) if r.global_batch_size else None),
            (
                "scaling efficiency",
                units.percent(r.scaling_efficiency) if r.scaling_efficiency is not None else None,
            ),
        )
        if v
    ]
    graph = [(k, units.number(v)) for k, v in r.graph.to_json().items()] if r.graph else []
    err = None
    if r.error:
        raw = {
            "type": r.error.type,
            "message": r.error.message,
            "hint": r.error.hint,
            "phase": r.error.phase,
            "traceback": r.error.traceback,
        }
        err = {k: (units.text(v) if v is not None else None) for k, v in raw.items()}
    return {
        "label": job(r),
        "mode": r.mode,
        "batch_size": r.batch_size,
        "model": r.model,
        "top_ops": top_ops,
        "profile_facts": input_facts(r) if r.profile else [],
        "profile_headline": headline,
        "profile_more": more,
        "tb_run": units.text(prof["run"]) if prof.get("run") else None,
        "top_ops_phase": any(op["phase"] for op in top_ops),
        "deployment": deployment,
        "distribution": distribution,
        "graph": graph,
        "what_if": sections.what_if_rows(r.what_if) if r.what_if else None,
        "error": err,
        "status": r.status,
        "timing": timing_view(r),
        "noise": noise_view(r),
        "other": other_measurements(r),
    }


# Recorded beyond what the tables and sections above show: what the job ran with, the read-outs, a distributed
# job's workers, a deployment's artefact, a load test's figures, and what extensions wrote in `extra`.
OTHER_FIELDS = (
    "setup",
    "tracing",
    "output_check",
    "rss_growth_bytes",
    "autotune",
    "what_if_baseline",
    "readout_errors",
    "process_errors",
    "distributed",
    "deployment",
    "serve",
    "extra",
)


def other_measurements(r: Result) -> str | None:
    """The result's other fields as JSON (what was not measured left out), or None when there are none."""
    written = r.to_json()
    other = {}
    for name in OTHER_FIELDS:
        value = written.get(name)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
        if value:
            other[name] = value
    return json.dumps(other, indent=1, default=str, sort_keys=True) if other else None


def generic_table(items: list[dict]) -> dict | None:
    """JSON objects (records' `to_json()`) as {columns, rows} with the union of their keys."""
    if not items:
        return None
    cols = list(dict.fromkeys(k for it in items for k in it))
    return {"columns": cols, "rows": [[units.text(it.get(c)) for c in cols] for it in items]}


def process_starts(r: Result) -> list[int]:
    """The sample indices where a new worker process began (from repeat_sizes and repeat_process)."""
    if len(r.repeat_sizes) != len(r.repeat_process) or sum(r.repeat_sizes) != len(r.samples):
        return []
    out, at = [], 0
    for i, (size, proc) in enumerate(zip(r.repeat_sizes, r.repeat_process)):
        if i and proc != r.repeat_process[i - 1]:
            out.append(at)
        at += size
    return out


def what_if_bars(r: Result) -> list[dict]:
    """The what-if chart's bars: the job as measured (naive), then each change re-measured on it."""
    rows = [{"label": f"as measured ({r.mode})", "median_s": r.median_s, "speedup": None, "helped": False}]
    for w in r.what_if or []:
        if w.median_s and not w.error and not w.skipped:
            rows.append(
                {
                    "label": units.text(w.change),
                    "median_s": w.median_s,
                    "speedup": w.speedup,
                    "helped": bool(w.helped),
                }
            )
    return rows


def case_anchor(name: str, taken: set[str]) -> str:
    """A name-based anchor ("case-small-cnn"), unique on the page: a link to a case survives reordering."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "case"
    anchor, n = f"case-{slug}", 2
    while anchor in taken:
        anchor, n = f"case-{slug}-{n}", n + 1
    taken.add(anchor)
    return anchor


def case_view(name: str, results: list[Result], index: int, anchor: str | None = None) -> tuple[dict, dict]:
    """One case's section of the page, and its row in the summary table."""
    swept = len({r.batch_size for r in results}) > 1
    # A serve row's latencies are under concurrent load and it has no compile: its own histogram shows it.
    ok = [r for r in measures.measured(results) if r.mode != measures.SERVE_MODE]
    prefix = f"c{index}"
    tp_chart = charts.throughput_chart(
        [{"mode": r.mode, "batch_size": r.batch_size, "value": measures.rate(r)} for r in ok], f"{prefix}-tp"
    )
    box_chart = charts.step_time_series(
        [
            {
                "label": r.mode + (f" bs={r.batch_size}" if swept else ""),
                "mode": r.mode,
                "samples": r.samples,
                "process_starts": process_starts(r),
            }
            for r in ok
        ],
        f"{prefix}-steps",
    )
    xla = xla_verdict(results)
    # Cost lines at one batch size (XLA's, else the first): mixing sizes would compare unlike work.
    bs = xla.batch_size if xla else (ok[0].batch_size if ok else None)
    lines = [
        {"label": r.mode, "mode": r.mode, "first_call_s": r.first_call_s, "median_s": r.median_s}
        for r in ok
        if r.batch_size == bs
    ]
    # Against tf.function (the mode XLA is weighed against), else eager; eager's line against tf.function only
    # climbs (cheaper first call, dearer steps) and would set the axis, so it is left to the tables.
    ref = next((ln for ln in lines if ln["mode"] == "function"), None) or next(
        (ln for ln in lines if ln["mode"] == "eager"), None
    )
    others = [ln for ln in lines if ref and ln["mode"] not in (ref["mode"], "eager")]
    fc_chart = (
        charts.payback_chart(
            others, ref, {"steps": xla.steps, "label": xla.label} if xla else None, f"{prefix}-fc"
        )
        if ref and others
        else None
    )
    wi_charts = [
        charts.what_if_chart(what_if_bars(r), f"{prefix}-wi{i}") for i, r in enumerate(ok) if r.what_if
    ]
    tracing = [
        {
            "label": job(r),
            "count": units.number(r.tracing_count),
            "retraces": generic_table([x.to_json() for x in r.retraces]),
        }
        for r in results
        if r.tracing_count is not None or r.retraces
    ]
    inputs = [
        {"label": job(r), "bound": input_bound_verdict(r), "why": input_bound_difference(r)}
        for r in results
        if measures.input_bound(r) is not None
    ]
    counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "failed", "timeout", "skipped")}
    findings = case_findings(results)
    case = {
        "name": name,
        "anchor": anchor or f"case-{index}",
        "models": list(dict.fromkeys(r.model for r in results if r.model)),
        "task": ", ".join(dict.fromkeys(r.task for r in results)),
        "device": ", ".join(dict.fromkeys(r.device for r in results)),
        "rows": [result_row(r, results, swept) for r in results],
        "charts": [Markup(c) for c in (tp_chart, box_chart, fc_chart, *wi_charts) if c],
        "scaling": sections.scaling_view(results, prefix),
        "deployment": sections.deployment_view(results, prefix),
        "serve": sections.serve_view(results, prefix),
        "xla": xla,
        "tracing": tracing,
        "inputs": inputs,
        "details": [result_details(r) for r in results],
        "inside_step": inside_step.inside_step_view(results, prefix),
        "findings": findings,
        "counts": counts,
    }
    return case, case_summary(name, case["anchor"], findings, counts, results)
