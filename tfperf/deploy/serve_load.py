"""The serve-bench load test: a closed loop of client threads, each sending its next request when the last one
answered, or the open loop's Poisson arrivals (tfperf.deploy.open_loop); every request's outcome counted, none
fatal, until the request cap or the time cap."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from tfperf.deploy import open_loop
from tfperf.deploy.serve_config import ServeBenchConfig, connection, predict_path, request_body
from tfperf.results.serve_records import OpenLoop, ServeWarmup

# After a connection failure a client waits this long before its next request, so a dead endpoint is not
# hammered in a tight loop (the wait is not part of any latency).
CONNECTION_ERROR_BACKOFF_S = 0.01
# Distinct error messages kept per status or kind, for the report.
ERROR_EXAMPLES = 3


@dataclass
class BenchOutcome:
    """Everything the load test observed. Latencies are of successful requests only: a refused connection
    returns at once and would flatter the numbers."""

    latencies_s: list[float] = field(default_factory=list)
    errors_by_status: Counter = field(default_factory=Counter)  # "400" -> count; "200" for a bad body
    connection_errors: Counter = field(default_factory=Counter)  # exception kind -> count
    error_examples: dict = field(default_factory=dict)  # status or kind -> [first messages]
    sent: int = 0
    wall_s: float = 0.0
    stopped_by: str = ""  # requests | duration
    warmup: ServeWarmup = field(default_factory=ServeWarmup)
    open_loop: OpenLoop | None = None  # the open-loop schedule's figures (tfperf.deploy.open_loop)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, kind: str, key: str | None, elapsed: float, message: str | None) -> None:
        """Count one request's outcome (thread-safe): a latency when ok, else its status or kind and
        message."""
        with self.lock:
            if kind == "ok":
                self.latencies_s.append(elapsed)
                return
            counter = self.errors_by_status if kind == "http" else self.connection_errors
            counter[key] += 1
            examples = self.error_examples.setdefault(key, [])
            if message and message not in examples and len(examples) < ERROR_EXAMPLES:
                examples.append(message)

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def failed(self) -> int:
        return sum(self.errors_by_status.values()) + sum(self.connection_errors.values())


class RequestClient:
    """One client thread's connection and the outcome of one request."""

    def __init__(self, config: ServeBenchConfig, path: str, body: bytes):
        self.config, self.path, self.body = config, path, body
        self.headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(self) -> tuple[str, str | None, float, str | None]:
        """(outcome, key, seconds, message): outcome ok | http | connection; key the status or error kind."""
        if self.conn is None:
            self.conn = connection(self.config, self.config.timeout_s)
        t0 = time.perf_counter()
        try:
            self.conn.request("POST", self.path, body=self.body, headers=self.headers)
            resp = self.conn.getresponse()
            data = resp.read()
            elapsed = time.perf_counter() - t0
            if resp.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            elapsed = time.perf_counter() - t0
            self.close()
            return "connection", type(exc).__name__, elapsed, str(exc)[:200]
        if resp.status != 200:
            return "http", str(resp.status), elapsed, _error_text(data)
        try:
            payload = json.loads(data)
            if "predictions" not in payload and "outputs" not in payload:
                raise ValueError("no 'predictions' or 'outputs' in the response")
        except ValueError as exc:
            return "http", "200-bad-response", elapsed, str(exc)[:200]
        return "ok", None, elapsed, None


def _error_text(data: bytes) -> str:
    """TF Serving answers errors as {"error": "..."}; anything else is shown as text."""
    try:
        return str(json.loads(data).get("error", ""))[:200] or data[:200].decode("utf-8", "replace")
    except (ValueError, AttributeError):
        return data[:200].decode("utf-8", "replace")


def warm_up(config: ServeBenchConfig, path: str, body: bytes, outcome: BenchOutcome) -> None:
    """The first request to a model (lazy loading, graph warm-up) is not a served request's latency."""
    warm = RequestClient(config, path, body)
    warm_results = [warm.send() for _ in range(config.warmup_requests)]
    warm.close()
    outcome.warmup = ServeWarmup(
        sent=len(warm_results),
        ok=sum(1 for r in warm_results if r[0] == "ok"),
        first_s=warm_results[0][2] if warm_results else None,
    )


def run_bench(
    config: ServeBenchConfig, instances: list, before_timed: Callable[[], None] | None = None
) -> BenchOutcome:
    """Send requests until the request cap or the time cap; count every outcome. Closed loop: `concurrency`
    threads, each sending its next request when the last one answered. With `config.qps`, the open loop
    (tfperf.deploy.open_loop). `before_timed` runs after the warm-up, right before the timed load."""
    config.validate()
    max_requests, duration_s = config.caps()
    path = predict_path(config)
    body = request_body(instances, config)
    outcome = BenchOutcome()
    lock = outcome.lock
    record = outcome.record
    warm_up(config, path, body, outcome)
    if before_timed is not None:
        before_timed()
    if config.qps is not None:
        offsets = open_loop.arrival_offsets(config.qps, max_requests, duration_s, config.seed)
        run = open_loop.dispatch(
            offsets,
            config.concurrency,
            lambda: RequestClient(config, path, body),
            record,
            config.timeout_s,
            capped_by_duration=len(offsets) < max_requests,
        )
        outcome.wall_s, outcome.sent, outcome.stopped_by = run.wall_s, run.sent, run.stopped_by
        outcome.open_loop = open_loop.open_loop_figures(
            config.qps, run, outcome.latencies_s, outcome.failed, config.p99_bound_s
        )
        return outcome

    start = time.perf_counter()
    deadline = start + duration_s
    issued = {"sent": 0}
    stopped = {"by": "requests"}

    def worker() -> None:
        client = RequestClient(config, path, body)
        try:
            while True:
                with lock:
                    if issued["sent"] >= max_requests:
                        return
                    if time.perf_counter() >= deadline:
                        stopped["by"] = "duration"
                        return
                    issued["sent"] += 1
                kind, key, elapsed, message = client.send()
                record(kind, key, elapsed, message)
                if kind == "connection":
                    time.sleep(min(CONNECTION_ERROR_BACKOFF_S, max(0.0, deadline - time.perf_counter())))
        finally:
            client.close()

    threads = [
        threading.Thread(target=worker, name=f"serve-bench-{i}", daemon=True)
        for i in range(config.concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        # A request in flight at the deadline can take up to its timeout; past that the thread is abandoned
        # (daemon) rather than waited on, so the run's length stays bounded.
        t.join(timeout=max(0.0, deadline - time.perf_counter()) + config.timeout_s + 1.0)
    outcome.wall_s = time.perf_counter() - start
    outcome.sent = issued["sent"]
    outcome.stopped_by = stopped["by"]
    return outcome
