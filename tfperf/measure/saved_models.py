"""Saved models as a case's model: `model: path/to/model.keras` (loaded with Keras) and `model:
path/to/saved_model/` (a SavedModel folder: its `serving_default` signature, called as TF Serving calls it,
fed from the signature's own input specs). A SavedModel has no training step of its own: its cases run task:
infer. Imports TensorFlow: used only inside worker processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tfperf.measure.keras_compat import load_model_file
from tfperf.measure.model_inputs import InputStructure, ModelInputError, NamedInput
from tfperf.suite.references import ModelPath
from tfperf.suite.spec import InputSpec

SERVING = "serving_default"


class ServingSignature:
    """A SavedModel's serving signature, called like a Keras model: `sig(x, training=False)`, x one tensor or
    a dict by input name. Returns the output tensor, or the dict of outputs when the signature has several."""

    def __init__(self, path: Path, signature: str = SERVING):
        import tensorflow as tf

        self.path = Path(path)
        self.loaded = tf.saved_model.load(str(path))  # kept: the signature's variables live as long as this
        if signature not in self.loaded.signatures:
            raise ModelInputError(
                f"model: {path}: no signature {signature!r}; it has "
                f"{', '.join(self.loaded.signatures) or 'none'}"
            )
        self.signature_name = signature
        self.fn = self.loaded.signatures[signature]
        self.input_specs: dict[str, Any] = dict(self.fn.structured_input_signature[1])
        self.output_names = sorted(self.fn.structured_outputs)
        self.name = self.path.name or "saved_model"

    def __call__(self, x: Any, training: bool = False) -> Any:
        kwargs = dict(x) if isinstance(x, dict) else {next(iter(self.input_specs)): x}
        out = self.fn(**kwargs)
        return out[self.output_names[0]] if len(self.output_names) == 1 else out

    def inputs(
        self, ref: str, given: InputSpec | None, by_name: dict[str, InputSpec] | None
    ) -> InputStructure:
        """The signature's inputs (name, shape, dtype); the suite's `input:` sets what the signature leaves
        open."""
        by_name = dict(by_name or {})
        names = list(self.input_specs)
        unknown = sorted(set(by_name) - set(names))
        if unknown:
            raise ModelInputError(
                f"model: {ref}: input: names {', '.join(repr(u) for u in unknown)}, which the "
                f"signature {self.signature_name} does not have; its inputs: {', '.join(names)}"
            )
        if given is not None and len(names) == 1:
            by_name = {names[0]: given}
        out = []
        for name, spec in self.input_specs.items():
            override = by_name.get(name)
            shape = override.shape if override is not None else tuple(spec.shape.as_list()[1:])
            if any(d is None for d in shape):
                raise ModelInputError(
                    f"model: {ref}: input '{name}' of signature {self.signature_name} has shape "
                    f"{list(shape)}: set it with input: {{{name}: {{shape: [...]}}}}"
                )
            dtype = override.dtype if override is not None and override.dtype else spec.dtype.name
            maxval = override.maxval if override is not None else None
            out.append(
                NamedInput(name, InputSpec(shape=tuple(int(d) for d in shape), dtype=dtype, maxval=maxval))
            )
        # A one-input signature is fed one tensor (ServingSignature names it), as the deployment modes feed
        # one.
        return InputStructure("single" if len(out) == 1 else "dict", tuple(out), "model")


def load_model_path(ref: ModelPath) -> Any:
    """A saved model reference, loaded: a Keras model from a file, a ServingSignature from a SavedModel
    folder."""
    if ref.kind == "saved_model":
        return ServingSignature(ref.path)
    return load_model_file(ref.path)
