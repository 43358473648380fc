"""Process-wide TensorFlow settings a case can run under (`tf_config`): thread pools, XLA auto-clustering,
Grappler options, mixed precision. `tfperf tune` measures them; a worker applies them at start, before
TensorFlow executes anything, because most of them cannot change once the runtime is initialised (and must
not leak into another configuration: each configuration gets its own worker process).

    tf_config:
      intra_op_threads: 2          # tf.config.threading.set_intra_op_parallelism_threads
      inter_op_threads: 1          # tf.config.threading.set_inter_op_parallelism_threads
      jit: autoclustering          # tf.config.optimizer.set_jit("autoclustering")
      # tf.config.optimizer.set_experimental_options:
      grappler: {remapping: false, disable_meta_optimizer: false}
      mixed_precision: mixed_float16  # keras.mixed_precision.set_global_policy

This module validates the settings and writes them as code, without TensorFlow; tfperf.measure.tf_config
applies them in a worker.
"""

from __future__ import annotations

from typing import Any

# tf.config.optimizer.set_experimental_options keys (TF 2.21).
GRAPPLER_OPTIONS: tuple[str, ...] = (
    "layout_optimizer",
    "constant_folding",
    "shape_optimization",
    "remapping",
    "arithmetic_optimization",
    "dependency_optimization",
    "loop_optimization",
    "function_optimization",
    "debug_stripper",
    "disable_model_pruning",
    "scoped_allocator_optimization",
    "pin_to_host_optimization",
    "implementation_selector",
    "auto_mixed_precision",
    "disable_meta_optimizer",
    "min_graph_nodes",
)
JIT_VALUES = ("autoclustering", "off")
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
KEYS = ("intra_op_threads", "inter_op_threads", "jit", "grappler", "mixed_precision")
# Keys tune adds for its own bookkeeping; accepted, not applied as TF settings.
INTERNAL_KEYS = ("output_check", "seed")


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
                    problems.append(
                        (f"grappler.{opt}", f"unknown Grappler option; known: {', '.join(GRAPPLER_OPTIONS)}")
                    )
                elif opt == "min_graph_nodes" and not isinstance(v, int):
                    problems.append((f"grappler.{opt}", "must be an integer"))
                elif opt != "min_graph_nodes" and not isinstance(v, bool):
                    problems.append((f"grappler.{opt}", "must be true or false"))
    return problems


def describe(settings: dict) -> str:
    """A short human label: 'intra=1 inter=2, autoclustering, grappler: remapping off'."""
    parts = []
    if "intra_op_threads" in settings or "inter_op_threads" in settings:
        parts.append(
            " ".join(
                f"{k.split('_')[0]}={settings[k]}"
                for k in ("intra_op_threads", "inter_op_threads")
                if k in settings
            )
        )
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


def json_schema() -> dict[str, Any]:
    """The settings `validate` accepts, as JSON Schema (part of `tfperf schema suite`)."""
    grappler = {
        opt: {"type": "integer"} if opt == "min_graph_nodes" else {"type": "boolean"}
        for opt in GRAPPLER_OPTIONS
    }
    return {
        "type": "object",
        "properties": {
            "intra_op_threads": {"type": "integer", "minimum": 0, "description": "0 lets TensorFlow choose."},
            "inter_op_threads": {"type": "integer", "minimum": 0, "description": "0 lets TensorFlow choose."},
            "jit": {"enum": list(JIT_VALUES)},
            "grappler": {"type": "object", "properties": grappler, "additionalProperties": False},
            "mixed_precision": {"enum": list(POLICIES)},
            **{key: {"description": "set by tfperf tune for its own bookkeeping"} for key in INTERNAL_KEYS},
        },
        "additionalProperties": False,
    }
