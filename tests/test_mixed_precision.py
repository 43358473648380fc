"""`tf_config: {mixed_precision: ...}` takes effect: the policy set at worker start survives the clear_session
before each build (it is set again after clearing), float16 training is loss-scaled, and the result records
the policy in force (setup.tf_config_applied.mixed_precision) and what the built model computes in
(setup.model_compute_dtype)."""

from __future__ import annotations

import json

import pytest
from conftest import run_tfperf


@pytest.fixture
def harness():
    """The harness, with Keras' global dtype policy put back afterwards (it is process-wide state)."""
    import keras

    from tfperf.measure import harness as h

    yield h
    keras.mixed_precision.set_global_policy("float32")


def _prepare(h, policy: str, mode: str = "function"):
    from tfperf.measure.tf_config import apply_tf_config
    from tfperf.results.model import JobSpec
    from tfperf.suite.references import resolve_reference
    from tfperf.suite.spec import CaseSpec

    settings = {"mixed_precision": policy}
    apply_tf_config(
        settings
    )  # what the worker does at start, before the job's build clears the Keras session
    case = CaseSpec(
        name="mp", model="zoo:mlp", params={"hidden": 16, "layers": 1}, batch_sizes=(8,), tf_config=settings
    )
    job = JobSpec("mp", mode, "cpu", "train", 8)
    ctx = h.JobContext(out_dir=None, tf_device="/CPU:0")
    return h.prepare(case, job, ctx, lambda ref: resolve_reference(ref, "."))


def _graph_ops(prepared) -> list:
    args, kwargs = prepared.source.next_args()
    return prepared.traced.get_concrete_function(*args, **kwargs).graph.get_operations()


@pytest.mark.tensorflow
def test_policy_set_at_start_is_in_force_when_the_model_is_built(harness):
    prepared = _prepare(harness, "mixed_bfloat16")
    assert prepared.model.compute_dtype == "bfloat16"
    # The step's matrix products really run in bfloat16 (before the fix: float32, as if nothing was set).
    matmuls = {op.get_attr("T").name for op in _graph_ops(prepared) if op.type == "MatMul"}
    assert matmuls == {"bfloat16"}
    assert prepared.setup.model_compute_dtype == "bfloat16"
    assert prepared.setup.dtype_policy == "mixed_bfloat16"
    assert prepared.setup.tf_config_applied == {"mixed_precision": "mixed_bfloat16"}
    assert prepared.setup.loss_scale_optimizer is False  # bfloat16 has float32's range: no loss scaling


@pytest.mark.tensorflow
def test_float16_training_is_loss_scaled_and_learns(harness):
    import numpy as np

    prepared = _prepare(harness, "mixed_float16")
    assert prepared.model.compute_dtype == "float16"
    assert prepared.setup.loss_scale_optimizer is True
    # A LossScaleOptimizer checks the scaled gradients are finite before applying them; plain Adam does not.
    assert any(op.type == "IsFinite" for op in _graph_ops(prepared))
    before = [w.numpy() for w in prepared.model.trainable_weights]
    for _ in range(3):
        args, kwargs = prepared.source.next_args()
        loss = float(prepared.call(*args, **kwargs).numpy())
    assert np.isfinite(loss)
    after = [w.numpy() for w in prepared.model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))  # the unscaled updates were applied


@pytest.mark.workers
def test_a_run_records_the_policy_in_force_and_the_model_s_compute_dtype(tmp_path):
    suite = tmp_path / "mp.yaml"
    suite.write_text("""
name: mp
cases:
  - name: bf16
    model: zoo:mlp
    params: {hidden: 16, layers: 1}
    batch_size: 8
    modes: [function]
    warmup_steps: 1
    steps: 3
    repeats: 1
    processes: 1
    profile: false
    tf_config: {mixed_precision: mixed_bfloat16, intra_op_threads: 1}
""")
    proc = run_tfperf("run", str(suite), "--out", str(tmp_path / "out"), timeout=300)
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert len(results) == 1, proc.stderr[-2000:]
    r = results[0]
    assert r["status"] == "ok", r["error"]
    setup = r["setup"]
    assert setup["tf_config_applied"]["mixed_precision"] == "mixed_bfloat16"
    assert setup["tf_config_applied"]["intra_op_threads"] == 1  # what apply_tf_config read back is kept
    assert setup["model_compute_dtype"] == "bfloat16"
