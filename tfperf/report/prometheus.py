"""results.json -> Prometheus' text exposition format, for node_exporter's textfile collector or a
Pushgateway.

Written with prometheus_client, so the HELP/TYPE lines, label escaping and number formatting are the client
library's own, and `--push` is its `push_to_gateway` (job "tfperf", grouped by suite). Reads results.json and
nothing else; no TensorFlow. Every figure comes from its one definition (the result's derived step times,
figures.measures) and is written in base units (seconds, bytes, ratios 0..1), as Prometheus' naming asks.

Every result gets `tfperf_result_ok` (1 ok, 0 otherwise, with its status); the measured figures are written
only for ok results with samples, and a figure the result did not measure is left out rather than written as
0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest, push_to_gateway
from prometheus_client.core import GaugeMetricFamily, Metric

from tfperf import stats
from tfperf.errors import TfperfError
from tfperf.figures import measures
from tfperf.results.model import Result, RunResult, atomic_write_text
from tfperf.results.serve_records import OpenLoop, ServeBench, ServerMetrics

FORMAT = "prometheus"  # `tfperf export --format prometheus`
JOB = "tfperf"
# A result's job, plus `config` for `tfperf tune`'s candidates (empty otherwise, which Prometheus drops):
# without it two candidates of one job would be the same series, which a Pushgateway refuses.
LABELS = ("suite", "case", "mode", "batch_size", "device", "task", "config")
STEP_QUANTILES = (0.5, 0.9, 0.99)

# name -> (type, help). The Grafana dashboard's test checks its queries against these names.
METRICS: dict[str, tuple[str, str]] = {
    "tfperf_step_seconds": (
        "summary",
        "Timed step time in seconds (serve-bench: request latency), from the raw "
        "samples; quantiles 0.5, 0.9, 0.99",
    ),
    "tfperf_throughput": (
        "gauge",
        "Throughput in the unit of the unit label (samples/s, steps/s, instances/s)",
    ),
    "tfperf_first_call_seconds": ("gauge", "First call (tracing, compilation) in seconds, timed apart"),
    "tfperf_tracing_count": ("gauge", "Times the step function was traced during warm-up and timed steps"),
    "tfperf_input_wait_ratio": ("gauge", "Share of the step spent waiting for the next input batch (0..1)"),
    "tfperf_noise_ratio": ("gauge", "Interquartile range of the samples over their median (0..1)"),
    "tfperf_peak_memory_bytes": ("gauge", "Peak memory of the job in bytes (allocator or memory profile)"),
    "tfperf_samples": ("gauge", "Timed samples the figures were computed from"),
    "tfperf_result_ok": (
        "gauge",
        "1 when the result is ok, else 0 (status label: ok, failed, timeout, skipped)",
    ),
    "tfperf_run_finished_timestamp_seconds": ("gauge", "When the run finished, in seconds since the epoch"),
    "tfperf_serve_requests": ("gauge", "serve-bench requests in the timed load, by outcome (ok, failed)"),
    "tfperf_server_latency_mean_seconds": (
        "gauge",
        "serve-bench: the server's own mean latency from its metrics "
        "page, by stage (request, runtime, overhead = request - runtime)",
    ),
    "tfperf_open_loop_achieved_qps": ("gauge", "serve-bench --qps: successful requests per second achieved"),
    "tfperf_open_loop_target_qps": ("gauge", "serve-bench --qps: the target request rate"),
    "tfperf_open_loop_valid": ("gauge", "serve-bench --p99-bound-ms: 1 VALID, 0 INVALID"),
}


def _family(name: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name][1], labels=[*LABELS, *extra])


def labels(suite: str, r: Result) -> list[str]:
    return [
        suite,
        r.case,
        r.mode,
        "" if r.batch_size is None else str(r.batch_size),
        r.device,
        r.task,
        measures.tune_config(r) or "",
    ]


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class RunCollector:
    """A prometheus_client collector over one RunResult (registered in a registry of its own)."""

    def __init__(self, run: RunResult):
        self.run = run
        self.suite = (run.suite or {}).get("name") or "tfperf"

    def collect(self) -> Iterator[Metric]:
        suite, run = self.suite, self.run
        step = Metric("tfperf_step_seconds", METRICS["tfperf_step_seconds"][1], "summary")
        gauges = {
            name: _family(name)
            for name, (kind, _) in METRICS.items()
            if kind == "gauge"
            and name
            not in (
                "tfperf_throughput",
                "tfperf_result_ok",
                "tfperf_run_finished_timestamp_seconds",
                "tfperf_serve_requests",
                "tfperf_server_latency_mean_seconds",
            )
        }
        throughput = _family("tfperf_throughput", ("unit",))
        result_ok = _family("tfperf_result_ok", ("status",))
        serve_requests = _family("tfperf_serve_requests", ("outcome",))
        server_latency = _family("tfperf_server_latency_mean_seconds", ("stage",))
        for r in run.results:
            lv = labels(suite, r)
            result_ok.add_metric([*lv, r.status], 1.0 if r.ok else 0.0)
            if not (r.ok and r.samples):
                continue
            d = dict(zip(LABELS, lv))
            values = sorted(r.samples)
            for q in STEP_QUANTILES:
                step.add_sample("tfperf_step_seconds", {**d, "quantile": str(q)}, stats.quantile(values, q))
            step.add_sample("tfperf_step_seconds_sum", d, float(sum(values)))
            step.add_sample("tfperf_step_seconds_count", d, float(len(values)))
            tp = measures.throughput(r)
            if tp:
                throughput.add_metric([*lv, tp[1]], tp[0])
            peak = measures.peak_memory(r)
            figures = {
                "tfperf_first_call_seconds": r.first_call_s,
                "tfperf_tracing_count": r.tracing_count,
                "tfperf_input_wait_ratio": r.input_wait_fraction,
                "tfperf_noise_ratio": measures.noise_fraction(r),
                "tfperf_peak_memory_bytes": peak.bytes if peak else None,
                "tfperf_samples": len(values),
            }
            if r.mode == measures.SERVE_MODE and r.serve is not None:
                self._serve(r.serve, lv, figures, serve_requests, server_latency)
            for name, v in figures.items():
                if _number(v):
                    gauges[name].add_metric(lv, float(v))
        yield step
        yield throughput
        yield from gauges.values()
        yield result_ok
        yield serve_requests
        yield server_latency
        finished = _timestamp(run.finished_at or run.started_at)
        if finished is not None:
            g = GaugeMetricFamily(
                "tfperf_run_finished_timestamp_seconds",
                METRICS["tfperf_run_finished_timestamp_seconds"][1],
                labels=["suite"],
            )
            g.add_metric([suite], finished)
            yield g

    @staticmethod
    def _serve(
        serve: ServeBench,
        lv: list[str],
        figures: dict,
        serve_requests: GaugeMetricFamily,
        server_latency: GaugeMetricFamily,
    ) -> None:
        for outcome, value in (("ok", serve.requests_ok), ("failed", serve.requests_failed)):
            if _number(value):
                serve_requests.add_metric([*lv, outcome], float(value))
        server = serve.server or ServerMetrics()
        for stage, value in (
            ("request", server.request_latency_s.mean if server.request_latency_s else None),
            ("runtime", server.runtime_latency_s.mean if server.runtime_latency_s else None),
            ("overhead", server.overhead_mean_s),
        ):
            if _number(value):
                server_latency.add_metric([*lv, stage], float(value))
        ol = serve.open_loop or OpenLoop()
        figures["tfperf_open_loop_achieved_qps"] = ol.achieved_qps
        figures["tfperf_open_loop_target_qps"] = ol.target_qps
        figures["tfperf_open_loop_valid"] = {"VALID": 1, "INVALID": 0}.get(ol.verdict)


def _timestamp(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


@dataclass
class Exposition:
    registry: CollectorRegistry
    suite: str

    @property
    def text(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


def to_prometheus(run: RunResult) -> Exposition:
    """The run's metrics in a registry of their own (never the process-wide default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = RunCollector(run)
    registry.register(collector)
    return Exposition(registry, collector.suite)


