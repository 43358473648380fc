"""Steps and models of extra_keys.yaml, the suite that wrote tests/data/results_v1_before_records.json."""

import os
from pathlib import Path

import tensorflow as tf

MARK = Path(os.environ.get("FIXTURE_MARK", "/tmp/later-process.mark"))


def lazy_dense(x):
    # Creates its variable in the first call: tf.function traces that call twice (a first-use trace).
    if not hasattr(lazy_dense, "w"):
        lazy_dense.w = tf.Variable(tf.ones((x.shape[-1], 2)))
    return tf.matmul(x, lazy_dense.w)


def ones_inputs():
    x = tf.ones((4, 3))
    while True:
        yield (x,), {}


def scaled(x, scale):
    return tf.reduce_sum(tf.nn.relu(x * scale))


def python_scale_inputs():
    import itertools

    x = tf.ones((8, 4))
    for scale in itertools.cycle([3.0, 4.0, 5.0]):
        yield (x,), {"scale": scale}


def add_one(x):
    return x + 1.0


def later_process_inputs():
    # The job's first worker process leaves a mark; a later process finds it and dies (process_errors).
    if MARK.exists():
        os.abort()
    MARK.write_text("first process ran")
    return ones_inputs()


def two_inputs():
    import keras

    a = keras.Input((6,), name="dense_features")
    b = keras.Input((4,), name="extra_features")
    h = keras.layers.Concatenate()([a, b])
    out = keras.layers.Dense(3)(keras.layers.Dense(8, activation="relu")(h))
    return keras.Model({"dense_features": a, "extra_features": b}, out)


def tiny_mlp(hidden: int = 16):
    import keras

    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(4)]
    )


def two_outputs():
    import keras

    a = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="relu")(a)
    return keras.Model(a, {"logits": keras.layers.Dense(3)(h), "score": keras.layers.Dense(1)(h)})


def fails_on_worker_1(**params):
    # A multi-worker case whose second worker cannot build its model: the cluster's failure keys.
    import json

    if json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index") == 1:
        raise RuntimeError("worker 1 cannot build the model, on purpose")
    return tiny_mlp()
