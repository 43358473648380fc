"""What a deployment mode feeds: one array, or a dict of arrays by input name (a multi-input model). A model
built on a list of inputs is fed positionally in Keras but by name in a SavedModel signature and a TF Lite
interpreter, so its list becomes a dict by the input names the export gave its specs. Plain numpy except
`tensor_spec`.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

Batch = Union[np.ndarray, dict[str, np.ndarray]]


class FeedError(ValueError):
    """A batch the deployment modes cannot feed: a nested structure, or names the artefact does not have."""


def as_numpy(x: Any) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def to_numpy(batch: Any) -> Any:
    """The batch with every tensor as numpy, in its own structure (array, dict, list)."""
    if isinstance(batch, dict):
        return {str(k): _leaf(v, k) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [_leaf(v, i) for i, v in enumerate(batch)]
    return as_numpy(batch)


def _leaf(value: Any, key: Any) -> np.ndarray:
    if isinstance(value, (dict, list, tuple)):
        raise FeedError(
            f"input {key!r} is a nested {type(value).__name__}: the deployment modes feed one tensor "
            "per input (export the model with flat inputs)"
        )
    return as_numpy(value)


def named(batch: Any, names: list[str] | None) -> Batch:
    """A list batch as a dict by `names` (the export's input names); a dict or an array as it is."""
    if isinstance(batch, (list, tuple)):
        if not names or len(names) != len(batch):
            raise FeedError(f"a list of {len(batch)} inputs needs as many input names (got {names})")
        return {n: as_numpy(v) for n, v in zip(names, batch)}
    if isinstance(batch, dict):
        return {k: as_numpy(v) for k, v in batch.items()}
    return as_numpy(batch)


def leaves(batch: Batch) -> list[np.ndarray]:
    return list(batch.values()) if isinstance(batch, dict) else [batch]


def rows(batch: Batch) -> int:
    return int(leaves(batch)[0].shape[0])


def take(batch: Batch, start: int, stop: int) -> Batch:
    if isinstance(batch, dict):
        return {k: v[start:stop] for k, v in batch.items()}
    return batch[start:stop]


def resize_rows(batch: Batch, n: int) -> Batch:
    """`n` rows, the batch's own repeated (a calibration set smaller than one converted batch)."""
    if isinstance(batch, dict):
        return {k: np.resize(v, (n, *v.shape[1:])) for k, v in batch.items()}
    return np.resize(batch, (n, *batch.shape[1:]))


def concat(batches: list[Batch]) -> Batch:
    if isinstance(batches[0], dict):
        return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    return np.concatenate(batches)


def shapes(batch: Batch) -> Any:
    """Each input's shape: a tuple, or a dict of tuples by name."""
    if isinstance(batch, dict):
        return {k: tuple(v.shape) for k, v in batch.items()}
    return tuple(batch.shape)


def dtypes(batch: Batch) -> list[np.dtype]:
    return [v.dtype for v in leaves(batch)]


def tensor_spec(example: Any, static_batch: bool, names: list[str] | None = None) -> Any:
    """The export's input signature in the example's own structure, each spec named (a signature's keyword
    arguments are its specs' names: a dict's keys, a list's input names given by `named`), batch free unless
    `static_batch`."""
    import tensorflow as tf

    def spec(x: np.ndarray, name: str) -> Any:
        return tf.TensorSpec(
            (x.shape[0] if static_batch else None, *x.shape[1:]), tf.as_dtype(x.dtype), name=name
        )

    if isinstance(example, dict):
        return {k: spec(v, k) for k, v in example.items()}
    if isinstance(example, (list, tuple)):
        named_example = named(example, names)
        return [spec(v, k) for k, v in named_example.items()]
    return spec(example, "inputs")


def primary_output(out: Any) -> Any:
    """The output the agreement check compares: the only one, else the first by name (a dict, as a signature's
    outputs are sorted) or by position (a list: a SavedModel names them output_0, output_1, ...)."""
    if isinstance(out, dict):
        return out[sorted(out)[0]]
    if isinstance(out, (list, tuple)):
        return out[0]
    return out
