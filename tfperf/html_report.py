"""The self-contained HTML report: one offline file rendered from a RunResult (results.json) and nothing else.

Offline means no request to any address: the styles are inline, there are no scripts, fonts or images to
fetch, and the charts are matplotlib SVG inlined into the page (tfperf.charts). Every user string (suite,
case, model and mode names, error messages, the suite text) goes through jinja2's autoescape.

The work is split in two: `build_report` turns results into a plain view model (numbers already chosen and
formatted, findings ranked), and the template only lays it out. The helpers below (`payback_calls`,
`case_findings`, `speedup_over_eager`, ...) are plain functions over Result objects, testable on their own.
Nothing here imports TensorFlow.
"""
from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jinja2
from markupsafe import Markup

from . import charts, stats
from .advisor import SIGNIFICANCE_ALPHA, WHAT_IF_MIN_SPEEDUP
from .results import Result, RunResult, atomic_write_text
from .spec import DEPLOY_MODES

# Profiler thresholds (DESIGN.md, from op_stats_to_input_pipeline_analysis.cc): input-bound moderately at 5%,
# highly at 20% of step time.
INPUT_BOUND_MODERATE = 0.05
INPUT_BOUND_HIGH = 0.20
# A mode is called slower than another only beyond this margin: smaller gaps are within run-to-run noise.
SLOWER_MARGIN = 0.05
TOP_OPS = 10


# ---------------------------------------------------------------------------------------------------------
# Plain analysis over results
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """Something worth a reader's attention in one case. Higher severity is worse."""

    severity: int
    kind: str  # failed | input-bound | retracing | xla-loss | function-loss | noisy | suggestion
    text: str


def _ok(results: Iterable[Result]) -> list[Result]:
    return [r for r in results if r.ok and r.samples]


def rate(r: Result) -> float | None:
    """Samples per second when the case has a batch size, else steps per second."""
    tp = r.throughput
    if not tp:
        return None
    return tp["samples_per_s"] if tp.get("samples_per_s") else tp["steps_per_s"]


def fastest(results: Iterable[Result]) -> Result | None:
    """The result with the highest throughput among those that ran.

    Throughput, not the median step: across a batch-size sweep a smaller batch has the shorter step but
    does less work per step. Without batch sizes both orders agree (steps per second).
    """
    ok = [r for r in _ok(results) if rate(r)]
    return max(ok, key=rate) if ok else None


def speedup_over_eager(r: Result, case_results: Iterable[Result]) -> float | None:
    """eager median / this median at the same batch size; None without an eager measurement."""
    if not (r.ok and r.samples):
        return None
    for e in _ok(case_results):
        if e.mode == "eager" and e.batch_size == r.batch_size and e.task == r.task:
            return e.median_s / r.median_s if r.median_s else None
    return None


def payback_calls(first_a: float, median_a: float, first_b: float, median_b: float) -> float | None:
    """After how many calls mode A (dearer first call, cheaper steps) has cost less in total than mode B.

    Total cost of n calls is first_call + (n - 1) × median. Returns 1.0 when A is never behind, None when
    A never catches up (its steps are not cheaper).
    """
    if first_a <= first_b and median_a <= median_b:
        return 1.0
    if median_a >= median_b:
        return None
    return 1.0 + (first_a - first_b) / (median_b - median_a)


def xla_payback(case_results: Iterable[Result]) -> dict | None:
    """XLA's payback point against tf.function (or eager when there is no function run), per DESIGN.md."""
    ok = _ok(case_results)
    for ref_mode in ("function", "eager"):
        for x in ok:
            if x.mode != "xla" or x.first_call_s is None:
                continue
            ref = next((r for r in ok if r.mode == ref_mode and r.batch_size == x.batch_size
                        and r.first_call_s is not None), None)
            if ref is None:
                continue
            n = payback_calls(x.first_call_s, x.median_s, ref.first_call_s, ref.median_s)
            if n is None:
                text = (f"XLA never pays back against {ref_mode}: its steady-state step is "
                        f"{x.median_s / ref.median_s:.2f}× {ref_mode}'s")
                return {"steps": None, "ref_mode": ref_mode, "batch_size": x.batch_size, "text": text,
                        "label": ""}
            calls = math.ceil(n)
            text = (f"XLA pays back against {ref_mode} after {calls:,} calls "
                    f"(first call {fmt_seconds(x.first_call_s)} vs {fmt_seconds(ref.first_call_s)}, "
                    f"step {fmt_seconds(x.median_s)} vs {fmt_seconds(ref.median_s)})")
            return {"steps": calls, "ref_mode": ref_mode, "batch_size": x.batch_size, "text": text,
                    "label": f"XLA pays back: {calls:,} calls"}
    return None


