"""Process-wide TensorFlow settings a case can run under (`tf_config`): thread pools, XLA auto-clustering,
Grappler options, mixed precision. `tfperf tune` measures them; a worker applies them at start, before
TensorFlow executes anything, because most of them cannot change once the runtime is initialised (and must
not leak into another configuration: each configuration gets its own worker process).

    tf_config:
      intra_op_threads: 2          # tf.config.threading.set_intra_op_parallelism_threads
      inter_op_threads: 1          # tf.config.threading.set_inter_op_parallelism_threads
      jit: autoclustering          # tf.config.optimizer.set_jit("autoclustering")
      grappler: {remapping: false, disable_meta_optimizer: false}   # tf.config.optimizer.set_experimental_options
      mixed_precision: mixed_float16                                # keras.mixed_precision.set_global_policy

Validation and the code text need no TensorFlow; `apply_tf_config` and `output_fingerprint` import it.
"""
from __future__ import annotations

from typing import Any, Callable

# tf.config.optimizer.set_experimental_options keys (TF 2.21).
GRAPPLER_OPTIONS: tuple[str, ...] = (
    "layout_optimizer", "constant_folding", "shape_optimization", "remapping", "arithmetic_optimization",
    "dependency_optimization", "loop_optimization", "function_optimization", "debug_stripper",
    "disable_model_pruning", "scoped_allocator_optimization", "pin_to_host_optimization",
    "implementation_selector", "auto_mixed_precision", "disable_meta_optimizer", "min_graph_nodes",
)
JIT_VALUES = ("autoclustering", "off")
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
KEYS = ("intra_op_threads", "inter_op_threads", "jit", "grappler", "mixed_precision")
# Keys tune adds for its own bookkeeping; accepted, not applied as TF settings.
INTERNAL_KEYS = ("output_check", "seed")
FINGERPRINT_SAMPLES = 4
FINGERPRINT_VALUES = 256
DEFAULT_SEED = 1234


def validate(settings: Any) -> list[tuple[str, str]]:
    """[(key, message)] for every problem; empty when the settings can be applied."""
    if not isinstance(settings, dict):
        return [("tf_config", f"must be a mapping, not {type(settings).__name__}")]
    problems = []
    for key, value in settings.items():
        if key not in KEYS + INTERNAL_KEYS:
            problems.append((key, f"unknown tf_config key '{key}'; known: {', '.join(KEYS)}"))
        elif key in ("intra_op_threads", "inter_op_threads"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append((key, "must be an integer >= 0 (0 lets TensorFlow choose)"))
        elif key == "jit" and value not in JIT_VALUES:
            problems.append((key, f"must be one of {', '.join(JIT_VALUES)}"))
        elif key == "mixed_precision" and value not in POLICIES:
            problems.append((key, f"must be one of {', '.join(POLICIES)}"))
        elif key == "grappler":
            if not isinstance(value, dict):
                problems.append((key, "must be a mapping of Grappler option -> value"))
                continue
            for opt, v in value.items():
                if opt not in GRAPPLER_OPTIONS:
                    problems.append((f"grappler.{opt}", f"unknown Grappler option; known: {', '.join(GRAPPLER_OPTIONS)}"))
                elif opt == "min_graph_nodes" and not isinstance(v, int):
                    problems.append((f"grappler.{opt}", "must be an integer"))
                elif opt != "min_graph_nodes" and not isinstance(v, bool):
                    problems.append((f"grappler.{opt}", "must be true or false"))
    return problems


def describe(settings: dict) -> str:
    """A short human label: 'intra=1 inter=2, autoclustering, grappler: remapping off'."""
    parts = []
    if "intra_op_threads" in settings or "inter_op_threads" in settings:
        parts.append(" ".join(f"{k.split('_')[0]}={settings[k]}" for k in ("intra_op_threads", "inter_op_threads")
                              if k in settings))
    if settings.get("jit") == "autoclustering":
        parts.append("XLA auto-clustering")
    g = settings.get("grappler") or {}
    if g.get("disable_meta_optimizer"):
        parts.append("Grappler off")
    else:
        changed = [f"{k} {'on' if v else 'off'}" if isinstance(v, bool) else f"{k}={v}" for k, v in g.items()]
        if changed:
            parts.append("Grappler: " + ", ".join(changed))
    if settings.get("mixed_precision"):
        parts.append(settings["mixed_precision"])
    return ", ".join(parts) or "TensorFlow defaults"


def code_for(settings: dict) -> list[str]:
    """The lines to write at program start for these settings."""
    lines = []
    if settings.get("intra_op_threads") is not None:
        lines.append(f"tf.config.threading.set_intra_op_parallelism_threads({settings['intra_op_threads']})")
    if settings.get("inter_op_threads") is not None:
        lines.append(f"tf.config.threading.set_inter_op_parallelism_threads({settings['inter_op_threads']})")
    if settings.get("jit") == "autoclustering":
        lines.append('tf.config.optimizer.set_jit("autoclustering")')
    if settings.get("grappler"):
        lines.append(f"tf.config.optimizer.set_experimental_options({dict(settings['grappler'])!r})")
    if settings.get("mixed_precision"):
        lines.append(f'keras.mixed_precision.set_global_policy("{settings["mixed_precision"]}")')
    return lines


def apply_tf_config(settings: dict) -> dict:
    """Apply the settings to this process's TensorFlow; call before any op runs. Returns what TF reports back."""
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

        keras.mixed_precision.set_global_policy(settings["mixed_precision"])
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "jit": str(tf.config.optimizer.get_jit() or "off"),
        "grappler": tf.config.optimizer.get_experimental_options(),
    }


def output_fingerprint(case, job, tf_device: str, resolve: Callable[[str], Any], seed: int = DEFAULT_SEED) -> dict:
    """The step's forward output on a fixed input with fixed initial weights, in the job's mode and under the
    process's settings: what `tfperf tune` compares to tell a faster configuration from a broken one.

    The model is rebuilt with `seed` right here, so the weights do not depend on which jobs ran before.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from .harness import build_model, wrap_mode
    from .inputs import synthetic_features

    keras.utils.set_random_seed(seed)
    if case.function is not None:
        fn, _ = wrap_mode(resolve(case.function), job.mode)
        args, kwargs = next(iter(resolve(case.inputs)()))
        out = fn(*args, **kwargs)
    else:
        keras.backend.clear_session()
        with tf.device(tf_device):
            model, inp, _ = build_model(case, resolve)
            x = tf.constant(synthetic_features(inp, FINGERPRINT_SAMPLES, np.random.default_rng(seed)))
            forward, _ = wrap_mode(lambda t: model(t, training=False), job.mode)
            out = forward(x)
    flat = [np.asarray(t, dtype=np.float64).ravel() for t in tf.nest.flatten(out) if hasattr(t, "numpy")]
    values = np.concatenate(flat) if flat else np.zeros(0)
    return {"values": [float(v) for v in values[:FINGERPRINT_VALUES]], "count": int(values.size),
            "seed": seed, "mode": job.mode}


def output_difference(values: list[float], reference: list[float]) -> float | None:
    """Largest absolute difference, relative to the reference's largest magnitude; None when not comparable."""
    if not values or not reference or len(values) != len(reference):
        return None
    scale = max(max(abs(r) for r in reference), 1e-6)
    return max(abs(a - b) for a, b in zip(values, reference)) / scale
