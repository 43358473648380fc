"""What-if runs: for an input-bound job, re-measure it with each applicable tf.data change, alone and
combined, and record what each change measured, so the advisor suggests only fixes that were proven faster
here.

The TF "tf.data performance" guide teaches prefetch, parallel map, parallel interleave and cache by timing an
artificial dataset by hand; this does the same for a case's own pipeline. A change is measured by re-running
the job's timed pass (harness.run_job, same mode, steps and repeats, profiler off) in the worker that just
measured it, with a modified copy of the case:

- a synthetic `input.pipeline`: the PipelineSpec itself changes (prefetch, num_parallel_calls, cache,
  interleave);
- a user `dataset:`: its dataset is wrapped (an appended prefetch; tf.data.Options autotune,
  map_parallelization and parallel_batch; cache() when the data is finite, not shuffled and fits in memory);
- any of them: a larger batch (twice the batch; compared per sample, not per step).

The baseline is the unchanged job measured twice: its own timed pass before the what-ifs and one more run
after them, pooled (`Result.what_if_baseline` has both medians and the drift between them), so load
that drifts while the what-ifs run does not land on one side of every ratio.

Each entry of `Result.what_if` is a `WhatIf` record (change, code, median_s, baseline_median_s, speedup,
input_wait_fraction, helped, ...: what tfperf.analysis.advisor's rules read). `helped` needs a speed-up above
`thresholds.WHAT_IF_MIN_SPEEDUP` and, with enough samples, a significant difference
(`tfperf.figures.decisions.helped`): a change that did not help is recorded, never suggested.

Which jobs and which changes are plain functions over specs and results, in tfperf.measure.whatif_changes
(no TensorFlow at import); only `run_what_ifs` / `attach_what_ifs` here measure, and import TensorFlow there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from tfperf import units
from tfperf.measure.whatif_changes import Change, applicable_changes, needs_what_if, what_if_entry
from tfperf.results.job_records import WhatIfBaseline, readout_failed
from tfperf.results.model import JobSpec, Result
from tfperf.results.records import WhatIf
from tfperf.suite.spec import CaseSpec

# What-ifs run inside the case's timeout_s (the runner kills the worker past it, and the job's own result with
# it): a what-if is skipped, and says so, when the worker would pass this share of timeout_s while running it.
TIMEOUT_SHARE = 0.8


def _available_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - without it, the fixed cap alone decides
        return None


def dataset_facts(ds: Any) -> dict:
    """Finite? Shuffled? How many bytes? From the dataset's own graph and element spec (TensorFlow)."""
    import numpy as np
    import tensorflow as tf

    facts: dict[str, Any] = {"finite": None, "shuffled": None, "bytes": None}
    try:
        cardinality = int(ds.cardinality())
        facts["finite"] = cardinality >= 0
        graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())  # noqa: SLF001 - tf.data's only graph export
        ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
        facts["shuffled"] = any("Shuffle" in op for op in ops)
        if facts["finite"]:
            per_element = 0
            for spec in tf.nest.flatten(ds.element_spec):
                shape = spec.shape
                if not shape.is_fully_defined():
                    per_element = None
                    break
                per_element += int(np.prod(shape.as_list() or [1])) * spec.dtype.size
            facts["bytes"] = None if per_element is None else per_element * cardinality
    except Exception as exc:  # noqa: BLE001 - without the facts, cache() is simply not tried
        facts["error"] = f"{type(exc).__name__}: {exc}"[:200]
    return facts


def _wrap_dataset(ds: Any, wrappers: tuple[str, ...]) -> Any:
    import tensorflow as tf

    if "cache" in wrappers:
        ds = ds.cache()
    if "options" in wrappers:
        options = tf.data.Options()
        options.autotune.enabled = True
        options.experimental_optimization.map_parallelization = True
        options.experimental_optimization.parallel_batch = True
        ds = ds.with_options(options)
    if "prefetch" in wrappers:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds


def variant(
    case: CaseSpec, job: JobSpec, change: Change, resolve: Callable[[str], Any]
) -> tuple[CaseSpec, JobSpec, Callable[[str], Any]]:
    """The case, job and reference resolver that measure `change`: the profiler off, no what-if of its own."""
    bs = job.batch_size * change.batch_factor if job.batch_size else job.batch_size
    new_job = dataclasses.replace(job, batch_size=bs)
    new_case = case.replace(
        profile=False, what_if=False, max_traces=None, batch_sizes=(bs,) if bs else case.batch_sizes
    )
    if change.pipeline and case.input is not None and case.input.pipeline is not None:
        pipeline = dataclasses.replace(case.input.pipeline, **change.pipeline)
        new_case = new_case.replace(input=dataclasses.replace(case.input, pipeline=pipeline))
    new_resolve = resolve
    if change.dataset and case.dataset is not None:
        new_resolve = wrapping_resolver(resolve, case.dataset, change.dataset)
    return new_case, new_job, new_resolve


def wrapping_resolver(
    resolve: Callable[[str], Any], dataset_ref: str, wrappers: tuple[str, ...]
) -> Callable[[str], Any]:
    """`resolve`, except that the case's dataset factory comes back with `wrappers` applied to what it
    builds."""

    def new_resolve(ref: str) -> Any:
        target = resolve(ref)
        if ref != dataset_ref:
            return target
        return lambda batch_size: _wrap_dataset(target(batch_size), wrappers)

    return new_resolve


