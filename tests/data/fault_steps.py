"""Steps and models for the fault-isolation tests: each misbehaves in one specific way."""

import os
import time

import tensorflow as tf


def add_one(x):
    return x + 1.0


def square_inputs():
    x = tf.ones((4, 4))
    while True:
        yield (x,), {}


def raising_model(**params):
    raise RuntimeError("factory exploded on purpose")


def abort_when_eager(x):
    # Only the eager job dies, so the restarted worker can still run the function job.
    if tf.executing_eagerly():
        os.abort()
    return x * 2.0


def sleep_forever(x):
    time.sleep(600)
    return x


def string_length(x):
    # AsString has no XLA kernel: fails under jit_compile=True, runs eagerly and as a graph.
    return tf.strings.length(tf.strings.as_string(x))


def growing_inputs():
    n = 0
    while True:
        n += 1
        yield (tf.ones((n, 3)),), {}


def tiny_mlp(hidden: int = 16):
    import keras

    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(4)]
    )


def sleep_when_traced(x):
    # Eager calls return at once; tracing it (mode function) hangs: the second job of the case never ends.
    if not tf.executing_eagerly():
        time.sleep(600)
    return x + 1.0
