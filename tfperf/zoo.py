"""The built-in models a suite names as `zoo:NAME`: Keras 3 models sized by `params`, CI-sized by default (the
same models in Keras 2, tf_keras, for a case with `keras: 2` or `keras: [3, 2]`).

Importing this module does not import TensorFlow or Keras (`tfperf list` and suite validation stay fast):
each builder imports keras when it runs. Every model has an explicit `keras.Input` whose batch dimension is
None, so one model serves every batch size of a sweep. Classifiers output logits (no softmax): the harness
pairs labels with `classes` with SparseCategoricalCrossentropy(from_logits=True), and labels with a
shape/dtype with mean squared error, for which the head is linear and shaped like the labels.

Layers carry explicit, meaningful names (`dense_0`, `attention_1`, `embedding_3`) because the profiler
attributes op time per Keras layer scope. Weights are never downloaded (`weights=None` always).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from tfperf.errors import TfperfError
from tfperf.suite.spec import InputSpec, LabelsSpec

INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@dataclass(frozen=True)
class ZooModel:
    """One built-in model: its defaults and how to build it for a case's params, input and labels."""

    name: str
    description: str  # one line, shown by `tfperf list`
    params: dict[str, Any]  # parameter -> default
    default_input: InputSpec  # under the default params
    default_labels: LabelsSpec
    builder: Callable[[dict[str, Any], InputSpec, LabelsSpec], Any] = field(repr=False, compare=False)
    # The input/labels the params imply (e.g. token ids below `vocab_size`, `classes` outputs); None: fixed.
    specs_for: Callable[[dict[str, Any]], tuple[InputSpec, LabelsSpec]] | None = field(
        default=None, repr=False, compare=False
    )

    def merge_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """The defaults overridden by `params`; an unknown parameter is a TypeError naming the valid ones."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise TypeError(
                f"zoo:{self.name} got unknown parameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(p) for p in unknown)}; valid: {', '.join(self.params)}"
            )
        return {**self.params, **params}

    def build(
        self,
        params: dict[str, Any] | None = None,
        input: InputSpec | None = None,
        labels: LabelsSpec | None = None,
        keras: int = 3,
    ) -> Any:
        """A keras.Model for these params, fed `input` and trained against `labels` (or the defaults); with
        `keras=2` the same model built in tf_keras."""
        merged = self.merge_params(params)
        _ACTIVE_KERAS["major"] = keras
        try:
            return self.builder(
                merged, resolve_input(self, input, merged), resolve_labels(self, labels, merged)
            )
        finally:
            _ACTIVE_KERAS["major"] = 3


def _specs(entry: ZooModel, params: dict[str, Any] | None) -> tuple[InputSpec, LabelsSpec]:
    if entry.specs_for is None:
        return entry.default_input, entry.default_labels
    return entry.specs_for(entry.merge_params(params))


def resolve_input(
    entry: ZooModel, input: InputSpec | None, params: dict[str, Any] | None = None
) -> InputSpec:
    """The input a case of this model is fed: the case's own, else the one its params imply.

    An integer input without `maxval` gets the model's (token ids below the vocabulary size), so synthetic
    ids never index past an embedding table.
    """
    implied, _ = _specs(entry, params)
    if input is None:
        return implied
    if input.dtype in INT_DTYPES and input.maxval is None and implied.maxval is not None:
        return dataclasses.replace(input, maxval=implied.maxval)
    return input


def resolve_labels(
    entry: ZooModel, labels: LabelsSpec | None, params: dict[str, Any] | None = None
) -> LabelsSpec:
    """The labels a case of this model trains against: the case's own, else `classes` from its params."""
    if labels is not None:
        return labels
    return _specs(entry, params)[1]


# ---- Keras 3 or Keras 2 ------------------------------------------------------------------------------------

# The Keras the builders build with: 3 (keras) unless a case asks for 2 (tf_keras), set by ZooModel.build for
# the duration of one build. A worker builds one model at a time.
_ACTIVE_KERAS = {"major": 3}
INSTALL_TF_KERAS = 'pip install tf-keras (or pip install -e ".[models]")'


def active_keras() -> Any:
    """keras, or tf_keras while a `keras: 2` case's model is being built."""
    if _ACTIVE_KERAS["major"] == 2:
        try:
            import tf_keras
        except ImportError:
            raise TfperfError(
                f"keras: 2 needs Keras 2 (tf_keras), which is not installed: {INSTALL_TF_KERAS}"
            ) from None
        return tf_keras
    import keras

    return keras


