"""The server's own view of a serve-bench load test: its Prometheus page read before and after the timed load.

TF Serving (with `--monitoring_config_file` holding `prometheus_config { enable: true, path: "..." }`) serves
its metrics on the REST port, by default at /monitoring/prometheus/metrics. Its metric names are TensorFlow's
monitoring names with "/" written as ":":

    :tensorflow:serving:request_count{model_name, status}                 counter
    :tensorflow:serving:request_latency{model_name, API, entrypoint}      histogram, microseconds
    :tensorflow:serving:runtime_latency{model_name, API, runtime}         histogram, microseconds
    :tensorflow:serving:batching_session:queuing_latency{thread_pool_name}   histogram, microseconds
    :tensorflow:serving:batching:batch_size / padding_size_v2 / ...       histograms, when batching is on

The two latency histograms have buckets starting at 10 us and growing by 1.8x, so a percentile read from them
is known only to within its bucket (a factor of 1.8): the bucket is kept beside the interpolated value, and
means (sum / count) are exact. Everything here is a delta between the two reads, so earlier traffic does not
count.

A server without the page (404, or no answer) is said once in `serve.server.status` and is not an error; a
page that is not Prometheus text is reported the same way, and the load results are written regardless.
"""

from __future__ import annotations

import http.client
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from prometheus_client.parser import text_string_to_metric_families

from tfperf import units
from tfperf.results.serve_records import ServerHistogram, ServerMetrics

DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"
PREFIX = ":tensorflow:serving:"
REQUEST_COUNT = PREFIX + "request_count"
REQUEST_LATENCY = PREFIX + "request_latency"
RUNTIME_LATENCY = PREFIX + "runtime_latency"
# Batching histograms: the session batcher's queue and the batch op's sizes and delays.
BATCHING_PREFIXES = (PREFIX + "batching_session:", PREFIX + "batching:")
# TF Serving's request and runtime latency buckets: Buckets::Exponential(10, 1.8, 33), in microseconds.
LATENCY_BUCKET_GROWTH = 1.8
US = 1e-6
QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class Page:
    """One read of the metrics page: status "read", "absent" (no page) or "not_prometheus"; the samples by
    (sample name, sorted labels); the families' types; a one-line note when it could not be read."""

    status: str
    samples: dict[tuple[str, tuple], float] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # family name -> counter | histogram | gauge ...
    note: str | None = None


def parse_page(text: str) -> Page:
    """Prometheus text -> Page; text that is not Prometheus exposition is a Page with status
    not_prometheus."""
    page = Page("read")
    try:
        for family in text_string_to_metric_families(text):
            page.types[family.name] = family.type
            for s in family.samples:
                page.samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    except ValueError as exc:
        return Page("not_prometheus", note=f"not Prometheus text ({str(exc).splitlines()[0][:120]})")
    if not page.samples:
        return Page("not_prometheus", note="no metric samples on the page")
    return page


