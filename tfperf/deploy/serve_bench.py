"""`tfperf serve-bench`: load-test an endpoint that speaks TF Serving's REST predict API.

    POST {URL}/v1/models/NAME[/versions/V]:predict   {"signature_name": ..., "instances": [...]}  (row format)
                                                      {"signature_name": ..., "inputs": [...]}     (columnar)

Closed loop (the default): N client threads (one keep-alive connection each, as real clients hold) each send
their next request when the last one answered. Open loop (`qps`): requests arrive as a Poisson process at that
rate whatever the server does (tfperf.deploy.open_loop). Either way requests go until a request cap or a
time cap is reached: both caps always apply, so a run ends by itself. Every outcome is counted, none is fatal:
HTTP errors by status, connection failures by kind (ConnectionRefusedError, TimeoutError, RemoteDisconnected
...), a 200 whose body has no predictions as `bad_response`. Latencies of successful requests are the samples;
the run is written as a results.json with one Result (mode "serve"), so `tfperf compare` and `tfperf report`
work on it.

The server's own Prometheus page (TF Serving's request, runtime and batching histograms) is read after the
warm-up and after the timed load, and the deltas go into extra.server (tfperf.deploy.server_metrics).

No TensorFlow here: the client is urllib/http.client and numpy.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import numpy as np

from tfperf import stats, units
from tfperf.deploy import open_loop, server_metrics
from tfperf.deploy.server_metrics import DEFAULT_METRICS_PATH
from tfperf.errors import TfperfError
from tfperf.host.environment import host_environment
from tfperf.results.model import Result, RunResult, now_iso
from tfperf.results.records import ErrorInfo, Timing
from tfperf.version import __version__

# With neither --requests nor --duration a run sends this many requests.
DEFAULT_REQUESTS = 1000
# The time cap when only --requests is given, and the request cap when only --duration is given: a run is
# always bounded in both.
DEFAULT_DURATION_CAP_S = 60.0
DEFAULT_REQUEST_CAP = 1_000_000
DEFAULT_TIMEOUT_S = 10.0
# After a connection failure a client waits this long before its next request, so a dead endpoint is not
# hammered in a tight loop (the wait is not part of any latency).
CONNECTION_ERROR_BACKOFF_S = 0.01
# Distinct error messages kept per status or kind, for the report.
ERROR_EXAMPLES = 3
REQUEST_FORMATS = ("instances", "inputs")


class ServeBenchError(TfperfError):
    """A serve-bench invocation that cannot start (bad URL, no input to send)."""


@dataclass(frozen=True)
class ServeBenchConfig:
    url: str  # http://host:port[/prefix]
    model: str
    signature: str | None = None
    version: str | None = None
    concurrency: int = 1
    max_requests: int | None = None  # None: DEFAULT_REQUESTS, or DEFAULT_REQUEST_CAP when a duration is given
    duration_s: float | None = None  # None: DEFAULT_DURATION_CAP_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    warmup_requests: int = 1
    request_format: str = "instances"
    # The server's Prometheus page, read before and after the timed load (None: not read).
    metrics_path: str | None = DEFAULT_METRICS_PATH
    # Open loop: Poisson arrivals at this rate (requests/s); None keeps the closed loop (each client sends its
    # next request when the last one answered).
    qps: float | None = None
    p99_bound_s: float | None = None  # open loop: the latency bound the VALID / INVALID verdict checks
    seed: int = 0  # open loop: the arrival schedule's random seed

    def caps(self) -> tuple[int, float]:
        """(request cap, time cap in seconds): both always finite."""
        requests = self.max_requests
        if requests is None:
            requests = DEFAULT_REQUEST_CAP if self.duration_s is not None else DEFAULT_REQUESTS
        return requests, self.duration_s if self.duration_s is not None else DEFAULT_DURATION_CAP_S

    def validate(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServeBenchError(
                f"URL {self.url!r}: give http://HOST:PORT (the TF Serving REST port, 8501 by default)"
            )
        if self.concurrency < 1:
            raise ServeBenchError(f"--concurrency {self.concurrency}: must be at least 1")
        if self.max_requests is not None and self.max_requests < 1:
            raise ServeBenchError(f"--requests {self.max_requests}: must be at least 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ServeBenchError(f"--duration {self.duration_s}: must be positive")
        if self.qps is not None and not self.qps > 0:
            raise ServeBenchError(f"--qps {self.qps}: must be positive")
        if self.p99_bound_s is not None and self.qps is None:
            raise ServeBenchError("--p99-bound-ms judges an open-loop run: give --qps too")
        if self.p99_bound_s is not None and not self.p99_bound_s > 0:
            raise ServeBenchError(f"--p99-bound-ms {self.p99_bound_s * 1e3:g}: must be positive")
        if self.metrics_path is not None and not self.metrics_path.startswith("/"):
            raise ServeBenchError(f"--metrics-path {self.metrics_path!r}: give a path starting with /")
        if self.request_format not in REQUEST_FORMATS:
            raise ServeBenchError(
                f"--request-format {self.request_format}: choose {' or '.join(REQUEST_FORMATS)}"
            )


def predict_path(config: ServeBenchConfig) -> str:
    prefix = urlsplit(config.url).path.rstrip("/")
    version = f"/versions/{config.version}" if config.version else ""
    return f"{prefix}/v1/models/{config.model}{version}:predict"


def metrics_url_path(config: ServeBenchConfig) -> str:
    """The server's Prometheus page, under the same URL prefix as the predict path."""
    return urlsplit(config.url).path.rstrip("/") + (config.metrics_path or DEFAULT_METRICS_PATH)


