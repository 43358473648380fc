"""Input-pipeline rules: input-bound steps, the tf.data what-ifs a re-run measured faster, and batches too
small.

Whether a step is input-bound is `figures.measures.input_bound(r)` (the wait tfperf measured around
`next(iterator)` when there is one, else the profiler's figure); this module only decides what to say about
it.
"""

from __future__ import annotations

import re
from collections import defaultdict

from tfperf import units
from tfperf.analysis.advisor.suggestion import Finding, suggestion
from tfperf.figures.decisions import significant
from tfperf.figures.measures import SERVE_MODE, input_bound, measured, tune_config
from tfperf.figures.thresholds import (
    INPUT_BOUND_FRACTION,
    SIGNIFICANCE_ALPHA,
    SMALL_BATCH_MIN_GAIN,
    WHAT_IF_MIN_SPEEDUP,
)
from tfperf.results.model import Result, RunResult
from tfperf.results.records import WhatIf
from tfperf.units import ms

# What-if changes by code; a change whose name matches none (e.g. a combination) only informs `input-bound`.
WHAT_IF_CODES: tuple[tuple[str, str, str], ...] = (
    # (code, pattern over the change's name, fix when the what-if carries no code of its own)
    ("prefetch", r"prefetch", "dataset = dataset.prefetch(tf.data.AUTOTUNE)"),
    (
        "parallelize-map",
        r"parallel.?map|map.?parallel|num_parallel_calls",
        "dataset = dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)",
    ),
    ("cache-dataset", r"cache", "dataset = dataset.cache()  # before shuffle/augment; the data must fit"),
    (
        "parallel-interleave",
        r"interleave",
        "dataset = files.interleave(read, num_parallel_calls=tf.data.AUTOTUNE)",
    ),
    # tfperf.measure.whatif's "larger batch (32 → 64)", compared per sample.
    ("small-batch", r"larger batch", "dataset = dataset.batch(2 * batch_size)"),
)
_COMBINED = re.compile(r"\+|,|\band\b|\bcombined\b|\ball\b", re.I)


def what_if_speedup(w: WhatIf) -> float | None:
    """The measured speed-up of a what-if; None when unmeasured or, if it was tested, not significant."""
    if w.p_value is not None and w.p_value >= SIGNIFICANCE_ALPHA:
        return None
    if w.speedup is not None:
        return float(w.speedup)
    if w.median_s and w.baseline_median_s:
        return w.baseline_median_s / w.median_s
    return None


def what_if_code(change: str) -> str | None:
    """The suggestion code of a single what-if change, by its name; None for a combination or an unknown
    one."""
    if _COMBINED.search(change):
        return None
    for code, pattern, _ in WHAT_IF_CODES:
        if re.search(pattern, change, re.I):
            return code
    return None


def best_what_if(r: Result) -> WhatIf | None:
    """The result's fastest what-if, when it measured faster than the margin (and significantly, if
    tested)."""
    # `helped: False` (tfperf.measure.whatif: not faster by the margin, or not significantly): never a fix to
    # suggest.
    done = [
        w
        for w in (r.what_if or [])
        if what_if_speedup(w) is not None and not w.error and w.helped is not False
    ]
    best = max(done, key=what_if_speedup, default=None)
    return best if best and what_if_speedup(best) > WHAT_IF_MIN_SPEEDUP else None


# The fixes for an input-bound step, by what feeds it.
PIPELINE_FIX = (
    "dataset = dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)"
    "  # run `tfperf run --what-if` to measure each change"
)
GENERATOR_FIX = (
    "dataset = tf.data.Dataset.from_generator(make_inputs, output_signature=...)"
    ".prefetch(tf.data.AUTOTUNE)  # the generator runs ahead of the step; or make it cheaper"
)