def input_bound_fraction(r: Result) -> float | None:
    """The larger of the measured input wait and the profiler's input-bound share (both 0..1)."""
    vals = [v for v in (r.input_wait_fraction, _profile_input_bound(r)) if v is not None]
    return max(vals) if vals else None


def _profile_input_bound(r: Result) -> float | None:
    p = r.profile or {}
    v = p.get("input_bound_percent") if isinstance(p, dict) else None
    return float(v) / 100.0 if isinstance(v, (int, float)) else None


def case_findings(case_results: list[Result]) -> list[Finding]:
    """What stands out in one case, worst first: failures, input-bound, retracing, XLA or tf.function losses."""
    out: list[Finding] = []
    for r in case_results:
        if r.status in ("failed", "timeout"):
            err = r.error or {}
            what = err.get("type") or r.status
            out.append(Finding(5, "failed", f"{_job(r)} {r.status}: {what}"))
    for r in _ok(case_results):
        frac = input_bound_fraction(r)
        if frac is not None and frac >= INPUT_BOUND_MODERATE:
            level = "highly" if frac >= INPUT_BOUND_HIGH else "moderately"
            out.append(Finding(4 if frac >= INPUT_BOUND_HIGH else 2, "input-bound",
                               f"{_job(r)} {level} input-bound: {frac:.0%} of the step waits for input"))
        retraces = [x for x in (r.retraces or []) if x]
        if retraces:
            changed = ", ".join(dict.fromkeys(_text(x.get("changed")) for x in retraces if isinstance(x, dict)))
            out.append(Finding(4, "retracing", f"{_job(r)} retraced {len(retraces)}×"
                               + (f" ({changed})" if changed else "")))
    ok = _ok(case_results)
    for x in ok:
        ref = next((r for r in ok if r.mode == "function" and r.batch_size == x.batch_size), None)
        if x.mode == "xla" and ref and x.median_s > ref.median_s * (1 + SLOWER_MARGIN):
            out.append(Finding(3, "xla-loss", f"XLA is {x.median_s / ref.median_s:.2f}× slower than tf.function"
                               + _bs(x)))
        eager = next((r for r in ok if r.mode == "eager" and r.batch_size == x.batch_size), None)
        if x.mode == "function" and eager and x.median_s > eager.median_s * (1 + SLOWER_MARGIN):
            out.append(Finding(2, "function-loss", f"tf.function is {x.median_s / eager.median_s:.2f}× slower "
                               f"than eager" + _bs(x)))
    for r in ok:
        extra = r.extra if isinstance(r.extra, dict) else {}
        if r.mode == SERVE_MODE and extra.get("requests_failed"):
            out.append(Finding(4, "failed", f"{_job(r)}: {fmt_num(extra['requests_failed'])} of "
                               f"{fmt_num(extra.get('requests_sent'))} requests failed"))
        # Latency under concurrent load is spread by queueing, not by the measurement: not called noisy.
        if r.noisy and r.mode != SERVE_MODE:
            s = r.step_time_s
            spread = r.process_spread
            apart = f"; its {r.process_count} worker processes' medians {spread:.0%} apart" if spread else ""
            out.append(Finding(1, "noisy", f"{_job(r)} timing is noisy: IQR {s['iqr'] / s['median']:.0%} of the "
                               f"median{apart}"))
    if not out:
        for r in case_results:
            for s in r.suggestions or []:
                if isinstance(s, dict) and s.get("title"):
                    out.append(Finding(1, "suggestion", f"{_job(r)}: {s['title']}"))
                    break
    return sorted(out, key=lambda f: -f.severity)


