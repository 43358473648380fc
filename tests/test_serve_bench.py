"""serve-bench against a small TF Serving REST stand-in started here on 127.0.0.1 (a free port), serving a
real SavedModel. The server is test code, not a product feature: it implements the predict request/response
format (`instances` row format and `inputs` columnar), the metadata GET, a 400 for an input the signature
rejects, and a 500 injected on every Nth request to the "flaky" model, and TF Serving's Prometheus page
(/monitoring/prometheus/metrics) in its exact metric names, labels and bucket layout (TfServingMetrics: the
request and runtime latency histograms in microseconds, 10 us growing by 1.8x over 33 buckets; the batching
session's queuing latency, 100 us growing by 1.2x over 52; the batch op's batch size, 1 growing by 1.5x over
20). All traffic stays on the loopback address; every run is capped in requests and time.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tfperf import stats
from tfperf.deploy.serve_bench import (
    ServeBenchConfig,
    instances_from_metadata,
    render_summary,
    serve_bench,
    synthetic_instances,
)
from tfperf.deploy.serve_load import run_bench

FEATURES = 6
CLASSES = 3
FLAKY_EVERY = 4  # the flaky model answers 500 to every 4th predict request
SLOW_S = 0.6  # the slow model's delay
SLEEPY_S = 0.05  # the sleepy model's service time: slower than the open-loop arrivals it gets
METRICS_PATH = "/monitoring/prometheus/metrics"


def exponential_buckets(scale: float, growth: float, count: int) -> list[float]:
    """TensorFlow's monitoring::Buckets::Exponential: scale * growth^i for i < count (then +Inf)."""
    return [scale * growth**i for i in range(count)]


class TfServingMetrics:
    """The counters and histograms TF Serving exports, written as its Prometheus exporter writes them: metric
    names with "/" as ":", TYPE lines without HELP, bucket bounds in six significant digits, a "+Inf"
    bucket."""

    LATENCY_BUCKETS = exponential_buckets(10, 1.8, 33)  # microseconds
    QUEUE_BUCKETS = exponential_buckets(100, 1.2, 52)
    BATCH_SIZE_BUCKETS = exponential_buckets(1, 1.5, 20)  # examples

    def __init__(self):
        self.lock = threading.Lock()
        self.request_count: dict[tuple, int] = {}
        self.histograms: dict[str, dict[tuple, list[float]]] = {}  # family -> labels -> observations

    def count(self, model: str, status: str) -> None:
        with self.lock:
            key = (("model_name", model), ("status", status))
            self.request_count[key] = self.request_count.get(key, 0) + 1

    def observe(self, family: str, labels: tuple, value: float) -> None:
        with self.lock:
            self.histograms.setdefault(family, {}).setdefault(labels, []).append(value)

    @staticmethod
    def _labels(labels: tuple, **more: str) -> str:
        return ",".join(f'{k}="{v}"' for k, v in (*labels, *more.items()))

    def page(self) -> str:
        with self.lock:
            lines = ["# TYPE :tensorflow:serving:request_count counter"]
            lines += [
                f":tensorflow:serving:request_count{{{self._labels(k)}}} {v}"
                for k, v in sorted(self.request_count.items())
            ]
            for family, series in sorted(self.histograms.items()):
                bounds = (
                    self.QUEUE_BUCKETS
                    if "queuing" in family
                    else self.BATCH_SIZE_BUCKETS
                    if family.endswith("batch_size")
                    else self.LATENCY_BUCKETS
                )
                lines.append(f"# TYPE {family} histogram")
                for labels, values in sorted(series.items()):
                    for b in bounds:
                        lines.append(
                            f"{family}_bucket{{{self._labels(labels, le=f'{b:.6g}')}}} "
                            f"{sum(1 for v in values if v < b)}"
                        )
                    lines.append(f"{family}_bucket{{{self._labels(labels, le='+Inf')}}} {len(values)}")
                    lines.append(f"{family}_sum{{{self._labels(labels)}}} {sum(values)}")
                    lines.append(f"{family}_count{{{self._labels(labels)}}} {len(values)}")
        return "\n".join(lines) + "\n"