def read_page(get: Callable[[str], tuple[int, bytes]], path: str) -> Page:
    """GET the page with `get(path) -> (status, body)`; never raises for an absent or broken page."""
    try:
        status, body = get(path)
    except (OSError, http.client.HTTPException) as exc:
        return Page("absent", note=f"{path}: {type(exc).__name__}: {exc}"[:200])
    if status != 200:
        return Page(
            "absent",
            note=f"{path}: HTTP {status} (start TF Serving with --monitoring_config_file "
            "enabling prometheus_config on this path)",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Page("not_prometheus", note=f"{path}: not UTF-8 text")
    page = parse_page(text)
    if page.note:
        page.note = f"{path}: {page.note}"
    return page


def _matches(labels: tuple, model: str | None) -> bool:
    """A sample is the model's when it has no model_name label (server-wide metrics) or names the model."""
    d = dict(labels)
    return model is None or "model_name" not in d or d["model_name"] == model


def _delta(before: Page, after: Page, name: str, model: str | None, drop: tuple[str, ...] = ()) -> dict:
    """Sum of (after - before) over the samples called `name`, grouped by their labels minus `drop` and minus
    the model name; {labels: delta}."""
    out: dict[tuple, float] = defaultdict(float)
    for (sample, labels), value in after.samples.items():
        if sample != name or not _matches(labels, model):
            continue
        key = tuple((k, v) for k, v in labels if k not in drop and k != "model_name")
        out[key] += value - before.samples.get((sample, labels), 0.0)
    return dict(out)


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """Prometheus' histogram_quantile on cumulative (upper bound, count) buckets: the value, linearly
    interpolated inside its bucket, and that bucket's (lower, upper) bounds. None with no observation."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank and count > below:
            if math.isinf(upper):  # the top bucket has no upper bound: the best known is its lower one
                return lower, lower, upper
            return lower + (upper - lower) * (rank - below) / (count - below), lower, upper
        lower, below = upper, count
    return None


def histogram_delta(
    before: Page, after: Page, family: str, model: str | None, scale: float = 1.0
) -> dict | None:
    """The observations a histogram gained between two reads: count, mean (exact: sum / count) and the
    quantiles with the bucket each falls in, in the histogram's unit times `scale`. None when nothing was
    observed."""
    counts = _delta(before, after, family + "_count", model)
    sums = _delta(before, after, family + "_sum", model)
    n = sum(counts.values())
    if n <= 0:
        return None
    by_le: dict[float, float] = defaultdict(float)
    for labels, v in _delta(before, after, family + "_bucket", model).items():
        le = dict(labels).get("le")
        if le is not None:
            by_le[float(le)] += v
    buckets = sorted(by_le.items())
    out: dict = {"count": int(n), "mean": sum(sums.values()) / n * scale}
    for q in QUANTILES:
        found = histogram_quantile(q, buckets)
        key = f"p{round(q * 100)}"
        out[key] = found[0] * scale if found else None
        out[key + "_bucket"] = (
            [found[1] * scale, None if math.isinf(found[2]) else found[2] * scale] if found else None
        )
    return out


def server_deltas(before: Page, after: Page, model: str | None, path: str) -> ServerMetrics:
    """`serve.server`: what the server says happened during the timed load."""
    if before.status != "read" or after.status != "read":
        bad = before if before.status != "read" else after
        return ServerMetrics(path=path, status=bad.status, note=bad.note)
    by_status = _delta(before, after, REQUEST_COUNT + "_total", model) or _delta(
        before, after, REQUEST_COUNT, model
    )
    request_count = {dict(k).get("status", ""): int(round(v)) for k, v in sorted(by_status.items()) if v}
    request = histogram_delta(before, after, REQUEST_LATENCY, model, US)
    runtime = histogram_delta(before, after, RUNTIME_LATENCY, model, US)
    overhead = request["mean"] - runtime["mean"] if request and runtime else None
    batching = {}
    for family, kind in sorted(after.types.items()):
        if kind == "histogram" and family.startswith(BATCHING_PREFIXES):
            # Latencies and delays are in microseconds; sizes are counts of examples.
            scale = US if ("latency" in family or "delay_us" in family) else 1.0
            h = histogram_delta(before, after, family, model, scale)
            if h:
                batching[family.removeprefix(PREFIX)] = {**h, "unit": "s" if scale == US else "examples"}
    return ServerMetrics(
        path=path,
        status="read",
        request_count=request_count,
        request_latency_s=ServerHistogram.from_json(request) if request else None,
        runtime_latency_s=ServerHistogram.from_json(runtime) if runtime else None,
        # The server's own share of a request: its mean latency minus the model's runtime. Means subtract;
        # percentiles do not, so only the mean is given.
        overhead_mean_s=overhead,
        batching=batching,
        resolution=f"latency buckets grow by {LATENCY_BUCKET_GROWTH}x: a percentile lies in its bucket "
        f"(up to {LATENCY_BUCKET_GROWTH}x wide); means are exact",
    )


def summary_lines(server: ServerMetrics | None) -> list[str]:
    """The terminal lines for `serve.server` (the tables and HTML read the same record)."""
    if not server:
        return []
    if server.status != "read":
        return [f"server       metrics page not read: {server.note}"]
    lines = [
        "server       "
        + (", ".join(f"{k} {v}" for k, v in (server.request_count or {}).items()) or "no requests")
        + " (request_count)"
    ]
    for label, h in (("server req", server.request_latency_s), ("server run", server.runtime_latency_s)):
        if h:
            lines.append(
                f"{label:<12} "
                + ", ".join(
                    f"{q} {units.seconds(getattr(h, q))}"
                    for q in ("p50", "p90", "p99")
                    if getattr(h, q) is not None
                )
                + f", mean {units.seconds(h.mean)} ({h.count} requests)"
            )
    if server.overhead_mean_s is not None:
        lines.append(f"server overhead (request - runtime, mean) {units.seconds(server.overhead_mean_s)}")
    for name, h in (server.batching or {}).items():
        value = units.seconds(h["mean"]) if h["unit"] == "s" else units.number(h["mean"])
        lines.append(f"batching     {name}: mean {value} over {h['count']}")
    return lines
