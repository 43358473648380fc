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

Which jobs and which changes are plain functions over specs and results (no TensorFlow at import); only
`run_what_ifs` / `attach_what_ifs` measure, and import TensorFlow there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tfperf import units
from tfperf.figures import decisions
from tfperf.figures.decisions import p_value
from tfperf.figures.measures import input_bound_fraction
from tfperf.figures.thresholds import INPUT_BOUND_FRACTION, WHAT_IF_MIN_SPEEDUP
from tfperf.measure.user_dataset import dataset_facts, memory_available_bytes, wrapping_resolver
from tfperf.results.job_records import WhatIfBaseline, readout_failed
from tfperf.results.model import JobSpec, Result
from tfperf.results.records import WhatIf
from tfperf.suite.spec import AUTOTUNE, CaseSpec, PipelineSpec

# cache() keeps every element in memory: only when the data is below this and below a quarter of the memory
# available when the what-if runs (the step itself, its model and other processes need the rest).
CACHE_MAX_BYTES = 1 << 30
CACHE_MAX_MEMORY_SHARE = 0.25
# The larger-batch what-if doubles the batch.
BATCH_FACTOR = 2
# What-ifs run inside the case's timeout_s (the runner kills the worker past it, and the job's own result with
# it): a what-if is skipped, and says so, when the worker would pass this share of timeout_s while running it.
TIMEOUT_SHARE = 0.8

PREFETCH_CODE = "dataset = dataset.prefetch(tf.data.AUTOTUNE)  # the last stage of the pipeline"
PARALLEL_MAP_CODE = "dataset = dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)"
INTERLEAVE_CODE = (
    "dataset = files.interleave(read_file, num_parallel_calls=tf.data.AUTOTUNE)"
    "  # instead of files.flat_map(read_file)"
)
OPTIONS_CODE = (
    "options = tf.data.Options()\n"
    "options.autotune.enabled = True\n"
    "options.experimental_optimization.map_parallelization = True\n"
    "options.experimental_optimization.parallel_batch = True\n"
    "dataset = dataset.with_options(options)"
)


@dataclass(frozen=True)
class Change:
    """One what-if: its name (the advisor maps names to suggestion codes: keep "prefetch", "parallel map",
    "cache", "interleave" in them, and "+" only in a combined change), the code a user writes, and how to
    apply it."""

    name: str
    code: str
    pipeline: dict = field(default_factory=dict)  # PipelineSpec field changes (synthetic pipeline)
    dataset: tuple[str, ...] = ()  # wrappers of a user dataset: "prefetch", "options", "cache"
    batch_factor: int = 1
    combined: bool = False


# --- which jobs, which changes (plain functions) ------------------------------------------------------------


def is_input_bound(result: Result, threshold: float = INPUT_BOUND_FRACTION) -> bool:
    """More than `threshold` of the step waits for data, by the one input-bound figure every output uses
    (tfperf.figures.measures: the measured wait, else the profiler's)."""
    fraction = input_bound_fraction(result)
    return result.ok and bool(result.samples) and fraction is not None and fraction > threshold


def has_tf_data_input(case: CaseSpec) -> bool:
    return case.function is None and (
        case.dataset is not None or (case.input is not None and case.input.pipeline is not None)
    )


def needs_what_if(case: CaseSpec, result: Result) -> bool:
    """Re-run this job with tf.data changes? Only when asked (what_if), fed by tf.data, and input-bound."""
    return case.what_if and has_tf_data_input(case) and is_input_bound(result)


def _itemsize(dtype: str | None) -> int:
    import numpy as np

    try:
        return int(np.dtype(dtype or "float32").itemsize)
    except TypeError:  # bfloat16 and friends numpy does not name
        return 2 if dtype and "16" in dtype else 4


def synthetic_bytes(case: CaseSpec, batch_size: int) -> int | None:
    """Bytes a cache() of the synthetic pipeline holds: every distinct element's features and label."""
    if case.input is None or case.input.pipeline is None:
        return None
    n = max(
        case.input.pipeline.num_elements, batch_size
    )  # tfperf.measure.inputs.pipeline_elements (imports TensorFlow)
    features = math.prod(case.input.shape or (1,)) * _itemsize(case.input.dtype)
    labels = math.prod((case.labels.shape or (1,)) if case.labels else (1,)) * 4
    return n * (features + labels)


def cache_fits(nbytes: int | None, available_bytes: int | None) -> bool:
    if nbytes is None:
        return False
    limit = (
        CACHE_MAX_BYTES
        if available_bytes is None
        else min(CACHE_MAX_BYTES, CACHE_MAX_MEMORY_SHARE * available_bytes)
    )
    return nbytes <= limit


def pipeline_changes(p: PipelineSpec, cache_bytes: int | None, available_bytes: int | None) -> list[Change]:
    """The tf.data changes that apply to a synthetic pipeline, each alone (the combined one is added
    later)."""
    out = []
    if p.prefetch != AUTOTUNE:
        out.append(Change("prefetch(AUTOTUNE)", PREFETCH_CODE, {"prefetch": AUTOTUNE}))
    if p.map_cost_ms > 0 and p.num_parallel_calls != AUTOTUNE:
        out.append(
            Change("map num_parallel_calls=AUTOTUNE", PARALLEL_MAP_CODE, {"num_parallel_calls": AUTOTUNE})
        )
    # Interleaving one file has nothing to overlap.
    if p.num_files > 1 and p.interleave != AUTOTUNE:
        out.append(Change("parallel interleave(AUTOTUNE)", INTERLEAVE_CODE, {"interleave": AUTOTUNE}))
    # The synthetic pipeline is never shuffled: it may be cached when it fits.
    if not p.cache and cache_fits(cache_bytes, available_bytes):
        out.append(
            Change(
                "cache()",
                "dataset = dataset.cache()  # after the expensive map, before batch; "
                f"the data fits in memory ({units.size(cache_bytes)})",
                {"cache": True},
            )
        )
    return out