def push(exposition: Exposition, gateway: str, timeout_s: float = 10.0) -> None:
    """PUT the metrics to a Pushgateway as job "tfperf" grouped by suite (replacing that suite's last push).
    Raises OSError (urllib's URLError, HTTPError) when the gateway cannot be reached or refuses them."""
    push_to_gateway(
        gateway,
        job=JOB,
        registry=exposition.registry,
        grouping_key={"suite": exposition.suite},
        timeout=timeout_s,
    )


class PushFailed(TfperfError):
    """The Pushgateway could not be reached or refused the metrics. Exit 1, not 2: the input was fine and the
    local file is already written."""

    exit_code = 1


def check_push_option(gateway: str | None, fmt: str) -> None:
    if gateway and fmt != FORMAT:
        raise TfperfError(f"--push sends Prometheus metrics: give --format {FORMAT}")
    if gateway and not gateway.startswith(("http://", "https://")):
        raise TfperfError(f"--push {gateway!r}: give http://HOST:PORT of a Pushgateway (9091 by default)")


def write_and_push(
    run: RunResult, output: Path | None, gateway: str | None, note: Callable[[str], None] = lambda line: None
) -> str | None:
    """Write the exposition to `output`, then push it to `gateway`; returns the text for stdout when there is
    neither a file nor a gateway. Raises PushFailed after the file is written."""
    exposition = to_prometheus(run)
    if output:
        atomic_write_text(output, exposition.text)
        note(f"wrote {output}")
    if gateway:
        try:
            push(exposition, gateway)
        except OSError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise PushFailed(f"export: push to {gateway} failed: {reason}") from None
        note(f"pushed to {gateway} (job {JOB}, suite {exposition.suite})")
    return exposition.text if not output and not gateway else None