def _ops(keras: Any) -> Any:
    """keras.ops under Keras 3; under tf_keras the TensorFlow ops of the same meaning (tf_keras applies TF ops
    to its symbolic tensors as layers)."""
    if hasattr(keras, "ops"):
        return keras.ops
    import types

    import tensorflow as tf

    return types.SimpleNamespace(
        cumsum=tf.math.cumsum,
        ones_like=tf.ones_like,
        squeeze=tf.squeeze,
        arange=lambda n, dtype=None: tf.range(n, dtype=dtype),
    )


# ---- shared pieces ---------------------------------------------------------------------------------------


def _require_rank(name: str, inp: InputSpec, rank: int, what: str) -> None:
    if len(inp.shape) != rank:
        raise ValueError(f"zoo:{name} needs an input of rank {rank} ({what}), got shape {list(inp.shape)}")


def _require_int(name: str, inp: InputSpec, vocab: int) -> None:
    if inp.dtype not in INT_DTYPES:
        raise ValueError(f"zoo:{name} takes integer ids, got input dtype {inp.dtype}")
    if inp.maxval is not None and inp.maxval > vocab:
        raise ValueError(f"zoo:{name}: input maxval {inp.maxval} exceeds vocab_size {vocab}")


def _output_units(name: str, params: dict[str, Any], labels: LabelsSpec) -> int:
    """Logits for `classes` labels (the case's labels win over the `classes` param), else one per target."""
    if labels.classes is not None:
        return labels.classes
    if labels.shape is None:
        raise ValueError(f"zoo:{name}: labels need `classes` or a `shape`")
    return math.prod(labels.shape) if labels.shape else 1


def _head(x: Any, labels: LabelsSpec, units: int, name: str = "logits") -> Any:
    """Linear output layer: logits, or regression targets reshaped to the labels' shape."""
    keras = active_keras()

    out = keras.layers.Dense(units, name=name)(x)
    if labels.classes is None:
        shape = tuple(labels.shape or ())
        out = (
            keras.layers.Reshape(shape or (), name="targets")(out) if shape else _ops(keras).squeeze(out, -1)
        )
    return out


def _input(inp: InputSpec, name: str = "features") -> Any:
    keras = active_keras()

    return keras.Input(shape=tuple(inp.shape), batch_size=None, dtype=inp.dtype, name=name)


def _as_list(value: Any, layers: int | None = None) -> list[int]:
    """`hidden: 256` with `layers: 3` -> [256, 256, 256]; `hidden: [256, 128]` as given."""
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)] * (layers if layers is not None else 1)


def _classify(params: dict[str, Any], inp: InputSpec) -> tuple[InputSpec, LabelsSpec]:
    return inp, LabelsSpec(classes=int(params["classes"]))


def _image_specs(params: dict[str, Any]) -> tuple[InputSpec, LabelsSpec]:
    size = int(params["image_size"])
    return _classify(params, InputSpec(shape=(size, size, 3), dtype="float32"))


def _token_specs(params: dict[str, Any]) -> tuple[InputSpec, LabelsSpec]:
    inp = InputSpec(shape=(int(params["seq_len"]),), dtype="int32", maxval=int(params["vocab_size"]))
    return _classify(params, inp)


# ---- models ----------------------------------------------------------------------------------------------


