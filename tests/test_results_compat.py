"""A results.json written before the package was laid out by stage (schema_version 1, `tfperf run
suites/smoke.yaml` on the 2-core CI machine) still reads, renders and compares: the file format is public."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, run_tfperf

from tfperf.results import SCHEMA_VERSION, load_results

OLD = ROOT / "tests" / "data" / "results_v1_before_layout.json"


def test_old_results_load_and_round_trip(tmp_path):
    run = load_results(OLD)
    raw = json.loads(OLD.read_text())
    assert raw["schema_version"] == SCHEMA_VERSION == 1
    assert len(run.results) == len(raw["results"]) == 9
    # Every field the old file recorded survives a load and a write, including the derived ones.
    again = run.to_json()
    for old, new in zip(raw["results"], again["results"]):
        assert set(old) <= set(new), set(old) - set(new)
        for key in (
            "case",
            "mode",
            "status",
            "samples",
            "first_call_s",
            "step_time_s",
            "throughput",
            "profile",
        ):
            assert new[key] == old[key], key


@pytest.mark.cli
def test_report_reads_old_results(tmp_path):
    table = run_tfperf("report", str(OLD))
    assert table.returncode == 0, table.stderr
    for case in ("mlp", "small_cnn-infer", "matmul-chain"):
        assert case in table.stdout
    html = tmp_path / "report.html"
    proc = run_tfperf("report", str(OLD), "--format", "html", "--output", str(html))
    assert proc.returncode == 0, proc.stderr
    page = html.read_text()
    assert "matmul-chain" in page and "Traceback" not in page
    md = run_tfperf("report", str(OLD), "--format", "markdown")
    assert md.returncode == 0 and "| mlp" in md.stdout, md.stderr


@pytest.mark.cli
def test_compare_reads_old_results_against_themselves():
    proc = run_tfperf("compare", str(OLD), str(OLD), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    cmp = json.loads(proc.stdout)
    verdicts = [row["verdict"] for row in cmp["rows"]]
    assert len(verdicts) == 9 and set(verdicts) == {"unchanged"}