def _job(r: Result) -> str:
    return r.mode + _bs(r)


def _bs(r: Result) -> str:
    return f" (batch {r.batch_size})" if r.batch_size is not None else ""


# ---------------------------------------------------------------------------------------------------------
# Formatting (also used as template filters)
# ---------------------------------------------------------------------------------------------------------

def fmt_seconds(v: float | None) -> str:
    if v is None or not isinstance(v, (int, float)) or math.isnan(v):
        return "–"
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 1e-3:
        return f"{v * 1e3:.2f} ms"
    return f"{v * 1e6:.1f} µs"


def fmt_pct(v: float | None, digits: int = 0) -> str:
    """A fraction (0..1) as a percentage."""
    if v is None or not isinstance(v, (int, float)):
        return "–"
    return f"{v * 100:.{digits}f}%"


def fmt_bytes(v: float | None) -> str:
    if v is None or not isinstance(v, (int, float)):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{v:.1f} GiB"


def fmt_num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return _text(v)


def _text(v: Any) -> str:
    """Any JSON value as one readable line (escaping is the template's job)."""
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float, bool)):
        return fmt_num(v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={_text(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_text(x) for x in v)
    return str(v)


# ---------------------------------------------------------------------------------------------------------
# View model
# ---------------------------------------------------------------------------------------------------------

def _case_order(run: RunResult) -> list[str]:
    return list(dict.fromkeys(r.case for r in run.results))


def _row(r: Result, case_results: list[Result], swept: bool) -> dict:
    st = r.step_time_s
    tp = r.throughput or {}
    err = r.error or {}
    return {
        "case": r.case,
        "mode": r.mode,
        "batch_size": r.batch_size,
        "label": r.mode + (f" bs={r.batch_size}" if swept and r.batch_size is not None else ""),
        "task": r.task,
        "device": r.device,
        "status": r.status,
        "median": fmt_seconds(st["median"]) if st else "–",
        "iqr_pct": fmt_pct(st["iqr"] / st["median"]) if st and st["median"] else "–",
        "noisy": bool(r.samples) and r.noisy,
        "samples": len(r.samples),
        "throughput": (f"{fmt_num(r.extra['instances_per_s'])} instances/s" if r.mode == SERVE_MODE
                       and isinstance(r.extra, dict) and _num(r.extra.get("instances_per_s")) is not None
                       else f"{fmt_num(tp['samples_per_s'])} samples/s" if tp.get("samples_per_s")
                       else f"{fmt_num(tp['steps_per_s'])} steps/s" if tp.get("steps_per_s") else "–"),
        "speedup": _speedup_text(speedup_over_eager(r, case_results)),
        "first_call": fmt_seconds(r.first_call_s),
        "tracing_count": fmt_num(r.tracing_count),
        "retraces": len(r.retraces or []),
        "input_wait": fmt_pct(r.input_wait_fraction, 1),
        "input_bound": (f"{_profile_input_bound(r) * 100:.1f}%" if _profile_input_bound(r) is not None else "–"),
        "peak_memory": fmt_bytes(r.peak_memory_bytes),
        "error_type": err.get("type") if isinstance(err, dict) else None,
    }


def _speedup_text(x: float | None) -> str:
    return f"{x:.2f}×" if x is not None else "–"


def _details(r: Result) -> dict:
    """The per-result extras, each only when present: profile, graph, deployment, distribution, what-if."""
    prof = r.profile if isinstance(r.profile, dict) else {}
    top_ops = []
    for op in (prof.get("top_ops") or [])[:TOP_OPS]:
        if isinstance(op, dict):
            top_ops.append({"name": _text(op.get("name")), "type": _text(op.get("type")),
                            "self_time": fmt_seconds(op["self_time_us"] / 1e6)
                            if isinstance(op.get("self_time_us"), (int, float)) else "–",
                            "share": fmt_pct(op.get("share"), 1), "phase": _text(op.get("phase"))
                            if op.get("phase") else ""})
    # The figures a reader looks for first; every other scalar the profiler read-out holds goes under "more".
    headline = [(label, _profile_value(prof.get(key), unit)) for key, label, unit in PROFILE_HEADLINE
                if prof.get(key) not in (None, "", {}, [])]
    shown = {key for key, _, _ in PROFILE_HEADLINE} | {"top_ops"}
    more = [(k, _text(v)) for k, v in prof.items() if k not in shown and v not in (None, "", {}, [])
            and not isinstance(v, list)]
    deployment = [(k, v) for k, v in (("model size", fmt_bytes(r.model_size_bytes)),
                                      ("load time", fmt_seconds(r.load_time_s) if r.load_time_s is not None else None),
                                      ("output agreement", _text(r.output_agreement) if r.output_agreement else None))
                  if v not in (None, "–")]
    distribution = [(k, v) for k, v in (("replicas", fmt_num(r.replicas) if r.replicas else None),
                                        ("global batch size", fmt_num(r.global_batch_size) if r.global_batch_size else None),
                                        ("scaling efficiency", fmt_pct(r.scaling_efficiency, 0)
                                         if r.scaling_efficiency is not None else None)) if v]
    graph = [(k, fmt_num(v)) for k, v in (r.graph or {}).items()] if isinstance(r.graph, dict) else []
    what_if = what_if_rows(r.what_if) if r.what_if else None
    err = None
    if r.error:
        raw = r.error if isinstance(r.error, dict) else {"message": r.error}
        err = {k: (_text(raw[k]) if raw.get(k) is not None else None)
               for k in ("type", "message", "hint", "phase", "traceback")}
    return {
        "label": _job(r),
        "mode": r.mode,
        "batch_size": r.batch_size,
        "model": r.model,
        "top_ops": top_ops,
        "profile_facts": headline,
        "profile_more": more,
        "top_ops_phase": any(op["phase"] for op in top_ops),
        "deployment": deployment,
        "distribution": distribution,
        "graph": graph,
        "what_if": what_if,
        "error": err,
        "status": r.status,
        "timing": _text(r.timing) if r.timing else None,
        "extra": json.dumps(r.extra, indent=1, default=str, sort_keys=True) if r.extra else None,
    }


PROFILE_HEADLINE = (
    ("input_bound_percent", "input-bound", "%"),
    ("input_conclusion", "profiler's conclusion", ""),
    ("step_time_ms", "profiled step", "ms"),
    ("host_compute_ms", "host compute", "ms"),
    ("device_compute_ms", "device compute", "ms"),
    ("step_time_breakdown_ms", "step breakdown (ms)", ""),
    ("breakdown", "breakdown", ""),
    ("run", "TensorBoard run", ""),
)


def _profile_value(v: Any, unit: str) -> str:
    if unit == "%" and isinstance(v, (int, float)):
        return f"{v:.1f}%"
    if unit == "ms" and isinstance(v, (int, float)):
        return f"{v:.2f} ms"
    if isinstance(v, dict):  # a breakdown: drop the zero phases, they only add noise
        return _text({k: x for k, x in v.items() if x}) or "–"
    return _text(v)


def _generic_table(items: Any) -> dict | None:
    """A list of dicts as {columns, rows} with the union of their keys; anything else as one column."""
    if not isinstance(items, list) or not items:
        return None
    cols = list(dict.fromkeys(k for it in items if isinstance(it, dict) for k in it))
    if not cols:
        return {"columns": ["value"], "rows": [[_text(it)] for it in items]}
    return {"columns": cols, "rows": [[_text(it.get(c)) if isinstance(it, dict) else _text(it) for c in cols]
                                      for it in items]}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def allreduce_share(r: Result) -> float | None:
    """The all-reduce share of op time (0..1), from the profile read-out or, failing that, extra."""
    for src in (r.profile, r.extra):
        if isinstance(src, dict) and _num(src.get("allreduce_share")) is not None:
            return _num(src["allreduce_share"])
    return None


def scaling_rows(results: Iterable[Result]) -> list[dict]:
    """One row per tf.distribute result: N replicas against the one-replica baseline measured in the same run."""
    out = []
    for r in results:
        if not r.replicas:
            continue
        extra = r.extra if isinstance(r.extra, dict) else {}
        base = extra.get("baseline") if isinstance(extra.get("baseline"), dict) else {}
        value = _num(extra.get("samples_per_s")) or (rate(r) if r.ok and r.samples else None)
        out.append({
            "label": _job(r), "mode": r.mode, "status": r.status,
            "strategy": _text(extra.get("strategy")) if extra.get("strategy") else "–",
            "workers": extra.get("workers"),
            "replicas": r.replicas, "per_replica_batch": r.batch_size, "global_batch": r.global_batch_size,
            "base": _num(base.get("samples_per_s")), "value": value if r.ok else None,
            "speedup": (value / base["samples_per_s"]) if value and _num(base.get("samples_per_s")) else None,
            "efficiency": _num(r.scaling_efficiency), "allreduce": allreduce_share(r),
            "diverged": bool(extra.get("replicas_diverged")),
        })
    return out


def _scaling_view(results: list[Result], prefix: str) -> dict | None:
    rows = scaling_rows(results)
    if not rows:
        return None
    chart = charts.scaling_chart(rows, f"{prefix}-scale")
    return {
        "chart": Markup(chart) if chart else None,
        "rows": [{**row, "replicas": fmt_num(row["replicas"]), "per_replica_batch": fmt_num(row["per_replica_batch"]),
                  "global_batch": fmt_num(row["global_batch"]),
                  "workers": fmt_num(row["workers"]) if row["workers"] is not None else "–",
                  "base": f"{fmt_num(row['base'])} samples/s" if row["base"] else "–",
                  "value": f"{fmt_num(row['value'])} samples/s" if row["value"] else "–",
                  "speedup": _speedup_text(row["speedup"]), "efficiency": fmt_pct(row["efficiency"]),
                  "allreduce": fmt_pct(row["allreduce"], 1)} for row in rows],
        "any_allreduce": any(row["allreduce"] is not None for row in rows),
    }


# Deployment modes are compared with these (same case, same batch size): the model as it was trained and measured.
DEPLOY_REFERENCE_MODES = ("function", "xla")


def deployment_rows(results: Iterable[Result]) -> list[dict]:
    """The deployment comparison of one case: every deployment result and its function/xla references,
    per batch size, with latency against tf.function's, size, load time and output agreement."""
    results = [r for r in results if r.mode in DEPLOY_MODES or r.mode in DEPLOY_REFERENCE_MODES]
    if not any(r.mode in DEPLOY_MODES for r in results):
        return []
    order = {m: i for i, m in enumerate(DEPLOY_REFERENCE_MODES + DEPLOY_MODES)}
    results = sorted(results, key=lambda r: (r.batch_size is None, r.batch_size or 0, order[r.mode]))
    out = []
    for r in results:
        ref = next((f for f in _ok(results) if f.mode == "function" and f.batch_size == r.batch_size), None)
        agree = r.output_agreement if isinstance(r.output_agreement, dict) else {}
        extra = r.extra if isinstance(r.extra, dict) else {}
        ok = r.ok and bool(r.samples)
        out.append({
            "mode": r.mode, "batch_size": r.batch_size, "status": r.status, "label": _job(r),
            "latency_s": r.median_s if ok else None,
            "vs_function": (ref.median_s / r.median_s) if ok and ref and r.median_s else None,
            "size_bytes": _num(r.model_size_bytes), "load_time_s": _num(r.load_time_s),
            "max_abs_error": _num(agree.get("max_abs_error")), "mean_abs_error": _num(agree.get("mean_abs_error")),
            "top1_agreement": _num(agree.get("top1_agreement")),
            "num_threads": extra.get("num_threads") if isinstance(extra.get("num_threads"), int) else None,
            "error_type": (r.error or {}).get("type") if isinstance(r.error, dict) else None,
        })
    return out


def _deployment_view(results: list[Result], prefix: str) -> dict | None:
    rows = deployment_rows(results)
    if not rows:
        return None
    chart = charts.deployment_chart(rows, f"{prefix}-deploy")
    return {
        "chart": Markup(chart) if chart else None,
        "rows": [{"mode": r["mode"], "label": r["label"], "status": r["status"], "error_type": r["error_type"],
                  "latency": fmt_seconds(r["latency_s"]), "vs_function": _speedup_text(r["vs_function"]),
                  "size": fmt_bytes(r["size_bytes"]), "load_time": fmt_seconds(r["load_time_s"]),
                  "max_abs_error": _sci(r["max_abs_error"]), "mean_abs_error": _sci(r["mean_abs_error"]),
                  "top1": fmt_pct(r["top1_agreement"], 1), "threads": fmt_num(r["num_threads"]),
                  "reference": r["mode"] in DEPLOY_REFERENCE_MODES} for r in rows],
    }


def _sci(v: float | None) -> str:
    """An error figure: 0 as 0, tiny ones in scientific notation so 2.5e-06 does not read as 0."""
    if v is None:
        return "–"
    if v == 0:
        return "0"
    return f"{v:.2g}" if abs(v) >= 1e-3 else f"{v:.1e}"


SERVE_MODE = "serve"  # `tfperf serve-bench`: samples are per-request latencies under concurrent load


def serve_summary(r: Result) -> dict:
    """The load test's figures from a serve result: throughput, latency percentiles, errors by status and kind."""
    e = r.extra if isinstance(r.extra, dict) else {}
    st = r.step_time_s or {}
    pct = {k: st.get(src) for k, src in (("p50", "median"), ("p90", "p90"), ("p99", "p99"), ("max", "max"))}
    errors = []
    examples = e.get("error_examples") if isinstance(e.get("error_examples"), dict) else {}
    for key, n in sorted((e.get("errors_by_status") or {}).items()):
        errors.append({"what": f"HTTP {key}", "count": n, "example": (examples.get(key) or [None])[0]})
    for key, n in sorted((e.get("connection_errors") or {}).items()):
        errors.append({"what": str(key), "count": n, "example": (examples.get(key) or [None])[0]})
    return {
        "endpoint": e.get("endpoint") or r.model, "url": e.get("url"), "concurrency": e.get("concurrency"),
        "instances_per_request": r.batch_size, "sent": e.get("requests_sent"), "ok": e.get("requests_ok", len(r.samples)),
        "failed": e.get("requests_failed"), "wall_s": _num(e.get("wall_s")),
        "requests_per_s": _num(e.get("requests_per_s")), "instances_per_s": _num(e.get("instances_per_s")),
        "latency": pct, "errors": errors, "stopped_by": e.get("stopped_by"),
    }


def _serve_view(results: list[Result], prefix: str) -> list[dict]:
    out = []
    for i, r in enumerate(x for x in results if x.mode == SERVE_MODE):
        s = serve_summary(r)
        chart = charts.latency_histogram(r.samples, {k: s["latency"][k] for k in ("p50", "p90", "p99")},
                                         f"{prefix}-lat{i}")
        out.append({
            "label": _job(r), "status": r.status, "chart": Markup(chart) if chart else None,
            "facts": [(k, v) for k, v in (
                ("endpoint", _text(s["endpoint"]) if s["endpoint"] else None),
                ("URL", _text(s["url"]) if s["url"] else None),
                ("concurrency", fmt_num(s["concurrency"]) if s["concurrency"] is not None else None),
                ("instances per request", fmt_num(s["instances_per_request"])
                 if s["instances_per_request"] is not None else None),
                ("requests", f"{fmt_num(s['sent'])} sent, {fmt_num(s['ok'])} ok, {fmt_num(s['failed'])} failed"
                 if s["sent"] is not None else None),
                ("wall time", fmt_seconds(s["wall_s"]) if s["wall_s"] is not None else None),
                ("stopped by", f"the {_text(s['stopped_by'])} cap" if s["stopped_by"] else None),
            ) if v],
            "throughput": (f"{fmt_num(s['requests_per_s'])} requests/s, {fmt_num(s['instances_per_s'])} instances/s"
                           if s["requests_per_s"] is not None else "–"),
            "latency": [(k, fmt_seconds(v)) for k, v in s["latency"].items()],
            "errors": [{**e, "count": fmt_num(e["count"]), "example": _text(e["example"]) if e["example"] else ""}
                       for e in s["errors"]],
        })
    return out


def what_if_rows(entries: Any) -> list[dict] | None:
    """The what-if re-runs of one result (tfperf.whatif entries), formatted, in the order they ran."""
    if not isinstance(entries, list):
        return None
    out = []
    for w in entries:
        if not isinstance(w, dict):
            continue
        speedup, p = _num(w.get("speedup")), _num(w.get("p_value"))
        if w.get("skipped"):
            verdict, cls = _text(w["skipped"]), "inconclusive"
        elif w.get("error"):
            verdict, cls = f"failed: {_text(w['error'])}", "regression"
        elif w.get("helped"):
            verdict, cls = "helped", "improvement"
        else:
            verdict, cls = "did not help", "regression"
        out.append({
            "change": _text(w.get("change")) if w.get("change") else "–",
            "combined": bool(w.get("combined")),
            "baseline": fmt_seconds(_num(w.get("baseline_median_s"))),
            "median": fmt_seconds(_num(w.get("median_s"))),
            "speedup": _speedup_text(speedup),
            "wait_before": fmt_pct(_num(w.get("baseline_input_wait_fraction")), 1),
            "wait_after": fmt_pct(_num(w.get("input_wait_fraction")), 1),
            "p_value": (f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}") if p is not None else "–",
            "per_sample": w.get("batch_size") is not None,
            "helped": bool(w.get("helped")), "verdict": verdict, "verdict_class": cls,
            "code": _text(w.get("code")) if w.get("code") else None,
        })
    return out or None


def _case_view(name: str, results: list[Result], index: int) -> dict:
    swept = len({r.batch_size for r in results}) > 1
    rows = [_row(r, results, swept) for r in results]
    # A serve row's latencies are under concurrent load and it has no compile: its own histogram shows it.
    ok = [r for r in _ok(results) if r.mode != SERVE_MODE]
    prefix = f"c{index}"
    tp_chart = charts.throughput_chart(
        [{"mode": r.mode, "batch_size": r.batch_size, "value": rate(r)} for r in ok], f"{prefix}-tp")
    box_chart = charts.step_time_boxplot(
        [(r.mode + (f"\nbs={r.batch_size}" if swept else ""), r.mode, r.samples) for r in ok], f"{prefix}-box")
    payback = xla_payback(results)
    # Cost lines at one batch size (the payback one, else the first): mixing sizes would compare unlike work.
    bs = payback["batch_size"] if payback else (ok[0].batch_size if ok else None)
    lines = [{"label": r.mode, "mode": r.mode, "first_call_s": r.first_call_s, "median_s": r.median_s}
             for r in ok if r.batch_size == bs]
    fc_chart = charts.first_call_chart(lines, payback, f"{prefix}-fc")
    tracing = []
    for r in results:
        if r.tracing_count is None and not r.retraces:
            continue
        tracing.append({"label": _job(r), "count": fmt_num(r.tracing_count),
                        "retraces": _generic_table([x for x in (r.retraces or []) if x])})
    inputs = [{"label": _job(r), "wait": fmt_pct(r.input_wait_fraction, 1),
               "bound": f"{_profile_input_bound(r) * 100:.1f}%" if _profile_input_bound(r) is not None else "–"}
              for r in results if r.input_wait_fraction is not None or _profile_input_bound(r) is not None]
    counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "failed", "timeout", "skipped")}
    models = list(dict.fromkeys(r.model for r in results if r.model))
    return {
        "name": name,
        "anchor": f"case-{index}",
        "models": models,
        "task": ", ".join(dict.fromkeys(r.task for r in results)),
        "device": ", ".join(dict.fromkeys(r.device for r in results)),
        "rows": rows,
        "charts": [Markup(c) for c in (tp_chart, box_chart, fc_chart) if c],
        "scaling": _scaling_view(results, prefix),
        "deployment": _deployment_view(results, prefix),
        "serve": _serve_view(results, prefix),
        "payback": payback,
        "tracing": tracing,
        "inputs": inputs,
        "details": [_details(r) for r in results],
        "findings": case_findings(results),
        "counts": counts,
    }


