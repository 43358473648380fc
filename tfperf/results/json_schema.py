"""The JSON Schema of results.json (`tfperf schema results`), generated from the dataclasses that write it.

pydantic describes the dataclasses' fields; three things about the file are not fields, and are added here
from the code that decides them: the derived figures `Result.to_json` writes beside the raw samples
(`step_time_s`, `throughput`, `noisy`: readers recompute them), the record types that flatten the keys they do
not know (their `details` field) into their own object, and the one schema_version this tfperf reads.
Objects stay open to keys the schema does not name: schema_version 1 grows by adding keys, never renaming
them.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Optional

from pydantic import TypeAdapter

from tfperf.results.model import SCHEMA_VERSION, Result, RunResult
from tfperf.results.shapes import STATUSES

DRAFT = "https://json-schema.org/draft/2020-12/schema"
FLATTENED = "details"  # a record's unknown keys, written back beside its known ones


def results_schema() -> dict[str, Any]:
    schema = TypeAdapter(RunResult).json_schema()
    defs = schema.setdefault("$defs", {})
    result = defs[Result.__name__]
    for name, annotation in derived_fields().items():
        derived = TypeAdapter(Optional[annotation]).json_schema()
        defs.update(derived.pop("$defs", {}))
        derived["description"] = (
            "Derived from `samples` when written (null without samples); readers recompute it."
        )
        result["properties"][name] = derived
    result["properties"]["status"]["enum"] = list(STATUSES)
    schema["properties"]["schema_version"]["const"] = SCHEMA_VERSION
    flattened = {cls.__name__ for cls in _dataclasses(RunResult) if FLATTENED in _field_names(cls)}
    for name, model in [("", schema), *defs.items()]:
        if name in flattened:
            model["properties"].pop(FLATTENED, None)
            model["additionalProperties"] = True
        for prop in model.get("properties", {}).values():
            prop.pop("title", None)  # "First Call S" says less than the key itself
    return {"$schema": DRAFT, **schema, "title": "tfperf results.json"}


def derived_fields() -> dict[str, Any]:
    """{key: type} of what `Result.to_json` writes beyond the dataclass fields, typed by the property's return
    annotation."""
    required = {
        f.name: None
        for f in dataclasses.fields(Result)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    written = Result(**required).to_json()
    extra = [key for key in written if key not in _field_names(Result)]
    return {key: typing.get_type_hints(getattr(Result, key).fget)["return"] for key in extra}


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _dataclasses(root: type) -> list[type]:
    """Every dataclass reachable from `root` through its fields' types (lists, optionals, dicts included)."""
    seen: list[type] = []
    todo: list[Any] = [root]
    while todo:
        tp = todo.pop()
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            if tp in seen:
                continue
            seen.append(tp)
            todo.extend(typing.get_type_hints(tp).values())
        else:
            todo.extend(typing.get_args(tp))
    return seen
