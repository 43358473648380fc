"""The `noisy-measurement` rule: step times that spread too far to trust small differences, and where from."""

from __future__ import annotations

from tfperf import stats
from tfperf.analysis.advisor.device import THREAD_KEYS
from tfperf.analysis.advisor.suggestion import Finding, suggestion
from tfperf.figures.measures import measured, noise_fraction
from tfperf.figures.thresholds import NOISY_FRACTION
from tfperf.results.model import RunResult
from tfperf.units import ms

# On the 2-core test VM the same matmul chain's median moved 59-62% between worker processes with TensorFlow's
# default thread pools (two sets of 10 processes) and 3-15% with one intra-op and one inter-op thread (three
# sets): the steady setting for a suite that tracks regressions, at the cost of timing single-threaded speed.
STEADY_THREADS = "tf_config: {intra_op_threads: 1, inter_op_threads: 1}"


def rule_noisy_measurement(run: RunResult) -> list[Finding]:
    out = []
    for r in measured(run.results):
        if not r.noisy:
            continue
        st = r.step_time_s
        fraction = noise_fraction(r)
        evidence = (
            f"the interquartile range is {fraction:.0%} of the median "
            f"({ms(st['iqr'])} of {ms(st['median'])} ms over {st['samples']} samples)"
        )
        fix = (
            "repeats: 5  # in the suite (and steps: 50): more samples; "
            "stop programs competing for the CPU/GPU"
        )
        spread = r.process_spread
        if spread is not None and spread > NOISY_FRACTION:
            medians = ", ".join(ms(stats.summarize(g)["median"]) for g in r.process_groups())
            evidence += (
                f"; its {r.process_count} worker processes' medians were {spread:.0%} apart ({medians} ms)"
            )
            threads_set = any(k in ((r.setup.tf_config if r.setup else None) or {}) for k in THREAD_KEYS)
            if r.device.startswith("cpu") and not threads_set:
                fix = (
                    f"{STEADY_THREADS}  # in the suite, to track regressions: one thread per op kept worker "
                    "processes within 3-15% of each other on a 2-core VM, against 60% with the default pools"
                )
        out.append(
            (
                r,
                suggestion(
                    "noisy-measurement",
                    "Noisy timing: treat small differences for this job with care",
                    evidence + ".",
                    fix,
                    f"IQR > {NOISY_FRACTION:.0%} of the median",
                    iqr_fraction=fraction,
                    samples=st["samples"],
                    process_spread=spread,
                ),
            )
        )
    return out
