"""`device:` places the step, not only the model: with two logical CPU devices, a job on cpu:1 runs its step's
ops on CPU:1 in every execution mode, and the result says where they ran (setup.placed_on). A device the
process does not have is refused rather than silently replaced (soft placement)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.workers

# Runs in a fresh interpreter: logical CPU devices can only be made before TensorFlow initializes its devices.
SCRIPT = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tfperf.measure import harness
from tfperf.results.model import JobSpec
from tfperf.suite.references import resolve_reference
from tfperf.suite.spec import CaseSpec

device = harness.resolve_device("cpu:1")
ctx = harness.JobContext(out_dir=None, tf_device=harness.tf_device_name(device))
resolve = lambda ref: resolve_reference(ref, ".")
case = CaseSpec(name="p", model="zoo:mlp", params={"hidden": 16, "layers": 1}, batch_sizes=(8,),
                warmup_steps=1, steps=2, repeats=1, profile=False)
out = {"device": device, "tf_device": ctx.tf_device, "jobs": {}}
for task in ("train", "infer"):
    for mode in ("eager", "function", "xla"):
        job = JobSpec("p", mode, device, task, 8)
        # What the step's own call returns, read here: the device of the tensors it computed.
        prepared = harness.prepare(case, job, ctx, resolve)
        args, kwargs = prepared.source.next_args()
        called = sorted({t.device for t in tf.nest.flatten(prepared.call(*args, **kwargs))})
        # And what a measured job records.
        r = harness.run_job(case, job, ctx, resolve)
        placed = r.setup.placed_on if r.setup else None
        out["jobs"][f"{task}/{mode}"] = {"status": r.status, "error": r.error.message if r.error else None,
                                         "called": called, "placed_on": placed}
print("RESULT " + json.dumps(out))
"""


def _run(script: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_device_cpu1_places_every_mode_s_step_on_cpu1():
    out = _run(SCRIPT)
    assert out["device"] == "cpu:1" and out["tf_device"] == "/CPU:1"
    assert set(out["jobs"]) == {f"{t}/{m}" for t in ("train", "infer") for m in ("eager", "function", "xla")}
    for name, job in out["jobs"].items():
        assert job["status"] == "ok", (name, job["error"])
        # The step itself ran on CPU:1 (before the call was pinned, a traced step ran on CPU:0), and the
        # result records the device TensorFlow reports for the step's output, not the one asked for.
        assert job["called"] == ["/job:localhost/replica:0/task:0/device:CPU:1"], (name, job)
        assert job["placed_on"] == job["called"], (name, job)


def test_a_cpu_device_the_process_does_not_have_is_refused():
    script = r"""
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
from tfperf.measure import harness
try:
    harness.resolve_device("cpu:1")
    print("RESULT " + '"accepted"')
except harness.NoSuchDevice as exc:
    print("RESULT " + __import__("json").dumps(str(exc)))
"""
    message = _run(script)
    # One CPU device: soft placement would have run the step on CPU:0 while the result said cpu:1.
    assert "cpu:1" in message and "1 CPU device" in message
