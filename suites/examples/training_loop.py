"""The custom training step of TensorFlow's "training loop from scratch" guide, as a user writes it: a
module-level model, optimizer, loss and metric, and a `tf.function` step with `GradientTape` and
`optimizer.apply`. The step trains: every call changes the weights, the optimizer's slots and the metric. A
`function:` case times it in each mode; `tfperf tune` checks its outputs from the same state
(tfperf/measure/step_state.py)."""

import keras
import numpy as np
import tensorflow as tf

inputs = keras.Input(shape=(784,), name="digits")
x1 = keras.layers.Dense(64, activation="relu")(inputs)
x2 = keras.layers.Dense(64, activation="relu")(x1)
outputs = keras.layers.Dense(10, name="predictions")(x2)
model = keras.Model(inputs=inputs, outputs=outputs)

optimizer = keras.optimizers.Adam(learning_rate=1e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
train_acc_metric = keras.metrics.SparseCategoricalAccuracy()


@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss_value = loss_fn(y, logits)
    grads = tape.gradient(loss_value, model.trainable_weights)
    optimizer.apply(grads, model.trainable_weights)
    train_acc_metric.update_state(y, logits)
    return loss_value


def batches(batch_size: int = 64, count: int = 8):
    """MNIST-shaped batches (random pixels, fixed seed): the same items in every call and every process."""
    rng = np.random.default_rng(0)
    data = [
        (
            tf.constant(rng.random((batch_size, 784), dtype=np.float32)),
            tf.constant(rng.integers(0, 10, size=(batch_size,)), dtype=tf.int32),
        )
        for _ in range(count)
    ]
    return [((x, y), {}) for x, y in data]
