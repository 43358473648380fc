"""What a model is fed, read from the model itself: its inputs (one tensor, a list, or a dict by name), each
input's shape and dtype, the vocabulary an integer input indexes, the sequence length the model leaves open,
and the labels its output implies. A suite's `input:` (one input) or `input: {name: {...}}` (by name)
overrides any of it; with `dataset:` the dataset's `element_spec` says everything and the model is not asked.

Works for Keras 3 and Keras 2 (`tf_keras`) models alike: both expose `model.input` (the nested structure the
model was built on) and, per layer, the inbound nodes whose input tensors tell which layer consumes an input.
Imports TensorFlow: used only inside worker processes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tfperf.suite.spec import InputSpec, LabelsSpec

INT_KINDS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@dataclass(frozen=True)
class NamedInput:
    """One input of a model: its name (the dict key, or the Input layer's name), spec, and what it is for.
    role "mask": a padding mask, fed all ones (random zeros could mask out a whole row, which is not the
    model's real work); role "features": random values (integers below `spec.maxval`)."""

    name: str
    spec: InputSpec
    role: str = "features"


@dataclass(frozen=True)
class InputStructure:
    """A model's inputs in the structure it takes them: `kind` single (one tensor), list (positional) or
    dict."""

    kind: str  # single | list | dict
    inputs: tuple[NamedInput, ...]
    source: str = "model"  # model | suite | dataset: where the shapes and dtypes came from

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def pipeline(self) -> Any:
        """The suite's synthetic pipeline, when one was given for a single input (a structure has none)."""
        return self.inputs[0].spec.pipeline if self.kind == "single" else None

    def pack(self, values: list[Any]) -> Any:
        """Values in input order, in the structure the model is called with."""
        if self.kind == "single":
            return values[0]
        if self.kind == "dict":
            return {i.name: v for i, v in zip(self.inputs, values)}
        return list(values)

    def describe(self) -> dict:
        """`setup.model_inputs`: each input's shape, dtype, maxval and where they came from."""
        return {
            "source": self.source,
            "kind": self.kind,
            "inputs": {
                i.name: {
                    "shape": list(i.spec.shape),
                    "dtype": i.spec.dtype,
                    "maxval": i.spec.maxval,
                    **({"role": i.role} if i.role != "features" else {}),
                }
                for i in self.inputs
            },
        }


class ModelInputError(ValueError):
    """The model's inputs cannot be fed as asked: an open dimension no one sets, an override of an unknown
    input."""


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def _shape(tensor: Any) -> tuple[int | None, ...]:
    shape = tensor.shape
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return tuple(None if d is None else int(d) for d in dims[1:])


def _symbolic_inputs(model: Any) -> tuple[str, list[tuple[str, Any]]]:
    """(kind, [(name, symbolic tensor)]) from the structure the model was built on."""
    try:
        structure = model.input
    except (AttributeError, ValueError):  # a subclassed model never called, a Sequential without an Input
        structure = None
    if structure is None:
        return "none", []
    if isinstance(structure, dict):
        return "dict", [(str(k), v) for k, v in structure.items()]
    if isinstance(structure, (list, tuple)):
        if len(structure) == 1:
            return "single", [(_tensor_name(structure[0], 0), structure[0])]
        return "list", [(_tensor_name(t, i), t) for i, t in enumerate(structure)]
    return "single", [(_tensor_name(structure, 0), structure)]


def _tensor_name(t: Any, index: int) -> str:
    name = str(getattr(t, "name", "") or f"input_{index}")
    return name.split(":")[0]


def _layers(model: Any) -> list[Any]:
    flatten = getattr(model, "_flatten_layers", None)
    return list(flatten(include_self=True, recursive=True)) if flatten else [model]


def _node_inputs(node: Any) -> list[Any]:
    # Keras 3 nodes list their inputs as `input_tensors`; tf_keras (Keras 2) as `keras_inputs`.
    for attr in ("input_tensors", "keras_inputs"):
        value = getattr(node, attr, None)
        if value is not None:
            return list(value) if isinstance(value, (list, tuple)) else [value]
    return []


def _embedding_classes() -> tuple[type, ...]:
    import sys

    import keras

    classes: list[type] = [keras.layers.Embedding]
    if "tf_keras" in sys.modules:
        classes.append(sys.modules["tf_keras"].layers.Embedding)
    return tuple(classes)


def consumer_vocabulary(model: Any, tensor: Any) -> int | None:
    """The vocabulary of the Embedding that consumes `tensor` (its `input_dim`), looking into nested models (a
    keras-hub task passes its inputs to its backbone unchanged: the same symbolic tensors). None when no
    Embedding reads it directly (a mask, a lookup layer, a cast first)."""
    found: list[int] = []
    embeddings = _embedding_classes()
    for layer in _layers(model):
        for node in getattr(layer, "_inbound_nodes", None) or []:
            if any(t is tensor for t in _node_inputs(node)):
                if isinstance(layer, embeddings):
                    found.append(int(layer.input_dim))
                token = getattr(layer, "token_embedding", None)  # a token-and-position embedding wrapper
                if isinstance(token, embeddings):
                    found.append(int(token.input_dim))
    return min(found) if found else None


def model_sequence_length(model: Any) -> int | None:
    """The longest sequence the model says it takes: a position embedding's `sequence_length` (keras-hub's
    PositionEmbedding), a backbone's `max_sequence_length`; the shortest of them when several say one."""
    lengths = []
    for layer in _layers(model):
        for attr in ("sequence_length", "max_sequence_length"):
            value = getattr(layer, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                lengths.append(value)
    return min(lengths) if lengths else None


def _override_hint(name: str, kind: str) -> str:
    return "input: {shape: [...]}" if kind == "single" else f"input: {{{name}: {{shape: [...]}}}}"


def inputs_from_model(
    model: Any, ref: str, given: InputSpec | None = None, by_name: dict[str, InputSpec] | None = None
) -> InputStructure:
    """The model's inputs, each from the model unless the suite overrides it (`given` for a one-input model,
    `by_name` for any input by name). Raises ModelInputError naming the input and the key to set."""
    kind, tensors = _symbolic_inputs(model)
    by_name = dict(by_name or {})
    if kind == "none":
        if given is not None and not by_name:
            return InputStructure("single", (NamedInput("input", given),), "suite")
        raise ModelInputError(
            f"model: {ref}: the model does not say its inputs (no keras.Input, not built): "
            "give the case input: {shape: [...], dtype: ...}"
        )
    names = [n for n, _ in tensors]
    unknown = sorted(set(by_name) - set(names))
    if unknown:
        raise ModelInputError(
            f"model: {ref}: input: names {', '.join(repr(u) for u in unknown)}, which the model "
            f"does not have; its inputs: {', '.join(names)}"
        )
    if given is not None:
        if len(tensors) != 1:
            raise ModelInputError(
                f"model: {ref}: the model takes {len(tensors)} inputs ({', '.join(names)}): give "
                f"each by name, input: {{{names[0]}: {{shape: [...]}}, ...}}"
            )
        by_name = {names[0]: given}
    seq_len = model_sequence_length(model)
    out = []
    for name, tensor in tensors:
        override = by_name.get(name)
        dtype = override.dtype if override is not None and override.dtype else _dtype_name(tensor.dtype)
        shape: tuple[int | None, ...] = override.shape if override is not None else _shape(tensor)
        if any(d is None for d in shape):
            if seq_len is None:
                raise ModelInputError(
                    f"model: {ref}: input '{name}' has shape {[d for d in shape]} and the model does not say "
                    "the "
                    "open dimension (no position embedding's length): set it with "
                    f"{_override_hint(name, kind)}"
                )
            shape = tuple(seq_len if d is None else d for d in shape)
        maxval = override.maxval if override is not None else None
        role = "mask" if "mask" in name.lower() and maxval is None else "features"
        if dtype in INT_KINDS and maxval is None and role == "features":
            maxval = consumer_vocabulary(model, tensor)
        spec = InputSpec(
            shape=tuple(int(d) for d in shape),
            dtype=dtype,
            maxval=maxval,
            pipeline=override.pipeline if override is not None else None,
        )
        out.append(NamedInput(name, spec, role))
    source = "suite" if by_name and len(by_name) == len(out) else "model"
    return InputStructure(kind, tuple(out), source)


def inputs_from_element_spec(element_spec: Any, ref: str) -> tuple[InputStructure, Any]:
    """(the features' structure, the labels' TensorSpec or None) from a dataset of (features, labels)
    batches."""
    import tensorflow as tf

    features, labels = (
        (element_spec[0], element_spec[1])
        if isinstance(element_spec, tuple) and len(element_spec) == 2
        else (element_spec, None)
    )

    def spec_of(name: str, s: Any) -> NamedInput:
        if not isinstance(s, tf.TensorSpec):
            raise ModelInputError(
                f"dataset: {ref}: input '{name}' is a {type(s).__name__}; tfperf feeds tensors"
            )
        # A dimension the dataset leaves open stays None: the dataset feeds the steps, nothing is synthesized.
        return NamedInput(name, InputSpec(shape=tuple(s.shape.as_list()[1:]), dtype=s.dtype.name))

    if isinstance(features, dict):
        structure = InputStructure("dict", tuple(spec_of(str(k), v) for k, v in features.items()), "dataset")
    elif isinstance(features, (list, tuple)):
        structure = InputStructure(
            "list", tuple(spec_of(f"input_{i}", v) for i, v in enumerate(features)), "dataset"
        )
    else:
        structure = InputStructure("single", (spec_of("input", features),), "dataset")
    return structure, labels


def as_spec(structure: InputStructure) -> InputSpec | InputStructure:
    """A one-input structure as the InputSpec the deployment modes and older callers take; else the
    structure."""
    return structure.inputs[0].spec if structure.kind == "single" else structure


def labels_from_model(model: Any, seq_len: int | None = None) -> LabelsSpec:
    """Labels that follow the model's first output: integer classes for a (batch, classes) output, sequences
    of class ids for a language model's (batch, length, vocabulary), else float targets of the output's
    shape."""
    outputs = getattr(model, "outputs", None) or []
    out_shape = _shape(outputs[0]) if outputs else ()
    out_shape = tuple(seq_len if d is None and seq_len else d for d in out_shape)
    if any(d is None for d in out_shape):
        raise ModelInputError(
            f"the model's output shape {list(out_shape)} has an open dimension: give the case "
            "labels: {classes: N} or labels: {shape: [...]}"
        )
    if (
        len(out_shape) == 1 and out_shape[0] and out_shape[0] > 1
    ):  # one unit: a score or a logit, a float target
        return LabelsSpec(classes=out_shape[0])
    if len(out_shape) == 2 and out_shape[1] > 1:
        return LabelsSpec(classes=out_shape[1], shape=(out_shape[0],))  # per-position class ids
    return LabelsSpec(shape=tuple(int(d) for d in out_shape), dtype="float32")


def labels_from_spec(spec: Any, model: Any) -> LabelsSpec:
    """A dataset's labels: integer ids are classes (as many as the model's output units), floats are
    targets."""
    if spec is None:
        return labels_from_model(model)
    shape = tuple(spec.shape.as_list()[1:])
    if spec.dtype.is_integer:
        units = labels_from_model(model)
        if units.classes:
            return dataclasses.replace(units, shape=shape or None)
    # Float targets (or integer ones for a single-unit output, a 0/1 click): mean squared error.
    return LabelsSpec(shape=tuple(d or 1 for d in shape), dtype="float32")
