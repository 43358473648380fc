"""The `quantize-tflite` rule: a quantized TF Lite model that is faster than every float mode beside it and
agrees with the Keras model's outputs within the tolerance."""

from __future__ import annotations

from tfperf import units
from tfperf.analysis.advisor.suggestion import Finding, by_job_without_mode, suggestion
from tfperf.figures.decisions import saves_more_than
from tfperf.figures.thresholds import (
    QUANTIZE_MAX_REL_ERROR,
    QUANTIZE_MIN_AGREEMENT_SAMPLES,
    QUANTIZE_MIN_SAVING,
    QUANTIZE_MIN_TOP1_AGREEMENT,
)
from tfperf.results.model import RunResult
from tfperf.results.records import OutputAgreement

QUANTIZED_MODES = {
    "tflite-dynamic": "converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range: int8 weights",
    "tflite-int8": (
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
        "converter.representative_dataset = representative_batches  # ~100 real examples\n"
        "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
        "converter.inference_input_type = converter.inference_output_type = tf.int8"
    ),
}
FLOAT_BASELINES = ("tflite", "function")


def within_quantization_tolerance(agreement: OutputAgreement | None) -> bool:
    """Top-1 agreement >= 99% (when the output is a classifier's) and max error <= 5% of the largest output,
    over at least 100 examples."""
    # A check that an output ignoring the input would pass too proves nothing: no tolerance claim on it.
    if agreement is None or agreement.max_rel_error is None or agreement.meaningful is False:
        return False
    if (agreement.samples or 0) < QUANTIZE_MIN_AGREEMENT_SAMPLES:
        return False
    top1 = agreement.top1_agreement
    return agreement.max_rel_error <= QUANTIZE_MAX_REL_ERROR and (
        top1 is None or top1 >= QUANTIZE_MIN_TOP1_AGREEMENT
    )


def rule_quantize_tflite(run: RunResult) -> list[Finding]:
    out = []
    for modes in by_job_without_mode(run).values():
        baselines = [modes[m] for m in FLOAT_BASELINES if m in modes and modes[m].ok and modes[m].samples]
        if not baselines:
            continue
        candidates = []
        for mode in QUANTIZED_MODES:
            q = modes.get(mode)
            if not (q and q.ok and q.samples and within_quantization_tolerance(q.output_agreement)):
                continue
            tests = [(b, *saves_more_than(b, q, QUANTIZE_MIN_SAVING)) for b in baselines]
            if all(wins for _, wins, _ in tests):
                candidates.append((q, tests))
        if not candidates:
            continue
        q, tests = min(candidates, key=lambda c: c[0].median_s)
        a = q.output_agreement
        # The quantized mode against each float one, the factor stated for the quantized mode ("1.51×
        # faster").
        versus = "; ".join(
            f"{units.versus(q.mode, q.median_s, b.mode, b.median_s)}, {units.p_value(p)}" for b, _, p in tests
        )
        float_tflite = modes.get("tflite")
        size = (
            f"; model {q.model_size_bytes / 1e6:.2f} MB vs {float_tflite.model_size_bytes / 1e6:.2f} MB float"
            if q.model_size_bytes and float_tflite and float_tflite.model_size_bytes
            else ""
        )
        top1 = f"top-1 agreement {a.top1_agreement:.1%}, " if a.top1_agreement is not None else ""
        out.append(
            (
                q,
                suggestion(
                    "quantize-tflite",
                    f"Deploy with {q.mode}: {baselines[0].median_s / q.median_s:.2f}× faster than "
                    f"{baselines[0].mode}, "
                    "within the accuracy tolerance",
                    f"{versus}{size}; against the eager Keras outputs on "
                    f"{a.samples} examples: {top1}max abs error {a.max_abs_error:.3g} "
                    f"({a.max_rel_error:.1%} of the largest output).",
                    "converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)\n"
                    + QUANTIZED_MODES[q.mode],
                    f"saves > {QUANTIZE_MIN_SAVING:.0%} of the step of "
                    f"{' and '.join(b.mode for b in baselines)}; top-1 "
                    f"agreement >= {QUANTIZE_MIN_TOP1_AGREEMENT:.0%}; max abs error <= "
                    f"{QUANTIZE_MAX_REL_ERROR:.0%} of the "
                    "largest output",
                    quantized_median_s=q.median_s,
                    **{f"{b.mode}_median_s": b.median_s for b in baselines},
                    **{f"p_value_vs_{b.mode}": p for b, _, p in tests},
                    top1_agreement=a.top1_agreement,
                    max_abs_error=a.max_abs_error,
                    max_rel_error=a.max_rel_error,
                    model_size_bytes=q.model_size_bytes,
                ),
            )
        )
    return out