def request_body(instances: list, config: ServeBenchConfig) -> bytes:
    """The predict request: row format ("instances": one entry per example) or columnar ("inputs": the
    batch)."""
    body: dict[str, Any] = {}
    if config.signature:
        body["signature_name"] = config.signature
    body[config.request_format] = instances
    return json.dumps(body).encode("utf-8")


# --- what to send -------------------------------------------------------------------------------------------


def synthetic_instances(
    shape: tuple[int, ...], dtype: str, batch: int, maxval: int | None = None, seed: int = 0
) -> list:
    """`batch` examples of the given per-example shape, drawn like the harness's synthetic inputs, as JSON
    lists."""
    rng = np.random.default_rng(seed)
    np_dtype = np.dtype(dtype)
    full = (batch, *shape)
    if np.issubdtype(np_dtype, np.integer):
        data = rng.integers(0, maxval or 2, size=full).astype(np_dtype)
    elif np_dtype == np.bool_:
        data = rng.integers(0, 2, size=full).astype(bool)
    else:
        data = rng.standard_normal(size=full).astype(np_dtype)
    return data.tolist()


def instances_from_suite(ref: str, batch: int, seed: int = 0) -> list:
    """--input-from suite.yaml:case: the case's input spec (or its zoo model's default input)."""
    from tfperf.suite.loader import load_suite

    path, sep, case_name = ref.rpartition(":")
    if not sep or not path or not case_name:
        raise ServeBenchError(f"--input-from {ref!r}: give SUITE.yaml:CASE")
    suite = load_suite(Path(path))
    case = next((c for c in suite.cases if c.name == case_name), None)
    if case is None:
        names = ", ".join(c.name for c in suite.cases)
        raise ServeBenchError(f"--input-from {ref}: no case {case_name!r} in {path} (cases: {names})")
    inp = case.input
    if case.model and case.model.startswith("zoo:"):
        from tfperf.zoo import (
            MODELS,
            resolve_input,
        )  # the input the zoo model's params imply, when the case gives none

        entry = MODELS.get(case.model.removeprefix("zoo:"))
        inp = resolve_input(entry, inp, case.params) if entry else inp
    if inp is None:
        raise ServeBenchError(
            f"--input-from {ref}: the case has no input: {{shape: [...]}} to draw instances from"
        )
    return synthetic_instances(tuple(inp.shape), inp.dtype, batch, inp.maxval, seed)


