"""The shape a result entry of results.json must have before it is read: the job keys, the plain fields' JSON
types, the status, and a JSON object (or a list of them) wherever a record goes.

A damaged file is refused with one line naming the first key of the wrong shape, instead of an error deep
inside a renderer.
"""

from __future__ import annotations

from typing import Any, Iterable

STATUSES = ("ok", "failed", "timeout", "skipped")
JOB_KEYS = ("case", "mode", "device", "task", "batch_size")  # what a result entry cannot be read without


def json_type(v: Any) -> str:
    """A JSON value's kind, as a message about a results file names it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "a list" if isinstance(v, list) else "an object" if isinstance(v, dict) else type(v).__name__


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _list_of(check):
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _optional(check):
    return lambda v: v is None or check(v)


# The shape of a result entry's plain fields (the records check their own): what the readers rely on.
SHAPES: dict[str, tuple[Any, str]] = {
    **{k: (lambda v: isinstance(v, str), "a string") for k in ("case", "mode", "device", "task", "status")},
    "batch_size": (_optional(_integer), "an integer or null"),
    "samples": (_list_of(_number), "a list of numbers"),
    "input_wait_s": (_list_of(_number), "a list of numbers"),
    "repeat_sizes": (_list_of(_integer), "a list of integers"),
    "repeat_process": (_list_of(_integer), "a list of integers"),
    # Counts and sizes too: a renderer writes a float as well as an int, and a reader must not refuse a file
    # over a shape nothing breaks on.
    **{
        k: (_optional(_number), "a number or null")
        for k in (
            "first_call_s",
            "input_wait_fraction",
            "scaling_efficiency",
            "load_time_s",
            "wall_s",
            "tracing_count",
            "peak_memory_bytes",
            "replicas",
            "global_batch_size",
            "model_size_bytes",
            "rss_growth_bytes",
        )
    },
    "model": (_optional(lambda v: isinstance(v, str)), "a string or null"),
    "variant": (_optional(lambda v: isinstance(v, str)), "a string or null"),
    "extra": (lambda v: isinstance(v, dict), "an object"),
    "autotune": (_optional(lambda v: isinstance(v, dict)), "an object or null"),
    **{k: (lambda v: isinstance(v, list), "a list") for k in ("retraces", "suggestions")},
    "what_if": (_optional(lambda v: isinstance(v, list)), "a list or null"),
}


def check_entry(d: Any, records: Iterable[str], record_type: type) -> None:
    """Raise ValueError naming the first key of `d` (a result entry) of the wrong shape. `records` are the
    fields that hold records (a JSON object, or a list of them); `record_type` is what a writer may hand over
    in their place."""
    if not isinstance(d, dict):
        raise ValueError(f"expected a JSON object, got {json_type(d)}")
    missing = [k for k in JOB_KEYS if k not in d]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for key, (check, expected) in SHAPES.items():
        if key in d and not check(d[key]):
            raise ValueError(f"{key}: expected {expected}, got {json_type(d[key])}")
    if d.get("status", "ok") not in STATUSES:
        raise ValueError(f"status {d['status']!r}: expected one of {', '.join(STATUSES)}")
    for name in records:
        value = d.get(name)
        for where, item in (
            [(f"{name}[{j}]", x) for j, x in enumerate(value)] if isinstance(value, list) else [(name, value)]
        ):
            if item is not None and not isinstance(item, (dict, record_type)):
                raise ValueError(f"{where}: expected a JSON object, got {json_type(item)}")
