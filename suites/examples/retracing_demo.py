"""Retracing demonstrators for suites/retracing.yaml: each step retraces for one reason, beside its fix.

A `function:` step is wrapped in tf.function by tfperf (or tf.function(jit_compile=True) under xla); a step
that is already a tf.function keeps its own input_signature / reduce_retracing. An `inputs:` callable returns
an iterable of (args, kwargs), one item per call.
"""

import itertools

import tensorflow as tf

FEATURES = 16
VOCAB = 1000
SEQ_LENGTHS = (
    8,
    12,
    16,
    24,
)  # a different sequence length per batch, as a text pipeline without padding gives
BATCH = 4

# --- 1. a Python scalar argument ---------------------------------------------------------------------------


def scaled(x, scale):
    """`scale` is a Python float: each new value is a new constant baked into a new graph."""
    return tf.reduce_sum(tf.nn.relu(x * scale))


def python_scale_inputs():
    x = tf.random.stateless_normal((8, FEATURES), seed=[1, 2])
    for scale in itertools.cycle([3.0, 4.0, 5.0]):
        yield (x,), {"scale": scale}  # retraces: scale: 3.0 -> 4.0 (python float)


def tensor_scale_inputs():
    x = tf.random.stateless_normal((8, FEATURES), seed=[1, 2])
    scales = [tf.constant(s) for s in (3.0, 4.0, 5.0)]
    for scale in itertools.cycle(scales):
        yield (x,), {"scale": scale}  # the fix: a tensor; new values reuse the trace


# --- 2. varying sequence lengths ----------------------------------------------------------------------------

_table = None


def _embedding():
    # Created once, outside any trace: a tf.Variable made inside a traced call would add a trace of its own.
    global _table
    if _table is None:
        _table = tf.Variable(tf.random.stateless_normal((VOCAB, FEATURES), seed=[5, 6]), name="embedding")
    return _table


def encode(tokens):
    """Mean-pooled embeddings of a (batch, length) int32 batch: every new length traces a new graph."""
    vectors = tf.gather(_embedding(), tokens)
    return tf.reduce_sum(tf.reduce_mean(tf.nn.tanh(vectors), axis=1))


# The fixes. input_signature: one trace, None where the length varies.
encode_with_signature = tf.function(encode, input_signature=[tf.TensorSpec([BATCH, None], tf.int32)])
# reduce_retracing: the second length makes TensorFlow generalise to (4, None); then no more traces (2 in
# all).
encode_reduce_retracing = tf.function(encode, reduce_retracing=True)


def varying_length_inputs():
    _embedding()
    batches = [
        tf.random.stateless_uniform((BATCH, n), seed=[n, 7], maxval=VOCAB, dtype=tf.int32)
        for n in SEQ_LENGTHS
    ]
    for tokens in itertools.cycle(batches):
        yield (tokens,), {}  # retraces: tokens: shape (4, 8) -> (4, 12) (dim 1)


# --- 3. a new Python object per call ------------------------------------------------------------------------


class Scale:
    """A plain Python object: tf.function traces it by identity, so every new instance retraces."""

    def __init__(self, factor):
        self.factor = factor


class ScaleSpec(tf.experimental.ExtensionType):
    """The fix: an ExtensionType is traced by its fields' specs, so new instances reuse the trace."""

    factor: tf.Tensor


def apply_scale(x, config):
    return tf.reduce_sum(x * config.factor)


def new_object_inputs():
    x = tf.random.stateless_normal((8, FEATURES), seed=[1, 2])
    factor = tf.constant(2.0)
    while True:
        yield (x, Scale(factor)), {}  # retraces: config: a new Python object (a new instance of class Scale)


def extension_type_inputs():
    x = tf.random.stateless_normal((8, FEATURES), seed=[1, 2])
    factor = tf.constant(2.0)
    while True:
        yield (x, ScaleSpec(factor)), {}
