"""xprof's tool output as plain Python: the one reader of the tables its converters return.

`xprof.convert.raw_to_tool_data.xspace_to_tool_data(files, tool, params)` is the code behind TensorBoard's
profile tabs. Its output is JSON (bytes or str; a (data, content type) pair in xprof 2.24, bare data in older
releases), and most tools answer with Google DataTables: `{"cols": [{"id", "label", ...}], "rows": [{"c":
[{"v": ...}]}], "p": {properties}}`, one table or a list of them. The profile read-out
(tfperf/profile/readout.py, tfperf/profile/xprof_tools.py) and the all-reduce share of a distributed trace
(tfperf/distributed/trace.py) both read them through these functions.

Everything here except `tool_data` is plain functions over that JSON, testable without TensorFlow or xprof.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

_NUMBER = re.compile(r"\s*(-?[0-9.]+(?:e-?\d+)?)")


def tool_data(files: Iterable[str | Path], tool: str) -> Any:
    """One xprof tool's output for the given xplane files, decoded (see `decode`). Needs xprof
    (tensorboard-plugin-profile); raises what its converter raises."""
    from xprof.convert import raw_to_tool_data

    return decode(raw_to_tool_data.xspace_to_tool_data([str(f) for f in files], tool, {}))


def decode(result: Any) -> Any:
    """A converter's return value as parsed JSON: unwraps a (data, content type) pair and decodes bytes/str.
    Raises ValueError on empty output."""
    data = result[0] if isinstance(result, tuple) else result
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if isinstance(data, str):
        data = json.loads(data) if data.strip() else None
    if data is None:
        raise ValueError("empty output")
    return data


def tables(data: Any) -> list[dict]:
    """The DataTables of a tool's output (a lone table counts as a list of one)."""
    if isinstance(data, dict):
        return [data]
    return [t for t in data if isinstance(t, dict)]


def column_ids(table: dict) -> list[str]:
    return [c.get("id") or c.get("label") for c in table.get("cols", [])]


def cells(table: dict) -> list[dict]:
    """A DataTable's rows as {column id: value} dicts."""
    ids = column_ids(table)
    out = []
    for row in table.get("rows", []):
        values = [c.get("v") if isinstance(c, dict) else c for c in row.get("c", [])]
        out.append(dict(zip(ids, values)))
    return out


def number(x: Any) -> float | None:
    """A cell or property as a float: numbers as they are, strings by their leading number ("12.5%" ->
    12.5)."""
    if x is None:
        return None
    if isinstance(x, (int, float)):
        return float(x)
    m = _NUMBER.match(str(x))
    return float(m.group(1)) if m else None


def op_stats_table(data: Any) -> dict:
    """framework_op_stats' op table: the first table with a `total_self_time` column (xprof lists the one
    including IDLE first, then the same without IDLE). Raises ValueError when there is none."""
    for table in tables(data):
        if "total_self_time" in column_ids(table):
            return table
    raise ValueError("no op table in framework_op_stats output")
