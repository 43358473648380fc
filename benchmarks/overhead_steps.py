import tensorflow as tf


def add_one(x):
    return x + 1.0


def tiny_inputs():
    x = tf.ones((4, 4))
    while True:
        yield (x,), {}
