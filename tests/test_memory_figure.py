"""Peak memory is shown only where it is a peak.

On the CPU, tfperf used to record the growth of the worker's resident high-water mark over the job as
`peak_memory_bytes` and show it as "peak memory": 576 KiB for a transformer training step whose profile
reported 25 MiB in use, because memory an earlier job freed is reused without the resident set growing. Now a
CPU job has no allocator peak (None), that growth is read under its own name, and every output shows a real
peak only: the GPU allocator's, or the profiler's memory profile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tfperf import units
from tfperf.figures.measures import PeakFigure, peak_memory
from tfperf.measure.memory import PeakMemory
from tfperf.report.html import render_html
from tfperf.report.view import result_row
from tfperf.results.model import Result, load_results

DATA = Path(__file__).resolve().parent / "data"
MiB = 1 << 20


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/self/status (Linux)")
def test_cpu_job_has_no_allocator_peak_and_the_rss_growth_is_named_for_what_it_is():
    memory = PeakMemory("cpu")
    memory.reset()
    held = np.ones(64 * MiB // 8)  # 64 MiB, every page touched: resident while it is held
    assert memory.peak_bytes() is None  # not "peak memory": TensorFlow's CPU allocator keeps no peak
    growth = memory.rss_growth_bytes()
    # The new resident memory is at least what was touched and still held (other threads may free some
    # meanwhile).
    assert growth is not None and growth >= 48 * MiB, growth
    del held


def test_gpu_peak_is_the_allocators_and_a_cpu_peak_comes_from_the_memory_profile_only():
    # The numbers: a CPU result (from a results.json written before this change) whose
    # peak_memory_bytes is the RSS growth, and whose profile's memory profile shows the real peak.
    cpu = Result(
        "transformer",
        "function",
        "cpu",
        "train",
        8,
        samples=[0.01] * 4,
        peak_memory_bytes=576 * 1024,
        profile={"memory_peak_bytes": 25 * MiB},
    )
    assert peak_memory(cpu) == PeakFigure(25 * MiB, "profile")
    assert result_row(cpu, [cpu], False)["peak_memory"] == "25.0 MiB (profile)"
    # Without a memory profile (oneDNN off, or no profiled pass) a CPU job shows no peak, not the RSS growth.
    cpu.profile = None
    assert peak_memory(cpu) is None and result_row(cpu, [cpu], False)["peak_memory"] == units.MISSING
    gpu = Result(
        "transformer",
        "function",
        "gpu:0",
        "train",
        8,
        samples=[0.01] * 4,
        peak_memory_bytes=300 * MiB,
        profile={"memory_peak_bytes": 25 * MiB},
    )
    assert peak_memory(gpu) == PeakFigure(300 * MiB, "allocator")
    assert result_row(gpu, [gpu], False)["peak_memory"] == "300.0 MiB"


def test_an_old_results_file_shows_no_rss_growth_as_peak_memory():
    run = load_results(DATA / "results_v1_before_layout.json")
    old = {r.peak_memory_bytes for r in run.results}
    assert all(
        isinstance(b, int) and b > 0 for b in old
    )  # CPU jobs, each with the RSS growth written as a "peak"
    page = render_html(run)
    assert "peak memory" in page
    for r in run.results:
        assert result_row(r, run.results, False)["peak_memory"] == units.MISSING
    for b in old:
        assert f">{b / MiB:.1f} MiB<" not in page