class PredictServer:
    """ThreadingHTTPServer speaking TF Serving's REST predict API over one SavedModel signature."""

    def __init__(self, savedmodel: Path, metrics: str | None = "tfserving"):
        """metrics: "tfserving" serves TF Serving's Prometheus page; "html" a page that is not Prometheus
        text; None no page (404), as TF Serving without --monitoring_config_file."""
        import tensorflow as tf

        self.tf = tf
        self.loaded = tf.saved_model.load(str(savedmodel))
        self.fn = self.loaded.signatures["serving_default"]
        ((self.input_name, self.input_spec),) = self.fn.structured_input_signature[1].items()
        self.output_name = sorted(self.fn.structured_outputs)[0]
        self.lock = threading.Lock()
        self.predicts: dict[str, int] = {}  # model -> predict requests received
        self.injected_500 = 0
        self.metrics_mode = metrics
        self.metrics = TfServingMetrics()
        self.model_lock = (
            threading.Lock()
        )  # one model runner, like a single batching thread: requests queue for it
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like TF Serving
            # TCP_NODELAY: the reply's headers and body are two writes; with Nagle on, the body would wait for
            # the client's delayed ACK (~40 ms on Linux), a stand-in artefact the server metrics made visible.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _text(self, status: int, text: str, content_type: str) -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == METRICS_PATH and server.metrics_mode == "tfserving":
                    self._text(200, server.metrics.page(), "text/plain; version=0.0.4")
                elif self.path == METRICS_PATH and server.metrics_mode == "html":
                    self._text(200, "<html><body>metrics are elsewhere</body></html>", "text/html")
                elif self.path == "/v1/models/clf/metadata":
                    dims = [{"size": str(d if d is not None else -1)} for d in server.input_spec.shape]
                    sig = {
                        "inputs": {
                            server.input_name: {
                                "dtype": "DT_FLOAT",
                                "tensor_shape": {"dim": dims},
                                "name": server.input_name,
                            }
                        },
                        "outputs": {},
                        "method_name": "tensorflow/serving/predict",
                    }
                    self._reply(
                        200,
                        {
                            "model_spec": {"name": "clf"},
                            "metadata": {"signature_def": {"signature_def": {"serving_default": sig}}},
                        },
                    )
                else:
                    self._reply(404, {"error": f"no route {self.path}"})

            def do_POST(self):
                t0 = time.perf_counter()
                model = self.path.removeprefix("/v1/models/").split(":")[0].split("/")[0]
                status = self._predict(model)
                server.metrics.count(model, status)
                if status == "OK":  # TF Serving observes the latency of requests it served
                    server.metrics.observe(
                        ":tensorflow:serving:request_latency",
                        (("model_name", model), ("API", "predict"), ("entrypoint", "REST")),
                        (time.perf_counter() - t0) * 1e6,
                    )

            def _predict(self, model: str) -> str:
                """Answer one predict request; returns TF Serving's status name for request_count."""
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if model == "slow":  # answers later than the client's timeout
                    time.sleep(SLOW_S)
                if not self.path.endswith(":predict") or model not in ("clf", "flaky", "slow", "sleepy"):
                    self._reply(404, {"error": f"Servable not found for request: {self.path}"})
                    return "NOT_FOUND"
                with server.lock:
                    n = server.predicts[model] = server.predicts.get(model, 0) + 1
                    inject = model == "flaky" and n % FLAKY_EVERY == 0
                    server.injected_500 += inject
                if inject:
                    self._reply(500, {"error": "injected failure"})
                    return "INTERNAL"
                if body.get("signature_name", "serving_default") != "serving_default":
                    self._reply(
                        400, {"error": f'Serving signature name: "{body["signature_name"]}" not found'}
                    )
                    return "INVALID_ARGUMENT"
                columnar = "inputs" in body
                queued = time.perf_counter()
                try:
                    with server.model_lock:
                        started = time.perf_counter()
                        server.metrics.observe(
                            ":tensorflow:serving:batching_session:queuing_latency",
                            (("thread_pool_name", f"model_{model}_batch_threads"),),
                            (started - queued) * 1e6,
                        )
                        if model == "sleepy":
                            time.sleep(SLEEPY_S)
                        x = server.tf.constant(
                            body["inputs" if columnar else "instances"], dtype=server.input_spec.dtype
                        )
                        y = server.fn(**{server.input_name: x})[server.output_name].numpy()
                        server.metrics.observe(
                            ":tensorflow:serving:batching:batch_size",
                            (("model_name", model), ("op_name", "batch")),
                            float(len(y)),
                        )
                        server.metrics.observe(
                            ":tensorflow:serving:runtime_latency",
                            (("model_name", model), ("API", "Predict"), ("runtime", "TF1")),
                            (time.perf_counter() - started) * 1e6,
                        )
                except Exception as exc:  # noqa: BLE001 - TF Serving answers a bad input with 400
                    self._reply(400, {"error": str(exc).splitlines()[0][:200]})
                    return "INVALID_ARGUMENT"
                self._reply(200, {"outputs": y.tolist()} if columnar else {"predictions": y.tolist()})
                return "OK"

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that timed out and left: expected
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> "PredictServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def savedmodel(tmp_path_factory) -> Path:
    import keras

    from tfperf.deploy.modes import export_savedmodel

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(CLASSES)]
    )
    path = tmp_path_factory.mktemp("serve") / "clf"
    export_savedmodel(model, np.zeros((1, FEATURES), np.float32), path)
    return path


