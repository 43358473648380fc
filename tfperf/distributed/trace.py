"""The profiled pass of a distributed job, and the share of its op time spent in the gradient all-reduce.

The profiled pass is separate from the timed pass, so profiling never changes the timed numbers.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from tfperf.distributed.coordination import barrier
from tfperf.distributed.passes import Pass
from tfperf.profile import xprof_tables
from tfperf.profile.profiler import profile_job
from tfperf.results.model import JobSpec
from tfperf.results.records import Profile
from tfperf.suite.spec import CaseSpec

PROFILE_STEPS = 5


def profile_pass(
    case: CaseSpec, job: JobSpec, ctx: Any, main: Pass, worker_index: int, workers: int
) -> Profile | None:
    """Trace a few distributed steps: the steps of this process, or with several workers, worker 0's while the
    others run the same steps untraced (see trace_worker0 for why)."""
    run = f"{job.case}-{job.mode}" + (f"-bs{job.batch_size}" if len(case.batch_sizes) > 1 else "")
    logdir = Path(ctx.out_dir) / "tensorboard" / run
    steps = min(PROFILE_STEPS, case.steps)
    if workers > 1:
        return trace_worker0(main, steps, logdir, worker_index, workers)
    logdir.mkdir(parents=True, exist_ok=True)
    out = dict(profile_job(lambda i: main.step(), steps=steps, trace_name="train", logdir=logdir) or {})
    out["capture"] = "local"
    out.update(allreduce_share(logdir / "plugins" / "profile" / out["profile_run"]))
    return Profile.from_json(out)


# Why only worker 0 is traced, measured on TF 2.21 (2 local workers, 2 cores): stopping a profiler session on
# any other worker crashed it in about a third of the runs (SIGABRT "free(): invalid pointer" / "double free
# or corruption", or SIGSEGV), with the native stack in tsl::profiler::TraceMeRecorder::Stop -> Consume ->
# SplitEventTracker::FindStartAndMerge: merging trace events that began on one thread and ended on another. It
# made no difference whether worker 0 captured the worker's profiler server remotely or the worker traced
# itself. Worker 0 (the collective group's leader, which resolves collectives locally) never crashed in 70
# sessions.
UNTRACED_WORKERS_NOTE = (
    "only worker 0 is traced: stopping the profiler on another worker of a MultiWorkerMirrored"
    "Strategy cluster crashed that worker in about a third of the runs on TensorFlow 2.21 "
    "(TraceMeRecorder::Consume, SplitEventTracker::FindStartAndMerge); the other workers ran "
    "the same steps untraced"
)


def trace_worker0(main: Pass, steps: int, logdir: Path, worker_index: int, workers: int) -> Profile | None:
    """Every worker runs the profiled steps (each is a collective all of them take part in), between two
    barriers; worker 0 traces its own with a local session and reads the trace out. Returns None on the
    others."""
    barrier()
    if worker_index != 0:
        for _ in range(steps):
            main.step()
        barrier()
        return None
    logdir.mkdir(parents=True, exist_ok=True)
    done = 0

    def step(i: int) -> None:
        nonlocal done
        main.step()
        done += 1

    try:
        out = dict(profile_job(step, steps=steps, trace_name="train", logdir=logdir) or {})
        out.update(allreduce_share(logdir / "plugins" / "profile" / out["profile_run"]))
    except Exception as exc:  # noqa: BLE001 - a failed trace loses the trace, not the timed numbers
        out = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        # The others run every profiled step, each a collective: run the ones the profiler did not (it failed
        # to start, say), then meet them at the barrier.
        for _ in range(done, steps):
            main.step()
        barrier()
    out.update(
        {"capture": "worker0", "workers_traced": [0], "workers": workers, "note": UNTRACED_WORKERS_NOTE}
    )
    return Profile.from_json(out)


# Op types that are the cross-replica gradient exchange, as the profiler's framework op stats name them.
ALLREDUCE_OP_TYPES = (
    "CollectiveReduceV2",
    "CollectiveReduce",
    "CollectiveGatherV2",
    "CollectiveBcastSendV2",
    "CollectiveBcastRecvV2",
    "NcclAllReduce",
    "NcclReduce",
    "NcclBroadcast",
)


def allreduce_share(run_dir: Path) -> dict:
    """The all-reduce share of op time in each xplane file (one per worker) of a profile run folder, from the
    profiler's own op stats."""
    files = sorted(Path(run_dir).glob("*.xplane.pb"))
    if not files:
        return {"allreduce_share": None, "allreduce_note": "no trace file found"}
    per_host = {}
    for path in files:
        host = path.name.removesuffix(".xplane.pb")
        # xprof reads (and caches into) the whole folder of the file it is given: one copy per host in a
        # scratch folder keeps the hosts apart and the TensorBoard run folder clean.
        with tempfile.TemporaryDirectory(prefix="tfperf-xplane-") as scratch:
            copy = Path(scratch) / path.name
            shutil.copyfile(path, copy)
            try:
                per_host[host] = allreduce_share_of(copy)
            except Exception as exc:  # noqa: BLE001 - the read-out is optional; the measurement stands
                per_host[host] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    shares = [h["share"] for h in per_host.values() if h.get("share") is not None]
    return {"allreduce_share": sum(shares) / len(shares) if shares else None, "allreduce_by_host": per_host}


def allreduce_share_of(xplane: Path) -> dict:
    """Share of op self time spent in collective (all-reduce) ops in one trace file, from xprof's
    framework_op_stats."""
    return allreduce_share_of_op_stats(xprof_tables.tool_data([xplane], "framework_op_stats"))


def allreduce_share_of_op_stats(data: Any) -> dict:
    """The collective ops' share of op self time in framework_op_stats output: host and device rows of the op
    table (the one including IDLE), IDLE excluded."""
    collective = total = 0.0
    for row in xprof_tables.cells(xprof_tables.op_stats_table(data)):
        op_type = str(row.get("type"))
        if op_type == "IDLE" or row.get("host_or_device") not in ("Host", "Device", None):
            continue
        self_us = xprof_tables.number(row.get("total_self_time")) or 0.0
        total += self_us
        if op_type in ALLREDUCE_OP_TYPES or op_type.startswith("Collective"):
            collective += self_us
    return {
        "share": collective / total if total > 0 else None,
        "collective_us": collective,
        "total_us": total,
    }