def _summary(case: dict, results: list[Result]) -> dict:
    best = fastest(results)
    speedup = speedup_over_eager(best, results) if best else None
    worst = case["findings"][0].text if case["findings"] else "none"
    return {
        "name": case["name"],
        "anchor": case["anchor"],
        "fastest": (best.mode + (f" (batch {best.batch_size})" if best.batch_size is not None and
                                 len({r.batch_size for r in results}) > 1 else "")) if best else "–",
        "fastest_median": fmt_seconds(best.median_s) if best else "–",
        "speedup": _speedup_text(speedup),
        "worst": worst,
        "worst_severity": case["findings"][0].severity if case["findings"] else 0,
        **case["counts"],
    }


def _suggestion_groups(run: RunResult) -> list[dict]:
    groups: dict[str, dict] = {}
    for r in run.results:
        for s in r.suggestions or []:
            if not isinstance(s, dict):
                continue
            code = str(s.get("code") or "other")
            g = groups.setdefault(code, {"code": code, "title": _text(s.get("title")) if s.get("title") else code,
                                         "entries": []})
            g["entries"].append({"where": f"{r.case} · {_job(r)}", "title": _text(s.get("title")),
                               "evidence": _evidence(s.get("evidence")), "fix": _text(s.get("fix"))
                               if s.get("fix") is not None else None})
    return sorted(groups.values(), key=lambda g: g["code"])


