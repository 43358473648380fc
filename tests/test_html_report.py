"""The HTML report and the compare page, opened in real headless Chromium.

Chromium is driven through the DevTools protocol over `--remote-debugging-pipe` (file descriptors 3 and 4,
NUL-delimited JSON), so no websocket client is needed: the test sees every console message, uncaught
exception and network request the page makes, reads the DOM with Runtime.evaluate, and takes a screenshot.
"""

import base64
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from builders import result, run_of
from conftest import ROOT, run_tfperf

from tfperf.analysis import compare
from tfperf.analysis.advisor import CODES, attach_suggestions
from tfperf.report import compare as compare_report
from tfperf.report.html import render_html, write_html
from tfperf.report.summary import SEVERITY, case_findings
from tfperf.report.view import timing_view
from tfperf.results.model import Result, RunResult, load_results, write_results

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
XSS_SUITE = "<script>alert(1)</script>"
XSS_CASE = '<img src=x onerror="alert(2)">'


# ---------------------------------------------------------------------------------------------------------
# A minimal DevTools-protocol client over a pipe
# ---------------------------------------------------------------------------------------------------------


class Chromium:
    """Headless Chromium (headless, no sandbox, no GPU, no first run), driven over --remote-debugging-pipe."""

    def __init__(self, user_data_dir: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds():  # the protocol pipe is fd 3 (commands in) and fd 4 (replies out) in the child
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={user_data_dir}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(3, 4, to_chrome_r, from_chrome_w),
            preexec_fn=wire_fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read(self, timeout: float = 30.0) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_chrome], [], [], timeout)
            if not ready:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the protocol pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def wait_for(self, pred) -> dict:
        while True:
            m = self._read()
            if pred(m):
                return m
            self.events.append(m)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        reply = self.wait_for(lambda m, i=self._id: m.get("id") == i)
        assert "error" not in reply, reply
        return reply["result"]

    def open(self, path: Path, width: int, height: int, domains: tuple[str, ...] = ("Page",)) -> str:
        """A new tab at width x height (mobile below 600 px) with `domains` enabled, `path` loaded; its
        session."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in domains:
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
            session=session,
        )
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        self.wait_for(lambda m: m.get("method") == "Page.loadEventFired")
        return session

    def evaluate(self, session: str, expressions: dict[str, str]) -> dict:
        """Each expression's value in the page (an exception in the page fails the test)."""
        values = {}
        for name, expr in expressions.items():
            res = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session)
            assert "exceptionDetails" not in res, res
            values[name] = res["result"].get("value")
        return values

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=15)
        except Exception:  # noqa: BLE001 - a dead browser is killed below
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def open_page(path: Path, tmp_path: Path, expressions: dict[str, str]) -> dict:
    """Load a file in Chromium at 1280×2000; return what the page did, the evaluated expressions and a PNG."""
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        session = browser.open(path, 1280, 2000, domains=("Runtime", "Log", "Network", "Page"))
        values = browser.evaluate(session, expressions)
        png = base64.b64decode(
            browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        )
        events = list(browser.events)
    finally:
        browser.close()
    console_errors = [
        e["params"]
        for e in events
        if e.get("method") == "Runtime.consoleAPICalled"
        and e["params"]["type"] in ("error", "warning", "assert")
    ]
    console_errors += [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
    console_errors += [
        e["params"]
        for e in events
        if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning")
    ]
    requests = [
        e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"
    ]
    return {"values": values, "console_errors": console_errors, "requests": requests, "png": png}


def pixel_spread(png: bytes) -> tuple[float, float]:
    """(standard deviation of the greyscale pixels, share of pixels that are not near-white)."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return float(img.std()), float((img < 200).mean())


ROWS_JS = (
    "JSON.stringify([...document.querySelectorAll('tr[data-case][data-mode]')]"
    ".map(tr => [tr.dataset.case, tr.dataset.mode, tr.dataset.batchSize, tr.dataset.status || "
    "tr.dataset.verdict]))"
)


# ---------------------------------------------------------------------------------------------------------
# Results built from known distributions
# ---------------------------------------------------------------------------------------------------------


def lognormal(rng, median_s: float, n: int = 30, sigma: float = 0.03) -> list[float]:
    return [float(x) for x in rng.lognormal(np.log(median_s), sigma, n)]


def sample_run(suite_name: str = "smoke", case_name: str = "mlp") -> RunResult:
    """Two swept batch sizes × three modes, an input-bound case with retraces and an XLA failure, a
    timeout."""
    rng = np.random.default_rng(7)
    results = []
    for bs in (32, 64):
        k = bs / 32
        results.append(
            result(
                "eager",
                case=case_name,
                batch_size=bs,
                samples=lognormal(rng, 0.012 * k),
                first_call_s=0.3,
                input_wait_fraction=0.01,
                peak_memory_bytes=50_000_000,
                model="zoo:mlp",
            )
        )
        results.append(
            result(
                "function",
                case=case_name,
                batch_size=bs,
                samples=lognormal(rng, 0.003 * k),
                first_call_s=0.9,
                tracing_count=2,
                input_wait_fraction=0.02,
                model="zoo:mlp",
                profile={
                    "logdir": "tensorboard/mlp",
                    "input_bound_percent": 3.2,
                    "top_ops": [
                        {"name": "dense/MatMul", "type": "MatMul", "self_time_us": 1200.0, "share": 0.4}
                    ],
                },
                suggestions=[
                    {
                        "code": "small-batch",
                        "title": "Throughput still rises with the batch size",
                        "evidence": f"batch {bs}: 10,500 samples/s",
                        "fix": "batch_size: 256",
                    }
                ],
            )
        )
        results.append(
            result(
                "xla",
                case=case_name,
                batch_size=bs,
                samples=lognormal(rng, 0.002 * k),
                first_call_s=2.1,
                tracing_count=2,
                model="zoo:mlp",
                graph={"op_count": 40, "hlo_instructions": 120, "fusions": 7},
            )
        )
    results.append(
        result(
            "eager",
            case="slow-input",
            samples=lognormal(rng, 0.05, sigma=0.2),
            first_call_s=0.2,
            input_wait_fraction=0.6,
            suggestions=[
                {
                    "code": "prefetch",
                    "title": "Overlap input with compute",
                    "evidence": "60% of the step waits for input",
                    "fix": "ds = ds.prefetch(tf.data.AUTOTUNE)",
                }
            ],
        )
    )
    results.append(
        result(
            "function",
            case="slow-input",
            samples=lognormal(rng, 0.045),
            first_call_s=0.5,
            tracing_count=4,
            input_wait_fraction=0.7,
            retraces=[
                {"call": 3, "changed": "x: shape (32, 784) -> (16, 784)"},
                {"call": 4, "changed": "training: True -> False"},
            ],
            profile={"input_bound_percent": 68.0, "top_ops": []},
        )
    )
    results.append(
        Result.not_run(
            result("xla", case="slow-input").spec,
            "failed",
            "InvalidArgumentError",
            "Detected unsupported operations: <b>AsString</b> & co",
            "Move the string op out of the jit_compile=True function",
        )
    )
    results.append(
        Result.not_run(
            result("eager", case="hang", task="infer", batch_size=8).spec,
            "timeout",
            "Timeout",
            "worker killed after timeout_s=30",
        )
    )
    return run_of(
        *results,
        suite={
            "name": suite_name,
            "path": "suites/smoke.yaml",
            "sha256": "ab" * 32,
            "text": f"name: {suite_name}\ncases:\n  - name: {case_name}  # <b>not bold</b>\n",
        },
        environment={
            "tensorflow": "2.21.0",
            "keras": "3.15.0",
            "python": "3.11.7",
            "cpu_model": "Test CPU",
            "cpu_count": 2,
            "gpus": [],
            "env": {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2"},
        },
        started_at="2026-11-27T03:00:00+00:00",
        finished_at="2026-11-27T03:01:00+00:00",
        tfperf_version="0.1.0",
        command=["tfperf", "run", "suites/smoke.yaml"],
    )


def expected_rows(run: RunResult) -> set:
    return {
        (r.case, r.mode, "" if r.batch_size is None else str(r.batch_size), r.status) for r in run.results
    }


# ---------------------------------------------------------------------------------------------------------
# In Chromium
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
def test_report_in_chromium_has_every_row_no_errors_no_requests_and_is_not_blank(tmp_path):
    run = sample_run()
    write_results(run, tmp_path / "results.json")
    page = write_html(load_results(tmp_path / "results.json"), tmp_path / "report.html")
    seen = open_page(
        page,
        tmp_path,
        {
            "rows": ROWS_JS,
            "svgs": "document.querySelectorAll('svg').length",
            "height": "document.documentElement.scrollHeight",
            "text": "document.body.innerText",
        },
    )
    rows = [tuple(r) for r in json.loads(seen["values"]["rows"])]
    assert len(rows) == len(run.results)
    assert set(rows) == expected_rows(run)
    assert seen["console_errors"] == []
    # The only request is the page itself: no script, font, image or style is fetched.
    assert seen["requests"] == [page.resolve().as_uri()]
    # Throughput, step series and payback charts for mlp; throughput and step series for slow-input.
    assert seen["values"]["svgs"] >= 5
    text = seen["values"]["text"]
    # Steps after the first call, as the advisor's xla-compile-payback counts them.
    assert re.search(r"XLA pays back against tf\.function after [\d,]+ steps", text)
    assert f"tfperf tensorboard {tmp_path}" in text
    assert "Detected unsupported operations: <b>AsString</b> & co" in text  # shown as text, not markup
    assert "x: shape (32, 784) -> (16, 784)" in text
    std, inked = pixel_spread(seen["png"])
    assert std > 20 and inked > 0.02, (std, inked)


@pytest.mark.browser
@needs_chromium
def test_script_in_suite_and_case_names_renders_as_text(tmp_path):
    run = sample_run(suite_name=XSS_SUITE, case_name=XSS_CASE)
    page = write_html(run, tmp_path / "report.html")
    html = page.read_text()
    assert XSS_SUITE not in html and "alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "<b>AsString" not in html and "<b>not bold" not in html
    seen = open_page(
        page,
        tmp_path,
        {
            "scripts": "document.scripts.length",
            "images": "document.images.length",
            "title": "document.title",
            "h1": "document.getElementById('suite-name').textContent",
            "case_attr": "document.querySelector('tr[data-mode=\"xla\"]').dataset.case",
            "suite_text": "document.getElementById('suite-text').textContent",
        },
    )
    v = seen["values"]
    assert v["scripts"] == 0 and v["images"] == 0
    assert v["title"] == v["h1"] == f"tfperf · {XSS_SUITE}"
    assert v["case_attr"] == XSS_CASE
    assert "<b>not bold</b>" in v["suite_text"]
    assert seen["console_errors"] == []


@pytest.mark.browser
@needs_chromium
def test_compare_page_in_chromium(tmp_path):
    base = sample_run(case_name=XSS_CASE)
    current = sample_run(case_name=XSS_CASE)
    slow = next(r for r in current.results if r.mode == "eager" and r.batch_size == 32)
    slow.samples = [s * 1.3 for s in slow.samples]
    current.results = [r for r in current.results if r.case != "hang"]
    page = tmp_path / "compare.html"
    page.write_text(compare_report.render_html(compare.compare_runs(base, current)))
    seen = open_page(
        page,
        tmp_path,
        {
            "rows": ROWS_JS,
            "scripts": "document.scripts.length",
            "unmatched": "document.querySelectorAll('[data-unmatched]').length",
        },
    )
    rows = {(c, m, b): v for c, m, b, v in json.loads(seen["values"]["rows"])}
    assert rows[(XSS_CASE, "eager", "32")] == "regression"
    assert rows[(XSS_CASE, "function", "32")] in ("unchanged", "inconclusive")
    assert seen["values"]["unmatched"] == 1 and seen["values"]["scripts"] == 0
    assert seen["console_errors"] == [] and seen["requests"] == [page.resolve().as_uri()]
    std, inked = pixel_spread(seen["png"])
    assert std > 10 and inked > 0.01


# ---------------------------------------------------------------------------------------------------------
# Without a browser
# ---------------------------------------------------------------------------------------------------------


def test_page_is_offline_and_byte_stable():
    a, b = render_html(sample_run(), "out"), render_html(sample_run(), "out")
    assert a == b
    lowered = a.lower()
    for fetch in ("<script", "<link", "src=", "@import", "url(http", "<iframe", "<img"):
        assert fetch not in lowered, fetch
    assert "svg.fonttype" not in a and "<text" in a  # text stays text (svg.fonttype none), no glyph paths
    ids = [s.split('"')[0] for s in a.split(' id="')[1:]]
    assert len(ids) == len(set(ids)), "element ids repeat across inlined charts"


def svg_texts(html: str) -> list[str]:
    return re.findall(r"<text\b[^>]*>([^<]*)</text>", html)


def test_log_axis_ticks_are_plain_text_not_mathtext():
    """eager 150× slower than XLA puts the box plot on a log axis; its tick labels must read 1, 10, 100."""
    rng = np.random.default_rng(3)
    run = RunResult(
        suite={"name": "log"},
        environment={},
        results=[
            Result("wide", "eager", "cpu", "train", 8, samples=lognormal(rng, 0.3)),
            Result("wide", "xla", "cpu", "train", 8, samples=lognormal(rng, 0.002)),
        ],
    )
    html = render_html(run)
    texts = svg_texts(html)
    assert "ms per step" in texts
    assert "\\mathdefault" not in html and not [t for t in texts if "$" in t or "^{" in t]
    assert {"10", "100"} <= set(texts)  # the decades, as plain numbers


def case_section(html: str, case: str) -> str:
    """The HTML of one case's section (the case name as the page writes it, escaped)."""
    start = html.index(f'data-case-section="{case}"')
    return html[start : html.index("</section>", start)]


def table_rows(section: str, cls: str) -> list[list[str]]:
    """The cells' text of a <table class="cls"> body, tags stripped."""
    body = section[section.index(f'<table class="{cls}">') :]
    body = body[body.index("<tbody>") : body.index("</tbody>")]
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


DIST_CASE = "mlp <mirrored>"


def distributed_run() -> RunResult:
    rng = np.random.default_rng(5)
    mirrored = result(
        "function",
        case=DIST_CASE,
        batch_size=64,
        samples=lognormal(rng, 0.0124),
        replicas=2,
        global_batch_size=128,
        scaling_efficiency=0.4,
        profile={"allreduce_share": 0.109},
        distributed={
            "strategy": "mirrored",
            "devices": 2,
            "workers": 1,
            "samples_per_s": 10000.0,
            "baseline": {
                "strategy": "one_device",
                "replicas": 1,
                "global_batch_size": 64,
                "samples_per_s": 12500.0,
                "median_s": 0.00512,
            },
        },
    )
    worker = result(
        "function",
        case="mlp-mw",
        samples=lognormal(rng, 0.034),
        replicas=2,
        global_batch_size=64,
        scaling_efficiency=0.9,
        distributed={
            "strategy": "multi_worker",
            "workers": 2,
            "samples_per_s": 1800.0,
            "replicas_diverged": True,
            "baseline": {"samples_per_s": 1000.0},
        },
    )
    failed = Result.not_run(
        result("xla", case="mlp-mw").spec,
        "failed",
        "WorkerDied",
        "worker 1 exited",
        replicas=2,
        distributed={"strategy": "multi_worker", "workers": 2},
    )
    plain = result("function", case="single", batch_size=64, samples=lognormal(rng, 0.005))
    return run_of(mirrored, worker, failed, plain, suite={"name": "dist"})


def test_distributed_results_get_a_scaling_table_and_chart():
    html = render_html(distributed_run())
    esc = "mlp &lt;mirrored&gt;"
    assert DIST_CASE not in html and esc in html
    sec = case_section(html, esc)
    assert "Scaling (tf.distribute)" in sec and "Scaling with replicas" in sec  # the table and the chart
    # mode, strategy, workers, replicas, per-replica batch, global batch, 1 replica, N replicas, speed-up,
    # efficiency, all-reduce share
    assert table_rows(sec, "scaling") == [
        [
            "function (batch 64)",
            "mirrored",
            "1",
            "2",
            "64",
            "128",
            "12,500 samples/s",
            "10,000 samples/s",
            "0.80x (slower)",
            "40%",
            "10.9%",
        ]
    ]
    assert "40% efficient" in svg_texts(sec)
    mw = case_section(html, "mlp-mw")
    rows = table_rows(mw, "scaling")
    assert rows[0][:10] == [
        "function (batch 32) replicas diverged",
        "multi_worker",
        "2",
        "2",
        "32",
        "64",
        "1,000 samples/s",
        "1,800 samples/s",
        "1.80x",
        "90%",
    ]
    assert len(rows[0]) == 10  # no all-reduce column when no result has the figure
    assert rows[1][0] == "xla (batch 32) failed" and rows[1][7] == "–"
    assert "Scaling" not in case_section(html, "single")


def test_deployment_modes_are_compared_with_function_and_xla():
    rng = np.random.default_rng(9)
    case = "clf & <co>"
    agree = {"max_abs_error": 2.5e-06, "mean_abs_error": 0.0, "max_rel_error": 1e-6, "top1_agreement": 1.0}
    run = RunResult(
        suite={"name": "deploy"},
        environment={},
        results=[
            Result(case, "function", "cpu", "infer", 8, samples=lognormal(rng, 0.006)),
            Result(case, "xla", "cpu", "infer", 8, samples=lognormal(rng, 0.0015)),
            Result(
                case,
                "tflite",
                "cpu",
                "infer",
                8,
                samples=lognormal(rng, 0.0001),
                model_size_bytes=1024 * 1024,
                load_time_s=0.0056,
                output_agreement=agree,
                deployment={"num_threads": 2},
            ),
            Result(
                case,
                "tflite-dynamic",
                "cpu",
                "infer",
                8,
                samples=lognormal(rng, 0.00005),
                model_size_bytes=276616,
                load_time_s=0.0012,
                output_agreement={
                    "max_abs_error": 0.045,
                    "mean_abs_error": 0.0077,
                    "top1_agreement": 0.9921875,
                },
                deployment={"num_threads": 2},
            ),
            Result.not_run(
                Result(case, "tflite-int8", "cpu", "infer", 8).spec,
                "failed",
                "ConverterError<x>",
                "op <Erf> is not supported by TF Lite",
            ),
            Result("plain", "function", "cpu", "infer", 8, samples=lognormal(rng, 0.006)),
        ],
    )
    html = render_html(run)
    sec = case_section(html, "clf &amp; &lt;co&gt;")
    assert "<Erf>" not in html and "op &lt;Erf&gt; is not supported" in html
    rows = table_rows(sec, "deployment")
    # mode, status, median latency, vs function, model size, load time, max abs error, mean abs error, top-1,
    # threads
    assert [r[0] for r in rows] == [
        "function (batch 8)",
        "xla (batch 8)",
        "tflite (batch 8)",
        "tflite-dynamic (batch 8)",
        "tflite-int8 (batch 8)",
    ]
    assert rows[0][3] == "1.00x" and rows[0][4:] == ["–"] * 6
    assert rows[2][4:] == ["1.0 MiB", "5.60 ms", "2.5e-06", "0", "100.0%", "2"]
    assert rows[3][4:] == ["270.1 KiB", "1.20 ms", "0.045", "0.0077", "99.2%", "2"]
    assert float(rows[3][3].rstrip("x")) > 60  # 6 ms / 0.05 ms, give or take the sampled noise
    assert rows[4][1] == "failed ConverterError&lt;x&gt;" and rows[4][2] == "–"
    texts = svg_texts(sec)
    assert {"Latency per mode", "Model size", "tflite-dynamic"} <= set(texts)
    assert not [t for t in texts if "$" in t]  # a 120× latency spread is a log axis: plain tick labels
    assert "Deployment" not in case_section(html, "plain")


def test_serve_results_show_throughput_percentiles_errors_and_a_histogram():
    """A `tfperf serve-bench` result, shaped as serve_bench.to_result writes it (built by hand: no server)."""
    lat = [0.001 * (i + 1) for i in range(100)]  # 1..100 ms: p50 50.5 ms, max 100 ms
    figures = {
        "url": "http://127.0.0.1:8501",
        "endpoint": "/v1/models/m<1>:predict",
        "concurrency": 4,
        "requests_sent": 120,
        "requests_ok": 100,
        "requests_failed": 20,
        "errors_by_status": {"400": 15},
        "connection_errors": {"ConnectionRefusedError": 5},
        "error_examples": {"400": ["shape <3> & co"]},
        "wall_s": 2.5,
        "requests_per_s": 40.0,
        "instances_per_s": 80.0,
        "stopped_by": "requests",
    }
    serve = Result(
        "m<1>",
        "serve",
        "endpoint",
        "infer",
        2,
        samples=lat,
        first_call_s=0.02,
        model="/v1/models/m<1>:predict",
        serve=figures,
    )
    html = render_html(RunResult(suite={"name": "serve-bench-m"}, environment={}, results=[serve]))
    sec = case_section(html, "m&lt;1&gt;")
    assert "m<1>" not in html and "shape &lt;3&gt; &amp; co" in sec
    assert '<dd data-serve="throughput">40 requests/s, 80 instances/s</dd>' in sec
    assert "<dd>4</dd>" in sec and "120 sent, 100 ok, 20 failed" in sec  # concurrency, request counts
    assert table_rows(sec, "serve-latency") == [["50.50 ms", "90.10 ms", "99.01 ms", "100.00 ms"]]
    assert table_rows(sec, "serve-errors") == [
        ["HTTP 400", "15", "shape &lt;3&gt; &amp; co"],
        ["ConnectionRefusedError", "5", ""],
    ]
    texts = svg_texts(sec)
    assert "Request latency" in texts and {"p50", "p90", "p99"} <= set(texts)
    assert "First call vs steady state" not in texts and "Throughput (from the median step)" not in texts
    assert "20 of 120 requests failed" in sec and "timing is noisy" not in sec
    assert "80 instances/s" in table_rows(html[html.index('<table class="results">') :], "results")[0]


def test_what_if_table_lists_each_change_its_speedup_verdict_and_code():
    rng = np.random.default_rng(11)
    base = {"baseline_median_s": 0.132, "baseline_input_wait_fraction": 0.6}
    what_if = [
        {
            "change": "prefetch(AUTOTUNE)",
            "code": "dataset = dataset.prefetch(tf.data.AUTOTUNE)",
            "combined": False,
            "median_s": 0.0789,
            "speedup": 1.673,
            "input_wait_fraction": 0.328,
            "p_value": 0.000108,
            "helped": True,
            **base,
        },
        {
            "change": "larger batch (8 → 16)",
            "code": "dataset = dataset.batch(16)  # <and> scale the LR",
            "combined": False,
            "batch_size": 16,
            "median_s": 0.244,
            "speedup": 1.08,
            "input_wait_fraction": 0.776,
            "p_value": 0.125,
            "helped": False,
            **base,
        },
        {
            "change": "cache()",
            "code": "dataset = dataset.cache()",
            "combined": False,
            "median_s": None,
            "speedup": None,
            "input_wait_fraction": None,
            "helped": False,
            "skipped": "not run: over the timeout",
        },
        {
            "change": "combined: prefetch(AUTOTUNE) + cache()",
            "code": "a\nb",
            "combined": True,
            "median_s": 0.0576,
            "speedup": 2.29,
            "input_wait_fraction": 0.055,
            "p_value": 0.000108,
            "helped": True,
            **base,
        },
    ]
    r = Result(
        "naive",
        "function",
        "cpu",
        "train",
        8,
        samples=lognormal(rng, 0.132),
        input_wait_fraction=0.6,
        what_if=what_if,
    )
    html = render_html(RunResult(suite={"name": "ip"}, environment={}, results=[r]))
    sec = case_section(html, "naive")
    rows = [row for row in table_rows(sec, "what-if") if len(row) > 1]
    # change, step before, step after, speed-up, input wait before, after, p, verdict
    assert rows == [
        ["prefetch(AUTOTUNE)", "132.00 ms", "78.90 ms", "1.67x", "60.0%", "32.8%", "0.00011", "helped"],
        [
            "larger batch (8 → 16)",
            "132.00 ms",
            "244.00 ms",
            "1.08x per sample",
            "60.0%",
            "77.6%",
            "0.12",
            "did not help",
        ],
        ["cache()", "–", "–", "–", "–", "–", "–", "not run: over the timeout"],
        [
            "combined: prefetch(AUTOTUNE) + cache()",
            "132.00 ms",
            "57.60 ms",
            "2.29x",
            "60.0%",
            "5.5%",
            "0.00011",
            "helped",
        ],
    ]
    assert sec.count('data-what-if-helped="yes"') == 2 and sec.count('data-what-if-helped="no"') == 2
    codes = [row[0] for row in table_rows(sec, "what-if") if len(row) == 1]
    assert codes == [
        "dataset = dataset.prefetch(tf.data.AUTOTUNE)",
        "dataset = dataset.batch(16)  # &lt;and&gt; scale the LR",
        "dataset = dataset.cache()",
        "a\nb",
    ]
    assert "more than 1.10× and Mann–Whitney p &lt; 0.05" in sec


def test_missing_and_null_fields_render():
    """An old or partial results file: no samples, empty dicts, null profile fields, a suggestion with only a
    code."""
    run = RunResult.from_json(
        {
            "schema_version": 1,
            "suite": {"name": "old"},
            "environment": {},
            "results": [
                {
                    "case": "a",
                    "mode": "eager",
                    "device": "cpu",
                    "task": "train",
                    "batch_size": None,
                    "status": "ok",
                    "samples": [],
                    "profile": {"input_bound_percent": None, "top_ops": None},
                    "retraces": [{}],
                    "suggestions": [{"code": "retracing"}],
                    "what_if": [{"change": "prefetch", "speedup": 1.4}],
                },
                {
                    "case": "a",
                    "mode": "xla",
                    "device": "cpu",
                    "task": "train",
                    "batch_size": None,
                    "status": "failed",
                    "error": None,
                    "samples": [0.01, 0.011, 0.012],
                    "first_call_s": None,
                    "tracing_count": 1,
                    "graph": {"op_count": None},
                    "output_agreement": {"max_abs_diff": 1e-6},
                },
            ],
        }
    )
    html = render_html(run)
    assert html.count('data-case="a"') >= 2
    assert "The suite text is not recorded" in html
    assert "retracing" in html and "prefetch" in html and "max_abs_diff" in html
    assert "tfperf tensorboard &lt;out&gt;" in html


def test_every_advisor_code_has_a_severity():
    assert set(SEVERITY) == set(CODES)


def test_findings_are_failures_then_the_advisors_suggestions_by_severity():
    run = sample_run()
    attach_suggestions(run)
    slow = [r for r in run.results if r.case == "slow-input"]
    kinds = [f.kind for f in case_findings(slow)]
    assert kinds[0] == "failed" and "input-bound" in kinds and "retracing" in kinds
    # Every finding but the failure is a suggestion the advisor attached, and nothing else.
    assert sorted(kinds[1:]) == sorted(s.code for r in slow for s in r.suggestions)
    rng = np.random.default_rng(1)
    losing = RunResult(
        suite={"name": "x"},
        environment={},
        results=[
            Result("m", "function", "cpu", "train", 32, samples=lognormal(rng, 0.008)),
            Result("m", "xla", "cpu", "train", 32, samples=lognormal(rng, 0.038)),
        ],
    )
    assert case_findings(losing.results) == []  # no suggestion attached yet: no finding of its own
    attach_suggestions(losing)
    top = case_findings(losing.results)[0]
    assert top.kind == "avoid-xla" and "4.7" in top.text


def test_details_show_timing_as_one_row_per_worker_process():
    by_process = [
        {
            "process": p,
            "method": "per_step",
            "block_size": 1,
            "warmup_s": 0.5,
            "median_s": m,
            "first_call_s": 0.1 * (p + 1),
            "load_average_1m": 0.5 + p,
        }
        for p, m in enumerate((0.0346, 0.0533))
    ]
    timing = {
        "method": "per_step",
        "block_size": 1,
        "steps": 10,
        "repeats": 3,
        "sync": "fetch",
        "by_process": by_process,
        "processes": 2,
    }
    view = timing_view(Result("t", "function", "cpu", "train", 8, samples=[0.03] * 6, timing=timing))
    assert view["columns"] == (
        "process",
        "method",
        "block size",
        "warm-up",
        "median",
        "first call",
        "load average",
    )
    assert view["rows"] == [
        ["0", "per_step", "1", "500.00 ms", "34.60 ms", "100.00 ms", "0.5"],
        ["1", "per_step", "1", "500.00 ms", "53.30 ms", "200.00 ms", "1.5"],
    ]
    assert ("timed steps per repeat", "10") in view["fields"] and ("completion forced by", "fetch") in view[
        "fields"
    ]
    r = Result("t", "function", "cpu", "train", 8, samples=[0.03] * 6, timing=timing)
    sec = case_section(render_html(RunResult(suite={"name": "t"}, environment={}, results=[r])), "t")
    assert table_rows(sec, "timing")[1] == ["1", "per_step", "1", "500.00 ms", "53.30 ms", "200.00 ms", "1.5"]
    assert "by_process=" not in sec  # not one long key=value run any more
    # One process: its row is the result's own median and first call, not blanks.
    one = Result(
        "t",
        "function",
        "cpu",
        "train",
        8,
        samples=[0.03] * 6,
        first_call_s=0.2,
        timing={"method": "per_step", "block_size": 1, "warmup_s": 0.5, "load_average_1m": 0.7},
    )
    assert timing_view(one)["rows"] == [["0", "per_step", "1", "500.00 ms", "30.00 ms", "200.00 ms", "0.7"]]


def test_render_modules_do_not_import_tensorflow():
    code = (
        "import sys, tfperf.report.html, tfperf.analysis.compare, tfperf.report.charts; "
        "from tfperf.cli import app; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.cli
def test_report_command_renders_html(tmp_path):
    write_results(sample_run(suite_name=XSS_SUITE), tmp_path / "results.json")
    proc = run_tfperf(
        "report", str(tmp_path / "results.json"), "--format", "html", "--output", str(tmp_path / "again.html")
    )
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "again.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "&lt;script&gt;alert(1)" in html
    assert f"tfperf tensorboard {tmp_path}" in html


# ---------------------------------------------------------------------------------------------------------
# A real run
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.workers
@pytest.mark.browser
@needs_chromium
def test_real_run_writes_a_report_that_opens(tmp_path):
    (tmp_path / "steps.py").write_text(
        textwrap.dedent("""
        import tensorflow as tf

        def step(x, w):
            for _ in range(3):
                x = tf.tanh(tf.matmul(x, w))
            return tf.reduce_sum(x)

        def inputs():
            x = tf.random.stateless_normal((64, 64), seed=[1, 2])
            while True:
                yield (x, x * 0.05), {}
        """)
    )
    (tmp_path / "suite.yaml").write_text(
        textwrap.dedent("""
        name: html-real
        defaults: {modes: [eager, function, xla], warmup_steps: 1, steps: 4, repeats: 2, processes: 1,
                   profile: false,
                   timeout_s: 120}
        cases:
          - name: chain
            function: steps.py:step
            inputs: steps.py:inputs
        """)
    )
    out = tmp_path / "out"
    proc = run_tfperf("run", str(tmp_path / "suite.yaml"), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = load_results(out)
    assert {r.mode for r in run.results} == {"eager", "function", "xla"}
    seen = open_page(out / "report.html", tmp_path, {"rows": ROWS_JS, "text": "document.body.innerText"})
    assert {tuple(r) for r in json.loads(seen["values"]["rows"])} == expected_rows(run)
    assert seen["console_errors"] == []
    assert seen["requests"] == [(out / "report.html").resolve().as_uri()]
    assert "name: html-real" in seen["values"]["text"]  # the suite text, from results.json
    std, inked = pixel_spread(seen["png"])
    assert std > 20 and inked > 0.02
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