def _build_mlp(p: dict[str, Any], inp: InputSpec, labels: LabelsSpec) -> Any:
    keras = active_keras()

    x = inputs = _input(inp)
    if len(inp.shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(_as_list(p["hidden"], int(p["layers"]))):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    return keras.Model(inputs, _head(x, labels, _output_units("mlp", p, labels)), name="mlp")


def _build_small_cnn(p: dict[str, Any], inp: InputSpec, labels: LabelsSpec) -> Any:
    keras = active_keras()

    _require_rank("small_cnn", inp, 3, "height, width, channels")
    x = inputs = _input(inp, "images")
    filters = int(p["filters"])
    for i in range(int(p["conv_blocks"])):
        x = keras.layers.Conv2D(filters * 2**i, 3, padding="same", activation="relu", name=f"conv_{i}")(x)
        if min(x.shape[1], x.shape[2]) >= 2:  # tiny images: stop halving at 1x1
            x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = keras.layers.Dense(int(p["dense"]), activation="relu", name="dense_0")(x)
    return keras.Model(inputs, _head(x, labels, _output_units("small_cnn", p, labels)), name="small_cnn")


def _application(
    app: Callable[..., Any], name: str, p: dict[str, Any], inp: InputSpec, labels: LabelsSpec, **kwargs: Any
) -> Any:
    keras = active_keras()

    _require_rank(name, inp, 3, "height, width, channels")
    if min(inp.shape[0], inp.shape[1]) < 32:
        raise ValueError(f"zoo:{name} needs images of at least 32x32, got {list(inp.shape)}")
    if labels.classes is not None:
        # The application's own top (global average pool + Dense "predictions"), as logits.
        if hasattr(keras, "ops"):  # Keras 3's applications take a name; tf_keras' do not
            kwargs["name"] = name
        return app(
            weights=None,
            include_top=True,
            classes=labels.classes,
            classifier_activation=None,
            input_shape=tuple(inp.shape),
            **kwargs,
        )
    base = app(weights=None, include_top=False, pooling="avg", input_shape=tuple(inp.shape), **kwargs)
    out = _head(base.output, labels, _output_units(name, p, labels), name="predictions")
    return keras.Model(base.input, out, name=name)


def _build_resnet50(p: dict[str, Any], inp: InputSpec, labels: LabelsSpec) -> Any:
    keras = active_keras()

    return _application(keras.applications.ResNet50, "resnet50", p, inp, labels)


def _build_mobilenet_v2(p: dict[str, Any], inp: InputSpec, labels: LabelsSpec) -> Any:
    keras = active_keras()

    return _application(
        keras.applications.MobileNetV2, "mobilenet_v2", p, inp, labels, alpha=float(p["alpha"])
    )


def _build_transformer_encoder(p: dict[str, Any], inp: InputSpec, labels: LabelsSpec) -> Any:
    keras = active_keras()

    _require_rank("transformer_encoder", inp, 1, "sequence length")
    vocab = int(p["vocab_size"])
    _require_int("transformer_encoder", inp, vocab)
    seq_len, dim = int(inp.shape[0]), int(p["embed_dim"])
    heads, dropout = int(p["num_heads"]), float(p["dropout"])

    tokens = _input(inp, "tokens")
    x = keras.layers.Embedding(vocab, dim, name="token_embedding")(tokens)
    # Learned positions: one embedding row per position. The ids are derived from `tokens` (0..seq_len-1 on
    # every row) so the embedding is a layer of the model's graph; on a constant it would run once, untrained.
    positions = _ops(keras).cumsum(_ops(keras).ones_like(tokens), axis=1) - 1
    x = x + keras.layers.Embedding(seq_len, dim, name="position_embedding")(positions)
    for i in range(int(p["num_layers"])):
        attended = keras.layers.MultiHeadAttention(
            heads, max(1, dim // heads), dropout=dropout, name=f"attention_{i}"
        )(x, x)
        x = keras.layers.LayerNormalization(name=f"attention_norm_{i}")(x + attended)
        ff = keras.layers.Dense(int(p["ff_dim"]), activation="gelu", name=f"ffn_in_{i}")(x)
        ff = keras.layers.Dense(dim, name=f"ffn_out_{i}")(ff)
        if dropout:
            ff = keras.layers.Dropout(dropout, name=f"ffn_dropout_{i}")(ff)
        x = keras.layers.LayerNormalization(name=f"ffn_norm_{i}")(x + ff)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    out = _head(x, labels, _output_units("transformer_encoder", p, labels))
    return keras.Model(tokens, out, name="transformer_encoder")


def _build_lstm(p: dict[str, Any], inp: InputSpec, labels: LabelsSpec) -> Any:
    keras = active_keras()

    _require_rank("lstm", inp, 1, "sequence length")
    vocab = int(p["vocab_size"])
    _require_int("lstm", inp, vocab)
    tokens = _input(inp, "tokens")
    x = keras.layers.Embedding(vocab, int(p["embed_dim"]), name="embedding")(tokens)
    units = _as_list(p["units"], int(p["layers"]))
    for i, u in enumerate(units):
        x = keras.layers.LSTM(u, return_sequences=i < len(units) - 1, name=f"lstm_{i}")(x)
    out = _head(x, labels, _output_units("lstm", p, labels))
    return keras.Model(tokens, out, name="lstm")


def _build_wide_deep(p: dict[str, Any], inp: InputSpec, labels: LabelsSpec) -> Any:
    keras = active_keras()

    _require_rank("wide_deep", inp, 1, "number of categorical features")
    vocab = int(p["vocab_size"])
    _require_int("wide_deep", inp, vocab)
    n, dim = int(inp.shape[0]), int(p["embed_dim"])
    units = _output_units("wide_deep", p, labels)

    ids = _input(inp, "categorical_ids")
    # Wide: a linear model over the one-hot crossed-out features, i.e. one weight row per (feature, id);
    # offsetting each feature's ids into its own range lets one table hold every feature's weights.
    offsets = _ops(keras).arange(n, dtype=inp.dtype) * vocab
    wide = keras.layers.Embedding(n * vocab, units, name="wide_linear")(ids + offsets)
    wide = keras.layers.GlobalAveragePooling1D(name="wide_sum")(wide)
    # Deep: one embedding table per feature (the memory-heavy part of a recommender), concatenated.
    columns = [keras.layers.Embedding(vocab, dim, name=f"embedding_{i}")(ids[:, i]) for i in range(n)]
    x = keras.layers.Concatenate(name="embeddings")(columns) if n > 1 else columns[0]
    for i, h in enumerate(_as_list(p["hidden"])):
        x = keras.layers.Dense(h, activation="relu", name=f"dense_{i}")(x)
    deep = keras.layers.Dense(units, name="deep_logits")(x)
    out = keras.layers.Add(name="wide_deep_logits")([wide, deep])
    if labels.classes is None:
        shape = tuple(labels.shape or ())
        out = keras.layers.Reshape(shape, name="targets")(out) if shape else _ops(keras).squeeze(out, -1)
    return keras.Model(ids, out, name="wide_deep")


def _entry(
    name: str,
    description: str,
    params: dict[str, Any],
    builder: Callable[..., Any],
    specs_for: Callable[[dict[str, Any]], tuple[InputSpec, LabelsSpec]],
) -> ZooModel:
    inp, labels = specs_for(params)
    return ZooModel(name, description, params, inp, labels, builder, specs_for)


MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in [
        _entry(
            "mlp",
            "Fully connected ReLU layers on flat features (MNIST-sized by default).",
            {"hidden": 256, "layers": 2, "features": 784, "classes": 10},
            _build_mlp,
            lambda p: _classify(p, InputSpec(shape=(int(p["features"]),), dtype="float32")),
        ),
        _entry(
            "small_cnn",
            "Conv2D+max-pool blocks (filters double per block), global pool, dense head.",
            {"filters": 32, "conv_blocks": 2, "dense": 64, "image_size": 32, "classes": 10},
            _build_small_cnn,
            _image_specs,
        ),
        _entry(
            "resnet50",
            "keras.applications.ResNet50, random weights (weights=None), small images allowed (>=32).",
            {"image_size": 32, "classes": 10},
            _build_resnet50,
            _image_specs,
        ),
        _entry(
            "mobilenet_v2",
            "keras.applications.MobileNetV2 (depthwise convs), random weights, width alpha, images >=32.",
            {"alpha": 0.35, "image_size": 32, "classes": 10},
            _build_mobilenet_v2,
            _image_specs,
        ),
        _entry(
            "transformer_encoder",
            "Token + position embeddings, N blocks of MultiHeadAttention + feed-forward "
            "+ LayerNorm, mean-pooled classifier.",
            {
                "vocab_size": 1000,
                "seq_len": 64,
                "embed_dim": 64,
                "num_heads": 2,
                "ff_dim": 128,
                "num_layers": 2,
                "dropout": 0.1,
                "classes": 2,
            },
            _build_transformer_encoder,
            _token_specs,
        ),
        _entry(
            "lstm",
            "Token embedding, stacked keras.layers.LSTM, classifier on the last state.",
            {"vocab_size": 1000, "seq_len": 32, "embed_dim": 32, "units": 64, "layers": 1, "classes": 2},
            _build_lstm,
            _token_specs,
        ),
        _entry(
            "wide_deep",
            "Embedding-heavy recommender: a wide linear part over categorical ids plus "
            "per-feature embeddings through an MLP.",
            {"num_features": 8, "vocab_size": 10000, "embed_dim": 16, "hidden": [128, 64], "classes": 2},
            _build_wide_deep,
            lambda p: _classify(
                p, InputSpec(shape=(int(p["num_features"]),), dtype="int32", maxval=int(p["vocab_size"]))
            ),
        ),
    ]
}


class UnknownModelError(TfperfError, LookupError):
    """`zoo:NAME` names no built-in model."""


def get_model(name: str) -> ZooModel:
    """The built-in model called `name` (without the `zoo:` prefix); an unknown name lists the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"zoo:{name}: no built-in model '{name}'; built-in: {', '.join(MODELS)}"
        ) from None


def _describe_input(inp: InputSpec) -> str:
    text = f"[{', '.join(str(d) for d in inp.shape)}] {inp.dtype}"
    return text + (f" in [0, {inp.maxval})" if inp.maxval is not None else "")


def _describe_labels(labels: LabelsSpec) -> str:
    if labels.classes is not None:
        return f"classes={labels.classes}"
    return f"[{', '.join(str(d) for d in labels.shape or ())}] {labels.dtype or 'float32'}"


def describe_models() -> list[dict[str, Any]]:
    """What `tfperf list` shows: each model's name, description, params with defaults, default input and
    labels."""
    return [
        {
            "name": m.name,
            "description": m.description,
            "params": dict(m.params),
            "input": _describe_input(m.default_input),
            "input_shape": list(m.default_input.shape),
            "input_dtype": m.default_input.dtype,
            "input_maxval": m.default_input.maxval,
            "labels": _describe_labels(m.default_labels),
            "labels_spec": dataclasses.asdict(m.default_labels),
        }
        for m in MODELS.values()
    ]
