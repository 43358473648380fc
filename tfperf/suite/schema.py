"""The suite file's keys and value types: one pydantic model per level, extra keys forbidden.

Each value check raises a message written for the user (pydantic's own messages name pydantic's types, not the
suite's), and carries the JSON Schema of what it accepts, so `tfperf schema suite` is generated from these
same models. Checks that need a whole merged case (model xor function, references, ...) live in the loader.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Callable, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PlainValidator, Tag, WithJsonSchema
from pydantic_core import PydanticCustomError

from tfperf.suite.distribute import STRATEGIES
from tfperf.suite.distribute import json_schema as distribute_rules
from tfperf.suite.references import parse_reference
from tfperf.suite.spec import (
    ALL_MODES,
    AUTOTUNE,
    MAX_NAME_BYTES,
    NAME_SUFFIX_BYTES,
    PATH_COMPONENT_MAX_BYTES,
    TASKS,
)
from tfperf.suite.tf_config import json_schema as tf_config_schema
from tfperf.suite.tf_config import validate as validate_tf_config

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
DEVICE_RE = re.compile(r"^(auto|cpu|gpu(:\d+)?)$")
DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16", "float64", "int32", "int64", "bool", "string")
REFERENCE_KEYS: tuple[str, ...] = ("model", "function", "inputs", "dataset")
# What parse_reference accepts, as a JSON Schema pattern (an editor's hint; the loader's check is the real
# one).
REFERENCE_PATTERN = (
    r"^(zoo:\S.*|\S.*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
    r"|[^:]+\.(keras|h5)|[^:]+/)$"
)


def show(value: Any) -> str:
    """A value as a message quotes it: YAML's spelling (null, true), not Python's."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"'{value}'"
    return repr(value)


