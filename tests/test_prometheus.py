"""`tfperf export --format prometheus` and `--push`, read back through real Prometheus parts.

The end-to-end test starts Debian's `prometheus-pushgateway` and `prometheus` on 127.0.0.1 free ports
(`.ci/run` installs them; without them it skips and says why): tfperf pushes to the gateway, Prometheus
scrapes the gateway, and the test reads the values back through Prometheus' HTTP query API and finds the
numbers of results.json.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tfperf import stats
from tfperf.figures import measures
from tfperf.report.prometheus import LABELS, METRICS, to_prometheus
from tfperf.results.model import load_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "tests" / "data" / "results_v1_before_layout.json"
DASHBOARD = ROOT / "integrations" / "grafana" / "tfperf.json"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicated series {key}: a Pushgateway refuses it"
            out[key] = s.value
    return out


def _key(r, suite: str, **more) -> tuple:
    labels = dict(
        zip(
            LABELS,
            [suite, r.case, r.mode, "" if r.batch_size is None else str(r.batch_size), r.device, r.task, ""],
        )
    )
    return tuple(sorted({**labels, **more}.items()))


def test_exposition_holds_the_results_numbers():
    run = load_results(RESULTS)
    text = to_prometheus(run).text
    for name, (kind, _) in METRICS.items():
        if name.startswith(("tfperf_serve", "tfperf_server", "tfperf_open_loop")):
            continue  # this run has no serve-bench result
        assert f"# HELP {name} " in text and f"# TYPE {name} {kind}" in text
    samples = _samples(text)
    suite = run.suite["name"]
    measured = [r for r in run.results if r.ok and r.samples]
    assert measured
    for r in measured:
        assert samples[("tfperf_step_seconds", _key(r, suite, quantile="0.5"))] == pytest.approx(
            r.median_s, rel=1e-12
        )
        assert samples[("tfperf_step_seconds_count", _key(r, suite))] == len(r.samples)
        value, unit = measures.throughput(r)
        assert samples[("tfperf_throughput", _key(r, suite, unit=unit))] == pytest.approx(value)
        assert samples[("tfperf_first_call_seconds", _key(r, suite))] == pytest.approx(r.first_call_s)
        assert samples[("tfperf_result_ok", _key(r, suite, status="ok"))] == 1
    # A figure the result did not measure is absent, never written as 0.
    eager = next(r for r in measured if r.mode == "eager")
    if eager.tracing_count is None:
        assert ("tfperf_tracing_count", _key(eager, suite)) not in samples


@pytest.mark.cli
def test_cli_writes_the_file_then_fails_an_unreachable_push(tmp_path, tfperf_cli):
    out = tmp_path / "tfperf.prom"
    dead = f"http://127.0.0.1:{_free_port()}"
    proc = tfperf_cli("export", str(RESULTS), "--format", "prometheus", "-o", str(out), "--push", dead)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tfperf:")]
    assert len(errors) == 1 and dead in errors[0] and "Traceback" not in proc.stderr
    assert out.read_text() == to_prometheus(load_results(RESULTS)).text  # written before the push was tried

    proc = tfperf_cli("export", str(RESULTS), "--format", "pytest-benchmark", "--push", dead)
    assert proc.returncode == 2 and "--format prometheus" in proc.stderr
    proc = tfperf_cli("export", str(RESULTS), "--format", "prometheus", "--push", "localhost:9091")
    assert proc.returncode == 2 and "http://HOST:PORT" in proc.stderr


def test_grafana_dashboard_queries_name_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [
        v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)
    ]
    assert exprs
    exported = set(METRICS)
    for name, (kind, _) in METRICS.items():
        if kind == "summary":
            exported |= {name + "_sum", name + "_count"}
    named = set()
    for expr in exprs:
        found = set(re.findall(r"\btfperf_[a-z_]+", expr))
        assert found, f"a query that names no tfperf metric: {expr}"
        assert found <= exported, f"{expr}: {found - exported} is not exported"
        named |= found
    # The headline figures (step time, throughput, first call, tracing, input wait) are all charted.
    assert {
        "tfperf_step_seconds",
        "tfperf_throughput",
        "tfperf_first_call_seconds",
        "tfperf_tracing_count",
        "tfperf_input_wait_ratio",
    } <= named


# --- real Pushgateway and Prometheus ------------------------------------------------------------------------


def _binary(*names: str) -> str | None:
    return next((shutil.which(n) for n in names if shutil.which(n)), None)


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout_s} s")


def _query(prom: str, expr: str) -> list[dict]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.fixture
def prometheus_stack(tmp_path):
    gateway_bin = _binary("prometheus-pushgateway", "pushgateway")
    prometheus_bin = _binary("prometheus")
    if not gateway_bin or not prometheus_bin:
        pytest.skip(
            "needs the prometheus and prometheus-pushgateway binaries (Debian packages of those names; "
            ".ci/run installs them)"
        )
    gw_port, prom_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    # honor_labels: the pushed suite/case/... labels and job="tfperf" are kept as pushed, as Pushgateway asks.
    config.write_text(
        f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pushgateway\n"
        f"    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{gw_port}']\n"
    )
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    gateway_bin,
                    f"--web.listen-address=127.0.0.1:{gw_port}",
                    f"--persistence.file={tmp_path / 'pushgateway.data'}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    prometheus_bin,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        gateway, prom = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{prom_port}"
        _wait_http(f"{gateway}/-/ready", procs[0])
        _wait_http(f"{prom}/-/ready", procs[1])
        yield gateway, prom
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.services
def test_push_then_prometheus_scrapes_the_results_numbers(prometheus_stack, tfperf_cli, tmp_path):
    gateway, prom = prometheus_stack
    out = tmp_path / "tfperf.prom"
    proc = tfperf_cli("export", str(RESULTS), "--format", "prometheus", "--push", gateway, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    run = load_results(RESULTS)
    measured = [r for r in run.results if r.ok and r.samples]
    expr = 'tfperf_step_seconds{job="tfperf", quantile="0.5"}'
    deadline = time.monotonic() + 30
    found: list[dict] = []
    while time.monotonic() < deadline and len(found) < len(measured):
        found = _query(prom, expr)
        time.sleep(0.5)
    assert len(found) == len(measured), found
    for series in found:
        m = series["metric"]  # Prometheus drops a label whose value is empty (a job without a batch size)
        r = next(
            r
            for r in measured
            if (r.case, r.mode, str(r.batch_size or "")) == (m["case"], m["mode"], m.get("batch_size", ""))
        )
        assert m["suite"] == run.suite["name"] and m["device"] == r.device and m["task"] == r.task
        assert float(series["value"][1]) == pytest.approx(r.median_s, rel=1e-9)
    # Another figure of one result, selected by its labels: the p99 of its samples.
    r = measured[0]
    (p99,) = _query(
        prom,
        f'tfperf_step_seconds{{case="{r.case}", mode="{r.mode}", '
        f'batch_size="{r.batch_size or ""}", quantile="0.99"}}',
    )
    assert float(p99["value"][1]) == pytest.approx(stats.quantile(sorted(r.samples), 0.99), rel=1e-9)


def test_serve_bench_figures_and_tune_candidates_are_their_own_series():
    from tfperf.results.model import Result, RunResult

    lat = [0.010 + 0.001 * (i % 7) for i in range(50)]
    serve = Result("clf", "serve", "endpoint", "infer", 2, samples=lat)
    serve.serve = {
        "requests_ok": 50,
        "requests_failed": 3,
        "instances_per_s": 180.0,
        "server": {
            "status": "read",
            "request_latency_s": {"mean": 0.004},
            "runtime_latency_s": {"mean": 0.001},
            "overhead_mean_s": 0.003,
        },
        "open_loop": {"target_qps": 100.0, "achieved_qps": 97.5, "verdict": "INVALID"},
    }
    tuned = [Result("mlp", "function", "cpu", "train", 32, samples=[0.01, 0.011, 0.012]) for _ in range(2)]
    for r, config in zip(tuned, ("baseline", "prefetch")):
        r.variant = config
    run = RunResult(
        suite={"name": "s"}, environment={}, results=[serve, *tuned], finished_at="2026-12-04T22:00:00+00:00"
    )
    samples = _samples(to_prometheus(run).text)  # no duplicated series: the candidates differ by config
    key = dict(_key(serve, "s"))
    assert (
        samples[("tfperf_server_latency_mean_seconds", tuple(sorted({**key, "stage": "overhead"}.items())))]
        == 0.003
    )
    assert samples[("tfperf_serve_requests", tuple(sorted({**key, "outcome": "failed"}.items())))] == 3
    assert samples[("tfperf_open_loop_valid", _key(serve, "s"))] == 0
    assert samples[("tfperf_open_loop_achieved_qps", _key(serve, "s"))] == 97.5
    assert samples[("tfperf_throughput", tuple(sorted({**key, "unit": "instances/s"}.items())))] == 180.0
    configs = {dict(labels)["config"] for name, labels in samples if name == "tfperf_step_seconds_count"}
    assert configs == {"", "baseline", "prefetch"}
    assert samples[("tfperf_run_finished_timestamp_seconds", (("suite", "s"),))] == 1796421600.0