def dataset_changes(facts: dict | None, available_bytes: int | None) -> list[Change]:
    """The changes that apply to a user dataset we can only wrap, not rewrite. `facts`: {finite, shuffled,
    bytes} from inspecting the dataset (cache() only for a finite, unshuffled dataset that fits)."""
    out = [
        Change("prefetch(AUTOTUNE) appended", PREFETCH_CODE, dataset=("prefetch",)),
        # map_parallelization only parallelizes stateless map functions (py_function is stateful).
        Change("parallel map via tf.data.Options", OPTIONS_CODE, dataset=("options",)),
    ]
    facts = facts or {}
    if (
        facts.get("finite")
        and facts.get("shuffled") is False
        and cache_fits(facts.get("bytes"), available_bytes)
    ):
        out.append(
            Change(
                "cache() appended",
                "dataset = dataset.cache()  # the whole dataset fits in memory "
                f"({units.size(facts['bytes'])})",
                dataset=("cache",),
            )
        )
    return out


def combine(changes: list[Change]) -> Change | None:
    """All the tf.data changes at once (the batch size stays): what the pipeline gains when every fix is
    applied."""
    if len(changes) < 2:
        return None
    pipeline = {k: v for c in changes for k, v in c.pipeline.items()}
    wrappers = tuple(w for c in changes for w in c.dataset)
    name = "combined: " + " + ".join(c.name for c in changes)
    code = "\n".join(dict.fromkeys(line for c in changes for line in c.code.splitlines()))
    return Change(name, code, pipeline, wrappers, combined=True)


def applicable_changes(
    case: CaseSpec,
    batch_size: int | None,
    *,
    dataset_facts: dict | None = None,
    available_bytes: int | None = None,
) -> list[Change]:
    """Every what-if for this case at this batch size: each tf.data change alone, all of them combined, and a
    larger batch."""
    if not has_tf_data_input(case):
        return []
    if case.dataset is not None:
        single = dataset_changes(dataset_facts, available_bytes)
    else:
        single = pipeline_changes(
            case.input.pipeline, synthetic_bytes(case, batch_size or 1), available_bytes
        )
    out = list(single)
    both = combine(single)
    if both is not None:
        out.append(both)
    if batch_size:
        bigger = batch_size * BATCH_FACTOR
        out.append(
            Change(
                f"larger batch ({batch_size} → {bigger})",
                f"dataset = dataset.batch({bigger})  # and scale the learning rate with the batch",
                batch_factor=BATCH_FACTOR,
            )
        )
    return out


def what_if_entry(change: Change, baseline: Result, measured: Result) -> WhatIf:
    """One `Result.what_if` entry: the measured re-run against the unchanged job. A larger batch is compared
    per sample (a step of twice the batch does twice the work)."""
    entry = WhatIf(
        change=change.name,
        code=change.code,
        combined=change.combined,
        baseline_median_s=baseline.median_s,
        baseline_input_wait_fraction=baseline.input_wait_fraction,
        batch_size=measured.batch_size if change.batch_factor != 1 else None,
        helped=False,
    )
    if not measured.ok or not measured.samples or not baseline.median_s:
        error = measured.error
        entry.error = (f"{error.type}: {error.message}" if error else "no samples: ")[:300]
        return entry
    per_sample = (baseline.batch_size or 1) / (measured.batch_size or 1) if change.batch_factor != 1 else 1.0
    speedup = baseline.median_s / (measured.median_s * per_sample)
    # Per-sample times for a larger batch: the test compares like with like.
    p = p_value(baseline.samples, [t * per_sample for t in measured.samples])
    entry.median_s = measured.median_s
    entry.speedup = speedup
    entry.input_wait_fraction = measured.input_wait_fraction
    entry.p_value = p
    entry.samples = list(measured.samples)
    entry.helped = helped(speedup, p)
    if measured.autotune:  # what tf.data AUTOTUNE chose in this variant (tfperf/profile/tfdata_autotune.py)
        entry.details["autotune"] = measured.autotune
    return entry


def helped(speedup: float | None, p: float | None) -> bool:
    """Faster by more than the advisor's margin, and significantly so when there are enough samples to
    test."""
    return decisions.helped(speedup, p, WHAT_IF_MIN_SPEEDUP)


# --- measuring ---------------------------------------------------------------------------------------------


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
        case, job.batch_size, dataset_facts=facts, available_bytes=memory_available_bytes()
    )
    with tempfile.TemporaryDirectory(prefix="tfperf-whatif-") as scratch:
        # The re-runs write into a scratch folder, deleted after them, never into the run's: the harness names
        # a job's TensorBoard run (and its deployment artefacts) by case, mode and batch size, so in the run
        # folder every variant's summaries would land in the job's own run, mixed with its numbers.
        quiet_ctx = dataclasses.replace(ctx, fail_on_retrace=False, out_dir=Path(scratch))
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