def did_you_mean(word: Any, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- value checks: each raises a PydanticCustomError whose message is the user-facing text ------------------


def _fail(message: str) -> PydanticCustomError:
    # No context dict: the message is used verbatim (braces in user values stay as they are).
    return PydanticCustomError("tfperf", message)


def _checked(check: Callable[[Any], Any], schema: dict) -> Any:
    return Annotated[Any, PlainValidator(check), WithJsonSchema(schema)]


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(v: Any, lo: int | None) -> int:
    if not _is_int(v):
        raise _fail(f"expected an integer, got {show(v)}")
    if lo is not None and v < lo:
        raise _fail(f"must be >= {lo}, got {v}")
    return v


def Int(lo: int | None = None, nullable: bool = False) -> Any:
    def check(v: Any) -> int | None:
        if v is None and nullable:
            return None
        return _check_int(v, lo)

    schema: dict = {"type": "integer"} if lo is None else {"type": "integer", "minimum": lo}
    return _checked(check, _nullable(schema) if nullable else schema)


def Float(lo: float, strict: bool = False) -> Any:
    """A number (ints accepted) >= lo, or > lo when strict."""

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(f"expected a number, got {show(v)}")
        if v != v or v in (float("inf"), float("-inf")):
            raise _fail(f"expected a finite number, got {v}")
        if (v <= lo) if strict else (v < lo):
            raise _fail(f"must be {'>' if strict else '>='} {lo:g}, got {v:g}")
        return float(v)

    return _checked(check, {"type": "number", "exclusiveMinimum" if strict else "minimum": lo})


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(f"expected true or false, got {show(v)}")
    return v


Bool = _checked(_bool, {"type": "boolean"})


def Str(nullable: bool = False) -> Any:
    def check(v: Any) -> str | None:
        if v is None and nullable:
            return None
        if not isinstance(v, str) or not v.strip():
            raise _fail(f"expected a non-empty string, got {show(v)}")
        return v

    schema = {"type": "string", "pattern": r"\S"}
    return _checked(check, _nullable(schema) if nullable else schema)


def choice(v: Any, choices: tuple[str, ...], what: str) -> str:
    if not isinstance(v, str):
        raise _fail(f"expected a {what} ({' | '.join(choices)}), got {show(v)}")
    if v not in choices:
        raise _fail(f"unknown {what} '{v}'{did_you_mean(v, choices)}; choose from {', '.join(choices)}")
    return v


def OneOf(choices: tuple[str, ...], what: str) -> Any:
    return _checked(lambda v: choice(v, choices, what), {"enum": list(choices)})


def IntOrAuto(lo: int) -> Any:
    def check(v: Any) -> int | str:
        if v == AUTOTUNE:
            return v
        if not _is_int(v):
            raise _fail(f"expected an integer or '{AUTOTUNE}', got {show(v)}")
        return _check_int(v, lo)

    return _checked(check, {"anyOf": [{"type": "integer", "minimum": lo}, {"const": AUTOTUNE}]})


def _shape(v: Any) -> list[int]:
    if not isinstance(v, list):
        raise _fail(f"expected a list of integers such as [28, 28, 1], got {show(v)}")
    for i, d in enumerate(v):
        if not _is_int(d) or d < 1:
            raise _fail(f"item {i} of the shape: expected an integer >= 1, got {show(d)}")
    return v


Shape = _checked(_shape, {"type": "array", "items": {"type": "integer", "minimum": 1}})


def _batch_size(v: Any) -> int | list[int]:
    if isinstance(v, list):
        if not v:
            raise _fail("an empty list: give one batch size or a list of them")
        for i, b in enumerate(v):
            if not _is_int(b) or b < 1:
                raise _fail(f"item {i} of the list: expected an integer >= 1, got {show(b)}")
        if len(set(v)) != len(v):
            raise _fail(f"a batch size appears twice in {v}")
        return v
    if not _is_int(v):
        raise _fail(f"expected an integer or a list of integers, got {show(v)}")
    return _check_int(v, 1)


def _modes(v: Any) -> list[str]:
    if not isinstance(v, list):
        raise _fail(f"expected a list of modes such as [eager, function, xla], got {show(v)}")
    if not v:
        raise _fail("an empty list: give at least one mode")
    for m in v:
        choice(m, ALL_MODES, "mode")
    if len(set(v)) != len(v):
        raise _fail(f"a mode appears twice in [{', '.join(map(str, v))}]")
    return v


KERAS_VERSIONS = (3, 2)


def _keras(v: Any) -> int | list[int]:
    values = v if isinstance(v, list) else [v]
    if not values:
        raise _fail("an empty list: give 3, 2 or [3, 2]")
    for x in values:
        if not _is_int(x) or x not in KERAS_VERSIONS:
            raise _fail(f"expected 3 (keras), 2 (tf_keras) or a list of them such as [3, 2], got {show(x)}")
    if len(set(values)) != len(values):
        raise _fail(f"a Keras version appears twice in {values}")
    return v


def _device(v: Any) -> str:
    if not isinstance(v, str) or not DEVICE_RE.match(v):
        raise _fail(f"bad device {show(v)}: expected auto, cpu, gpu or gpu:N")
    return v


def _name(v: Any) -> str:
    if not isinstance(v, str) or not NAME_RE.match(v):
        raise _fail(f"bad name {show(v)}: use letters, digits, '_', '.' and '-' only")
    if len(v.encode()) > MAX_NAME_BYTES:
        raise _fail(
            f"name '{v[:40]}...' is {len(v.encode())} characters; at most {MAX_NAME_BYTES}: it starts file "
            f"names in the output folder, which tfperf extends by up to {NAME_SUFFIX_BYTES} characters and "
            f"which hold at most {PATH_COMPONENT_MAX_BYTES}"
        )
    return v


def _mapping(v: Any) -> dict:
    if not isinstance(v, dict):
        raise _fail(f"expected a mapping of keyword arguments, got {show(v)}")
    for k in v:
        if not isinstance(k, str) or not k.isidentifier():
            raise _fail(f"key {show(k)} is not a Python keyword argument name")
    return v


def _reference_syntax(v: Any) -> str | None:
    if v is None:
        return None  # null in a case unsets a default
    if not isinstance(v, str):
        raise _fail(
            "expected a reference string (zoo:NAME, package.module:attr, path/to/file.py:attr), got "
            f"{show(v)}"
        )
    try:
        parse_reference(v)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    return v


def _tf_config(v: Any) -> dict | None:
    if v is None:
        return None
    problems = validate_tf_config(v)
    if problems:
        raise _fail("; ".join(f"{key}: {message}" for key, message in problems))
    return v


Name = _checked(_name, {"type": "string", "pattern": NAME_RE.pattern, "maxLength": MAX_NAME_BYTES})
Reference = _checked(_reference_syntax, _nullable({"type": "string", "pattern": REFERENCE_PATTERN}))
BatchSize = _checked(
    _batch_size,
    {
        "anyOf": [
            {"type": "integer", "minimum": 1},
            {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "uniqueItems": True},
        ]
    },
)
Modes = _checked(
    _modes, {"type": "array", "items": {"enum": list(ALL_MODES)}, "minItems": 1, "uniqueItems": True}
)
KerasVersions = _checked(
    _keras,
    {
        "anyOf": [
            {"enum": list(KERAS_VERSIONS)},
            {"type": "array", "items": {"enum": list(KERAS_VERSIONS)}, "minItems": 1, "uniqueItems": True},
        ]
    },
)
Device = _checked(_device, {"type": "string", "pattern": DEVICE_RE.pattern})
Params = _checked(_mapping, {"type": "object", "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}})
TfConfig = _checked(_tf_config, _nullable(tf_config_schema()))


# --- the models: one per level, extra keys forbidden --------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _key(description: str) -> Any:
    """A key that may be left out (None = not given; a case's explicit null unsets a default)."""
    return Field(None, description=description)


class PipelineModel(_Strict):
    """A synthetic tf.data pipeline feeding the case's input."""

    map_cost_ms: Float(0) = _key("Simulated per-element preprocessing, in ms.")
    num_parallel_calls: IntOrAuto(1) = _key("The map's parallelism: an integer or autotune.")
    prefetch: IntOrAuto(0) = _key(
        "Batches prefetched: an integer or autotune; 0 = none (no injected one either)."
    )
    cache: Bool = _key("Cache the elements after the map.")
    num_elements: Int(1) = _key("Distinct elements before the source repeats.")
    file_open_ms: Float(0) = _key("Simulated cost of opening one file, in ms.")
    element_read_ms: Float(0) = _key("Simulated cost of reading one element, in ms.")
    num_files: Int(1) = _key("Simulated files the elements are read from.")
    interleave: IntOrAuto(0) = _key("Files read in parallel: an integer or autotune; 0 = one after another.")


class InputModel(_Strict):
    """One example's features (without the batch dimension), and how they are fed."""

    shape: Shape = _key("The shape of one example, without the batch dimension, e.g. [28, 28, 1].")
    dtype: OneOf(DTYPES, "dtype") = _key("The features' dtype (default float32).")
    maxval: Int(1) = _key("Integer inputs (token ids, categories) are drawn from [0, maxval).")
    pipeline: PipelineModel | None = _key(
        "A synthetic tf.data pipeline; without it, batches are fed from memory."
    )


class NamedInputModel(_Strict):
    """One input of a multi-input model, overridden by name (shape, dtype, maxval; no pipeline)."""

    shape: Shape = _key("The shape of one example of this input, without the batch dimension.")
    dtype: OneOf(DTYPES, "dtype") = _key("This input's dtype (default: the model's).")
    maxval: Int(1) = _key("Integer ids of this input are drawn from [0, maxval).")


# Tags of the two forms of `input:`; the loader drops them from error locations (they are not keys of the
# file).
INPUT_FORMS = ("one", "by_name")


def input_form(v: Any) -> str:
    """`input: {shape: ...}` (one input) or `input: {name: {shape: ...}, ...}` (by name): by name when every
    value is a mapping and some key is not a key of the one-input form (a misspelt key stays an error of that
    form)."""
    if (
        isinstance(v, dict)
        and v
        and all(isinstance(x, dict) for x in v.values())
        and any(k not in InputModel.model_fields for k in v)
    ):
        return "by_name"
    return "one"


InputOrByName = Optional[
    Annotated[
        Union[Annotated[InputModel, Tag("one")], Annotated[dict[str, NamedInputModel], Tag("by_name")]],
        Discriminator(input_form),
    ]
]


class LabelsModel(_Strict):
    """Synthetic labels: `classes` (integer labels), or `shape` and `dtype` (regression targets)."""

    classes: Int(1) = _key("Integer labels drawn from [0, classes).")
    shape: Shape = _key("The shape of one label tensor, without the batch dimension.")
    dtype: OneOf(DTYPES, "dtype") = _key("The label tensor's dtype (default float32).")


class DistributeModel(_Strict):
    """Train under a tf.distribute strategy (docs/distributed.md)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=distribute_rules())

    strategy: OneOf(STRATEGIES, "strategy") = _key("one_device (default), mirrored or multi_worker.")
    devices: Int(1) = _key("mirrored: devices of this machine (GPUs, else logical CPU devices); default 2.")
    workers: Int(1) = _key(
        "multi_worker: worker processes, or the cluster's size under TF_CONFIG; default 2."
    )


class CaseModel(_Strict):
    """Every key a case (or `defaults`) may hold. Left out = the default; a case's explicit null unsets a
    default."""

    name: Name = _key("The case's name: letters, digits, '_', '.' and '-'.")
    model: Reference = _key(
        "A Keras model: zoo:NAME (tfperf list), package.module:attr or path/to/file.py:attr."
    )
    function: Reference = _key("A plain Python function of TF ops (instead of a model); needs 'inputs'.")
    inputs: Reference = _key(
        "For a 'function' case: a callable returning an iterable of (args, kwargs) per step."
    )
    dataset: Reference = _key(
        "A callable(batch_size) returning a tf.data.Dataset of (x, y) to feed the model."
    )
    params: Params = _key("Keyword arguments for the model factory.")
    input: InputOrByName = _key(
        "One example's features; optional when the model says its input shape. For a "
        "model of several inputs, a mapping of input name to {shape, dtype, maxval}."
    )
    labels: LabelsModel | None = _key("Synthetic labels; optional when the model's output says them.")
    modes: Modes = _key("Modes to time: eager, function, xla and, for task: infer, the deployment modes.")
    device: Device = _key("auto (first GPU, else CPU), cpu, gpu or gpu:N.")
    task: OneOf(TASKS, "task") = _key(
        "train (a training step), infer (a forward pass) or fit (Keras' model.fit, its loop included)."
    )
    keras: KerasVersions = _key(
        "3 (keras), 2 (tf_keras) or [3, 2] (both, as cases <name>-keras3 and "
        "<name>-keras2): for a zoo model or a factory with a `keras` parameter."
    )
    steps_per_execution: Int(1) = _key(
        "task: fit: training steps per call of Keras' compiled train function."
    )
    batch_size: BatchSize = _key("A batch size, or a list of them (a sweep).")
    warmup_steps: Int(0) = _key("Untimed steps before each repeat.")
    steps: Int(1) = _key("Timed steps per repeat.")
    repeats: Int(1) = _key("Repeats per worker process.")
    processes: Int(1) = _key("Fresh worker processes that time each job, in rounds over the suite.")
    profile: Bool = _key("Capture a trace in an extra, untimed pass (first process only).")
    timeout_s: Float(0, strict=True) = _key("Per case and process, in seconds; the worker is killed past it.")
    max_traces: Int(1, nullable=True) = _key("Fail a job that traces its step more often than this.")
    what_if: Bool = _key("When input-bound, re-run with each applicable tf.data change.")
    distribute: DistributeModel | None = _key("Train under a tf.distribute strategy.")
    tf_config: TfConfig = _key("Process-wide TensorFlow settings: threads, jit, Grappler, mixed precision.")


class SuiteModel(_Strict):
    """A tfperf suite: cases to time, each in several modes (docs/suites.md)."""

    name: Name = Field(description="The suite's name: letters, digits, '_', '.' and '-'.")
    description: Str(nullable=True) = _key("What the suite shows.")
    defaults: CaseModel | None = _key("Any case key except name: the value for every case that does not say.")
    cases: list[CaseModel] = Field(description="The cases, each with its own name.")


# Allowed keys per level, for "did you mean" and for naming the level in messages.
KEYS: dict[str, tuple[str, ...]] = {
    "top": tuple(SuiteModel.model_fields),
    "case": tuple(CaseModel.model_fields),
    "input": tuple(InputModel.model_fields),
    "pipeline": tuple(PipelineModel.model_fields),
    "labels": tuple(LabelsModel.model_fields),
    "distribute": tuple(DistributeModel.model_fields),
}
