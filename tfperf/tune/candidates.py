"""The configurations `tfperf tune` measures: what each one sets, and the code a user writes to get it.

A candidate is one worker's worth of configuration. Process-wide settings (threads, XLA auto-clustering,
Grappler, mixed precision) travel as the case's `tf_config` (tfperf.suite.tf_config validates and describes
them, tfperf.measure.tf_config applies them in the worker before TensorFlow runs anything), so no setting
leaks into another configuration; tf.data changes are the case's own `input.pipeline` keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tfperf.figures.measures import input_bound_fraction
from tfperf.figures.thresholds import INPUT_BOUND_FRACTION, MIXED_PRECISION_MIN_CC
from tfperf.host.environment import bf16_features, compute_capability
from tfperf.results.model import Result
from tfperf.suite.spec import AUTOTUNE, CaseSpec
from tfperf.suite.tf_config import describe

GRAPPLER_TOGGLES = (
    "layout_optimizer",
    "remapping",
    "arithmetic_optimization",
    "constant_folding",
    "loop_optimization",
)


@dataclass(frozen=True)
class Candidate:
    """One worker's worth of configuration: process-wide settings, plus the modes / batch sizes / pipeline it
    runs."""

    id: str  # filename-safe: the variant of the case (`CaseSpec.variant`); worker files are named <case>+<id>
    group: str  # baseline | threads | jit | grappler | precision | pipeline | combined | confirm
    settings: dict = field(default_factory=dict)
    modes: tuple[str, ...] = ("function",)
    batch_sizes: tuple[int, ...] | None = None  # None: the best batch size of the baseline
    pipeline: dict = field(default_factory=dict)  # PipelineSpec changes
    note: str = ""
    # CaseSpec keys the configuration changes (steps_per_execution, for task: fit); applied by
    # CaseTuner.spec_for.
    case_changes: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        parts = [] if not self.settings else [describe(self.settings)]
        parts += [f"{k}={v}" for k, v in self.case_changes.items()]
        if self.pipeline:
            parts.append("tf.data: " + ", ".join(f"{k}={v}" for k, v in self.pipeline.items()))
        return "; ".join(parts) or "suite as written, TensorFlow defaults"


def pipeline_code(changes: dict) -> list[str]:
    """The tf.data lines that make a pipeline change, in the order they go into the pipeline."""
    lines = []
    if changes.get("num_parallel_calls") == AUTOTUNE:
        lines.append("dataset = dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)")
    if changes.get("cache"):
        lines.append("dataset = dataset.cache()  # after the expensive map, before batch")
    if changes.get("prefetch") == AUTOTUNE:
        lines.append("dataset = dataset.prefetch(tf.data.AUTOTUNE)")
    return lines


# steps_per_execution values tune tries for a `task: fit` case: Keras runs that many train steps per call of
# its compiled function, so the per-call Python cost (callbacks, logs, the iterator) is paid once per N steps.
STEPS_PER_EXECUTION = (8, 32)


def fit_candidates(case: CaseSpec) -> list[Candidate]:
    """steps_per_execution for a `task: fit` case: the usual fix for a small model whose steps Python
    dominates."""
    if case.task != "fit":
        return []
    return [
        Candidate(
            f"spe-{n}",
            "steps_per_execution",
            case_changes={"steps_per_execution": n},
            note="train steps per call of Keras' compiled train function",
        )
        for n in STEPS_PER_EXECUTION
        if n != case.steps_per_execution
    ]


def thread_grid(cpu_count: int) -> list[tuple[int, int]]:
    """(intra, inter) pairs worth measuring; (all cores, all cores) is TensorFlow's own default, left out."""
    intra = sorted({1, max(1, cpu_count // 2), cpu_count})
    return [(a, b) for a in intra for b in (1, 2) if (a, b) != (cpu_count, cpu_count)]


def pipeline_candidates(case: CaseSpec, baseline: Result) -> list[Candidate]:
    """tf.data changes, each alone and all together: only for a synthetic pipeline whose baseline is
    input-bound (the advisor's threshold, on the one input-bound figure)."""
    pipeline = case.input.pipeline if case.input else None
    wait = input_bound_fraction(baseline)
    if pipeline is None or case.dataset is not None or wait is None or wait <= INPUT_BOUND_FRACTION:
        return []
    changes = []
    if pipeline.prefetch in (0, "0"):
        changes.append(("prefetch", {"prefetch": AUTOTUNE}))
    if pipeline.num_parallel_calls != AUTOTUNE:
        changes.append(("parallel-map", {"num_parallel_calls": AUTOTUNE}))
    if not pipeline.cache:
        changes.append(("cache", {"cache": True}))
    out = [Candidate(cid, "pipeline", pipeline=ch) for cid, ch in changes]
    if len(changes) > 1:
        merged = {k: v for _, ch in changes for k, v in ch.items()}
        out.append(Candidate("pipeline-all", "pipeline", pipeline=merged))
    return out


def precision_candidates(device: str, environment: dict) -> list[Candidate]:
    """A 16-bit policy where the hardware computes in it: mixed_float16 on a tensor-core GPU (compute
    capability from the workers' `gpus`), mixed_bfloat16 on a CPU with bfloat16 instructions (`cpu_features`).
    Elsewhere 16-bit is converted in software, slower than float32, and not worth the budget."""
    if device.startswith("gpu"):
        cc = compute_capability(environment, device)
        if cc is not None and cc >= MIXED_PRECISION_MIN_CC:
            return [
                Candidate(
                    "mixed-float16",
                    "precision",
                    {"mixed_precision": "mixed_float16"},
                    note=f"float16 on tensor cores (compute capability {cc:g})",
                )
            ]
    elif device == "cpu":
        features = bf16_features(environment.get("cpu_features"))
        if features:
            return [
                Candidate(
                    "mixed-bfloat16",
                    "precision",
                    {"mixed_precision": "mixed_bfloat16"},
                    note=f"bfloat16 in hardware ({', '.join(features)})",
                )
            ]
    return []


def setting_candidates(case: CaseSpec, device: str, baseline: Result, environment: dict) -> list[Candidate]:
    """The search's second phase, in the order they are worth the budget. `environment` is the run's, with
    what the workers' TensorFlow reported (`gpus`) merged in."""
    out = pipeline_candidates(case, baseline) + fit_candidates(case)
    # Precision early: where the hardware computes in 16-bit it can be the largest change of all (an MLP train
    # step measured 1.55-1.6x faster under mixed_bfloat16 on a Xeon with AMX-BF16).
    out.extend(precision_candidates(device, environment))
    if device == "cpu":
        for intra, inter in thread_grid(int(environment.get("cpu_count") or os.cpu_count() or 1)):
            out.append(
                Candidate(
                    f"threads-{intra}x{inter}",
                    "threads",
                    {"intra_op_threads": intra, "inter_op_threads": inter},
                )
            )
    out.append(
        Candidate(
            "autoclustering",
            "jit",
            {"jit": "autoclustering"},
            modes=("function",),
            note="XLA auto-clustering of a plain tf.function, instead of jit_compile=True",
        )
    )
    out.append(
        Candidate(
            "grappler-off",
            "grappler",
            {"grappler": {"disable_meta_optimizer": True}},
            note="reference: every Grappler optimization off",
        )
    )
    for opt in GRAPPLER_TOGGLES:
        out.append(Candidate(f"no-{opt.replace('_', '-')}", "grappler", {"grappler": {opt: False}}))
    return out


def merge_settings(parts: list[dict]) -> dict:
    """Several candidates' settings as one `tf_config`: Grappler options add up, any other key is replaced."""
    merged: dict = {}
    for s in parts:
        for k, v in s.items():
            if k == "grappler":
                merged.setdefault("grappler", {}).update(v)
            else:
                merged[k] = v
    return merged
