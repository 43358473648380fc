"""A user's stateful step (the guide's "training loop from scratch": a module-level model, optimizer and metric,
`GradientTape`, `optimizer.apply`) checked like with like.

Such a step trains: its output (the loss) depends on how many steps ran before it. `tfperf tune` compares
configurations by their outputs, so it must compare outputs taken from the same state. Here, in every job of a
worker that checks outputs (`tf_config.output_check`, set by tune):

- the user's module is imported under a fixed seed, so its weights are the same in every worker process;
- before the job's first call, the variables the step uses are put back to their values at the first job's start
  (a fresh copy of the state): the variables that existed then get their values back, the ones the first call
  created (an optimizer's slots, built on first use) go back to zeros, which is how Keras creates them;
- the seed is set again, and the output of that first call, on the first item of `inputs:`, is the job's
  `extra.first_step_output`, which tune's output check prefers over a forward pass taken after the timed steps.

The variables a step uses are found from the names its code reads: module globals and closure cells holding a
tf.Variable, or an object with `variables` (Keras models, layers, optimizers and metrics; tf.Module).
Imports TensorFlow: used only inside worker processes.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# At most this many output values are kept (tfperf.measure.tf_config's FINGERPRINT_VALUES, for the same reason:
# enough to tell a broken configuration, small enough for results.json).
FIRST_STEP_VALUES = 256


@dataclass
class Snapshot:
    """The state at the first job's start: values by variable id; `created` the variables the first call made."""

    values: dict[int, tuple[Any, np.ndarray]] = field(default_factory=dict)
    created: dict[int, Any] = field(default_factory=dict)
    completed: bool = False


# One snapshot per step reference in this worker process (its jobs share the user's module and its state).
_SNAPSHOTS: dict[str, Snapshot] = {}


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _python_function(fn: Any) -> Any:
    return getattr(fn, "python_function", fn)


def _variables_of(obj: Any) -> list[Any]:
    import tensorflow as tf

    if isinstance(obj, tf.Variable):
        return [obj]
    if isinstance(obj, (types.ModuleType, type, types.FunctionType)):
        return []
    try:
        found = getattr(obj, "variables", None)
    except Exception:  # noqa: BLE001 - a property that cannot answer yet (an unbuilt layer) holds no state
        return []
    if callable(found) and not hasattr(found, "__len__"):
        return []
    return [v for v in (found or []) if hasattr(v, "assign")]


def step_variables(fn: Any) -> list[Any]:
    """The variables reachable from the names the step's code reads (globals and closure cells), each once."""
    py = _python_function(fn)
    code = getattr(py, "__code__", None)
    if code is None:
        return []
    objects = [py.__globals__[n] for n in sorted(_code_names(code)) if n in py.__globals__]
    objects += [cell.cell_contents for cell in (py.__closure__ or ()) if _filled(cell)]
    seen: dict[int, Any] = {}
    for obj in objects:
        for v in _variables_of(obj):
            seen.setdefault(id(v), v)
    return list(seen.values())


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _value(v: Any) -> np.ndarray:
    return np.array(v.numpy() if hasattr(v, "numpy") else v)


def output_check_seed(case: Any) -> int | None:
    """The seed of a `function:` case whose outputs tune checks (`tf_config.output_check`), else None."""
    config = case.tf_config or {}
    if case.function is None or not config.get("output_check"):
        return None
    return int(config.get("seed", 1234))


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and TensorFlow's seeds (keras.utils.set_random_seed sets all three)."""
    import keras

    keras.utils.set_random_seed(seed)


def before_first_call(ref: str, fn: Any, seed: int) -> None:
    """The first job: remember the state. A later job: put the state back to it. Then seed, for the first call."""
    snap = _SNAPSHOTS.get(ref)
    if snap is None:
        _SNAPSHOTS[ref] = Snapshot({id(v): (v, _value(v)) for v in step_variables(fn)})
    elif snap.completed:
        for v, value in snap.values.values():
            v.assign(value)
        for v in snap.created.values():
            v.assign(np.zeros(v.shape, dtype=_value(v).dtype))
    seed_everything(seed)


def after_first_call(ref: str, fn: Any) -> None:
    """After the first job's first call: the variables it created (lazily built optimizer slots)."""
    snap = _SNAPSHOTS.get(ref)
    if snap is not None and not snap.completed:
        snap.created = {id(v): v for v in step_variables(fn) if id(v) not in snap.values}
        snap.completed = True


def first_step_output(out: Any, mode: str, seed: int, variables: int) -> dict:
    """`extra.first_step_output`: the first call's output values (flattened, at most FIRST_STEP_VALUES)."""
    import tensorflow as tf

    flat = [np.asarray(t, dtype=np.float64).ravel() for t in tf.nest.flatten(out)
            if hasattr(t, "numpy") or isinstance(t, np.ndarray)]
    values = np.concatenate(flat) if flat else np.zeros(0)
    return {"values": [float(v) for v in values[:FIRST_STEP_VALUES]], "count": int(values.size), "seed": seed,
            "mode": mode, "state_variables": variables}
