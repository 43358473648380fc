"""Mixed precision: a 16-bit policy that `tfperf tune` measured faster than float32 (on a tensor-core GPU or a
CPU with bfloat16 hardware), and, where nothing was measured, a tensor-core GPU whose model computes in
float32.

What policy a result ran under is read from what the worker recorded (the model's compute dtype, the policy it
applied), then from what the case's `tf_config` or a tune configuration asked for. The 16-bit share of device
compute is xprof's overview figure `device_compute_16bit_percent` (tfperf.profile.xprof_tools reads it out).
"""

from __future__ import annotations

from collections import defaultdict

from tfperf import units
from tfperf.analysis.advisor.suggestion import Finding, base_case, config_settings, suggestion
from tfperf.figures.decisions import significant
from tfperf.figures.measures import job_without_mode, measured, tune_config
from tfperf.figures.thresholds import (
    MIXED_PRECISION_MAX_16BIT_PERCENT,
    MIXED_PRECISION_MIN_CC,
    MIXED_PRECISION_MIN_SPEEDUP,
    MIXED_PRECISION_OUTPUT_TOLERANCE,
)
from tfperf.host.environment import bf16_features, compute_capability
from tfperf.measure.tf_config import output_difference
from tfperf.results.job_records import Setup
from tfperf.results.model import Result, RunResult
from tfperf.units import ms

SIXTEEN_BIT_PERCENT = "device_compute_16bit_percent"


def policy(r: Result) -> str | None:
    """The precision a result computed in: the model's compute dtype as the worker recorded it, else the
    policy the worker applied, else the one the case's `tf_config` or a tune configuration asked for."""
    setup = r.setup or Setup()
    for value in (
        setup.model_compute_dtype,
        (setup.tf_config_applied or {}).get("mixed_precision"),
        (setup.tf_config or {}).get("mixed_precision"),
        config_settings(r).get("mixed_precision"),
        setup.dtype_policy,
    ):
        if value:
            return str(value)
    return None


def uses_mixed_precision(r: Result) -> bool:
    return "16" in (policy(r) or "")


def sixteen_bit_percent(r: Result) -> float | None:
    """xprof's share of device compute done in 16-bit (0-100), when the profiled pass reported it."""
    v = (r.profile.overview or {}).get(SIXTEEN_BIT_PERCENT) if r.profile else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _fingerprint(r: Result) -> list[float]:
    fingerprint = r.output_check.fingerprint if r.output_check else None
    return (fingerprint.values if fingerprint else None) or []


def _only_precision(r: Result) -> bool:
    """A tune configuration that changed the precision policy and nothing else."""
    s = config_settings(r)
    return set(s) - {"mode"} == {"mixed_precision"} and "16" in str(s["mixed_precision"])


def measured_pairs(run: RunResult) -> list[tuple[Result, Result]]:
    """(float32 baseline, fastest 16-bit configuration) of each tuned job that measured both: the same case,
    mode, device, task and batch size, one under TensorFlow's defaults and one that only set a 16-bit
    policy."""
    groups: dict[tuple, list[Result]] = defaultdict(list)
    for r in measured(run.results):
        if tune_config(r) is not None:
            groups[(base_case(r), r.mode, r.device, r.task, r.batch_size)].append(r)
    pairs = []
    for results in groups.values():
        baseline = next((r for r in results if set(config_settings(r)) <= {"mode"}), None)
        sixteen = [r for r in results if _only_precision(r)]
        if baseline is not None and sixteen:
            pairs.append((baseline, min(sixteen, key=lambda r: r.median_s)))
    return pairs


def _hardware(run: RunResult, r: Result) -> str:
    """What in the machine makes 16-bit fast, as the evidence names it."""
    if r.device.startswith("gpu"):
        cc = compute_capability(run.environment, r.device)
        return f"a GPU of compute capability {cc:g}" if cc is not None else "the GPU"
    features = bf16_features(run.environment.get("cpu_features"))
    return f"a CPU with {', '.join(features)}" if features else "the CPU"


def fix_for(policy_name: str) -> str:
    lines = [
        f'keras.mixed_precision.set_global_policy("{policy_name}")  # before building the model',
        'outputs = keras.layers.Activation("linear", dtype="float32")(x)  # keep the model\'s outputs in '
        "float32",
    ]
    if policy_name == "mixed_float16":
        lines.append(
            "# model.fit scales the loss; a custom loop wraps the optimizer: "
            "keras.mixed_precision.LossScaleOptimizer(optimizer)"
        )
    return "\n".join(lines)


