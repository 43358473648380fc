"""A user's tf.data dataset (a case's `dataset:`) as the what-ifs change it: the facts that decide which
changes apply (finite, shuffled, its size in bytes, against the memory available), and the dataset built with
a change's stages appended (cache, tf.data options, prefetch)."""

from __future__ import annotations

from typing import Any, Callable


def memory_available_bytes() -> int | None:
    """The memory available now, which a cache() must fit in; None when psutil cannot say."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - without it, the fixed cap alone decides
        return None


def dataset_facts(ds: Any) -> dict:
    """Finite? Shuffled? How many bytes? From the dataset's own graph and element spec (TensorFlow)."""
    import numpy as np
    import tensorflow as tf

    facts: dict[str, Any] = {"finite": None, "shuffled": None, "bytes": None}
    try:
        cardinality = int(ds.cardinality())
        facts["finite"] = cardinality >= 0
        graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())  # noqa: SLF001 - tf.data's only graph export
        ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
        facts["shuffled"] = any("Shuffle" in op for op in ops)
        if facts["finite"]:
            per_element = 0
            for spec in tf.nest.flatten(ds.element_spec):
                shape = spec.shape
                if not shape.is_fully_defined():
                    per_element = None
                    break
                per_element += int(np.prod(shape.as_list() or [1])) * spec.dtype.size
            facts["bytes"] = None if per_element is None else per_element * cardinality
    except Exception as exc:  # noqa: BLE001 - without the facts, cache() is simply not tried
        facts["error"] = f"{type(exc).__name__}: {exc}"[:200]
    return facts


def wrapped(ds: Any, wrappers: tuple[str, ...]) -> Any:
    import tensorflow as tf

    if "cache" in wrappers:
        ds = ds.cache()
    if "options" in wrappers:
        options = tf.data.Options()
        options.autotune.enabled = True
        options.experimental_optimization.map_parallelization = True
        options.experimental_optimization.parallel_batch = True
        ds = ds.with_options(options)
    if "prefetch" in wrappers:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


def wrapping_resolver(
    resolve: Callable[[str], Any], dataset_ref: str, wrappers: tuple[str, ...]
) -> Callable[[str], Any]:
    """`resolve`, except that the case's dataset factory comes back with `wrappers` applied to what it
    builds."""

    def new_resolve(ref: str) -> Any:
        target = resolve(ref)
        if ref != dataset_ref:
            return target
        return lambda batch_size: wrapped(target(batch_size), wrappers)

    return new_resolve
