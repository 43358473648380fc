"""Every threshold tfperf judges a measurement by, in one place, with where it comes from.

Thresholds start from the TensorBoard profiler's own (xprof's `op_stats_to_input_pipeline_analysis.cc` and
`op_stats_to_overview_page.h`); docs/suggestions.md quotes them. The advisor, the HTML summary, the tables,
what-ifs, `compare` and `tune` import them from here, never copy them.
"""

from __future__ import annotations

from tfperf.stats.descriptive import NOISY_IQR_FRACTION

# --- modes --------------------------------------------------------------------------------------------------
# The profiler reports "eager op time above 10% of op time" as an opportunity for tf.function
# (kEagerReportThresholdInPercent); measured directly: tf.function saves more than 10% of the eager step.
USE_TF_FUNCTION_MIN_SAVING = 0.10
# XLA is worth suggesting when it saves more than 10% of the tf.function step...
ENABLE_XLA_MIN_SAVING = 0.10
# ...its compile cost is worth putting in numbers as soon as it is faster at all (2% guards against ties)...
XLA_PAYBACK_MIN_SAVING = 0.02
# ...and it is a loss worth reporting when its step is more than 5% slower than tf.function's.
AVOID_XLA_MIN_LOSS = 0.05
# The profiler's overview: more than 10% of host op time executed eagerly (kEagerReportThresholdInPercent).
EAGER_OP_PERCENT = 10.0
# A step function traced more often than this during warm-up and timed steps is retracing.
MAX_TRACES_OK = 1

# --- input pipeline -----------------------------------------------------------------------------------------
# The profiler: "moderately" input-bound at 5% of the step, "highly" at 20%
# (kModeratelyInfeedBoundThresholdInPercent, kHighlyInfeedBoundThresholdInPercent). We suggest at "highly".
INPUT_BOUND_MODERATE_FRACTION = 0.05
INPUT_BOUND_FRACTION = 0.20
# A tf.data what-if is suggested only when its re-run was more than 10% faster than the unchanged pipeline.
WHAT_IF_MIN_SPEEDUP = 1.10

# --- batch, precision, host ---------------------------------------------------------------------------------
# A batch-size sweep whose throughput still rose by more than 10% between its two largest batches.
SMALL_BATCH_MIN_GAIN = 0.10
# Tensor cores (fp16 matmul/conv units) arrive with compute capability 7.0 (Volta).
MIXED_PRECISION_MIN_CC = 7.0
# The profiler: under 10% of device compute in 16-bit on a tensor-core GPU suggests mixed precision.
MIXED_PRECISION_MAX_16BIT_PERCENT = 10.0
# A measured mixed-precision configuration (`tfperf tune`: mixed_float16 on a tensor-core GPU, mixed_bfloat16
# on a CPU with bfloat16 hardware) is suggested when more than 5% faster than the same job in float32, the
# margin tune asks of any configuration (TUNE_MIN_GAIN): it changes the numbers, so a tie is no reason to.
MIXED_PRECISION_MIN_SPEEDUP = 1.05
# A configuration whose forward output differs from the baseline's by more than this (max |difference|
# relative to the baseline's largest magnitude) changed the model, not just its speed: float32 reordering
# stays ~1e-6.
OUTPUT_TOLERANCE = 1e-3
# ...under a 16-bit policy: float16 rounds at ~1e-3 and bfloat16 (8 significand bits) at ~4e-3 per op, which
# compounds over a few layers.
MIXED_PRECISION_OUTPUT_TOLERANCE = 3e-2
# ...for a float32 row compiled by XLA (jit_compile, or auto-clustering), or compared with one: XLA fuses ops
# and reorders float arithmetic (a reduction's summation order, a fused multiply-add, its own approximations
# of exp / tanh / log), each step a few ulp off the graph's. Measured on this project's CPU machine, the zoo's
# forward passes (mlp, small_cnn, transformer_encoder, lstm, wide_deep, mobilenet_v2) under jit_compile
# differed from graph mode by 1e-7 to 7e-7 relative; the bound is looser for GPUs, where XLA's fused
# reductions and approximations depart further, and stays 6x below the 16-bit one, so a real change of the
# computation (a wrong op, a dropped layer) is still caught.
XLA_OUTPUT_TOLERANCE = 5e-3