def instances_from_file(path: Path) -> list:
    """A JSON file holding a list of instances, or a whole request body with "instances"/"inputs"."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServeBenchError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise ServeBenchError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if isinstance(data, dict):
        data = data.get("instances", data.get("inputs"))
    if not isinstance(data, list) or not data:
        raise ServeBenchError(f'{path}: expected a non-empty list of instances (or a body with "instances")')
    return data


_TF_DTYPES = {
    "DT_FLOAT": "float32",
    "DT_DOUBLE": "float64",
    "DT_HALF": "float16",
    "DT_INT32": "int32",
    "DT_INT64": "int64",
    "DT_INT8": "int8",
    "DT_UINT8": "uint8",
    "DT_BOOL": "bool",
}


def instances_from_metadata(config: ServeBenchConfig, batch: int, seed: int = 0) -> list:
    """Ask the endpoint (GET .../metadata) for the signature's input shape and dtype, and draw instances for
    it."""
    path = predict_path(config).removesuffix(":predict") + "/metadata"
    try:
        status, body = http_get(config, path)
    except (OSError, http.client.HTTPException) as exc:
        raise ServeBenchError(
            f"{config.url}{path}: {type(exc).__name__}: {exc}; give --input-from SUITE.yaml:CASE "
            "or --instances FILE.json"
        ) from None
    if status != 200:
        raise ServeBenchError(
            f"{config.url}{path}: HTTP {status}; give --input-from SUITE.yaml:CASE or --instances FILE.json"
        )
    try:
        sigs = json.loads(body)["metadata"]["signature_def"]["signature_def"]
        sig = sigs[config.signature or "serving_default"]
        inputs = sig["inputs"]
        if len(inputs) != 1:
            raise ServeBenchError(f"signature has {len(inputs)} inputs; give --instances FILE.json")
        (spec,) = inputs.values()
        dims = [int(d.get("size", -1)) for d in spec["tensor_shape"].get("dim", [])]
        dtype = _TF_DTYPES[spec["dtype"]]
    except ServeBenchError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise ServeBenchError(
            f"{config.url}{path}: metadata without a usable input signature ({exc}); give "
            "--input-from SUITE.yaml:CASE or --instances FILE.json"
        ) from None
    shape = tuple(dims[1:])  # the first dimension is the batch
    if any(d < 0 for d in shape):
        raise ServeBenchError(f"input shape {dims} has unknown dimensions; give --instances FILE.json")
    return synthetic_instances(shape, dtype, batch, seed=seed)


# --- the load test ------------------------------------------------------------------------------------------


def _connection(config: ServeBenchConfig, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(config.url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=timeout)


def http_get(config: ServeBenchConfig, path: str) -> tuple[int, bytes]:
    conn = _connection(config, config.timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


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
    warmup: dict = field(default_factory=dict)
    open_loop: dict | None = None  # the open-loop schedule's figures (tfperf.deploy.open_loop)
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
            self.conn = _connection(self.config, self.config.timeout_s)
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
    outcome.warmup = {
        "sent": len(warm_results),
        "ok": sum(1 for r in warm_results if r[0] == "ok"),
        "first_s": warm_results[0][2] if warm_results else None,
    }


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


# --- results ------------------------------------------------------------------------------------------------


def latency_summary(latencies_s: list[float]) -> dict | None:
    if not latencies_s:
        return None
    s = stats.summarize(latencies_s)
    return {
        "p50": s["median"],
        "p90": s["p90"],
        "p99": s["p99"],
        "max": s["max"],
        "mean": s["mean"],
        "min": s["min"],
    }


def to_result(
    config: ServeBenchConfig, outcome: BenchOutcome, batch: int, server: dict | None = None
) -> Result:
    """One Result, mode "serve": samples are request latencies (from the due time in the open loop); the batch
    size is instances per request; `server` is what the server's metrics page said (server_metrics)."""
    max_requests, duration_s = config.caps()
    case = config.model + (f"@v{config.version}" if config.version else "")
    result = Result(
        case=case,
        mode="serve",
        device="endpoint",
        task="infer",
        batch_size=batch,
        model=predict_path(config),
        samples=list(outcome.latencies_s),
        first_call_s=outcome.warmup.get("first_s"),
    )
    result.timing = Timing(
        method="per_request",
        warmup_steps=config.warmup_requests,
        steps=outcome.sent,
        repeats=1,
        sync="http response read",
    )
    rate = outcome.ok / outcome.wall_s if outcome.wall_s > 0 else None
    result.extra = {
        "url": config.url,
        "endpoint": predict_path(config),
        "signature": config.signature,
        "request_format": config.request_format,
        "concurrency": config.concurrency,
        "requests_sent": outcome.sent,
        "requests_ok": outcome.ok,
        "requests_failed": outcome.failed,
        "errors_by_status": dict(outcome.errors_by_status),
        "connection_errors": dict(outcome.connection_errors),
        "error_examples": outcome.error_examples,
        "wall_s": outcome.wall_s,
        "requests_per_s": rate,
        "instances_per_s": rate * batch if rate is not None else None,
        "latency_s": latency_summary(outcome.latencies_s),
        "stopped_by": outcome.stopped_by,
        "request_cap": max_requests,
        "duration_cap_s": duration_s,
        "timeout_s": config.timeout_s,
        "warmup": outcome.warmup,
        # "closed": each client sends when its last request answered; "open": Poisson arrivals
        # (extra.open_loop).
        "load": "open" if outcome.open_loop else "closed",
        "open_loop": outcome.open_loop,
        "server": server,
    }
    result.wall_s = outcome.wall_s
    if outcome.ok == 0:
        counts = {
            **{f"HTTP {k}": v for k, v in outcome.errors_by_status.items()},
            **outcome.connection_errors,
        }
        worst = max(counts, key=counts.get) if counts else "no request sent"
        first = next(iter(outcome.error_examples.values()), [None])
        result.status = "failed"
        result.error = ErrorInfo(
            type="NoSuccessfulRequest",
            message=f"0 of {outcome.sent} requests succeeded; most common: {worst}"
            + (f" ({first[0]})" if first and first[0] else ""),
            hint="check the URL, the model name and the input shape (GET "
            f"{predict_path(config).removesuffix(':predict')}/metadata shows the signature)",
        )
    return result