def rule_measured_precision(run: RunResult) -> list[Finding]:
    """A 16-bit policy tune measured significantly faster than float32, with the output difference it caused.
    Attached to the float32 baseline; silent when the outputs moved beyond the 16-bit tolerance."""
    out = []
    for base, fast in measured_pairs(run):
        speedup = base.median_s / fast.median_s
        sig, p = significant(base, fast)
        if not (sig and speedup > MIXED_PRECISION_MIN_SPEEDUP):
            continue
        diff = output_difference(_fingerprint(fast), _fingerprint(base))
        if diff is not None and diff > MIXED_PRECISION_OUTPUT_TOLERANCE:
            continue
        name = str(config_settings(fast)["mixed_precision"])
        outputs = (
            f"its forward output differs from float32's by {diff:.2g} of the largest output (tolerance "
            f"{MIXED_PRECISION_OUTPUT_TOLERANCE:g})"
            if diff is not None
            else "its output difference from float32 was not measured: check the model's accuracy"
        )
        tested = units.p_value(p) if p is not None else "too few samples to test"
        out.append(
            (
                base,
                suggestion(
                    "mixed-precision",
                    f"Use {name}: measured {speedup:.2f}× faster",
                    f"{tune_config(fast)} on {_hardware(run, fast)}: {ms(fast.median_s)} ms/step vs "
                    f"{ms(base.median_s)} "
                    f"ms/step in float32 ({tested}); {outputs}.",
                    fix_for(name),
                    f"measured speed-up > {MIXED_PRECISION_MIN_SPEEDUP:.2f}× and output difference ≤ "
                    f"{MIXED_PRECISION_OUTPUT_TOLERANCE:g}",
                    policy=name,
                    speedup=speedup,
                    median_s=fast.median_s,
                    baseline_median_s=base.median_s,
                    p_value=p,
                    output_difference=diff,
                ),
            )
        )
    return out


def rule_tensor_core_gpu(run: RunResult) -> list[Finding]:
    """A tensor-core GPU whose model computes in float32 (and under 10% of its device compute in 16-bit, when
    the profile says), where no 16-bit configuration was measured: the measurement, when there is one,
    decides."""
    tried = {(base_case(fast), fast.device) for _, fast in measured_pairs(run)}
    best: dict[
        tuple, Result
    ] = {}  # one per job (the fastest mode): the advice is about the model, not the mode
    for r in measured(run.results):
        if not r.device.startswith("gpu") or uses_mixed_precision(r) or (base_case(r), r.device) in tried:
            continue
        key = job_without_mode(r)
        if key not in best or r.median_s < best[key].median_s:
            best[key] = r
    out = []
    for r in best.values():
        cc = compute_capability(run.environment, r.device)
        if cc is None or cc < MIXED_PRECISION_MIN_CC:
            continue
        half = sixteen_bit_percent(r)
        if half is not None and half >= MIXED_PRECISION_MAX_16BIT_PERCENT:
            continue
        gpus = run.environment.get("gpus") or [{}]
        index = int(r.device.partition(":")[2] or 0)
        gpu = (gpus[index] if index < len(gpus) else {}).get("name", r.device)
        share = (
            f"the profiler counted {half:.0f}% of device compute in 16-bit"
            if half is not None
            else f"the model computes in {policy(r) or 'float32'}"
        )
        out.append(
            (
                r,
                suggestion(
                    "mixed-precision",
                    "Use mixed precision: this GPU has tensor cores",
                    f"{gpu} has compute capability {cc:g} (≥ {MIXED_PRECISION_MIN_CC:.1f}, tensor cores) and "
                    f"{share}; "
                    f"{r.mode} runs at {ms(r.median_s)} ms/step. Not measured here: `tfperf tune` measures "
                    "it.",
                    fix_for("mixed_float16"),
                    f"GPU compute capability ≥ {MIXED_PRECISION_MIN_CC:.1f} and 16-bit share < "
                    f"{MIXED_PRECISION_MAX_16BIT_PERCENT:g}%",
                    compute_capability=cc,
                    fp16_percent=half,
                    device_compute_16bit_percent=half,
                    median_s=r.median_s,
                ),
            )
        )
    return out


def rule_mixed_precision(run: RunResult) -> list[Finding]:
    return rule_measured_precision(run) + rule_tensor_core_gpu(run)
