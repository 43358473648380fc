"""The profiled pass and its read-out: real traces of real TensorFlow steps, read with xprof's converters; the
parsers and the attribution over real op names without TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from tfperf.profile import attribution
from tfperf.profile.readout import NO_ALLOCATION_EVENTS
from tfperf.profile.xprof_tools import parse_input_pipeline, parse_memory_profile, parse_op_stats, top_ops

# Op names as they appear in a trace of tfperf's Keras 3 MLP train step under tf.function (TF 2.21), with the
# harness's forward/backward/optimizer name scopes; self times in µs.
MLP_TRAIN_OPS = [
    ("IDLE", "IDLE", 236506.0),
    ("optimizer/adam/truediv_5", "RealDiv", 2360.0),
    ("optimizer/adam/Sub_2", "Sub", 1077.0),
    ("Iterator::Root::Prefetch", "Dataset", 934.0),
    ("forward/mlp_1/dense_0_1/Relu", "_MklNativeFusedMatMul", 8113.0),
    ("gradient_tape/forward/mlp_1/dense_0_1/MatMul/MatMul", "_MklMatMul", 5752.0),
    ("gradient_tape/forward/mlp_1/dense_1_1/MatMul/MatMul", "_MklMatMul", 922.0),
    ("forward/mlp_1/dense_1_1/Relu", "_MklNativeFusedMatMul", 825.0),
    ("gradient_tape/forward/mlp_1/logits_1/BiasAdd/BiasAddGrad", "BiasAddGrad", 69.0),
    ("forward/mlp_1/logits_1/BiasAdd", "_MklNativeFusedMatMul", 129.0),
    ("forward/sparse_categorical_crossentropy/Sum", "Sum", 99.0),
    (
        "gradient_tape/forward/sparse_categorical_crossentropy/SparseSoftmaxCrossEntropyWithLogits/mul",
        "Mul",
        124.0,
    ),
    ("optimizer/AssignVariableOp", "AssignVariableOp", 26.0),
]
MLP_LAYERS = ["features", "dense_0", "dense_1", "logits"]


def _rows(ops=MLP_TRAIN_OPS):
    return [attribution.OpRow(name=n, type=t, self_time_us=us) for n, t, us in ops]


def _datatable(cols, rows, p=None):
    return {
        "cols": [{"id": c, "label": c, "type": "string"} for c in cols],
        "rows": [{"c": [{"v": v} for v in r]} for r in rows],
        **({"p": p} if p else {}),
    }


# ---------------------------------------------------------------------------------------------- no TensorFlow


def test_phase_of_real_op_names():
    phases = {n: attribution.phase_of(n, t) for n, t, _ in MLP_TRAIN_OPS}
    assert phases["gradient_tape/forward/mlp_1/dense_0_1/MatMul/MatMul"] == "backward"  # not forward
    assert phases["forward/mlp_1/dense_0_1/Relu"] == "forward"
    assert phases["optimizer/adam/truediv_5"] == "optimizer"
    assert phases["Iterator::Root::Prefetch"] == "input"
    # Keras 2 / tf.keras names its optimizer scope with the class name; graph mode may suffix scopes.
    assert attribution.phase_of("Adam/Sub", "Sub") == "optimizer"
    assert attribution.phase_of("sgd_1/Mul", "Mul") == "optimizer"
    assert attribution.phase_of("StatefulPartitionedCall", "StatefulPartitionedCall") == "other"


def test_layer_of_strips_graph_mode_suffixes_but_prefers_exact_names():
    assert attribution.layer_of("forward/mlp_1/dense_0_1/Relu", MLP_LAYERS) == "dense_0"
    assert (
        attribution.layer_of("gradient_tape/forward/mlp_1/logits_1/BiasAdd/BiasAddGrad", MLP_LAYERS)
        == "logits"
    )
    assert attribution.layer_of("optimizer/adam/Sub_2", MLP_LAYERS) is None
    # Two layers "dense" and "dense_1": the exact component wins over stripping its suffix.
    assert attribution.layer_of("model/dense_1/MatMul", ["dense", "dense_1"]) == "dense_1"
    assert attribution.layer_of("model/dense/MatMul", ["dense", "dense_1"]) == "dense"


def test_phase_and_layer_split_sum_the_self_times():
    out = attribution.attribute(_rows(), MLP_LAYERS)
    phases = out["phases"]
    assert phases["forward"]["self_time_us"] == pytest.approx(8113 + 825 + 129 + 99)
    assert phases["backward"]["self_time_us"] == pytest.approx(5752 + 922 + 69 + 124)
    assert phases["optimizer"]["self_time_us"] == pytest.approx(2360 + 1077 + 26)
    assert phases["input"]["self_time_us"] == pytest.approx(934)
    assert sum(p["share"] for p in phases.values()) == pytest.approx(1.0)  # IDLE is no phase
    layers = {entry["layer"]: entry for entry in out["layers"]}
    assert [e["layer"] for e in out["layers"]] == ["dense_0", "dense_1", "logits"]
    assert layers["dense_0"]["forward_us"] == pytest.approx(8113)
    assert layers["dense_0"]["backward_us"] == pytest.approx(5752)
    assert "features" not in layers  # an input layer runs no ops


def test_unscoped_ops_are_flagged_not_guessed():
    xla = [
        ("IDLE", "IDLE", 100.0),
        ("__inference_step_446", "__inference_step_446", 8296.0),
        ("Iterator::Root", "Dataset", 52.0),
    ]
    out = attribution.attribute(_rows(xla), MLP_LAYERS)
    assert out["layers"] == []
    assert out["phases"]["other"]["share"] > 0.9
    assert "name scopes" in out["attribution_note"]


def test_parse_input_pipeline_takes_input_percent_only_from_an_input_conclusion():
    cols = ["stepnum", "stepTimeMs", "infeedTimeMs"]
    props = {
        "steptime_ms_average": "20.0",
        "infeed_time_ms_avg": "2.0",
        "host_compute_time_ms_avg": "17.0",
        "other_time_ms_avg": "1.0",
        "compile_time_ms_avg": "0.0",
        "device_compute_time_ms_avg": "0.0",
        "input_conclusion": "Your program is POTENTIALLY input-bound because 47.7% of the total step time "
        "sampled is spent on 'All Others' time (which could be due to I/O or Python execution or both).",
    }
    data = [
        {"cols": [], "rows": []},
        _datatable(cols, [["train 0", 20.0, 2.0], ["train 1", 20.0, 2.0]], props),
    ]
    out = parse_input_pipeline(data)
    assert out["input_bound_percent"] == pytest.approx(10.0)  # from the per-step input time, not the 47.7
    assert out["step_time_breakdown_ms"]["host_compute"] == 17.0
    assert out["step_time_breakdown_ms"]["average"] == out["step_time_breakdown_ms"]["total"] == 20.0
    props["input_conclusion"] = (
        "Your program is HIGHLY input-bound because 97.7% of the total step time sampled "
        "is waiting for input."
    )
    assert parse_input_pipeline(data)["input_bound_percent"] == pytest.approx(97.7)


def test_top_ops_exclude_idle_and_share_non_idle_time():
    cols = ["rank", "host_or_device", "type", "operation", "occurrences", "total_self_time"]
    table = _datatable(
        cols,
        [
            [1, "Host", "IDLE", "IDLE", 0, 1e6],
            [2, "Host", "_MklMatMul", "MatMul", 5, 300.0],
            [3, "Host", "Relu", "Relu", 5, 100.0],
        ],
    )
    ops = top_ops(parse_op_stats([table, table]))
    assert [o["name"] for o in ops] == ["MatMul", "Relu"]
    assert ops[0]["share"] == pytest.approx(0.75)


def test_parse_memory_profile_takes_the_largest_allocator_peak():
    data = {
        "memoryProfilePerAllocator": {
            "mklcpu": {"profileSummary": {"peakStats": {"peakBytesInUse": "6569984"}}},
            "GPU_0_bfc": {"profileSummary": {"peakStats": {"peakBytesInUse": "1024"}}},
        }
    }
    out = parse_memory_profile(data)
    assert out["memory_peak_bytes"] == 6569984
    assert out["memory_peak_by_allocator"]["GPU_0_bfc"] == 1024


# ---------------------------------------------------------------------------------------------- real traces


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


def _naive(ds, tf):
    # tf.data injects a prefetch and fuses map+batch by default, which would overlap the slow map with the
    # step: the trace of a deliberately slow pipeline must show the wait, so both are off.
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.experimental_optimization.inject_prefetch = False
    options.autotune.enabled = False
    return ds.with_options(options)


@pytest.mark.tensorflow
def test_slow_input_pipeline_is_input_bound(tf, tmp_path):
    from tfperf.profile.profiler import profile_job

    def slow(i):
        time.sleep(0.02)  # simulated per-element decoding; the step itself is tiny
        return i

    ds = (
        tf.data.Dataset.range(10_000)
        .map(lambda i: tf.py_function(slow, [i], tf.int64), num_parallel_calls=1)
        .batch(2)
    )
    it = iter(_naive(ds.map(lambda b: tf.cast(tf.reshape(b, (2, 1)), tf.float32)), tf))
    w = tf.Variable(tf.ones((1, 8)))

    @tf.function
    def step_fn(x):
        return tf.reduce_sum(tf.matmul(x, w))

    step_fn(next(it)).numpy()
    profile = profile_job(
        lambda i: step_fn(next(it)).numpy(),
        steps=4,
        trace_name="train",
        logdir=tmp_path / "tensorboard" / "slow-input-function",
    )
    assert "readout_error" not in profile, profile.get("readout_error")
    assert profile["profiled_steps"] == 4
    assert profile["input_bound_percent"] > 50, profile["input_conclusion"]
    assert "input-bound" in profile["input_conclusion"]
    assert profile["phases"]["input"]["share"] > profile["phases"]["other"]["share"]
    assert (
        tmp_path / "tensorboard" / "slow-input-function" / "plugins" / "profile" / profile["profile_run"]
    ).is_dir()
    assert (
        profile["profile_wall_s"] > 0 and profile["readout_s"] > 0
    )  # what the profiled pass cost is recorded
    json.dumps(profile)  # results.json must be able to hold it


@pytest.mark.tensorflow
def test_compute_heavy_mlp_is_not_input_bound_and_matmul_leads(tf, tmp_path):
    import keras

    from tfperf.profile.profiler import profile_job

    keras.utils.set_random_seed(0)
    inputs = keras.Input((512,), name="features")
    x = keras.layers.Dense(1024, activation="relu", name="wide_0")(inputs)
    x = keras.layers.Dense(1024, activation="relu", name="wide_1")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs, name="mlp")
    batch = tf.random.normal((256, 512))  # in memory: no input pipeline at all
    labels = tf.zeros((256,), tf.int32)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(1e-3)
    optimizer.build(model.trainable_variables)

    @tf.function
    def infer(x):
        return model(x, training=False)

    @tf.function
    def train(x, y):
        with tf.GradientTape() as tape:
            with tf.name_scope("forward"):
                loss = loss_fn(y, model(x, training=True))
        with tf.name_scope("backward"):
            grads = tape.gradient(loss, model.trainable_variables)
        with tf.name_scope("optimizer"):
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    infer(batch).numpy()
    profile = profile_job(
        lambda i: infer(batch).numpy(),
        steps=3,
        trace_name="infer",
        logdir=tmp_path / "tensorboard" / "mlp-function",
        layer_names=[layer.name for layer in model.layers],
    )
    assert "readout_error" not in profile, profile.get("readout_error")
    assert profile["input_bound_percent"] < 20, profile["input_conclusion"]
    first = profile["top_ops"][0]
    assert "MatMul" in first["type"], profile["top_ops"][:3]
    assert all(op["type"] != "IDLE" for op in profile["top_ops"])
    assert len(profile["top_ops"]) <= 10
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1" or profile["memory_peak_bytes"] is not None:
        assert profile["memory_peak_bytes"] > 256 * 1024 * 4  # at least one activation of the wide layers
    else:  # oneDNN off (this CPU's default): no allocation events, and the read-out says why
        assert profile["memory_note"] == NO_ALLOCATION_EVENTS

    train(batch, labels).numpy()
    profile = profile_job(
        lambda i: train(batch, labels).numpy(),
        steps=3,
        trace_name="train",
        logdir=tmp_path / "tensorboard" / "mlp-train-function",
        layer_names=[layer.name for layer in model.layers],
    )
    phases = profile["phases"]
    for phase in ("forward", "backward", "optimizer"):
        assert phases[phase]["self_time_us"] > 0, phases
    assert phases["input"]["self_time_us"] == 0  # in-memory inputs: no tf.data at all
    layers = {entry["layer"]: entry for entry in profile["layers"]}
    assert set(layers) == {"wide_0", "wide_1", "logits"}
    for name in ("wide_0", "wide_1"):  # each wide layer's gradient matmuls are found under gradient_tape/
        assert layers[name]["forward_us"] > 0 and layers[name]["backward_us"] > 0
    # logits (1024x10) does a fiftieth of the matmul work of either wide layer: it never leads.
    assert profile["layers"][0]["layer"] != "logits"


@pytest.mark.tensorflow
def test_profile_job_stops_a_running_session_first(tf, tmp_path):
    from tfperf.profile.profiler import profile_job

    tf.profiler.experimental.start(str(tmp_path / "stray"))  # e.g. a user's own session left running
    x = tf.ones((4, 4))
    profile = profile_job(
        lambda i: tf.matmul(x, x).numpy(), steps=2, trace_name="infer", logdir=tmp_path / "tb"
    )
    assert profile["profiled_steps"] == 2
    assert profile["run"].startswith("tb/")
    # Eager ops have no self time in xprof's op stats: the top ops come from their EagerLocalExecute events.
    assert profile["op_source"] == "eager_execute_events"
    assert profile["top_ops"][0]["type"] == "MatMul"


@pytest.mark.workers
def test_memory_profile_peak_with_onednn_allocation_events(tmp_path):
    """With oneDNN on, the CPU allocator writes allocation events and xprof's memory profile has a peak."""
    code = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        from tfperf.profile.profiler import profile_job
        w = tf.Variable(tf.random.normal([512, 1024]))
        x = tf.constant(np.random.rand(256, 512).astype("float32"))
        step = tf.function(lambda: tf.reduce_sum(tf.nn.relu(x @ w)))
        step().numpy()
        profile = profile_job(lambda i: step().numpy(), steps=3, trace_name="mem", logdir=r"{tmp_path}")
        print("PEAK", profile.get("memory_peak_bytes"), profile.get("memory_note"))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = proc.stdout.split("PEAK", 1)[1].split()[0]
    assert int(peak) >= 256 * 1024 * 4  # the (256, 1024) activation
