"""What a `tfperf serve-bench` run is asked to do (the endpoint, the load, the caps, both always finite), and
the HTTP requests it makes: the predict path and body, and a GET on the same server."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tfperf.deploy.server_metrics import DEFAULT_METRICS_PATH
from tfperf.errors import TfperfError

# With neither --requests nor --duration a run sends this many requests.
DEFAULT_REQUESTS = 1000
# The time cap when only --requests is given, and the request cap when only --duration is given: a run is
# always bounded in both.
DEFAULT_DURATION_CAP_S = 60.0
DEFAULT_REQUEST_CAP = 1_000_000
DEFAULT_TIMEOUT_S = 10.0
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


def connection(config: ServeBenchConfig, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(config.url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=timeout)


def http_get(config: ServeBenchConfig, path: str) -> tuple[int, bytes]:
    conn = connection(config, config.timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
