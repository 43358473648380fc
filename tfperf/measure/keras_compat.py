"""Keras 3 and Keras 2 (`tf_keras`) models side by side: which Keras a model is, its own losses and
optimizers, and what a model reference may give (a model, a factory's model, a saved model file or folder).

Much production TensorFlow code still builds `tf_keras` models; they are not `keras.Model` instances under
Keras 3, so every place that asks "is this a model?" asks here. tf_keras is optional (`pip install -e
".[models]"`) and is imported only when a model is one of its own (its module is then already loaded).
Imports TensorFlow: used only inside worker processes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tfperf.errors import TfperfError

INSTALL_TF_KERAS = 'pip install tf-keras (or pip install -e ".[models]")'


class NotAModelError(TfperfError, TypeError):
    """A model reference that gave something tfperf cannot time as a model."""


def tf_keras_module() -> Any | None:
    """The tf_keras module when it is loaded (a tf_keras model exists only if it is)."""
    return sys.modules.get("tf_keras")


def import_tf_keras() -> Any:
    """tf_keras, or an error that says how to install it (a `keras: 2` case, a Keras 2 model file)."""
    try:
        import tf_keras
    except ImportError:
        raise NotAModelError(f"Keras 2 (tf_keras) is not installed: {INSTALL_TF_KERAS}") from None
    return tf_keras


def is_tf_keras(model: Any) -> bool:
    tk = tf_keras_module()
    return tk is not None and isinstance(model, tk.Model)


def is_model(obj: Any) -> bool:
    import keras

    return isinstance(obj, keras.Model) or is_tf_keras(obj)


def keras_of(model: Any) -> Any:
    """The Keras package that built `model`: keras (3) or tf_keras (2)."""
    if is_tf_keras(model):
        return tf_keras_module()
    import keras

    return keras


def keras_label(model: Any) -> str | None:
    """`setup.keras`: which Keras ran the model, with its version ("keras 3.15.1", "tf_keras 2.21.0")."""
    if not is_model(model):
        return None
    module = keras_of(model)
    return f"{module.__name__} {module.__version__}"


def clear_sessions() -> None:
    """Fresh layer names per job in both Keras (traces of different modes line up)."""
    import keras

    keras.backend.clear_session()
    tk = tf_keras_module()
    if tk is not None:
        tk.backend.clear_session()


def check_model(obj: Any, ref: str) -> Any:
    """`obj` when it is a Keras 3 or Keras 2 model; else an error naming what it is and what is accepted."""
    if is_model(obj):
        return obj
    kind = type(obj).__module__ + "." + type(obj).__qualname__
    hint = ""
    if hasattr(obj, "signatures"):
        hint = " (a loaded SavedModel: give its folder as model: path/to/saved_model/)"
    raise NotAModelError(
        f"model: {ref} gave {kind}, not a model: a model reference must give a keras.Model "
        f"(Keras 3), a tf_keras.Model (Keras 2), a function returning one, a .keras file or a "
        f"SavedModel folder{hint}"
    )


def factory_params(case: Any, factory: Any) -> dict:
    """A factory's keyword arguments: the case's params, and `keras` (3 or 2) when the case picks the Keras. A
    factory without a `keras` parameter cannot be built in another Keras: that is an error, not a silent Keras
    3."""
    params = dict(case.params)
    if case.keras is None or "keras" in params:
        return params
    import inspect

    try:
        accepted = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepted = {}
    if "keras" not in accepted and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise NotAModelError(
            f"model: {case.model} takes no `keras` argument, so keras: {case.keras} cannot pick "
            "its Keras: give the factory a keras parameter (3 or 2), or use a zoo model"
        )
    if case.keras == 2:
        import_tf_keras()  # says how to install it
    return {**params, "keras": case.keras}


def loss_for_model(model: Any, classes: bool) -> Any:
    """The loss in the model's own Keras: sparse categorical cross-entropy on logits for class labels, else
    MSE."""
    k = keras_of(model)
    if classes:
        return k.losses.SparseCategoricalCrossentropy(from_logits=True)
    return k.losses.MeanSquaredError()


def adam_for(model: Any) -> Any:
    """Adam in the model's own Keras (a tf_keras model trains with tf_keras' optimizer, as its users run
    it)."""
    return keras_of(model).optimizers.Adam(learning_rate=1e-3)


def scale_loss(optimizer: Any, loss: Any) -> Any:
    """Keras 3's `optimizer.scale_loss` (loss scaling under float16); tf_keras' LossScaleOptimizer says
    `get_scaled_loss`; any other optimizer leaves the loss as it is."""
    if hasattr(optimizer, "scale_loss"):
        return optimizer.scale_loss(loss)
    if hasattr(optimizer, "get_scaled_loss"):
        return optimizer.get_scaled_loss(loss)
    return loss


def unscale_gradients(optimizer: Any, grads: Any) -> Any:
    """tf_keras' LossScaleOptimizer unscales in `get_unscaled_gradients` (Keras 3's in apply_gradients)."""
    if hasattr(optimizer, "get_unscaled_gradients") and not hasattr(optimizer, "scale_loss"):
        return optimizer.get_unscaled_gradients(grads)
    return grads


def is_saved_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


def load_model_file(path: Path) -> Any:
    """A `.keras` / `.h5` file loaded with Keras 3 (a Keras 2 `.h5` with tf_keras when Keras 3 cannot read
    it)."""
    import keras

    try:
        return keras.saving.load_model(str(path), compile=False)
    except Exception as first:
        if path.suffix != ".h5":
            raise
        try:
            return import_tf_keras().models.load_model(str(path), compile=False)
        except Exception:  # noqa: BLE001 - tf_keras failing too: the Keras 3 error is the one to show
            raise first from None
