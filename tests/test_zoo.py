"""The built-in models: each builds for any batch size, runs forward and trains one step, with real
TensorFlow.

ResNet50 and MobileNetV2 run forward and train one step eagerly here: tracing and optimizing their train step
under tf.function costs 30-45 s on this 2-core CPU (measured: ResNet50 trace 21 s + first call 24 s), which
the suites measure anyway.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tfperf.errors import TfperfError
from tfperf.suite.spec import InputSpec, LabelsSpec
from tfperf.zoo import MODELS, ZooModel, describe_models, get_model, resolve_input, resolve_labels

ALL = ("mlp", "small_cnn", "resnet50", "mobilenet_v2", "transformer_encoder", "lstm", "wide_deep")
# Small params for the test; the defaults are CI-sized already, these are smaller still.
SMALL = {
    "mlp": {"hidden": 32},
    "small_cnn": {"filters": 8},
    "resnet50": {},
    "mobilenet_v2": {"alpha": 0.35},
    "transformer_encoder": {"embed_dim": 16, "num_layers": 1, "ff_dim": 32, "seq_len": 16},
    "lstm": {"units": 16, "seq_len": 8},
    "wide_deep": {"num_features": 4, "vocab_size": 500, "hidden": [16]},
}
EAGER_TRAIN = {"resnet50", "mobilenet_v2"}  # see the module docstring
BATCH = 2


def make_batch(inp: InputSpec, labels: LabelsSpec, batch: int = BATCH, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (batch, *inp.shape)
    if inp.maxval is not None:
        x = rng.integers(0, inp.maxval, size=shape).astype(inp.dtype)
    else:
        x = rng.standard_normal(shape).astype(inp.dtype)
    if labels.classes is not None:
        y = rng.integers(0, labels.classes, size=(batch,)).astype("int32")
    else:
        y = rng.standard_normal((batch, *(labels.shape or ()))).astype(labels.dtype or "float32")
    return x, y


def train_step_fn(model, labels: LabelsSpec):
    """The harness's train step: forward, loss, gradients, Adam update (optimizer built before the first
    call)."""
    import keras

    from tfperf.measure.model_step import loss_for, train_step

    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    optimizer.build(model.trainable_variables)
    return train_step(model, loss_for(labels), optimizer)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    # Only a test after one that built a model has a Keras session to clear: the tests that build none must
    # not import Keras (and TensorFlow) for it.
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    yield


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", ALL)
def test_model_builds_runs_forward_and_trains_one_step(name):
    import tensorflow as tf

    entry = MODELS[name]
    params = entry.merge_params(SMALL[name])
    inp, labels = resolve_input(entry, None, params), resolve_labels(entry, None, params)
    model = entry.build(SMALL[name], None, None)

    assert model.inputs[0].shape[0] is None, (
        "the batch dimension must be free: one model for every batch size"
    )
    assert tuple(model.inputs[0].shape[1:]) == tuple(inp.shape)
    assert model.inputs[0].dtype == inp.dtype
    x, y = make_batch(inp, labels)
    if inp.maxval is not None:
        assert x.max() < inp.maxval

    out = np.asarray(model(x, training=False))
    assert out.shape == (BATCH, labels.classes)
    assert np.isfinite(out).all()
    # Logits, not probabilities: a softmax output would sum to 1 per row.
    assert not np.allclose(out.sum(axis=1), 1.0, atol=1e-3)

    step = train_step_fn(model, labels)
    if name not in EAGER_TRAIN:
        step = tf.function(step)
    before = [v.numpy().copy() for v in model.trainable_variables]
    loss = float(step(tf.constant(x), tf.constant(y)))
    assert np.isfinite(loss) and loss > 0
    changed = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
    assert changed > len(before) // 2, f"only {changed}/{len(before)} variables moved after one Adam step"
    if name not in EAGER_TRAIN:
        step(tf.constant(x), tf.constant(y))
        assert step.experimental_get_tracing_count() == 1, "same shapes must not retrace"


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", ["mlp", "small_cnn"])
def test_cheap_models_train_under_xla(name):
    import tensorflow as tf

    entry = MODELS[name]
    model = entry.build(SMALL[name])
    inp = resolve_input(entry, None, SMALL[name])
    labels = resolve_labels(entry, None, SMALL[name])
    step = tf.function(train_step_fn(model, labels), jit_compile=True)
    x, y = make_batch(inp, labels)
    first = float(step(tf.constant(x), tf.constant(y)))
    for _ in range(5):
        last = float(step(tf.constant(x), tf.constant(y)))
    assert np.isfinite(first) and last < first, "Adam on one fixed batch must lower its loss"


@pytest.mark.tensorflow
def test_one_model_serves_every_batch_size():
    entry = MODELS["small_cnn"]
    model = entry.build(SMALL["small_cnn"])
    for batch in (1, 3, 8):
        x, _ = make_batch(entry.default_input, entry.default_labels, batch=batch)
        assert model(x).shape == (batch, 10)


@pytest.mark.tensorflow
def test_case_input_and_labels_override_defaults():
    # A regression target of shape [3] gets a linear head shaped like it (trained with MSE by the harness).
    entry = MODELS["mlp"]
    model = entry.build({"hidden": 16}, InputSpec(shape=(5, 4)), LabelsSpec(shape=(3,), dtype="float32"))
    x = np.zeros((2, 5, 4), "float32")
    assert model(x).shape == (2, 3)
    # The case's `classes` decide the logits, whatever the `classes` param says.
    cnn = MODELS["small_cnn"].build({"filters": 4}, InputSpec(shape=(16, 16, 1)), LabelsSpec(classes=7))
    assert cnn(np.zeros((2, 16, 16, 1), "float32")).shape == (2, 7)
    # A shorter sequence sizes the position embedding.
    tr = MODELS["transformer_encoder"].build(
        {"embed_dim": 8, "num_layers": 1}, InputSpec(shape=(12,), dtype="int32")
    )
    assert tr(np.ones((2, 12), "int32")).shape == (2, 2)
    assert tr.get_layer("position_embedding").input_dim == 12


@pytest.mark.tensorflow
def test_layers_have_meaningful_names():
    model = MODELS["transformer_encoder"].build({"num_layers": 2, "embed_dim": 8})
    names = {layer.name for layer in model.layers}
    assert {"token_embedding", "position_embedding", "attention_0", "attention_1", "logits"} <= names
    # The position table is a trained weight of the model, not a constant folded in at build time.
    assert any("position_embedding" in v.path for v in model.trainable_variables)
    names = {layer.name for layer in MODELS["wide_deep"].build({"num_features": 3, "vocab_size": 50}).layers}
    assert {"wide_linear", "embedding_0", "embedding_2", "dense_0", "deep_logits"} <= names


def test_unknown_param_names_it_and_the_valid_ones():
    with pytest.raises(TypeError) as err:
        MODELS["mlp"].build({"hiden": 10})
    assert "'hiden'" in str(err.value) and "hidden" in str(err.value).split("valid:")[1]


def test_get_model_names_the_valid_models():
    assert get_model("lstm") is MODELS["lstm"]
    with pytest.raises(TfperfError, match="built-in: mlp, small_cnn"):
        get_model("resnet")


@pytest.mark.tensorflow
def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="at least 32x32"):
        MODELS["mobilenet_v2"].build({}, InputSpec(shape=(16, 16, 3)))
    with pytest.raises(ValueError, match="integer ids"):
        MODELS["lstm"].build({}, InputSpec(shape=(8,), dtype="float32"))
    with pytest.raises(ValueError, match="exceeds vocab_size"):
        MODELS["wide_deep"].build({"vocab_size": 10}, InputSpec(shape=(4,), dtype="int32", maxval=100))


def test_resolve_specs_follow_params():
    entry = MODELS["transformer_encoder"]
    inp = resolve_input(entry, None, {"vocab_size": 50, "seq_len": 9})
    assert inp == InputSpec(shape=(9,), dtype="int32", maxval=50)
    # A case's integer input without maxval gets the vocabulary bound, so ids never index past the table.
    assert resolve_input(entry, InputSpec(shape=(4,), dtype="int32"), {"vocab_size": 50}).maxval == 50
    assert resolve_input(MODELS["mlp"], InputSpec(shape=(3,)), None) == InputSpec(shape=(3,))
    assert resolve_labels(MODELS["resnet50"], None, {"classes": 4}) == LabelsSpec(classes=4)
    assert resolve_labels(MODELS["resnet50"], LabelsSpec(classes=3), {"classes": 4}) == LabelsSpec(classes=3)
    assert MODELS["resnet50"].default_labels == LabelsSpec(classes=10)


def test_describe_models_lists_all_seven_with_defaults():
    described = describe_models()
    assert [d["name"] for d in described] == list(ALL)
    for d in described:
        entry = MODELS[d["name"]]
        assert isinstance(entry, ZooModel)
        assert d["params"] == entry.params and d["description"] and "\n" not in d["description"]
        assert d["input_shape"] == list(entry.default_input.shape) and d["input_dtype"]
        assert d["labels"].startswith("classes=")
    by_name = {d["name"]: d for d in described}
    assert by_name["wide_deep"]["input"] == "[8] int32 in [0, 10000)"
    json.dumps(described)  # `tfperf list --format json`


def test_importing_the_zoo_does_not_import_tensorflow():
    code = (
        "import sys, tfperf.zoo as z; z.describe_models(); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
