"""serve-bench against a small TF Serving REST stand-in started here on 127.0.0.1 (a free port), serving a real
SavedModel. The server is test code, not a product feature: it implements the predict request/response format
(`instances` row format and `inputs` columnar), the metadata GET, a 400 for an input the signature rejects, and a
500 injected on every Nth request to the "flaky" model. All traffic stays on the loopback address; every run is
capped in requests and time.
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

from tfperf.deploy.serve_bench import (ServeBenchConfig, instances_from_metadata, render_summary, run_bench,
                                serve_bench, synthetic_instances)

FEATURES = 6
CLASSES = 3
FLAKY_EVERY = 4  # the flaky model answers 500 to every 4th predict request
SLOW_S = 0.6  # the slow model's delay


class PredictServer:
    """ThreadingHTTPServer speaking TF Serving's REST predict API over one SavedModel signature."""

    def __init__(self, savedmodel: Path):
        import tensorflow as tf

        self.tf = tf
        self.loaded = tf.saved_model.load(str(savedmodel))
        self.fn = self.loaded.signatures["serving_default"]
        (self.input_name, self.input_spec), = self.fn.structured_input_signature[1].items()
        self.output_name = sorted(self.fn.structured_outputs)[0]
        self.lock = threading.Lock()
        self.predicts: dict[str, int] = {}  # model -> predict requests received
        self.injected_500 = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like TF Serving

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models/clf/metadata":
                    dims = [{"size": str(d if d is not None else -1)} for d in server.input_spec.shape]
                    sig = {"inputs": {server.input_name: {"dtype": "DT_FLOAT", "tensor_shape": {"dim": dims},
                                                          "name": server.input_name}},
                           "outputs": {}, "method_name": "tensorflow/serving/predict"}
                    self._reply(200, {"model_spec": {"name": "clf"},
                                      "metadata": {"signature_def": {"signature_def": {"serving_default": sig}}}})
                else:
                    self._reply(404, {"error": f"no route {self.path}"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model = self.path.removeprefix("/v1/models/").split(":")[0].split("/")[0]
                if model == "slow":  # answers later than the client's timeout
                    time.sleep(SLOW_S)
                if not self.path.endswith(":predict") or model not in ("clf", "flaky", "slow"):
                    self._reply(404, {"error": f"Servable not found for request: {self.path}"})
                    return
                with server.lock:
                    n = server.predicts[model] = server.predicts.get(model, 0) + 1
                    inject = model == "flaky" and n % FLAKY_EVERY == 0
                    server.injected_500 += inject
                if inject:
                    self._reply(500, {"error": "injected failure"})
                    return
                if body.get("signature_name", "serving_default") != "serving_default":
                    self._reply(400, {"error": f"Serving signature name: \"{body['signature_name']}\" not found"})
                    return
                columnar = "inputs" in body
                try:
                    x = server.tf.constant(body["inputs" if columnar else "instances"], dtype=server.input_spec.dtype)
                    y = server.fn(**{server.input_name: x})[server.output_name].numpy()
                except Exception as exc:  # noqa: BLE001 - TF Serving answers a bad input with 400
                    self._reply(400, {"error": str(exc).splitlines()[0][:200]})
                    return
                self._reply(200, {"outputs": y.tolist()} if columnar else {"predictions": y.tolist()})

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that timed out and left: expected
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

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
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(CLASSES)])
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


def test_counts_every_request_and_reports_latency(server):
    config = ServeBenchConfig(server.url, "clf", concurrency=4, max_requests=40, duration_s=30, warmup_requests=2)
    run = serve_bench(config, synthetic_instances((FEATURES,), "float32", batch=3))
    (r,) = run.results
    assert r.status == "ok" and r.mode == "serve" and r.batch_size == 3
    assert r.extra["requests_sent"] == 40 and r.extra["requests_ok"] == 40 and r.extra["requests_failed"] == 0
    assert len(r.samples) == 40
    assert server.predicts["clf"] == 40 + 2  # the timed requests plus the warm-up ones, nothing lost or doubled
    assert r.extra["stopped_by"] == "requests" and r.extra["concurrency"] == 4
    lat = r.extra["latency_s"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert r.extra["instances_per_s"] == pytest.approx(3 * r.extra["requests_per_s"])
    assert "p50" in render_summary(r) and "40 ok" in render_summary(r)


def test_columnar_inputs_and_metadata_shaped_instances(server):
    config = ServeBenchConfig(server.url, "clf", max_requests=5, request_format="inputs", warmup_requests=0,
                              signature="serving_default")
    instances = instances_from_metadata(config, batch=2)
    assert np.asarray(instances).shape == (2, FEATURES)
    outcome = run_bench(config, instances)
    assert outcome.ok == 5 and outcome.failed == 0


def test_instances_from_a_suite_case(server, tmp_path):
    from tfperf.deploy.serve_bench import ServeBenchError, instances_from_suite

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ncases:\n  - name: clf\n    model: zoo:mlp\n    task: infer\n"
                     f"    input: {{shape: [{FEATURES}], dtype: float32}}\n")
    instances = instances_from_suite(f"{suite}:clf", batch=4)
    assert np.asarray(instances).shape == (4, FEATURES)
    outcome = run_bench(ServeBenchConfig(server.url, "clf", max_requests=3, warmup_requests=0), instances)
    assert outcome.ok == 3
    with pytest.raises(ServeBenchError, match="no case 'other'"):
        instances_from_suite(f"{suite}:other", batch=1)


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
    config = ServeBenchConfig(f"http://127.0.0.1:{_free_port()}", "clf", concurrency=2, max_requests=8,
                              warmup_requests=1, timeout_s=2)
    run = serve_bench(config, synthetic_instances((FEATURES,), "float32", batch=1))
    (r,) = run.results
    assert r.extra["connection_errors"] == {"ConnectionRefusedError": 8}
    assert r.extra["requests_sent"] == 8 and r.samples == [] and r.status == "failed"
    assert "ConnectionRefusedError" in r.error.message


def test_timeouts_are_counted_by_kind(server):
    config = ServeBenchConfig(server.url, "slow", concurrency=2, max_requests=4, warmup_requests=0, timeout_s=0.15)
    outcome = run_bench(config, synthetic_instances((FEATURES,), "float32", batch=1))
    assert outcome.connection_errors == {"TimeoutError": 4} and outcome.ok == 0 and outcome.sent == 4


def test_time_cap_ends_an_unbounded_request_count(server):
    config = ServeBenchConfig(server.url, "clf", concurrency=2, duration_s=0.5, warmup_requests=0)
    outcome = run_bench(config, synthetic_instances((FEATURES,), "float32", batch=1))
    assert outcome.stopped_by == "duration"
    assert outcome.ok == outcome.sent > 0
    assert outcome.wall_s >= 0.5
    assert outcome.wall_s < 0.5 + config.timeout_s + 1.0  # the cap holds: at most one request in flight past it


@pytest.mark.slow
def test_cli_writes_results_that_compare_reads(server, tmp_path, tfperf_cli):
    from tfperf.results.model import load_results

    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps({"instances": synthetic_instances((FEATURES,), "float32", batch=2)}))
    runs = []
    for name in ("base", "current"):
        out = tmp_path / name
        proc = tfperf_cli("serve-bench", server.url, "--model", "clf", "--concurrency", "2", "--requests", "30",
                          "--instances", str(instances), "--out", str(out))
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