def fed_by_python(r: Result) -> bool:
    """Were the step's inputs a Python iterable (a `function:` case's `inputs:`), not a tf.data pipeline?

    The worker records the source as `setup.input_source` ("inputs" for that iterable). A result without it is
    a `function:` case's when it has no batch size: every other case (model, dataset, distributed) is
    batched."""
    source = r.setup.input_source if r.setup else None
    if source is not None:
        return source == "inputs"
    return r.batch_size is None and r.global_batch_size is None and r.mode != SERVE_MODE


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def rule_input_bound(run: RunResult) -> list[Finding]:
    out = []
    for r in measured(run.results):
        ib = input_bound(r)
        if ib is None or ib.fraction <= INPUT_BOUND_FRACTION:
            continue
        frac, source = ib.fraction, ib.source
        wait = _mean(r.input_wait_s)
        # The fraction is total wait / total step time: quote the mean step beside the mean wait (a median
        # step next to a mean wait can read as a wait longer than the step).
        step_s = _mean(r.samples) if wait is not None else r.median_s
        wait_s = wait if wait is not None else frac * r.median_s
        conclusion = r.profile.input_conclusion if r.profile else None
        evidence = (
            f"the step waits {ms(wait_s)} ms for its next batch out of {ms(step_s)} ms on average "
            f"({frac:.0%} of the step, {source})"
        )
        if ib.profiler is not None and source == "measured":
            evidence += f"; the profiler measured {ib.profiler * 100:.1f}% input"
        evidence += f'; profiler: "{conclusion}".' if conclusion else "."
        best = best_what_if(r)
        python_source = fed_by_python(r)
        if best:
            fix = best.code or "dataset = dataset.prefetch(tf.data.AUTOTUNE)"
            evidence += f" Best measured fix: {best.change} ({what_if_speedup(best):.2f}× faster)."
        elif python_source:
            # No tf.data pipeline to add map/prefetch to: the Python generator is the bottleneck.
            fix = GENERATOR_FIX
            evidence += (
                " The inputs come from a Python iterable (the case's `inputs:`): producing them is the "
                "bottleneck, and it runs in the step's thread, so nothing overlaps it with compute."
            )
        else:
            fix = PIPELINE_FIX
        out.append(
            (
                r,
                suggestion(
                    "input-bound",
                    f"Input-bound: {frac:.0%} of each step waits for data",
                    evidence,
                    fix,
                    f"input wait > {INPUT_BOUND_FRACTION:.0%} of the step (profiler: 'highly' input-bound)",
                    input_wait_fraction=frac,
                    input_wait_ms_per_step=wait_s * 1e3,
                    median_s=r.median_s,
                    input_bound_percent=r.profile.input_bound_percent if r.profile else None,
                    source=source,
                    best_what_if=best.change if best else None,
                    python_inputs=python_source,
                ),
            )
        )
    return out


def rule_what_if(run: RunResult) -> list[Finding]:
    """prefetch / parallelize-map / cache-dataset / parallel-interleave: only what a re-run measured
    faster."""
    out = []
    for r in run.results:
        for w in r.what_if or []:
            code = what_if_code(w.change)
            speedup = what_if_speedup(w)
            if (
                code is None
                or speedup is None
                or w.error
                or speedup <= WHAT_IF_MIN_SPEEDUP
                or w.helped is False
            ):
                continue
            default_fix = next(fix for c, _, fix in WHAT_IF_CODES if c == code)
            base, new = w.baseline_median_s, w.median_s
            steps = f": {ms(base)} → {ms(new)} ms/step" if base and new else ""
            wait = (
                f"; input wait {w.input_wait_fraction:.0%} of the step afterwards"
                if w.input_wait_fraction is not None
                else ""
            )
            out.append(
                (
                    r,
                    suggestion(
                        code,
                        f"{w.change}: measured {speedup:.2f}× faster",
                        f"re-run with {w.change}: {speedup:.2f}× faster{steps}{wait}.",
                        w.code or default_fix,
                        f"measured speed-up > {WHAT_IF_MIN_SPEEDUP:.2f}×",
                        change=w.change,
                        speedup=speedup,
                        median_s=new,
                        baseline_median_s=base,
                        input_wait_fraction=w.input_wait_fraction,
                    ),
                )
            )
    return out


def rule_small_batch(run: RunResult) -> list[Finding]:
    # A batch-size sweep: the same job in the same mode at several batch sizes.
    sweeps: dict[tuple, list[Result]] = defaultdict(list)
    for r in measured(run.results):
        if r.batch_size:
            sweeps[(r.case, r.mode, r.device, r.task, tune_config(r))].append(r)
    out = []
    for results in sweeps.values():
        by_size = {r.batch_size: r for r in results}
        if len(by_size) < 2:
            continue
        sizes = sorted(by_size)
        prev, last = by_size[sizes[-2]], by_size[sizes[-1]]
        t_prev, t_last = prev.throughput["samples_per_s"], last.throughput["samples_per_s"]
        gain = t_last / t_prev - 1
        # Per sample, the same test and spread rule as every other comparison of two results.
        sig, p = significant(prev, last, per_sample_times=True)
        if gain > SMALL_BATCH_MIN_GAIN and sig:
            bigger = sizes[-1] * 2
            tested = units.p_value(p) if p is not None else "too few samples to test"
            out.append(
                (
                    last,
                    suggestion(
                        "small-batch",
                        f"Throughput still rises with batch size: try batch {bigger}",
                        f"{t_prev:,.0f} samples/s at batch {sizes[-2]} → {t_last:,.0f} at batch {sizes[-1]} "
                        f"(+{gain:.0%}, {tested}): the largest batch measured does not yet fill the device.",
                        f"dataset = dataset.batch({bigger})  # and scale the learning rate with the batch",
                        f"throughput gain > {SMALL_BATCH_MIN_GAIN:.0%} between the two largest batches, "
                        "significant and "
                        f"beyond either's own spread",
                        batch_sizes=sizes,
                        samples_per_s_prev=t_prev,
                        samples_per_s_last=t_last,
                        gain=gain,
                        p_value=p,
                    ),
                )
            )
    return out
