"""Models and datasets for suites/input_pipeline.yaml: the TF "tf.data performance" guide's benchmark, where a
training step is `time.sleep(0.01)`, rebuilt as a Keras model whose step takes a fixed time.

A fixed step makes the input pipeline's share of it the only thing the cases change, so the ratios between
them are the pipeline's, as in the guide, and hold on a loaded machine (a sleep does not compete for the CPU).
"""

import time

import keras
import tensorflow as tf


class FixedCost(keras.layers.Layer):
    """Identity on its input, plus `step_ms` of wall time per call (a sleep, like the guide's training step).

    The sleep runs in a py_function on a side branch: the gradient goes around it."""

    def __init__(self, step_ms: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.step_ms = float(step_ms)

    def call(self, x):
        seconds = self.step_ms / 1000.0

        def _sleep(v):
            time.sleep(seconds)
            return v

        done = tf.py_function(_sleep, [tf.reduce_sum(x)], tf.float32)
        done.set_shape(())
        return x + 0.0 * tf.stop_gradient(done)

    def compute_output_shape(self, input_shape):
        return input_shape


def fixed_step_model(step_ms: float = 10.0, features: int = 16, classes: int = 4) -> keras.Model:
    """A small dense classifier whose every step (train or infer) lasts at least `step_ms`."""
    inputs = keras.Input(shape=(features,))
    x = FixedCost(step_ms)(inputs)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def slow_map_dataset(
    batch_size: int, map_cost_ms: float = 8.0, features: int = 16, classes: int = 4, elements: int = 64
) -> tf.data.Dataset:
    """A user `dataset:` with a slow per-element step (a sleep in a py_function), no parallelism and no
    prefetch: what-if runs can only wrap it (an appended prefetch, tf.data.Options)."""
    x = tf.random.stateless_normal((elements, features), seed=[1, 2])
    y = tf.random.stateless_uniform((elements,), seed=[3, 4], maxval=classes, dtype=tf.int32)

    def slow(i):
        time.sleep(map_cost_ms / 1000.0)
        return i

    def element(i):
        i = tf.py_function(slow, [i], tf.int64)
        i.set_shape(())
        return tf.gather(x, i), tf.gather(y, i)

    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False
    return (
        tf.data.Dataset.range(elements)
        .map(element)
        .batch(batch_size, drop_remainder=True)
        .with_options(options)
    )