def pooled_baseline(before: Result, after: Result | None) -> Result:
    """The unchanged job measured before the what-ifs (its own timed pass) and again after them, pooled: a
    machine whose load drifts during the what-ifs moves both ends, not only the changes' side of every
    ratio."""
    if after is None or not after.ok or not after.samples:
        return before
    samples = list(before.samples) + list(after.samples)
    waits = list(before.input_wait_s) + list(after.input_wait_s)
    wait = sum(waits) / sum(samples) if waits and len(waits) == len(samples) and sum(samples) > 0 else None
    return dataclasses.replace(
        before,
        samples=samples,
        input_wait_s=waits,
        input_wait_fraction=wait if wait is not None else before.input_wait_fraction,
    )


def baseline_note(before: Result, after: Result | None) -> WhatIfBaseline:
    """How the baseline was measured, and whether the machine drifted between its two measurements."""
    note = WhatIfBaseline(median_s_before=before.median_s, samples_before=len(before.samples))
    if after is not None and after.ok and after.samples:
        note.median_s_after = after.median_s
        note.samples_after = len(after.samples)
        note.drift = abs(after.median_s / before.median_s - 1) if before.median_s else None
    return note


def run_what_ifs(
    case: CaseSpec, job: JobSpec, ctx: Any, resolve: Callable[[str], Any], baseline: Result
) -> tuple[list[WhatIf], WhatIfBaseline]:
    """Measure every applicable change for this job, in this process (tf.data changes need no fresh
    TensorFlow), then the unchanged job once more. Returns the what-if entries and how the baseline was
    measured."""
    facts = None
    if case.dataset is not None and job.batch_size:
        try:
            facts = dataset_facts(resolve(case.dataset)(job.batch_size))
        except Exception as exc:  # noqa: BLE001 - the user's dataset may raise anything; said in the facts
            facts = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    changes = applicable_changes(
        case, job.batch_size, dataset_facts=facts, available_bytes=_available_bytes()
    )
    with tempfile.TemporaryDirectory(prefix="tfperf-whatif-") as scratch:
        # The re-runs write into a scratch folder, deleted after them, never into the run's: the harness names
        # a job's TensorBoard run (and its deployment artefacts) by case, mode and batch size, so in the run
        # folder every variant's summaries would land in the job's own run, mixed with its numbers.
        quiet_ctx = dataclasses.replace(ctx, out_dir=Path(scratch))
        return _measure_changes(case, job, quiet_ctx, resolve, baseline, changes)


def _measure_changes(
    case: CaseSpec,
    job: JobSpec,
    quiet_ctx: Any,
    resolve: Callable[[str], Any],
    baseline: Result,
    changes: list[Change],
) -> tuple[list[WhatIf], WhatIfBaseline]:
    from tfperf.measure import harness

    budget = Budget(case.timeout_s * TIMEOUT_SHARE, baseline.wall_s or 0.0)
    # Timed the way the baseline was (per step, or blocks of its size), so before and after are samples of one
    # kind.
    block_size = baseline.timing.block_size if baseline.timing else None
    measured: list[tuple[Change, Result | None]] = []
    for change in changes:
        if not budget.allows_another():
            measured.append((change, None))
            continue
        new_case, new_job, new_resolve = variant(case, job, change, resolve)
        with budget.timing():
            measured.append(
                (change, harness.run_job(new_case, new_job, quiet_ctx, new_resolve, block_size=block_size))
            )
            # The re-run's iterator (and its prefetch/interleave threads) must be gone before the next is
            # timed.
            gc.collect()
    unchanged = None
    if budget.allows_another():
        unchanged = harness.run_job(
            case.replace(profile=False, what_if=False, max_traces=None),
            job,
            quiet_ctx,
            resolve,
            block_size=block_size,
        )
        gc.collect()
    pooled = pooled_baseline(baseline, unchanged)
    entries = [
        what_if_entry(change, pooled, r) if r is not None else skipped_entry(change, case.timeout_s)
        for change, r in measured
    ]
    return entries, baseline_note(baseline, unchanged)


def skipped_entry(change: Change, timeout_s: float) -> WhatIf:
    return WhatIf(
        change=change.name,
        code=change.code,
        combined=change.combined,
        helped=False,
        skipped=f"not run: it would pass {units.percent(TIMEOUT_SHARE)} of the case's timeout_s "
        f"({timeout_s:g} s)",
    )


class Budget:
    """Time left for what-ifs: the worker's age (the runner's timeout_s counts from the worker's start) plus
    the last re-run's duration must stay under the limit."""

    def __init__(self, limit_s: float, estimate_s: float):
        self.limit_s = limit_s
        self.estimate_s = estimate_s

    @staticmethod
    def worker_age_s() -> float | None:
        try:
            import psutil

            return time.time() - psutil.Process().create_time()
        except Exception:  # noqa: BLE001 - without it, nothing is skipped
            return None

    def allows_another(self) -> bool:
        age = self.worker_age_s()
        return age is None or age + self.estimate_s <= self.limit_s

    @contextlib.contextmanager
    def timing(self):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.estimate_s = time.perf_counter() - t0


def attach_what_ifs(
    case: CaseSpec, job: JobSpec, ctx: Any, resolve: Callable[[str], Any], result: Result
) -> None:
    """Called by the worker after a job's own passes: re-run it with each tf.data change when it is
    input-bound. A job that is not input-bound gets no what-if runs (result.what_if stays None)."""
    if not needs_what_if(case, result):
        return
    try:
        result.what_if, result.what_if_baseline = run_what_ifs(case, job, ctx, resolve, result)
    except Exception as exc:  # noqa: BLE001 - the measured result stands without its what-ifs
        result.readout_errors = readout_failed(result.readout_errors, "what_if", exc)
