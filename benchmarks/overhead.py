"""How much does tfperf's measuring cost? Its median step time over a bare hand-written perf_counter loop,
both measured in this same process, interleaved, on the same step.

    python benchmarks/overhead.py [--rounds 5]

(a) a tiny tf.function step: x + 1.0 on a 4x4 tensor    goal: ratio <= 1.10
(b) zoo:mlp's train step under tf.function               goal: ratio <= 1.02

The bare loop is what a careful user writes: call, force completion (fetch the value), read the clock.
tfperf runs the same step through its harness (input source, tracing-count check, blocked timing for steps
under 1 ms when the sync is a noticeable share of the step). A ratio above 1 is tfperf's overhead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from tfperf.measure import harness, model_step, timing
from tfperf.measure.inputs import IN_MEMORY_BATCHES
from tfperf.results.model import JobSpec
from tfperf.suite.references import resolve_reference
from tfperf.suite.spec import CaseSpec

HERE = os.path.dirname(os.path.abspath(__file__))


def bare_loop(fn, batches: list[tuple], n: int) -> float:
    """Median seconds per call of fn(*args), completion forced by fetching the value each call. The batches
    rotate as tfperf's in-memory source does, so both loops touch the same data."""
    times = []
    for i in range(n):
        args = batches[i % len(batches)]
        t0 = time.perf_counter()
        out = fn(*args)
        tf.nest.flatten(out)[0].numpy()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def warm_up(fn, batches: list[tuple], steps: int) -> None:
    """The same warm-up tfperf gives a job: at least `steps` calls and at least timing.WARMUP_MIN_S."""
    t0 = time.perf_counter()
    i = 0
    while i <= steps or time.perf_counter() - t0 < timing.WARMUP_MIN_S:
        tf.nest.flatten(fn(*batches[i % len(batches)]))[0].numpy()
        i += 1


def tfperf_median(case: CaseSpec, job: JobSpec) -> float:
    ctx = harness.JobContext(out_dir=None, tf_device="/CPU:0")
    result = harness.run_job(case, job, ctx, lambda ref: resolve_reference(ref, HERE))
    if not result.ok:
        raise SystemExit(f"tfperf run failed: {result.error.summary if result.error else result.status}")
    return result.median_s


def tiny_step():
    f = tf.function(lambda x: x + 1.0)
    x = tf.ones((4, 4))
    case = CaseSpec(
        name="tiny",
        function="overhead_steps.py:add_one",
        inputs="overhead_steps.py:tiny_inputs",
        warmup_steps=10,
        steps=50,
        repeats=3,
        profile=False,
    )

    def bare() -> float:
        warm_up(f, [(x,)], 10)
        return bare_loop(f, [(x,)], 1500)

    return bare, (lambda: tfperf_median(case, JobSpec("tiny", "function", "cpu", "train", None)))


def mlp_step():
    import keras

    from tfperf.zoo import MODELS

    entry = MODELS["mlp"]
    batch, warmup, timed = 64, 5, 90

    def bare() -> float:
        # Built fresh each round, as tfperf builds each job fresh: both sides pay the same fresh-model
        # effects (allocator, oneDNN primitive caches), so the ratio isolates the measuring itself.
        keras.backend.clear_session()
        model = entry.build({}, entry.default_input, entry.default_labels)
        opt = keras.optimizers.Adam(1e-3)
        opt.build(model.trainable_variables)
        loss_fn = model_step.loss_for(entry.default_labels)
        batches = [
            (
                tf.random.normal((batch, *entry.default_input.shape)),
                tf.random.uniform((batch,), maxval=entry.default_labels.classes, dtype=tf.int32),
            )
            for _ in range(IN_MEMORY_BATCHES)
        ]

        step = tf.function(model_step.train_step(model, loss_fn, opt))

        warm_up(step, batches, warmup)
        return bare_loop(step, batches, timed)

    case = CaseSpec(
        name="mlp",
        model="zoo:mlp",
        batch_sizes=(batch,),
        warmup_steps=warmup,
        steps=timed // 3,
        repeats=3,
        profile=False,
    )
    return bare, (lambda: tfperf_median(case, JobSpec("mlp", "function", "cpu", "train", batch)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved bare/tfperf rounds per step")
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    print(f"TensorFlow {tf.__version__}; {args.rounds} interleaved rounds; medians of per-round medians")
    print(f"{'step':32} {'bare ms':>10} {'tfperf ms':>10} {'ratio':>7} {'goal':>6}")
    ok = True
    for label, make, goal in (
        ("(a) tiny tf.function x+1.0 4x4", tiny_step, 1.10),
        ("(b) zoo:mlp train step, function", mlp_step, 1.02),
    ):
        bare, ours = make()
        bare_ms, ours_ms = [], []
        for _ in range(args.rounds):
            bare_ms.append(bare() * 1e3)
            ours_ms.append(ours() * 1e3)
        b, o = statistics.median(bare_ms), statistics.median(ours_ms)
        ratio = o / b
        ok &= ratio <= goal
        print(f"{label:32} {b:10.4f} {o:10.4f} {ratio:7.3f} {goal:6.2f}{'' if ratio <= goal else '  OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