def _evidence(v: Any) -> list[tuple[str, str]] | str:
    if isinstance(v, dict):
        return [(str(k), _text(x)) for k, x in v.items()]
    return _text(v)


def _environment(env: dict) -> list[tuple[str, str]]:
    out = []
    for k, v in env.items():
        if k == "gpus":
            v = [g.get("name", g) if isinstance(g, dict) else g for g in v or []] or "none"
        if isinstance(v, dict):
            out.append((k, _text(v) if v else "–"))
        else:
            out.append((k, _text(v)))
    return out


def build_report(run: RunResult, out_dir: str | Path | None = None) -> dict:
    """The page's view model: plain dicts and strings, no markup except the charts' SVG."""
    cases = []
    summary = []
    for i, name in enumerate(_case_order(run)):
        results = [r for r in run.results if r.case == name]
        case = _case_view(name, results, i)
        cases.append(case)
        summary.append(_summary(case, results))
    suite = run.suite or {}
    out = shlex.quote(str(out_dir)) if out_dir is not None else "<out>"  # a placeholder when unknown
    totals = {s: sum(1 for r in run.results if r.status == s) for s in ("ok", "failed", "timeout", "skipped")}
    return {
        "title": f"tfperf · {suite.get('name') or 'run'}",
        "suite": {"name": suite.get("name"), "path": suite.get("path"), "sha256": suite.get("sha256"),
                  "text": suite.get("text")},
        "run": {"started_at": run.started_at, "finished_at": run.finished_at,
                "tfperf_version": run.tfperf_version, "interrupted": run.interrupted,
                "command": " ".join(shlex.quote(str(c)) for c in run.command) if run.command else None},
        "totals": totals,
        "summary": summary,
        "cases": cases,
        "suggestions": _suggestion_groups(run),
        "environment": _environment(run.environment or {}),
        "tensorboard_command": f"tfperf tensorboard {out}",
        "noisy_threshold": fmt_pct(stats.NOISY_IQR_FRACTION),
        "what_if_rule": f"faster by more than {WHAT_IF_MIN_SPEEDUP:.2f}× and Mann–Whitney p < {SIGNIFICANCE_ALPHA:g}",
    }


def template_env() -> jinja2.Environment:
    """Autoescape on for every template (they end in .j2, which select_autoescape would not recognise)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tfperf", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(seconds=fmt_seconds, pct=fmt_pct, num=fmt_num, text=_text, bytes=fmt_bytes)
    return env


def render_html(run: RunResult, out_dir: str | Path | None = None) -> str:
    """The report page as one string. `out_dir` fills in the `tfperf tensorboard <out>` command."""
    return template_env().get_template("report.html.j2").render(**build_report(run, out_dir))


def write_html(run: RunResult, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, render_html(run, out_dir=path.parent))
    return path
