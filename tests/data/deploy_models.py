"""Models for the deployment-mode tests, referenced from a case as `deploy_models.py:NAME`."""

from __future__ import annotations


def digamma_classifier(features: int = 8, classes: int = 4):
    """A classifier with tf.math.digamma inside: TF Lite has no builtin kernel for Digamma (checked with TF
    2.21's converter: "'tf.Digamma' op is neither a custom op nor a flex op"), while a SavedModel runs it."""
    import keras
    import tensorflow as tf

    inp = keras.Input((features,))
    h = keras.layers.Lambda(lambda t: tf.math.digamma(tf.abs(t) + 1.0), name="digamma")(inp)
    return keras.Model(inp, keras.layers.Dense(classes)(h))
