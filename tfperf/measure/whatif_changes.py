"""Which jobs get what-if runs and which tf.data changes apply to them (tfperf.measure.whatif measures them):
plain functions over specs and results, no TensorFlow at import. Each measured change becomes a `WhatIf`
entry, and `helped` says whether it was faster by the margin and significantly: the advisor suggests only
those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tfperf import units
from tfperf.figures import decisions
from tfperf.figures.decisions import p_value
from tfperf.figures.measures import input_bound_fraction
from tfperf.figures.thresholds import INPUT_BOUND_FRACTION, WHAT_IF_MIN_SPEEDUP
from tfperf.results.model import Result
from tfperf.results.records import WhatIf
from tfperf.suite.spec import AUTOTUNE, CaseSpec, PipelineSpec

# cache() keeps every element in memory: only when the data is below this and below a quarter of the memory
# available when the what-if runs (the step itself, its model and other processes need the rest).
CACHE_MAX_BYTES = 1 << 30
CACHE_MAX_MEMORY_SHARE = 0.25
# The larger-batch what-if doubles the batch.
BATCH_FACTOR = 2

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
