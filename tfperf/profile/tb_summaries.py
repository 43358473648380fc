"""TensorBoard scalars and an HParams summary per case × mode, beside the profile trace.

TensorBoard's HParams dashboard then compares modes and batch sizes side by side (hparams: case, mode, batch
size, device, task; metrics: median step time, throughput, first-call time, tracing count, input wait) without
opening tfperf's report. The events go into the same `<out>/tensorboard/<tb-run>/` folder as the profile, so
TensorBoard shows one run per case × mode in every dashboard (the profiler writes its trace under
`<tb-run>/plugins/profile/<timestamp>/`, which TensorBoard lists under the same run).

Written with TensorBoard's own TF-free writer and proto builders (`tensorboard.plugins.hparams.summary_v2`,
`tensorboard.plugins.scalar.summary_v2`): the runner process never imports TensorFlow.
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path

from tfperf.results.model import Result

PREFIX = "tfperf/"
# metric tag -> (display name, description)
METRICS = {
    "median_step_time_ms": ("median step time (ms)", "median of the timed steps"),
    "throughput_samples_per_s": ("throughput (samples/s)", "batch size / median step time"),
    "throughput_steps_per_s": ("throughput (steps/s)", "1 / median step time"),
    "first_call_s": ("first call (s)", "tracing + compilation + one step"),
    "tracing_count": ("tracing count", "times the step function was traced (eager: not recorded)"),
    "input_wait_percent": ("input wait (%)", "share of step time spent waiting for the next batch"),
    "input_bound_percent": ("input-bound (%, profiler)", "the input-pipeline analyzer's share of input time"),
}
HPARAMS = ("case", "mode", "batch_size", "device", "task")


def metric_values(result: Result) -> dict[str, float]:
    """The metrics of one result that were measured (finite numbers only)."""
    tp = result.throughput or {}
    values = {
        "median_step_time_ms": result.median_s * 1e3 if result.median_s is not None else None,
        "throughput_samples_per_s": tp.get("samples_per_s"),
        "throughput_steps_per_s": tp.get("steps_per_s"),
        "first_call_s": result.first_call_s,
        "tracing_count": result.tracing_count,
        "input_wait_percent": 100 * result.input_wait_fraction
        if result.input_wait_fraction is not None
        else None,
        "input_bound_percent": result.profile.input_bound_percent if result.profile else None,
    }
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def hparam_values(result: Result) -> dict[str, str | int]:
    return {
        "case": result.case,
        "mode": result.mode,
        # HParams cannot hold None: an unbatched step function shows batch size 0.
        "batch_size": int(result.batch_size) if result.batch_size is not None else 0,
        "device": result.device,
        "task": result.task,
    }


def write_job_summaries(logdir: Path, result: Result) -> None:
    """Write the HParams session, its experiment config and the metric scalars of `result` into `logdir`
    (the job's `<out>/tensorboard/<tb-run>/` folder), plus the per-step time series of the timed samples."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.plugins.scalar import summary_v2 as scalar

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    hparams = hparam_values(result)
    metrics = metric_values(result)
    now = time.time()
    # Every run carries the same experiment config, so the dashboard lists every hparam and metric whichever
    # run it reads the config from; domains are left open (each worker knows only its own job).
    config = hp.hparams_config_pb(
        hparams=[hp.HParam(name) for name in HPARAMS],
        metrics=[
            hp.Metric(PREFIX + tag, display_name=name, description=desc)
            for tag, (name, desc) in METRICS.items()
        ],
        time_created_secs=now,
    )
    session = hp.hparams_pb(
        {hp.HParam(k): v for k, v in hparams.items()}, trial_id=logdir.name, start_time_secs=now
    )
    events = [
        event_pb2.Event(wall_time=now, step=0, file_version="brain.Event:2"),
        event_pb2.Event(wall_time=now, step=0, summary=config),
        event_pb2.Event(wall_time=now, step=0, summary=session),
    ]
    for tag, value in metrics.items():
        events.append(event_pb2.Event(wall_time=now, step=0, summary=scalar.scalar_pb(PREFIX + tag, value)))
    # The timed samples as a series: drift and outliers over the run are visible at a glance.
    for i, s in enumerate(result.samples):
        if isinstance(s, (int, float)) and math.isfinite(s):
            events.append(
                event_pb2.Event(
                    wall_time=now, step=i, summary=scalar.scalar_pb(PREFIX + "step_time_ms", 1e3 * s)
                )
            )
    path = logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.tfperf"
    n = 1
    while path.exists():  # a second write in the same second never replaces the first
        n += 1
        path = path.with_name(
            f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.{n}.tfperf"
        )
    write_events(path, events)


def write_events(path: Path, events: list) -> None:
    """An event file in TFRecord framing. TensorBoard's EventFileWriter would do this too, but it creates the
    folder through tf.io.gfile, which imports TensorFlow (seconds) into the runner process."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    with open(path, "wb") as f:
        writer = RecordWriter(f)
        for event in events:
            writer.write(event.SerializeToString())
        writer.flush()