@pytest.fixture
def server(savedmodel):
    with PredictServer(savedmodel) as s:
        yield s


def _free_port() -> int:
    """A port nothing listens on: bind to get one from the kernel, then close it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.tensorflow
def test_counts_every_request_and_reports_latency(server):
    config = ServeBenchConfig(
        server.url, "clf", concurrency=4, max_requests=40, duration_s=30, warmup_requests=2
    )
    run = serve_bench(config, synthetic_instances((FEATURES,), "float32", batch=3))
    (r,) = run.results
    assert r.status == "ok" and r.mode == "serve" and r.batch_size == 3
    assert r.serve.requests_sent == 40 and r.serve.requests_ok == 40 and r.serve.requests_failed == 0
    assert len(r.samples) == 40
    assert (
        server.predicts["clf"] == 40 + 2
    )  # the timed requests plus the warm-up ones, nothing lost or doubled
    assert r.serve.stopped_by == "requests" and r.serve.concurrency == 4
    lat = r.serve.latency_s
    assert 0 < lat.p50 <= lat.p90 <= lat.p99 <= lat.max
    assert r.serve.instances_per_s == pytest.approx(3 * r.serve.requests_per_s)
    assert "p50" in render_summary(r) and "40 ok" in render_summary(r)


@pytest.mark.tensorflow
def test_columnar_inputs_and_metadata_shaped_instances(server):
    config = ServeBenchConfig(
        server.url,
        "clf",
        max_requests=5,
        request_format="inputs",
        warmup_requests=0,
        signature="serving_default",
    )
    instances = instances_from_metadata(config, batch=2)
    assert np.asarray(instances).shape == (2, FEATURES)
    outcome = run_bench(config, instances)
    assert outcome.ok == 5 and outcome.failed == 0


@pytest.mark.tensorflow
def test_instances_from_a_suite_case(server, tmp_path):
    from tfperf.deploy.serve_bench import ServeBenchError, instances_from_suite

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ncases:\n  - name: clf\n    model: zoo:mlp\n    task: infer\n"
        f"    input: {{shape: [{FEATURES}], dtype: float32}}\n"
    )
    instances = instances_from_suite(f"{suite}:clf", batch=4)
    assert np.asarray(instances).shape == (4, FEATURES)
    outcome = run_bench(ServeBenchConfig(server.url, "clf", max_requests=3, warmup_requests=0), instances)
    assert outcome.ok == 3
    with pytest.raises(ServeBenchError, match="no case 'other'"):
        instances_from_suite(f"{suite}:other", batch=1)


@pytest.mark.tensorflow
def test_http_errors_are_counted_not_fatal(server):
    # 400: instances of the wrong width, which the signature rejects.
    bad = ServeBenchConfig(server.url, "clf", concurrency=2, max_requests=6, warmup_requests=0)
    outcome = run_bench(bad, synthetic_instances((FEATURES + 1,), "float32", batch=1))
    assert outcome.errors_by_status == {"400": 6} and outcome.ok == 0 and outcome.sent == 6
    assert outcome.error_examples["400"]  # the server's error text is kept for the report

    # 500 injected on every 4th request: the rest succeed and the two are told apart.
    flaky = ServeBenchConfig(server.url, "flaky", concurrency=3, max_requests=20, warmup_requests=0)
    outcome = run_bench(flaky, synthetic_instances((FEATURES,), "float32", batch=1))
    assert outcome.sent == 20
    assert outcome.errors_by_status["500"] == server.injected_500 == 20 // FLAKY_EVERY
    assert outcome.ok == 20 - 20 // FLAKY_EVERY
    assert not outcome.connection_errors

    # 404: a model the server does not have; the run still ends and becomes a failed result naming the status.
    missing = ServeBenchConfig(server.url, "nope", max_requests=3, warmup_requests=0)
    run = serve_bench(missing, synthetic_instances((FEATURES,), "float32", batch=1))
    assert run.results[0].status == "failed" and "HTTP 404" in run.results[0].error.message
    assert run.exit_code == 1


def test_refused_connection_is_counted_by_kind():
    config = ServeBenchConfig(
        f"http://127.0.0.1:{_free_port()}",
        "clf",
        concurrency=2,
        max_requests=8,
        warmup_requests=1,
        timeout_s=2,
    )
    run = serve_bench(config, synthetic_instances((FEATURES,), "float32", batch=1))
    (r,) = run.results
    assert r.serve.connection_errors == {"ConnectionRefusedError": 8}
    assert r.serve.requests_sent == 8 and r.samples == [] and r.status == "failed"
    assert "ConnectionRefusedError" in r.error.message


@pytest.mark.tensorflow
def test_timeouts_are_counted_by_kind(server):
    config = ServeBenchConfig(
        server.url, "slow", concurrency=2, max_requests=4, warmup_requests=0, timeout_s=0.15
    )
    outcome = run_bench(config, synthetic_instances((FEATURES,), "float32", batch=1))
    assert outcome.connection_errors == {"TimeoutError": 4} and outcome.ok == 0 and outcome.sent == 4


@pytest.mark.tensorflow
def test_time_cap_ends_an_unbounded_request_count(server):
    config = ServeBenchConfig(server.url, "clf", concurrency=2, duration_s=0.5, warmup_requests=0)
    outcome = run_bench(config, synthetic_instances((FEATURES,), "float32", batch=1))
    assert outcome.stopped_by == "duration"
    assert outcome.ok == outcome.sent > 0
    assert outcome.wall_s >= 0.5
    assert (
        outcome.wall_s < 0.5 + config.timeout_s + 1.0
    )  # the cap holds: at most one request in flight past it


@pytest.mark.tensorflow
@pytest.mark.workers
def test_cli_writes_results_that_compare_reads(server, tmp_path, tfperf_cli):
    from tfperf.results.model import load_results

    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps({"instances": synthetic_instances((FEATURES,), "float32", batch=2)}))
    runs = []
    for name in ("base", "current"):
        out = tmp_path / name
        proc = tfperf_cli(
            "serve-bench",
            server.url,
            "--model",
            "clf",
            "--concurrency",
            "2",
            "--requests",
            "30",
            "--instances",
            str(instances),
            "--out",
            str(out),
        )
        assert proc.returncode == 0, proc.stderr
        assert "p99" in proc.stdout and "30 ok" in proc.stdout
        run = load_results(out / "results.json")
        assert run.results[0].mode == "serve" and len(run.results[0].samples) == 30
        assert (out / "report.html").exists()
        runs.append(out)
    proc = tfperf_cli("compare", str(runs[0]), str(runs[1]), "--threshold", "500%", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert [(row["case"], row["mode"]) for row in rows] == [("clf", "serve")]

    proc = tfperf_cli("serve-bench", "ftp://nowhere", "--model", "clf")
    assert proc.returncode == 2 and "http://HOST:PORT" in proc.stderr

    # Open loop from the command line: the verdict is printed, and INVALID (20 samples cannot give a p99) is
    # exit 1.
    out = tmp_path / "open"
    proc = tfperf_cli(
        "serve-bench",
        server.url,
        "--model",
        "clf",
        "--qps",
        "50",
        "--requests",
        "20",
        "--p99-bound-ms",
        "1000",
        "--instances",
        str(instances),
        "--out",
        str(out),
    )
    assert proc.returncode == 1, proc.stderr
    assert "INVALID" in proc.stdout and "657 needed" in proc.stdout and "server req" in proc.stdout
    figures = load_results(out / "results.json").results[0].serve
    assert figures.load == "open" and figures.open_loop.target_qps == 50 and figures.concurrency == 16
    assert "INVALID at p99 bound" in (out / "report.html").read_text()
    proc = tfperf_cli("serve-bench", server.url, "--model", "clf", "--p99-bound-ms", "10")
    assert proc.returncode == 2 and "give --qps" in proc.stderr


# --- the server's own metrics page --------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_server_metrics_deltas_beside_client_latency(server, tmp_path):
    from tfperf.report.outputs import finish_run

    config = ServeBenchConfig(server.url, "clf", concurrency=2, max_requests=30, warmup_requests=3)
    run = serve_bench(config, synthetic_instances((FEATURES,), "float32", batch=2))
    (r,) = run.results
    s = r.serve.server
    assert s.status == "read" and s.path == METRICS_PATH
    # Deltas over the timed load only: the warm-up requests were served before the first read.
    assert s.request_count == {"OK": 30}
    request, runtime = s.request_latency_s, s.runtime_latency_s
    assert request.count == runtime.count == 30
    # The server times a part of what the client times, and the runtime a part of the server's request.
    assert runtime.mean <= request.mean <= r.serve.latency_s.mean
    assert s.overhead_mean_s == pytest.approx(request.mean - runtime.mean)
    for q in ("p50", "p90", "p99"):
        lo, hi = getattr(request, q + "_bucket")
        assert lo <= getattr(request, q) <= hi and hi == pytest.approx(
            lo * 1.8, rel=1e-4
        )  # TF Serving's 1.8x
    assert "1.8x" in s.resolution
    queue = s.batching["batching_session:queuing_latency"]
    assert queue["count"] == 30 and queue["unit"] == "s"
    sizes = s.batching["batching:batch_size"]
    assert (
        sizes["unit"] == "examples" and sizes["mean"] == 2 and sizes["count"] == 30
    )  # 2 instances per request
    text = render_summary(r)
    assert "OK 30" in text and "server overhead" in text

    finish_run(run, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "server request (histogram)" in html and "client (raw samples)" in html
    assert "server p99 ms" in (tmp_path / "report.md").read_text()


@pytest.mark.tensorflow
@pytest.mark.parametrize("mode, status", [(None, "absent"), ("html", "not_prometheus")])
def test_a_missing_or_broken_page_is_said_once_and_the_load_is_kept(savedmodel, mode, status):
    with PredictServer(savedmodel, metrics=mode) as srv:
        config = ServeBenchConfig(srv.url, "clf", max_requests=5, warmup_requests=0)
        run = serve_bench(config, synthetic_instances((FEATURES,), "float32", batch=1))
    (r,) = run.results
    assert r.status == "ok" and len(r.samples) == 5 and run.exit_code == 0
    assert r.serve.server.status == status and METRICS_PATH in r.serve.server.note
    lines = [line for line in render_summary(r).splitlines() if "metrics page" in line]
    assert len(lines) == 1


# --- open loop ----------------------------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_open_loop_counts_latency_from_the_due_time(server):
    """The sleepy model serves one request per 50 ms; at 40 requests/s arrivals outrun it. The closed loop
    slows down with the server and sees ~50 ms; the open loop keeps the schedule and sees the queue grow."""
    instances = synthetic_instances((FEATURES,), "float32", batch=1)
    closed = run_bench(ServeBenchConfig(server.url, "sleepy", max_requests=20, warmup_requests=1), instances)
    config = ServeBenchConfig(
        server.url, "sleepy", max_requests=20, warmup_requests=1, qps=40.0, concurrency=1, p99_bound_s=0.2
    )
    opened = run_bench(config, instances)
    assert opened.ok == opened.sent == 20 and opened.open_loop.scheduled == 20
    ol = opened.open_loop
    assert ol.late_starts > 0  # one connection, busy: requests waited for it
    assert stats.quantile(sorted(opened.latencies_s), 0.9) > 2 * stats.quantile(
        sorted(closed.latencies_s), 0.9
    )
    assert ol.achieved_qps < ol.scheduled_qps
    assert ol.verdict == "INVALID"
    assert any("samples" in reason for reason in ol.reasons)  # 20 samples cannot give a p99
    assert ol.percentiles["p99"] == {
        **ol.percentiles["p99"],
        "samples": 20,
        "needed": 657,
        "enough": False,
    }


def test_open_loop_verdict():
    from tfperf.deploy.open_loop import Dispatch, open_loop_figures

    latencies = [0.001 * (1 + i % 10) for i in range(700)]  # 1..10 ms; p99 10 ms
    run = Dispatch(scheduled=700, sent=700, start_delays_s=[0.0] * 700, wall_s=7.0, last_due_s=7.0)
    valid = open_loop_figures(100.0, run, latencies, failed=0, p99_bound_s=0.015)
    assert valid.verdict == "VALID" and not valid.reasons and valid.percentiles["p99"]["enough"]
    tight = open_loop_figures(100.0, run, latencies, failed=0, p99_bound_s=0.005)
    assert tight.verdict == "INVALID" and "above the bound" in tight.reasons[0]
    failing = open_loop_figures(100.0, run, latencies, failed=3, p99_bound_s=0.015)
    assert failing.verdict == "INVALID" and "3 request(s) failed" in failing.reasons
    slow = Dispatch(scheduled=700, sent=700, start_delays_s=[0.0] * 700, wall_s=9.0, last_due_s=7.0)
    behind = open_loop_figures(100.0, slow, latencies, failed=0, p99_bound_s=0.015)
    assert behind.verdict == "INVALID" and "did not keep up" in behind.reasons[0]
    assert open_loop_figures(100.0, run, latencies, failed=0, p99_bound_s=None).verdict is None


def test_arrivals_are_poisson_at_the_rate_and_capped():
    from tfperf.deploy.open_loop import arrival_offsets

    offsets = arrival_offsets(100.0, 20_000, 1e9, seed=1)
    gaps = np.diff([0.0, *offsets])
    assert len(offsets) == 20_000 and np.all(gaps >= 0)
    assert np.mean(gaps) == pytest.approx(0.01, rel=0.03)  # 1/qps; the standard error is 0.7%
    assert np.std(gaps) == pytest.approx(np.mean(gaps), rel=0.05)  # exponential: sd equals the mean
    assert arrival_offsets(100.0, 20_000, 1e9, seed=1) == offsets  # seeded: the same schedule again
    short = arrival_offsets(100.0, 20_000, 2.0, seed=1)
    assert short and short[-1] <= 2.0 and len(short) < 400


def test_histogram_quantile_interpolates_as_prometheus_does():
    from tfperf.deploy.server_metrics import histogram_quantile

    inf = float("inf")
    # 10 observations in (1, 2]: the median is halfway through that bucket.
    assert histogram_quantile(0.5, [(1.0, 0), (2.0, 10), (inf, 10)]) == (1.5, 1.0, 2.0)
    # The rank falls in the +Inf bucket: its lower bound is the best known value.
    assert histogram_quantile(0.99, [(1.0, 5), (inf, 10)]) == (1.0, 1.0, inf)
    assert histogram_quantile(0.5, [(1.0, 0), (inf, 0)]) is None
