"""What `tfperf serve-bench` measured of an endpoint, typed (`Result.serve`): the requests and their outcomes,
the client's latency summary, the open-loop schedule and verdict (tfperf/deploy/open_loop.py), and the
server's own figures from its Prometheus page (tfperf/deploy/server_metrics.py).

Records as in job_records.py: every field written, null where not measured; unknown keys kept in `details`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tfperf.results.job_records import written_whole
from tfperf.results.records import Record


@written_whole
@dataclass
class LatencySummary(Record):
    """The client's latency of the successful requests, in seconds."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None
    min: float | None = None


@written_whole
@dataclass
class ServeWarmup(Record):
    """The warm-up requests, sent before the timed load (the first one loads and warms the model)."""

    sent: int | None = None
    ok: int | None = None
    first_s: float | None = None


@written_whole
@dataclass
class OpenLoop(Record):
    """The open loop's schedule and what it achieved (open_loop.open_loop_figures)."""

    target_qps: float | None = None
    scheduled_qps: float | None = None  # the realized Poisson rate of the requests sent
    achieved_qps: float | None = None  # successful responses over the run's wall time
    scheduled: int | None = None
    latency_from: str | None = None
    late_starts: int | None = None
    start_delay_p99_s: float | None = None
    # {p50: {value, samples, needed, enough}, ...}: each percentile with the samples it needs.
    percentiles: dict[str, dict[str, Any]] | None = None
    p99_bound_s: float | None = None
    verdict: str | None = None  # VALID | INVALID, with a p99 bound
    reasons: list[str] | None = None


@written_whole
@dataclass
class ServerHistogram(Record):
    """What a histogram of the server's page gained during the timed load (server_metrics.histogram_delta):
    the count, the exact mean, and each quantile with the bucket it lies in."""

    count: int | None = None
    mean: float | None = None
    p50: float | None = None
    p50_bucket: list[float | None] | None = None
    p90: float | None = None
    p90_bucket: list[float | None] | None = None
    p99: float | None = None
    p99_bucket: list[float | None] | None = None


@written_whole
@dataclass
class ServerMetrics(Record):
    """The server's Prometheus page read after the warm-up and after the timed load: the deltas."""

    path: str | None = None
    status: str | None = None  # read | absent | not_prometheus
    note: str | None = None  # why the page was not read
    request_count: dict[str, int] | None = None  # by TF Serving's status
    request_latency_s: ServerHistogram | None = None
    runtime_latency_s: ServerHistogram | None = None
    # The server's own share of a request: mean request latency minus the model's mean runtime.
    overhead_mean_s: float | None = None
    # The batching histograms by family: a ServerHistogram's keys plus its unit ("s" or "examples").
    batching: dict[str, dict[str, Any]] | None = None
    resolution: str | None = None

    NESTED: ClassVar[dict[str, type[Record]]] = {
        "request_latency_s": ServerHistogram,
        "runtime_latency_s": ServerHistogram,
    }


@written_whole
@dataclass
class ServeBench(Record):
    """One serve-bench load test of an endpoint (mode "serve"): the samples are the request latencies."""

    url: str | None = None
    endpoint: str | None = None  # the predict path
    signature: str | None = None
    request_format: str | None = None  # instances | inputs
    concurrency: int | None = None
    requests_sent: int | None = None
    requests_ok: int | None = None
    requests_failed: int | None = None
    errors_by_status: dict[str, int] | None = None  # "500" -> count; "200-bad-response" for a bad body
    connection_errors: dict[str, int] | None = None  # exception kind -> count
    error_examples: dict[str, list[str]] | None = None  # status or kind -> its first messages
    wall_s: float | None = None
    requests_per_s: float | None = None
    instances_per_s: float | None = None
    latency_s: LatencySummary | None = None
    stopped_by: str | None = None  # requests | duration: the cap that ended the run
    request_cap: int | None = None
    duration_cap_s: float | None = None
    timeout_s: float | None = None
    warmup: ServeWarmup | None = None
    load: str | None = (
        None  # closed: each client sends when its last request answered; open: Poisson arrivals
    )
    open_loop: OpenLoop | None = None
    server: ServerMetrics | None = None

    NESTED: ClassVar[dict[str, type[Record]]] = {
        "latency_s": LatencySummary,
        "warmup": ServeWarmup,
        "open_loop": OpenLoop,
        "server": ServerMetrics,
    }
