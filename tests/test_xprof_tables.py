"""The reader of xprof's tool output (tfperf/profile/xprof_tables.py), over tables shaped as xprof 2.24 writes
them; no TensorFlow or xprof needed."""

from __future__ import annotations

import json

import pytest

from tfperf.profile import xprof_tables


def _datatable(cols, rows, p=None):
    return {
        "cols": [{"id": c, "label": c, "type": "string"} for c in cols],
        "rows": [{"c": [{"v": v} for v in r]} for r in rows],
        **({"p": p} if p else {}),
    }


def test_decode_unwraps_the_content_type_pair_and_parses_bytes_or_text():
    table = _datatable(["a"], [[1]])
    text = json.dumps([table])
    assert xprof_tables.decode((text.encode(), "application/json")) == [table]  # xprof 2.24
    assert xprof_tables.decode(text) == [table]  # older releases: bare data
    assert xprof_tables.decode({"x": 1}) == {"x": 1}  # already parsed
    for empty in (b"", ("  ", "application/json"), None):
        with pytest.raises(ValueError, match="empty"):
            xprof_tables.decode(empty)


def test_tables_and_cells_read_rows_by_column_id_or_label():
    by_label = {
        "cols": [{"label": "name"}, {"id": "v"}],
        "rows": [{"c": [{"v": "x"}, 2.5]}, {"c": [{"v": "y"}, None]}],
    }
    assert xprof_tables.tables(by_label) == [by_label]
    assert xprof_tables.tables([by_label, "not a table", None]) == [by_label]
    assert xprof_tables.cells(by_label) == [{"name": "x", "v": 2.5}, {"name": "y", "v": None}]


def test_number_takes_the_leading_number_of_a_string():
    assert xprof_tables.number("12.5%") == 12.5
    assert xprof_tables.number(" 3e-2 ms") == pytest.approx(0.03)
    assert xprof_tables.number(7) == 7.0 and isinstance(xprof_tables.number(7), float)
    assert xprof_tables.number("n/a") is None and xprof_tables.number(None) is None


def test_op_stats_table_is_the_first_with_self_times():
    empty = _datatable(["rank"], [])
    first = _datatable(["type", "total_self_time"], [["IDLE", 10.0]])
    second = _datatable(["type", "total_self_time"], [["MatMul", 1.0]])
    assert xprof_tables.op_stats_table([empty, first, second]) is first
    with pytest.raises(ValueError, match="no op table"):
        xprof_tables.op_stats_table([empty])