def output_tolerance(compute_dtype: str | None, mode: str) -> float:
    """The largest relative output difference (max |difference| over the reference's largest magnitude) that
    is still the same computation, for a row computing in `compute_dtype` ("float32", "bfloat16", ...; a
    policy name such as "mixed_float16" reads as its compute dtype; None: float32) in `mode` ("xla" for
    XLA-compiled). A 16-bit compute dtype rounds most, whatever the mode; float32 under XLA is reordered; else
    graph rounding."""
    dtype = str(compute_dtype or "float32").removeprefix("mixed_")
    if dtype in ("float16", "bfloat16", "half"):
        return MIXED_PRECISION_OUTPUT_TOLERANCE
    return XLA_OUTPUT_TOLERANCE if mode == "xla" else OUTPUT_TOLERANCE


# The profiler: kernel launch "highly" bound at 15% of the step (kHighlyKernelLaunchBoundThresholdInPercent).
KERNEL_LAUNCH_PERCENT = 15.0
# The GPU idles more than 20% of the step: the host does not keep it fed.
DEVICE_IDLE_PERCENT = 20.0
# "Many small ops": device time per op below 10 us (launch overhead is ~5 us per kernel), with at least this
# many ops per step.
SMALL_OP_US = 10.0
SMALL_OP_MIN_COUNT = 200
# Thread settings (from `tfperf tune` or a what-if) worth suggesting when more than 5% faster than the
# default.
THREADING_MIN_SPEEDUP = 1.05

# --- significance -------------------------------------------------------------------------------------------
# Within one run (which mode, which what-if): a difference between two measurements must have p below this
# (two-sided Mann-Whitney U) when both have at least SIGNIFICANCE_MIN_SAMPLES samples; with fewer, the ratio
# alone decides and the evidence says so.
SIGNIFICANCE_ALPHA = 0.05
SIGNIFICANCE_MIN_SAMPLES = 5
# Between runs (`tfperf compare`, `tfperf tune`): a CI gate fails a pull request on it, so it asks for more,
# as asv does before applying its factor.
REGRESSION_ALPHA = 0.01
# `tfperf compare`'s default: a change smaller than 10% is within the threshold.
REGRESSION_THRESHOLD = 0.10
# `tfperf tune` decides with compare's rule (REGRESSION_ALPHA, the interval, each side's own spread) at a
# smaller threshold: a configuration must be more than 5% faster per sample to be recommended, and again when
# re-measured.
TUNE_MIN_GAIN = 0.05
# Diagnostics measured as shares of the step: a move of 5 percentage points is the profiler's "moderately
# input-bound" threshold, so smaller moves are not called worse.
SHARE_MARGIN = INPUT_BOUND_MODERATE_FRACTION
# torch.utils.benchmark's warning: an IQR above 10% of the median means the environment moved the numbers.
NOISY_FRACTION = NOISY_IQR_FRACTION

# --- inside the step: layer by layer, tf.function vs XLA (tfperf/profile/layers.py) -------------------------
# A layer counts as made faster (slower) by XLA when its time changes by this factor or more: below it, a
# few profiled steps cannot tell the modes apart (the per-op times of one profiled pass vary by ~10-20% here).
LAYER_SPLIT_MIN_RATIO = 1.25
# ... and when that layer's difference is at least this share of the tf.function step: smaller ones are not
# worth a sub-function of their own.
LAYER_SPLIT_MIN_SHARE = 0.05
# A split is only as good as its attribution: when more than this share of a mode's op time (its XLA runtime
# dispatch aside) belongs to no phase scope, a layer may look faster only because its ops went unattributed.
LAYER_SPLIT_MAX_UNATTRIBUTED = 0.25

# --- deployment ---------------------------------------------------------------------------------------------
# A quantized TF Lite mode is suggested when it saves more than 10% of the step of every float mode measured
# beside it (tflite, function) and stays within the accuracy tolerance: top-1 agreement with the eager Keras
# outputs of at least 99% (classifiers), and a max absolute error of at most 5% of the largest reference
# output magnitude.
QUANTIZE_MIN_SAVING = 0.10
QUANTIZE_MIN_TOP1_AGREEMENT = 0.99
QUANTIZE_MAX_REL_ERROR = 0.05
# ...measured on at least 100 examples (below that, 99% top-1 agreement cannot be told from 100%).
QUANTIZE_MIN_AGREEMENT_SAMPLES = 100

# --- serving load (serve-bench --qps) -----------------------------------------------------------------------
# A latency percentile is trusted when its sample count reaches stats.sample_size.samples_needed at this
# confidence (MLPerf LoadGen sizes its runs the same way: z^2 p (1 - p) / margin^2; here the margin is 1 - p,
# so p99 needs 657 samples, p90 60).
PERCENTILE_CONFIDENCE = 0.99
# Open loop: the server kept up when it completed requests at no less than 95% of the rate they were scheduled
# at (the realized Poisson rate, not the target, so a short run's own randomness does not fail it).
OPEN_LOOP_KEEP_UP_FRACTION = 0.95
