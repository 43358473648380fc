"""Plain TensorFlow steps for `function:` cases. A `function:` case times a Python function of TF ops in each
mode; its `inputs:` callable returns an iterable of (args, kwargs), one item per step."""

import tensorflow as tf


def matmul_chain(x, w):
    # A chain of dependent matmuls: compute-bound, the kind of step XLA can fuse around.
    for _ in range(4):
        x = tf.nn.relu(tf.matmul(x, w))
    return tf.reduce_sum(x)


def matmul_inputs(size: int = 128):
    x = tf.random.stateless_normal((size, size), seed=[1, 2])
    w = tf.random.stateless_normal((size, size), seed=[3, 4]) * 0.05
    while True:
        yield (x, w), {}
