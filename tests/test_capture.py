"""`tfperf capture` against a real training loop in another process that started the profiler server."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import pytest

from tfperf.profile.capture import CaptureError, parse_addresses
from tfperf.profile.tensorboard_server import free_port

# A training loop tfperf did not start: it only calls tf.profiler.experimental.server.start(PORT) and marks
# steps.
TRAINING_LOOP = textwrap.dedent("""
    import os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    tf.profiler.experimental.server.start(port)
    w = tf.Variable(tf.random.normal((256, 256)))
    x = tf.random.normal((128, 256))

    @tf.function
    def train_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.matmul(x, w)))
        w.assign_sub(0.001 * tape.gradient(loss, w))
        return loss

    train_step(x).numpy()
    print("ready", flush=True)
    deadline, i = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        with tf.profiler.experimental.Trace("train", step_num=i, _r=1):
            train_step(x).numpy()
        i += 1
""")


def test_parse_addresses():
    assert parse_addresses("grpc://127.0.0.1:6009, localhost:6010") == [
        "grpc://127.0.0.1:6009",
        "grpc://localhost:6010",
    ]
    with pytest.raises(CaptureError, match="grpc://HOST:PORT"):
        parse_addresses("grpc://127.0.0.1")
    with pytest.raises(CaptureError, match="no address"):
        parse_addresses(" , ")


@pytest.fixture(scope="module")
def training_loops(tmp_path_factory):
    """The ports of two training loops (two "workers"), each in its own process, killed at the end of the
    module."""
    script = tmp_path_factory.mktemp("loop") / "train.py"
    script.write_text(TRAINING_LOOP)
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(port), "90"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        # The capture client's TensorFlow import overlaps the loops' own start-up.
        importlib.import_module("tensorflow")

        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def training_loop(training_loops):
    return training_loops[0]


@pytest.mark.tensorflow
@pytest.mark.workers
def test_capture_from_a_running_training_loop(training_loop, tmp_path, capsys):
    from tfperf.cli import main

    port = training_loop
    out = tmp_path / "capture"
    rc = main(
        [
            "capture",
            f"grpc://127.0.0.1:{port}",
            "--duration-ms",
            "1500",
            "--out",
            str(out),
            "--format",
            "json",
        ]
    )
    assert rc == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile["addresses"] == [f"grpc://127.0.0.1:{port}"]
    assert "readout_error" not in profile, profile.get("readout_error")
    files = list((out / "tensorboard" / "capture" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(files) == 1
    # The step markers of the other process reached the analyzer, and the loop's own ops lead the op table.
    assert profile["profiled_steps"] >= 2
    assert profile["input_bound_percent"] is not None and profile["input_bound_percent"] < 20
    assert any("MatMul" in op["type"] for op in profile["top_ops"][:3]), profile["top_ops"][:3]


@pytest.mark.tensorflow
@pytest.mark.workers
def test_capture_text_summary_names_the_top_ops(training_loop, tmp_path, capsys):
    """The default output is the same one-screen summary the profiled pass gives."""
    from tfperf.cli import main

    rc = main(
        ["capture", f"127.0.0.1:{training_loop}", "--duration-ms", "1000", "--out", str(tmp_path / "c")]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "input-bound:" in text and "top ops by self time:" in text and "MatMul" in text
    assert f"tfperf tensorboard {tmp_path / 'c'}" in text


@pytest.mark.tensorflow
@pytest.mark.workers
def test_capture_several_workers_at_once(training_loops, tmp_path, capsys):
    from tfperf.cli import main

    addresses = ",".join(f"grpc://127.0.0.1:{p}" for p in training_loops)
    rc = main(
        ["capture", addresses, "--duration-ms", "1000", "--out", str(tmp_path / "c"), "--format", "json"]
    )
    profile = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert len(profile["addresses"]) == 2
    files = list((tmp_path / "c" / "tensorboard" / "capture" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(files) == 2, files  # one trace per worker, in one run folder
    assert len(profile["hosts"]) == 2
    assert "readout_error" not in profile, profile.get("readout_error")
