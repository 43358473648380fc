"""A user's stateful step (the guide's "training loop from scratch": a module-level model, optimizer and
metric, `GradientTape`, `optimizer.apply`) checked like with like.

Such a step trains: its output (the loss) depends on how many steps ran before it. `tfperf tune` compares
configurations by their outputs, so it must compare outputs taken from the same state. Here, in every job of a
worker that checks outputs (`tf_config.output_check`, set by tune):

- the user's module is imported under a fixed seed, so its weights are the same in every worker process;
- before the first job's first call, the variables the step would create on that call (a model built on first
  use, an optimizer's slots) are created at their initial values by tracing the step's code
  (`create_variables`);
- before the job's first call, the variables the step uses are put back to their values at the first job's
  start (a fresh copy of the state); any the first call still created go back to zeros, which is how Keras
  creates an optimizer's slots;
- the seed is set again, and the output of that first call, on the first item of `inputs:`, is the job's
  `output_check.first_step`, which tune's output check prefers over a forward pass taken after the timed
  steps.

The variables a step uses are found from the names its code reads: module globals and closure cells holding a
tf.Variable, or an object with `variables` (Keras models, layers, optimizers and metrics; tf.Module).
Imports TensorFlow: used only inside worker processes.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# At most this many output values are kept (tfperf.measure.tf_config's FINGERPRINT_VALUES, for the same
# reason: enough to tell a broken configuration, small enough for results.json).
FIRST_STEP_VALUES = 256


@dataclass
class Snapshot:
    """The state at the first job's start: values by variable id; `created` the variables the first call
    made."""

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
        _ = cell.cell_contents  # an empty cell raises here
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


def drawn_once(draw: Callable[[], Any]) -> Callable[[], Any]:
    """`draw`, called at most once: every call returns its first result (a step's first arguments, which
    `before_first_call` may need before the first call takes them)."""
    memo: list[Any] = []

    def once() -> Any:
        if not memo:
            memo.append(draw())
        return memo[0]

    return once


def create_variables(fn: Any, args: tuple, kwargs: dict) -> None:
    """Create the variables the step makes on its first call, at their initial values, without running it: a
    model built on first use (a Sequential without an Input, a subclassed model) and an optimizer's slots. A
    throwaway tf.function of the step's Python code is traced, which creates and initializes them (tf.function
    initializes the variables its first trace creates); the step itself then finds them built. Without this,
    the weights a first call built were already trained by that call when the state was read, and could not be
    put back: a later job started from other weights, and tune excluded XLA on a lazily built model for
    outputs 0.11 apart. A step that cannot be traced (Python-only code) keeps the old behaviour: such
    variables go back to zeros."""
    import tensorflow as tf

    try:
        tf.function(_python_function(fn)).get_concrete_function(*args, **kwargs)
    except Exception:  # noqa: BLE001 - an untraceable step is still timed; only the reset is less complete
        pass


def before_first_call(
    ref: str, fn: Any, seed: int, first_args: Callable[[], tuple[tuple, dict]] | None = None
) -> None:
    """The first job: create the step's variables (`create_variables`, from `first_args()`, the call's first
    arguments) and remember the state. A later job: put the state back to it. Then seed, for the first
    call."""
    snap = _SNAPSHOTS.get(ref)
    if snap is None:
        if first_args is not None:
            seed_everything(seed)  # initial values drawn as the first call would draw them
            create_variables(fn, *first_args())
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
    """`output_check.first_step`: the first call's output values (flattened, at most FIRST_STEP_VALUES)."""
    import tensorflow as tf

    flat = [
        np.asarray(t, dtype=np.float64).ravel()
        for t in tf.nest.flatten(out)
        if hasattr(t, "numpy") or isinstance(t, np.ndarray)
    ]
    values = np.concatenate(flat) if flat else np.zeros(0)
    return {
        "values": [float(v) for v in values[:FIRST_STEP_VALUES]],
        "count": int(values.size),
        "seed": seed,
        "mode": mode,
        "state_variables": variables,
    }
