"""The page's per-case sections beyond the results table: scaling (tf.distribute), deployment modes, a
serve-bench load test and the what-if re-runs. Each takes a case's results and returns plain, formatted view
dicts (charts as inline SVG); the template lays them out."""

from __future__ import annotations

import math
from typing import Any, Iterable

from markupsafe import Markup

from tfperf import units
from tfperf.figures import measures
from tfperf.figures.measures import SERVE_MODE
from tfperf.report import section_charts
from tfperf.report.verdicts import job
from tfperf.results.job_records import Distributed
from tfperf.results.model import Result
from tfperf.results.records import WhatIf
from tfperf.results.serve_records import ServeBench
from tfperf.suite.spec import DEPLOY_MODES


def finite(v: Any) -> float | None:
    """A JSON number read from a result's figures (as a file holds them), else None: no NaN, no bool."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def allreduce_share(r: Result) -> float | None:
    """The all-reduce share of op time (0..1), from the profile read-out or, failing that, where files of an
    early tfperf held it (`distributed.allreduce_share`)."""
    share = finite(r.profile.allreduce_share) if r.profile else None
    return share if share is not None or not r.distributed else finite(r.distributed.allreduce_share)


def scaling_rows(results: Iterable[Result]) -> list[dict]:
    """One row per tf.distribute result: N replicas against the one-replica baseline measured in the same
    run."""
    out = []
    for r in results:
        if not r.replicas:
            continue
        dist = r.distributed or Distributed()
        base = finite(dist.baseline.samples_per_s) if dist.baseline else None
        value = finite(dist.samples_per_s) or (measures.rate(r) if r.ok and r.samples else None)
        out.append(
            {
                "label": job(r),
                "mode": r.mode,
                "status": r.status,
                "strategy": units.text(dist.strategy) if dist.strategy else units.MISSING,
                "workers": dist.workers,
                "replicas": r.replicas,
                "per_replica_batch": r.batch_size,
                "global_batch": r.global_batch_size,
                "base": base,
                "value": value if r.ok else None,
                "speedup": value / base if value and base else None,
                "efficiency": finite(r.scaling_efficiency),
                "allreduce": allreduce_share(r),
                "diverged": bool(dist.replicas_diverged),
            }
        )
    return out


def scaling_view(results: list[Result], prefix: str) -> dict | None:
    rows = scaling_rows(results)
    if not rows:
        return None
    chart = section_charts.scaling_chart(rows, f"{prefix}-scale")
    return {
        "chart": Markup(chart) if chart else None,
        "rows": [
            {
                **row,
                "replicas": units.number(row["replicas"]),
                "per_replica_batch": units.number(row["per_replica_batch"]),
                "global_batch": units.number(row["global_batch"]),
                "workers": units.number(row["workers"]) if row["workers"] is not None else units.MISSING,
                "base": f"{units.number(row['base'])} samples/s" if row["base"] else units.MISSING,
                "value": f"{units.number(row['value'])} samples/s" if row["value"] else units.MISSING,
                "speedup": units.speedup(row["speedup"]),
                "efficiency": units.percent(row["efficiency"]),
                "allreduce": units.percent(row["allreduce"], 1),
            }
            for row in rows
        ],
        "any_allreduce": any(row["allreduce"] is not None for row in rows),
    }


# Deployment modes are compared with these (same case, same batch size): the model as it was trained and
# measured.
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
        ref = measures.same_job_in_mode(results, r, "function")
        agree = r.output_agreement
        threads = r.deployment.num_threads if r.deployment else None
        ok = r.ok and bool(r.samples)
        out.append(
            {
                "mode": r.mode,
                "batch_size": r.batch_size,
                "status": r.status,
                "label": job(r),
                "latency_s": r.median_s if ok else None,
                "vs_function": (ref.median_s / r.median_s) if ok and ref and r.median_s else None,
                "size_bytes": finite(r.model_size_bytes),
                "load_time_s": finite(r.load_time_s),
                "first_call_s": finite(r.first_call_s) if ok else None,
                "max_abs_error": finite(agree.max_abs_error) if agree else None,
                "mean_abs_error": finite(agree.mean_abs_error) if agree else None,
                "top1_agreement": finite(agree.top1_agreement) if agree else None,
                # The reason the check proves nothing here (outputs that ignore the input would pass it too).
                "agreement_not_meaningful": agree.not_meaningful
                if agree and agree.meaningful is False
                else None,
                "num_threads": threads if isinstance(threads, int) else None,
                "error_type": r.error.type if r.error else None,
            }
        )
    return out


def deployment_view(results: list[Result], prefix: str) -> dict | None:
    rows = deployment_rows(results)
    if not rows:
        return None
    chart = section_charts.deployment_chart(rows, f"{prefix}-deploy")
    return {
        "chart": Markup(chart) if chart else None,
        "rows": [
            {
                "mode": r["mode"],
                "label": r["label"],
                "status": r["status"],
                "error_type": r["error_type"],
                "latency": units.seconds(r["latency_s"]),
                "vs_function": units.speedup(r["vs_function"]),
                "size": units.size(r["size_bytes"]),
                "load_time": units.seconds(r["load_time_s"]),
                "max_abs_error": units.error_figure(r["max_abs_error"]),
                "mean_abs_error": units.error_figure(r["mean_abs_error"]),
                "top1": units.percent(r["top1_agreement"], 1)
                + (
                    f" (not meaningful: {r['agreement_not_meaningful']})"
                    if r["agreement_not_meaningful"]
                    else ""
                ),
                "threads": units.number(r["num_threads"]),
                "reference": r["mode"] in DEPLOY_REFERENCE_MODES,
            }
            for r in rows
        ],
    }


def serve_summary(r: Result) -> dict:
    """The load test's figures from a serve result: throughput, latency percentiles, errors by status and
    kind."""
    e = r.serve or ServeBench()
    st = r.step_time_s or {}
    pct = {k: st.get(src) for k, src in (("p50", "median"), ("p90", "p90"), ("p99", "p99"), ("max", "max"))}
    errors = []
    examples = e.error_examples if isinstance(e.error_examples, dict) else {}
    for key, n in sorted((e.errors_by_status or {}).items()):
        errors.append({"what": f"HTTP {key}", "count": n, "example": (examples.get(key) or [None])[0]})
    for key, n in sorted((e.connection_errors or {}).items()):
        errors.append({"what": str(key), "count": n, "example": (examples.get(key) or [None])[0]})
    return {
        "endpoint": e.endpoint or r.model,
        "url": e.url,
        "concurrency": e.concurrency,
        "instances_per_request": r.batch_size,
        "sent": e.requests_sent,
        "ok": e.requests_ok if e.requests_ok is not None else len(r.samples),
        "failed": e.requests_failed,
        "wall_s": finite(e.wall_s),
        "requests_per_s": finite(e.requests_per_s),
        "instances_per_s": finite(e.instances_per_s),
        "latency": pct,
        "errors": errors,
        "stopped_by": e.stopped_by,
    }


def serve_view(results: list[Result], prefix: str) -> list[dict]:
    out = []
    for i, r in enumerate(x for x in results if x.mode == SERVE_MODE):
        s = serve_summary(r)
        chart = section_charts.latency_histogram(
            r.samples, {k: s["latency"][k] for k in ("p50", "p90", "p99")}, f"{prefix}-lat{i}"
        )
        out.append(
            {
                "label": job(r),
                "status": r.status,
                "chart": Markup(chart) if chart else None,
                "facts": [
                    (k, v)
                    for k, v in (
                        ("endpoint", units.text(s["endpoint"]) if s["endpoint"] else None),
                        ("URL", units.text(s["url"]) if s["url"] else None),
                        (
                            "concurrency",
                            units.number(s["concurrency"]) if s["concurrency"] is not None else None,
                        ),
                        (
                            "instances per request",
                            units.number(s["instances_per_request"])
                            if s["instances_per_request"] is not None
                            else None,
                        ),
                        (
                            "requests",
                            f"{units.number(s['sent'])} sent, {units.number(s['ok'])} ok, "
                            f"{units.number(s['failed'])} failed"
                            if s["sent"] is not None
                            else None,
                        ),
                        ("wall time", units.seconds(s["wall_s"]) if s["wall_s"] is not None else None),
                        ("stopped by", f"the {units.text(s['stopped_by'])} cap" if s["stopped_by"] else None),
                    )
                    if v
                ],
                "throughput": (
                    f"{units.number(s['requests_per_s'])} requests/s, {units.number(s['instances_per_s'])} "
                    "instances/s"
                    if s["requests_per_s"] is not None
                    else units.MISSING
                ),
                "latency": [(k, units.seconds(v)) for k, v in s["latency"].items()],
                "errors": [
                    {
                        **e,
                        "count": units.number(e["count"]),
                        "example": units.text(e["example"]) if e["example"] else "",
                    }
                    for e in s["errors"]
                ],
                "sides": server_vs_client(r),
                "server_note": _server_note(r),
                "open_loop": open_loop_facts(r),
            }
        )
    return out


def server_vs_client(r: Result) -> list[dict] | None:
    """Client- and server-side latency side by side: the client's from its raw samples; the server's from its
    metrics page histograms (TF Serving's request and runtime latency; their buckets grow by 1.8x, so a server
    percentile is known within its bucket, and only means subtract to the server's overhead). None when the
    server's page was not read."""
    server = r.serve.server if r.serve else None
    if server is None or server.status != "read" or not r.samples:
        return None
    st = r.step_time_s or {}
    rows = [
        {
            "side": "client (raw samples)",
            "p50": st.get("median"),
            "p90": st.get("p90"),
            "p99": st.get("p99"),
            "mean": st.get("mean"),
            "count": len(r.samples),
        }
    ]
    for side, h in (
        ("server request (histogram)", server.request_latency_s),
        ("server runtime (histogram)", server.runtime_latency_s),
    ):
        if h:
            rows.append({"side": side, **{k: getattr(h, k) for k in ("p50", "p90", "p99", "mean", "count")}})
    if server.overhead_mean_s is not None:
        rows.append(
            {
                "side": "server overhead (request - runtime)",
                "p50": None,
                "p90": None,
                "p99": None,
                "mean": server.overhead_mean_s,
                "count": None,
            }
        )
    figures = ("p50", "p90", "p99", "mean")
    return [
        {
            "side": row["side"],
            **{k: units.seconds(finite(row[k]), missing="") for k in figures},
            "count": units.number(row["count"]) if row["count"] is not None else "",
        }
        for row in rows
    ]


def _server_note(r: Result) -> str | None:
    server = r.serve.server if r.serve else None
    if not server:
        return None
    if server.status != "read":
        return f"server metrics page not read: {units.text(server.note)}"
    counts = ", ".join(f"{k} {v}" for k, v in (server.request_count or {}).items())
    return f"server request_count: {counts or 'none'}; {server.resolution}"


def open_loop_facts(r: Result) -> list[tuple[str, str]] | None:
    """The open-loop run's target and achieved rates, percentiles with their sample counts, and the
    verdict."""
    ol = r.serve.open_loop if r.serve else None
    if not ol:
        return None
    facts = [
        ("arrivals", f"Poisson at {units.number(ol.target_qps)} QPS (latency from the due time)"),
        (
            "scheduled / achieved",
            f"{units.number(ol.scheduled_qps)} / {units.number(ol.achieved_qps)} QPS",
        ),
    ]
    for name, p in (ol.percentiles or {}).items():
        flag = "" if p.get("enough") else f" (from {p.get('samples')} samples; {p.get('needed')} needed)"
        facts.append((name, units.seconds(finite(p.get("value"))) + flag))
    if ol.late_starts:
        facts.append(("late starts", f"{units.number(ol.late_starts)} (the client fell behind its schedule)"))
    if ol.verdict:
        facts.append(
            (
                "verdict",
                f"{ol.verdict} at p99 bound {units.seconds(ol.p99_bound_s)}"
                + ("".join(f"; {x}" for x in ol.reasons or [])),
            )
        )
    return facts


def what_if_rows(entries: list[WhatIf] | None) -> list[dict] | None:
    """The what-if re-runs of one result (tfperf.measure.whatif entries), formatted, in the order they ran."""
    out = []
    for w in entries or []:
        if w.skipped:
            verdict, cls = units.text(w.skipped), "inconclusive"
        elif w.error:
            verdict, cls = f"failed: {units.text(w.error)}", "regression"
        elif w.helped:
            verdict, cls = "helped", "improvement"
        else:
            verdict, cls = "did not help", "regression"
        out.append(
            {
                "change": units.text(w.change) if w.change else units.MISSING,
                "combined": bool(w.combined),
                "baseline": units.seconds(finite(w.baseline_median_s)),
                "median": units.seconds(finite(w.median_s)),
                "speedup": units.speedup(finite(w.speedup)),
                "wait_before": units.percent(finite(w.baseline_input_wait_fraction), 1),
                "wait_after": units.percent(finite(w.input_wait_fraction), 1),
                "p_value": units.p_column(finite(w.p_value)),
                "per_sample": w.batch_size is not None,
                "helped": bool(w.helped),
                "verdict": verdict,
                "verdict_class": cls,
                "code": units.text(w.code) if w.code else None,
            }
        )
    return out or None