def to_run(
    config: ServeBenchConfig,
    result: Result,
    started_at: str,
    finished_at: str,
    command: list[str] | None = None,
) -> RunResult:
    return RunResult(
        suite={"name": f"serve-bench-{config.model}", "path": config.url, "sha256": None},
        environment=host_environment(),
        results=[result],
        started_at=started_at,
        finished_at=finished_at,
        tfperf_version=__version__,
        command=command,
    )


def serve_bench(config: ServeBenchConfig, instances: list, command: list[str] | None = None) -> RunResult:
    """Run the load test and return it as a RunResult (write it with tfperf.report.outputs.finish_run)."""
    started = now_iso()
    pages: list[server_metrics.Page] = []

    def read_metrics() -> None:
        pages.append(server_metrics.read_page(lambda path: http_get(config, path), metrics_url_path(config)))

    # The page is read after the warm-up and right after the timed load, so its deltas are the timed
    # requests'.
    outcome = run_bench(config, instances, before_timed=read_metrics if config.metrics_path else None)
    server = None
    if config.metrics_path:
        read_metrics()
        server = server_metrics.server_deltas(pages[0], pages[-1], config.model, config.metrics_path)
    finished = now_iso()
    return to_run(config, to_result(config, outcome, len(instances), server), started, finished, command)


def bench_exit_code(run: RunResult) -> int:
    """The run's exit code (1 for a failed result), and 1 for an open-loop run judged INVALID against its p99
    bound, so a script can gate on the verdict."""
    invalid = any(((r.extra or {}).get("open_loop") or {}).get("verdict") == "INVALID" for r in run.results)
    return run.exit_code or (1 if invalid else 0)


def render_summary(result: Result) -> str:
    """The terminal summary: throughput, latency percentiles, errors by status and kind."""
    e = result.extra
    lat = e.get("latency_s")
    lines = [
        f"serve-bench {e['endpoint']} at {e['url']}: concurrency {e['concurrency']}, "
        f"{result.batch_size} instance(s) per request, stopped by the {e['stopped_by']} cap",
        f"requests     {e['requests_sent']} sent, {e['requests_ok']} ok, {e['requests_failed']} failed "
        f"in {units.seconds(e['wall_s'])}",
    ]
    if e.get("requests_per_s") is not None:
        lines.append(
            f"throughput   {units.number(e['requests_per_s'])} requests/s, "
            f"{units.number(e['instances_per_s'])} instances/s"
        )
    if lat:
        lines.append(
            "latency      " + ", ".join(f"{k} {units.seconds(lat[k])}" for k in ("p50", "p90", "p99", "max"))
        )
    for status, n in sorted(e["errors_by_status"].items()):
        example = (e["error_examples"].get(status) or [""])[0]
        lines.append(f"HTTP {status:<8} {n}" + (f"  e.g. {example}" if example else ""))
    for kind, n in sorted(e["connection_errors"].items()):
        example = (e["error_examples"].get(kind) or [""])[0]
        lines.append(f"{kind:<12} {n}" + (f"  e.g. {example}" if example else ""))
    lines += open_loop.summary_lines(e.get("open_loop"))
    lines += server_metrics.summary_lines(e.get("server"))
    if result.error:
        lines.append(f"FAILED: {result.error.message}")
    return "\n".join(lines)
