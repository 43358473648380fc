"""The profiled pass: a few steps under the TensorFlow profiler, then the read-out of their trace.

`profile_job` runs a few steps under the TensorFlow profiler, each inside a step marker
(`tf.profiler.experimental.Trace(name, step_num=i, _r=1)`) so TensorBoard's step-time graph and the
input-pipeline analysis work, and writes `<logdir>/plugins/profile/<timestamp>/<host>.xplane.pb`: TensorBoard
shows it as run `<tb-run>/<timestamp>`. It runs after the timed pass: profiling changes timing. The trace is
then read by `tfperf.profile.readout.read_profile`. Failing to capture at all raises ProfileError.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

from tfperf.errors import TfperfError
from tfperf.profile.readout import read_profile


class ProfileError(TfperfError):
    """The profiler produced no trace (it could not start, or wrote nothing under plugins/profile/)."""


# ------------------------------------------------------------------------------------------------------------
# Capture


def stop_profiler_quietly() -> bool:
    """Stop a running profiler session, if any (only one can run per process). True when one was stopped."""
    import tensorflow as tf

    try:
        tf.profiler.experimental.stop()
        return True
    except Exception:  # noqa: BLE001 - UnavailableError "no profiler running" is the normal case
        return False


def profile_job(
    step: Callable[[int], Any],
    steps: int,
    trace_name: str,
    logdir: str | Path,
    layer_names: Iterable[str] | None = None,
) -> dict:
    """Run `steps` complete steps under the profiler, then read the trace out.

    `step(i)` runs ONE complete step (next batch, the step function, completion forced). `trace_name` is the
    step marker ("train" / "infer"), which the input-pipeline analyzer keys on. `layer_names` (the model's
    top-level Keras layers) enable the per-layer split.
    """
    logdir = Path(logdir)
    run_dir, profile_wall_s = trace_steps(step, steps, trace_name, logdir)
    out = read_profile(run_dir, layer_names=layer_names)
    # TensorBoard's profile tab lists this trace as "<tb-run>/<timestamp>" when served from the logdir's
    # parent.
    out.update(
        {
            "logdir": str(logdir),
            "tb_run": logdir.name,
            "run": f"{logdir.name}/{run_dir.name}",
            "profile_run": run_dir.name,
            "steps": steps,
            "trace_name": trace_name,
            "profile_wall_s": round(profile_wall_s, 4),
        }
    )
    return _ordered(out)


def trace_steps(
    step: Callable[[int], Any], steps: int, trace_name: str, logdir: str | Path
) -> tuple[Path, float]:
    """Run `steps` steps, each in a step marker, inside a local profiler session of this process.

    Returns the run folder the profiler wrote (`<logdir>/plugins/profile/<timestamp>/`) and the session's wall
    time. Raises ProfileError when the profiler cannot start or writes nothing.
    """
    import tensorflow as tf

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    stop_profiler_quietly()
    started_wall = time.time()
    t0 = time.perf_counter()
    try:
        tf.profiler.experimental.start(str(logdir))
    except Exception as exc:  # noqa: BLE001 - e.g. a session started elsewhere in this process
        stop_profiler_quietly()
        try:
            tf.profiler.experimental.start(str(logdir))
        except Exception as exc2:
            raise ProfileError(
                f"{logdir}: the TensorFlow profiler did not start ({type(exc2).__name__}: "
                f"{str(exc2).strip().splitlines()[0] if str(exc2).strip() else exc}); run `tfperf doctor`"
            ) from exc2
    try:
        for i in range(steps):
            with tf.profiler.experimental.Trace(trace_name, step_num=i, _r=1):
                step(i)
    finally:
        try:
            tf.profiler.experimental.stop()
        except Exception as exc:
            raise ProfileError(f"{logdir}: the profiler did not stop cleanly: {exc}") from exc
    wall_s = time.perf_counter() - t0
    run_dir = newest_run_dir(logdir, since=started_wall - 2)
    if run_dir is None:
        raise ProfileError(
            f"{logdir}: the profiler wrote no trace under plugins/profile/ "
            "(run `tfperf doctor` to check the profiler)"
        )
    return run_dir, wall_s


def newest_run_dir(logdir: str | Path, since: float | None = None) -> Path | None:
    """The newest `<logdir>/plugins/profile/<timestamp>/` holding an xplane.pb (written after `since`, if
    given)."""
    root = Path(logdir) / "plugins" / "profile"
    candidates = []
    for run in root.glob("*") if root.is_dir() else []:
        files = list(run.glob("*.xplane.pb"))
        if not files:
            continue
        mtime = max(f.stat().st_mtime for f in files)
        if since is None or mtime >= since:
            candidates.append((mtime, run.name, run))
    return max(candidates)[2] if candidates else None


_ORDER = (
    "logdir",
    "tb_run",
    "run",
    "profile_run",
    "hosts",
    "profile_wall_s",
    "readout_s",
    "readout_error",
    "input_bound_percent",
    "input_conclusion",
    "step_time_ms",
    "host_compute_ms",
    "step_time_breakdown_ms",
    "top_ops",
    "phases",
    "layers",
    "memory_peak_bytes",
)


def _ordered(d: dict) -> dict:
    """The headline fields first, so results.json reads top-down."""
    return {**{k: d[k] for k in _ORDER if k in d}, **{k: v for k, v in d.items() if k not in _ORDER}}
