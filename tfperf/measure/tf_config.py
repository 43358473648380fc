"""Applying a case's `tf_config` in a worker (before TensorFlow executes anything) and fingerprinting the
step's outputs, so `tfperf tune` can check a configuration computes what the baseline computes. The settings'
schema, validation and code text live in tfperf.suite.tf_config.
"""

from __future__ import annotations

from typing import Any, Callable

FINGERPRINT_SAMPLES = 4
FINGERPRINT_VALUES = 256
DEFAULT_SEED = 1234


def apply_tf_config(settings: dict) -> dict:
    """Apply the settings to this process's TensorFlow; call before any op runs. Returns what TF reports
    back."""
    import tensorflow as tf

    if settings.get("intra_op_threads") is not None:
        tf.config.threading.set_intra_op_parallelism_threads(int(settings["intra_op_threads"]))
    if settings.get("inter_op_threads") is not None:
        tf.config.threading.set_inter_op_parallelism_threads(int(settings["inter_op_threads"]))
    if settings.get("jit") == "autoclustering":
        tf.config.optimizer.set_jit("autoclustering")
    elif settings.get("jit") == "off":
        tf.config.optimizer.set_jit(False)
    if settings.get("grappler"):
        tf.config.optimizer.set_experimental_options(dict(settings["grappler"]))
    if settings.get("mixed_precision"):
        import keras

        # In force for a `function:` case's own layers. A model case's builder clears the Keras session, which
        # resets the policy, and sets it again before building (model_step.apply_dtype_policy); what was in
        # force then is what the job records (setup.tf_config_applied.mixed_precision).
        keras.mixed_precision.set_global_policy(settings["mixed_precision"])
    return settings_in_force(settings)


def settings_in_force(settings: dict) -> dict:
    """What TensorFlow reports back for the settings now (`setup.tf_config_applied`): the thread pools, jit
    and Grappler options, and with `mixed_precision` the Keras global dtype policy. Read after a model was
    built, the policy is the one it was built under."""
    import tensorflow as tf

    applied = {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "jit": str(tf.config.optimizer.get_jit() or "off"),
        "grappler": tf.config.optimizer.get_experimental_options(),
    }
    if settings.get("mixed_precision"):
        import keras

        applied["mixed_precision"] = keras.mixed_precision.global_policy().name
    return applied


def output_fingerprint(
    case, job, tf_device: str, resolve: Callable[[str], Any], seed: int = DEFAULT_SEED
) -> dict:
    """The step's forward output on a fixed input with fixed initial weights, in the job's mode and under the
    process's settings: what `tfperf tune` compares to tell a faster configuration from a broken one.

    The model is rebuilt with `seed` right here, so the weights do not depend on which jobs ran before.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from tfperf.measure.inputs import synthetic_features
    from tfperf.measure.model_step import build_model, wrap_mode

    keras.utils.set_random_seed(seed)
    if case.function is not None:
        fn, _ = wrap_mode(resolve(case.function), job.mode)
        args, kwargs = next(iter(resolve(case.inputs)()))
        with tf.device(tf_device):  # on the job's device, as the timed step ran (harness.pinned)
            out = fn(*args, **kwargs)
    else:
        keras.backend.clear_session()  # build_model sets the case's dtype policy again after this
        with tf.device(tf_device):
            model, inp, _ = build_model(case, resolve)
            # One tensor, or the model's dict / list of them (tfperf.measure.model_inputs).
            x = tf.nest.map_structure(
                tf.constant, synthetic_features(inp, FINGERPRINT_SAMPLES, np.random.default_rng(seed))
            )
            forward, _ = wrap_mode(lambda t: model(t, training=False), job.mode)
            out = forward(x)
    flat = [np.asarray(t, dtype=np.float64).ravel() for t in tf.nest.flatten(out) if hasattr(t, "numpy")]
    values = np.concatenate(flat) if flat else np.zeros(0)
    return {
        "values": [float(v) for v in values[:FINGERPRINT_VALUES]],
        "count": int(values.size),
        "seed": seed,
        "mode": job.mode,
    }


def output_difference(values: list[float], reference: list[float]) -> float | None:
    """Largest absolute difference, relative to the reference's largest magnitude; None when not
    comparable."""
    if not values or not reference or len(values) != len(reference):
        return None
    scale = max(max(abs(r) for r in reference), 1e-6)
    return max(abs(a - b) for a, b in zip(values, reference)) / scale
