"""A `task: fit` result carries the noise record of each worker process that timed it (`timing.noise`,
`timing.by_process[].noise`) and the harness's warm-up, as a harness job of the same run does: one real
`tfperf run` of a fit case and a train case in two processes each. (A distributed result's record, from its
one process: tests/test_distributed.py.)"""

from __future__ import annotations

import json

import pytest
from conftest import run_tfperf

from tfperf.measure.timing import WARMUP_MIN_S

FIT_AND_TRAIN = """
name: fit-noise
defaults: {model: zoo:mlp, params: {hidden: [512]}, batch_size: 64, modes: [function], warmup_steps: 1,
           steps: 2, repeats: 2, processes: 2, profile: false, timeout_s: 240}
cases:
  - name: fit
    task: fit
  - name: step
    task: train
"""


@pytest.mark.workers
def test_a_fit_result_carries_each_process_noise_record_like_a_harness_result(tmp_path):
    (tmp_path / "suite.yaml").write_text(FIT_AND_TRAIN)
    proc = run_tfperf("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    timing = {r["case"]: r["timing"] for r in results}
    harness_keys = set(timing["step"]["noise"])
    for case in ("fit", "step"):
        by_process = timing[case]["by_process"]
        assert [p["process"] for p in by_process] == [0, 1]
        # Each process's own record, the first process's also the result's own, as the harness writes them.
        assert all(set(p["noise"]) == harness_keys for p in by_process), case
        assert by_process[0]["noise"] == timing[case]["noise"]
        assert by_process[0]["noise"] != by_process[1]["noise"]
        # Warm-up lasts WARMUP_MIN_S, or WARMUP_MAX_EXTRA_STEPS more steps: steps of a few milliseconds (a
        # 512-wide layer at batch 64) reach the time first.
        assert all(p["warmup_s"] >= WARMUP_MIN_S for p in by_process), case
