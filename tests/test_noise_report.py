"""The worker processes' noise records in `tfperf run`'s reports: the HTML details table, and a note line in
the terminal and Markdown for a result whose records warn. One real run of a tiny case in two processes, with
an intra-op pool larger than the CPUs this process may use, so the oversubscription warning is certain."""

import json
import os
import re
import textwrap
from pathlib import Path

import pytest
from conftest import run_tfperf
from test_html_report import table_rows

from tfperf.host.noise import FIELDS

pytestmark = pytest.mark.workers

STEPS = """import tensorflow as tf


def step(x, w):
    return tf.reduce_sum(tf.tanh(tf.matmul(x, w)))


def inputs():
    x = tf.random.stateless_normal((64, 64), seed=[1, 2])
    while True:
        yield (x, x), {}
"""


def test_reports_show_each_process_noise_record_as_results_json_has_it(tmp_path: Path):
    threads = len(os.sched_getaffinity(0)) + 1
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "suite.yaml").write_text(
        textwrap.dedent(f"""\
        name: noise-report
        defaults: {{modes: [function], warmup_steps: 1, steps: 4, repeats: 2, processes: 2, profile: false,
                   timeout_s: 120, tf_config: {{intra_op_threads: {threads}, inter_op_threads: 1}}}}
        cases:
          - name: tiny
            function: steps.py:step
            inputs: steps.py:inputs
        """)
    )
    out = tmp_path / "out"
    proc = run_tfperf("run", str(tmp_path / "suite.yaml"), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())["results"][0]
    records = [p["noise"] for p in result["timing"]["by_process"]]
    assert len(records) == 2 and all(records)

    html = (out / "report.html").read_text()
    # The case's part of the page (its section holds nested ones, so up to the glossary: the one case)
    rows = table_rows(html[html.index('data-case-section="tiny"') : html.index('id="glossary"')], "noise")
    assert len(rows) == 2
    for process, (row, rec) in enumerate(zip(rows, records)):
        cell = dict(zip(("process", *FIELDS), row))
        assert cell["process"] == str(process)
        assert [float(x) for x in cell["load average 1/5/15 min"].split()] == rec["load_average"]
        vol, invol = (int(x) for x in cell["context switches voluntary / involuntary"].split(" / "))
        assert (vol, invol) == (rec["voluntary_context_switches"], rec["involuntary_context_switches"])
        assert float(cell["involuntary per s"]) == round(rec["involuntary_context_switches"] / rec["timed_s"])
        shown = [int(x) for x in re.findall(r"\d+", cell["threads intra / inter-op on CPUs"])]
        assert shown == [threads, 1, rec["schedulable_cpus"]] == [rec["intra_op_threads"], 1, threads - 1]
        cpus = [
            c
            for part in cell["CPU affinity"].split(",")
            for c in (range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1))
        ]
        assert cpus == rec["cpu_affinity"]
        assert cell["ASLR"] == (rec["aslr"] or "–")
        assert cell["CPU governor"] == (
            ", ".join(rec["cpu_governor"]) if rec["cpu_governor"] else "not readable"
        )
    assert "noise=" not in html and "voluntary_context_switches" not in html  # not a key=value dump

    # The warnings, as the records word them, in the HTML, the Markdown and the terminal table.
    warned = f"{threads} intra-op threads on {threads - 1} schedulable CPU(s): oversubscribed"
    assert all(warned in rec["warnings"] for rec in records)
    assert f"process 0: {warned}" in html and f"process 1: {warned}" in html
    markdown = (out / "report.md").read_text()
    assert "## Process noise" in markdown and f"{warned} (processes 0, 1)" in markdown
    table = run_tfperf("report", str(out / "results.json"), "--format", "table")
    assert table.returncode == 0, table.stderr[-2000:]
    note = next(line for line in table.stdout.splitlines() if warned in line)
    assert note.strip().startswith("tiny") and f"{warned} (processes 0, 1)" in note
