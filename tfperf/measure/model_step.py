"""The step a job times: the case's model, built under its dtype policy with what it is fed, its loss and
optimizer, the train step, and the step wrapped in its execution mode (eager, tf.function, XLA)."""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from tfperf.measure.keras_compat import (
    adam_for,
    check_model,
    factory_params,
    is_model,
    keras_of,
    loss_for_model,
    scale_loss,
    unscale_gradients,
)
from tfperf.measure.model_inputs import (
    InputStructure,
    as_spec,
    inputs_from_element_spec,
    inputs_from_model,
    labels_from_model,
    labels_from_spec,
    model_sequence_length,
)
from tfperf.measure.saved_models import ServingSignature, load_model_path
from tfperf.suite.references import ModelPath
from tfperf.suite.spec import CaseSpec, InputSpec, LabelsSpec


def loss_for(labels: LabelsSpec, model: Any = None):
    """Sparse categorical cross-entropy on logits for class labels, else MSE; in the model's own Keras."""
    import keras

    if model is not None:
        return loss_for_model(model, labels.classes is not None)
    if labels.classes is not None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def apply_dtype_policy(case: CaseSpec) -> str:
    """Put the case's `tf_config.mixed_precision` in force; returns the Keras global dtype policy now in
    force.

    Keras keeps the global policy in the global state `keras.backend.clear_session()` resets (Keras 3.15), and
    every builder clears the session first (fresh layer names per job): set at worker start only, the policy
    was gone by the time the model was built. So it is set here, after clearing and before building."""
    import keras

    policy = (case.tf_config or {}).get("mixed_precision")
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    return keras.mixed_precision.global_policy().name


def model_dtypes(model: Any) -> dict:
    """What the built model computes in: `setup.model_compute_dtype` and `setup.dtype_policy` (the advisor's
    mixed-precision rule reads the policy, so a model already in 16 bits is not told to switch)."""
    policy = getattr(model, "dtype_policy", None)
    return {
        "model_compute_dtype": str(
            getattr(policy, "compute_dtype", None) or getattr(model, "compute_dtype", None)
        ),
        "dtype_policy": str(getattr(policy, "name", policy)),
    }


def build_model(
    case: CaseSpec, resolve: Callable[[str], Any], batch_size: int | None = None
) -> tuple[Any, InputSpec | InputStructure, LabelsSpec]:
    """The case's model (Keras 3 or tf_keras) and what it is fed with, built under the case's dtype policy
    (apply_dtype_policy: callers clear the Keras session first, which resets it). The input is an InputSpec
    for a one-input model, else the model's InputStructure (tfperf/measure/model_inputs.py): from the case's
    `dataset:` element_spec when it has one, else from the model with the suite's `input:` overrides."""
    from tfperf.zoo import ZooModel, resolve_input, resolve_labels

    apply_dtype_policy(case)
    target = resolve(case.model)
    if isinstance(target, ZooModel):
        # The params decide the implied input (features, image size, vocabulary) unless the case gives one.
        inp = resolve_input(target, case.input, case.params)
        labels = resolve_labels(target, case.labels, case.params)
        return target.build(case.params, inp, labels, keras=case.keras or 3), inp, labels
    if isinstance(target, ModelPath):  # model: path/to/model.keras or path/to/saved_model/
        target = load_model_path(target)
    if isinstance(target, ServingSignature):
        structure = target.inputs(case.model or "", case.input, case.input_by_name)
        return target, as_spec(structure), case.labels or LabelsSpec(shape=(), dtype="float32")
    model = check_model(
        target(**factory_params(case, target)) if callable(target) and not is_model(target) else target,
        case.model or "",
    )
    if case.dataset is not None and case.input is None and not case.input_by_name:
        ds = resolve(case.dataset)(batch_size or 2)
        structure, label_spec = inputs_from_element_spec(getattr(ds, "element_spec", None), case.dataset)
        labels = case.labels or labels_from_spec(label_spec, model)
        return model, as_spec(structure), labels
    structure = inputs_from_model(model, case.model or "", case.input, case.input_by_name)
    seq = max((max(i.spec.shape, default=0) for i in structure.inputs), default=0) or None
    labels = case.labels or labels_from_model(model, model_sequence_length(model) or seq)
    return model, as_spec(structure), labels


def train_step(model: Any, loss_fn: Callable, optimizer: Any) -> Callable:
    """A Keras train step: forward, loss, gradients, optimizer update. The name scopes are what the profile's
    per-phase split reads (forward / backward / optimizer); they cost nothing at run time.

    The gradients are of `optimizer.scale_loss(loss)`: a LossScaleOptimizer (float16 training, see
    training_optimizer) scales the loss up so small float16 gradients do not underflow, and unscales them in
    apply_gradients; any other Keras optimizer returns the loss unchanged, adding no op."""

    def step(x, y):
        with tf.GradientTape() as tape:
            with tf.name_scope("forward"):
                pred = model(x, training=True)
                loss = loss_fn(y, pred)
                scaled = scale_loss(optimizer, loss)
        with tf.name_scope("backward"):
            grads = unscale_gradients(optimizer, tape.gradient(scaled, model.trainable_variables))
        with tf.name_scope("optimizer"):
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def wrap_mode(step: Callable[..., Any], mode: str) -> tuple[Callable[..., Any], Any | None]:
    # A step that is already a tf.function keeps its own tracing options (input_signature, reduce_retracing:
    # the retracing fixes), re-wrapped per job so each job counts its own traces and the mode sets
    # jit_compile.
    options: dict[str, Any] = {}
    if isinstance(step, tf.types.experimental.PolymorphicFunction) and hasattr(step, "python_function"):
        options = {
            "input_signature": step.input_signature,
            "reduce_retracing": bool(getattr(step, "_reduce_retracing", False)),
        }
        step = step.python_function
    if mode == "eager":
        return step, None
    if mode == "function":
        fn = tf.function(step, **options)
    elif mode == "xla":
        # Explicit, never keras' jit_compile="auto", which silently turns XLA on or off by device.
        fn = tf.function(step, jit_compile=True, **options)
    else:
        raise ValueError(f"mode {mode!r} is not an execution mode of the harness")
    return fn, fn


def training_optimizer(model: Any) -> Any:
    """The optimizer of a train step: Adam, wrapped in a LossScaleOptimizer when the model computes in float16
    (as Keras' own `compile` does): float16 gradients underflow to zero without loss scaling. bfloat16 has
    float32's exponent range and needs none."""
    optimizer = adam_for(model)  # in the model's own Keras: tf_keras models train with tf_keras' optimizer
    if model_dtypes(model)["model_compute_dtype"] == "float16":
        optimizer = keras_of(model).mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer
