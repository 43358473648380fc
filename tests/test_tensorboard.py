"""A real TensorBoard server, started by `tfperf tensorboard`, serving a tfperf-like output: the profile
plugin lists each case × mode run and returns the input-pipeline analysis over HTTP; the HParams and scalars
are there; Ctrl-C stops the server."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from builders import result

from tfperf.errors import TfperfError
from tfperf.profile.tensorboard_server import free_port, tensorboard_logdir
from tfperf.results.model import Result

ROOT = Path(__file__).resolve().parents[1]


def test_free_port_is_bindable_on_loopback():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_tensorboard_logdir_finds_the_run_folder_or_says_what_is_missing(tmp_path):
    (tmp_path / "run" / "tensorboard").mkdir(parents=True)
    (tmp_path / "run" / "results.json").write_text("{}")
    assert tensorboard_logdir(tmp_path / "run") == tmp_path / "run" / "tensorboard"
    assert tensorboard_logdir(tmp_path / "run" / "results.json") == tmp_path / "run" / "tensorboard"
    (tmp_path / "bare").mkdir()
    with pytest.raises(TfperfError, match="no tensorboard/ folder"):
        tensorboard_logdir(tmp_path / "bare")


def _result(case: str, mode: str, median_s: float) -> Result:
    return result(
        mode,
        case=case,
        task="infer",
        batch_size=64,
        first_call_s=0.3,
        samples=[median_s * f for f in (0.9, 1.0, 1.1)],
        tracing_count=None if mode == "eager" else 1,
        input_wait_fraction=0.01,
    )


@pytest.fixture(scope="module")
def tfperf_output(tmp_path_factory):
    """<out>/tensorboard/<case>-<mode>/ for two modes: a profile trace and the HParams/scalars, as a run
    writes."""
    import tensorflow as tf

    from tfperf.profile.profiler import profile_job
    from tfperf.profile.tb_summaries import write_job_summaries

    out = tmp_path_factory.mktemp("run")
    w = tf.Variable(tf.random.normal((256, 256)))
    x = tf.random.normal((64, 256))
    profiles = {}
    for mode, fn in (
        ("eager", lambda x: tf.reduce_sum(tf.matmul(x, w))),
        ("function", tf.function(lambda x: tf.reduce_sum(tf.matmul(x, w)))),
    ):
        fn(x).numpy()
        run = f"mm-{mode}"
        profiles[run] = profile_job(
            lambda i, fn=fn: fn(x).numpy(), steps=3, trace_name="infer", logdir=out / "tensorboard" / run
        )
        result = _result("mm", mode, 0.002 if mode == "eager" else 0.001)
        result.profile = profiles[run]
        write_job_summaries(out / "tensorboard" / run, result)
    (out / "results.json").write_text("{}")
    return out, profiles


def _json(response) -> object:
    body = response.read()
    if response.headers.get("Content-Encoding") == "gzip":  # TensorBoard gzips large JSON answers
        body = gzip.decompress(body)
    return json.loads(body.decode())


def _get(url: str, timeout: float = 60):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return _json(r)


def _post(url: str, body: dict, timeout: float = 60):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return _json(r)


@pytest.mark.tensorflow
@pytest.mark.services
def test_tfperf_tensorboard_serves_profiles_and_hparams_and_stops_on_ctrl_c(tfperf_output):
    out, profiles = tfperf_output
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfperf", "tensorboard", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        line = proc.stdout.readline()  # "TensorBoard on http://127.0.0.1:PORT/ ..."
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, f"no URL printed: {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        base = m.group(0).rstrip("/")
        port = int(m.group(1))

        runs = _get(f"{base}/data/plugin/profile/runs")
        for run, profile in profiles.items():
            assert profile["run"] == f"{run}/{profile['profile_run']}"
            assert profile["run"] in runs, runs

        run = profiles["mm-function"]["run"]
        q = urllib.parse.urlencode({"run": run, "tag": "input_pipeline_analyzer"})
        hosts = _get(f"{base}/data/plugin/profile/hosts?{q}")
        assert [h["hostname"] for h in hosts] == profiles["mm-function"]["hosts"]
        q = urllib.parse.urlencode(
            {"run": run, "tag": "input_pipeline_analyzer", "host": hosts[0]["hostname"]}
        )
        analysis = _get(f"{base}/data/plugin/profile/data?{q}")
        props = next(t["p"] for t in analysis if "steptime_ms_average" in (t.get("p") or {}))
        # TensorBoard shows the same analysis tfperf read out of the trace.
        assert props["input_conclusion"] == profiles["mm-function"]["input_conclusion"]
        assert len([t for t in analysis if t.get("rows")][0]["rows"]) == 3  # the three step markers

        tags = _get(f"{base}/data/plugin/scalars/tags")
        assert "tfperf/median_step_time_ms" in tags["mm-function"]
        scalars = _get(
            f"{base}/data/plugin/scalars/scalars?"
            + urllib.parse.urlencode({"run": "mm-eager", "tag": "tfperf/median_step_time_ms"})
        )
        assert scalars[0][2] == pytest.approx(2.0)  # [wall_time, step, value]: the eager median, in ms

        groups = _post(
            f"{base}/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )
        modes = sorted(g["sessions"][0]["name"] for g in groups["sessionGroups"])
        assert modes == ["mm-eager", "mm-function"]
        hparams = {g["sessions"][0]["name"]: g["hparams"] for g in groups["sessionGroups"]}
        assert hparams["mm-function"]["mode"] == "function" and hparams["mm-function"]["batch_size"] == 64

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=30) == 0
        with socket.socket() as s:  # TensorBoard itself is gone, not just the CLI
            deadline = time.monotonic() + 10
            while s.connect_ex(("127.0.0.1", port)) == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.tensorflow
def test_job_summaries_are_written_without_tensorflow(tmp_path):
    """The runner process stays TensorFlow-free: scalars and HParams use TensorBoard's own writer."""
    code = (
        "import sys; from pathlib import Path; from tfperf.results.model import Result; "
        "from tfperf.profile.tb_summaries import write_job_summaries; "
        "r = Result(case='c', mode='xla', device='cpu', task='train', batch_size=None, samples=[0.01, "
        "0.02]); "
        f"write_job_summaries(Path({str(tmp_path / 'c-xla')!r}), r); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "c-xla"))
    acc.Reload()
    tags = acc.Tags()["tensors"]
    assert "tfperf/median_step_time_ms" in tags and "tfperf/step_time_ms" in tags
    assert len(acc.Tensors("tfperf/step_time_ms")) == 2
    assert "_hparams_/session_start_info" in tags
