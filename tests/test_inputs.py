"""The synthetic pipeline's simulated file source (the tf.data guide's artificial dataset), with real
tf.data."""

import time

import pytest

from tfperf.measure.inputs import is_file_source, synthetic_pipeline
from tfperf.suite.spec import AUTOTUNE, InputSpec, LabelsSpec, PipelineSpec

pytestmark = pytest.mark.tensorflow


def one_pass(pipeline: PipelineSpec, batch_size: int = 4, warm_passes: int = 0):
    """Every batch of one pass over the distinct elements, and how long reading them took (after warm_passes
    untimed passes: threads started, autotune settled; each pass opens the files again)."""
    ds, note = synthetic_pipeline(InputSpec(shape=(3,), pipeline=pipeline), LabelsSpec(classes=5), batch_size)
    steps = max(pipeline.num_elements, batch_size) // batch_size
    it = iter(ds)
    for _ in range(warm_passes * steps):
        next(it)
    t0 = time.perf_counter()
    batches = [next(it) for _ in range(steps)]
    return batches, time.perf_counter() - t0, note


def rows(batches):
    return sorted(tuple(round(float(v), 5) for v in row) for x, _ in batches for row in x.numpy())


def test_file_source_reads_every_element_once_sequential_or_interleaved():
    in_memory, _, _ = one_pass(PipelineSpec(num_elements=24))
    sequential, _, note = one_pass(PipelineSpec(num_elements=24, num_files=5))  # 5 files of 5, the last short
    interleaved, _, _ = one_pass(PipelineSpec(num_elements=24, num_files=5, interleave=2))
    assert rows(sequential) == rows(interleaved) == rows(in_memory)
    assert note.startswith("naive baseline")
    assert is_file_source(PipelineSpec(num_files=5)) and not is_file_source(PipelineSpec(map_cost_ms=3))


def test_no_prefetch_means_none_even_with_a_parallel_stage():
    _, _, note = one_pass(PipelineSpec(num_elements=8, num_parallel_calls=AUTOTUNE))
    assert "injected prefetch" in note
    _, _, note = one_pass(PipelineSpec(num_elements=8, num_parallel_calls=AUTOTUNE, prefetch=AUTOTUNE))
    assert note is None


def test_parallel_interleave_overlaps_file_opens_and_reads():
    # 4 files, each 20 ms to open and 8 × 2 ms to read: 144 ms one after another; 4 files read at once overlap
    # their sleeps (a sleep holds no CPU), so the relation holds on a loaded machine.
    slow = PipelineSpec(num_elements=32, num_files=4, file_open_ms=20, element_read_ms=2)
    _, sequential_s, _ = one_pass(slow, warm_passes=1)
    _, parallel_s, _ = one_pass(PipelineSpec(**{**slow.__dict__, "interleave": 4}), warm_passes=1)
    assert sequential_s > 4 * 0.020 + 32 * 0.002  # the sleeps are really there
    assert parallel_s < sequential_s
