"""A distributed job as the case worker runs it (`run_distributed_job`), and a local multi-worker cluster for
one job: N worker processes on free loopback ports, each with its own TF_CONFIG, supervised until every worker
has written its result, one dies, or the time is up.

The supervisor imports no TensorFlow: it only launches, watches and reads JSON. Each worker runs
`python -m tfperf.distributed.job` (`main` in tfperf/distributed/job.py), which creates the
MultiWorkerMirroredStrategy at start. Starting, killing and describing the child processes is `Child` in
tfperf/run/process.py, the one place tfperf starts a measuring process. (The case worker that calls this has
imported TensorFlow; the cluster's workers are processes of their own.)

Guarantees:
- A worker that dies ends the job as `failed`, naming the worker and its exit signal or code; a worker that is
  still running at the deadline ends it as `timeout`, naming the worker(s) still running.
- No orphans: every path out of `run_local_cluster` (return, exception, Ctrl-C) kills every worker's process
  group and each worker's remaining children (psutil), and waits for them. Workers also get PR_SET_PDEATHSIG
  on Linux, so a supervisor killed with SIGKILL takes its workers with it.
- The workers' losses after the same steps must agree (synchronous training): a disagreement fails the job.

Joining a real cluster instead: when TF_CONFIG is already set, tfperf/distributed/job.py joins that cluster as
the worker it names and nothing is launched here (docs/distributed.md, "On a real cluster").
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil

from tfperf.distributed.measure import measure_distributed
from tfperf.distributed.setup import tf_config_task, visible_gpus
from tfperf.results.job_records import ClusterRestart, Distributed, WorkerSummary
from tfperf.results.model import JobSpec, Result
from tfperf.results.records import ErrorInfo
from tfperf.run.process import CLUSTER_WORKER, Child
from tfperf.suite.distribute import DistributeError, DistributeSpec
from tfperf.suite.spec import CaseSpec

POLL_S = 0.1
# When one worker dies, its peers fail moments later with UnavailableError from a collective, and a poll can
# see both at once. After the first failure the supervisor waits this long for the others to end, so it can
# name the worker that died rather than the one that reported losing it.
SETTLE_S = 2.0
# Losses are all-reduced values and weights updated by the same all-reduced gradients: they agree exactly.
# The tolerance only allows for printing/parsing round trips.
LOSS_RTOL = 1e-6


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """n distinct free TCP ports on host: all bound at once (so they differ), then released for the
    workers."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def worker_gpu_env(index: int, gpus: list[str] | None, device: str) -> dict[str, str]:
    """The GPU environment of local worker `index`: what TensorFlow's multi-worker guidance asks of several
    workers on one machine. Without it every worker sees every GPU, MultiWorkerMirroredStrategy gives each
    worker all of them, and each process maps nearly all of every GPU's memory.

    - one GPU per worker, round robin over the GPUs the case worker sees (`gpus`: CUDA ids), by
      CUDA_VISIBLE_DEVICES;
    - TF_FORCE_GPU_ALLOW_GROWTH (tf.config.experimental.set_memory_growth for every GPU of the process): with
      more workers than GPUs, workers share one; and the launching case worker runs TensorFlow on the same
      GPUs;
    - a job on the CPU (`device: cpu`) hides the GPUs, so the step runs where the result says it ran.
    No GPUs (or `gpus` not given): nothing is set."""
    if not gpus:
        return {}
    if device.startswith("cpu"):
        return {"CUDA_VISIBLE_DEVICES": "-1"}
    return {"CUDA_VISIBLE_DEVICES": gpus[index % len(gpus)], "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


@dataclass
class Worker:
    index: int
    address: str
    proc: Child
    result_path: Path
    log_path: Path

    @property
    def name(self) -> str:
        return f"worker {self.index} (pid {self.proc.pid}, {self.address})"


def _read_result(path: Path) -> Result | None:
    try:
        return Result.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def run_local_cluster(
    case: CaseSpec,
    job: JobSpec,
    workers: int,
    *,
    work_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    timeout_s: float | None = None,
    python: str | None = None,
    env: dict | None = None,
    gpus: list[str] | None = None,
) -> Result:
    """Run one job on `workers` local worker processes and combine what they measured into one Result.

    The combined result is worker 0's measurement (it also ran the one-replica baseline) with every worker's
    summary in `distributed.per_worker`. Never raises for a worker's failure; that is the job's result.
    `gpus`: the CUDA ids of the machine's GPUs (setup.visible_gpus), shared out one per worker
    (worker_gpu_env).
    """
    import tempfile

    timeout_s = case.timeout_s if timeout_s is None else timeout_s
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="tfperf-cluster-")
        work_dir = tmp.name
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    stem = f"{job.case}-{job.mode}" + (f"-bs{job.batch_size}" if job.batch_size is not None else "")
    case_file, job_file = work / f"{stem}.cluster-case.json", work / f"{stem}.cluster-job.json"
    case_file.write_text(json.dumps(case.to_json(), indent=2))
    job_file.write_text(
        json.dumps(
            {
                "case": job.case,
                "mode": job.mode,
                "device": job.device,
                "task": job.task,
                "batch_size": job.batch_size,
                "variant": job.variant,
            }
        )
    )
    started = time.monotonic()
    try:
        first = _launch_and_supervise(
            case, job, workers, work, stem, case_file, job_file, out_dir, timeout_s, python, env, gpus
        )
        if not _died_starting(first, work, stem):
            return first
        # A worker died before it joined the cluster (in TensorFlow's start-up, or because another process
        # took the port free_ports released for it). None of the user's steps ran, so start the cluster again
        # once, on fresh ports, in the time left; a second such death is the result.
        left = max(1.0, timeout_s - (time.monotonic() - started))
        second = _launch_and_supervise(
            case, job, workers, work, stem, case_file, job_file, out_dir, left, python, env, gpus
        )
        second.distributed = second.distributed or Distributed()
        second.distributed.cluster_restarts = [
            ClusterRestart(message=first.error.message, log_tail=first.error.log_tail)
        ]
        return second
    finally:
        if tmp is not None:
            tmp.cleanup()


def _died_starting(r: Result, work: Path, stem: str) -> bool:
    if r.status != "failed" or r.error is None or r.error.type != "WorkerCrash":
        return False
    index = r.error.worker
    return index is not None and not (work / f"{stem}.worker{index}.result.json.joined").exists()


def _launch_and_supervise(
    case: CaseSpec,
    job: JobSpec,
    workers: int,
    work: Path,
    stem: str,
    case_file: Path,
    job_file: Path,
    out_dir: str | Path | None,
    timeout_s: float,
    python: str | None,
    env: dict | None,
    gpus: list[str] | None = None,
) -> Result:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    base_env = dict(os.environ if env is None else env)
    base_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.monotonic()
    procs: list[Worker] = []
    try:
        for i in range(workers):
            result_path = work / f"{stem}.worker{i}.result.json"
            result_path.unlink(missing_ok=True)
            Path(f"{result_path}.joined").unlink(missing_ok=True)
            log_path = work / f"{stem}.worker{i}.log"
            args = [str(case_file), str(job_file), str(result_path)]
            if out_dir is not None:
                args += ["--out-dir", str(out_dir)]
            gpu_env = worker_gpu_env(i, gpus, job.device)
            notes = [f"TF_CONFIG={tf_config(addresses, i)}"]
            if gpu_env:
                notes.append(" ".join(f"{k}={v}" for k, v in gpu_env.items()))
            proc = Child(
                CLUSTER_WORKER,
                args,
                log_path,
                python or sys.executable,
                {**base_env, **gpu_env, "TF_CONFIG": tf_config(addresses, i)},
                notes=tuple(notes),
                inherit_env=False,
            )
            procs.append(Worker(i, addresses[i], proc, result_path, log_path))
        return _supervise(case, job, procs, started, timeout_s)
    finally:
        for w in procs:
            w.proc.kill()


def _supervise(case: CaseSpec, job: JobSpec, procs: list[Worker], started: float, timeout_s: float) -> Result:
    deadline = started + timeout_s
    while True:
        finished = [w for w in procs if w.proc.poll() is not None]
        if any(_failure(w) for w in finished):
            return _first_cause(job, procs)
        if len(finished) == len(procs):
            return combine(
                job, [_read_result(w.result_path) for w in procs], procs, time.monotonic() - started
            )
        if time.monotonic() > deadline:
            running = [w for w in procs if w.proc.poll() is None]
            names = ", ".join(w.name for w in running)
            r = Result.not_run(
                job,
                "timeout",
                "Timeout",
                f"{names} still running after the case's timeout_s of {timeout_s:g} s; all workers killed",
                "raise timeout_s, lower steps/repeats, or look at the worker log for a hang "
                f"(e.g. a collective waiting for a peer): {running[0].log_path if running else ''}",
            )
            r.error.workers = [w.index for w in running]
            r.error.log_tail = running[0].proc.log_tail() if running else ""
            r.distributed = Distributed(worker_pids=[w.proc.pid for w in procs])
            return r
        time.sleep(POLL_S)


def _failure(w: Worker) -> str | None:
    """'died' (ended without a result), 'failed' (reported a failure), or None for a finished or running
    worker."""
    if w.proc.poll() is None:
        return None
    res = _read_result(w.result_path)
    if res is None:
        return "died"
    return None if res.ok else "failed"


def _first_cause(job: JobSpec, procs: list[Worker]) -> Result:
    """The failure to report once any worker has failed: a worker that died beats one that reported an error.

    A dead worker is the cause; a worker that reports an error right after is usually its peer losing the
    collective (UnavailableError), so it is listed as a consequence, not blamed."""
    settle_until = time.monotonic() + SETTLE_S
    while time.monotonic() < settle_until and any(w.proc.poll() is None for w in procs):
        time.sleep(POLL_S)
    kinds = {w.index: _failure(w) for w in procs}
    died = [w for w in procs if kinds[w.index] == "died"]
    failed = [w for w in procs if kinds[w.index] == "failed"]
    cause = died[0] if died else failed[0]
    if died:
        r = _worker_died(job, cause, procs)
    else:
        res = _read_result(cause.result_path)
        assert res is not None
        r = _worker_failed(job, cause, res, procs)
    others = [w.index for w in died + failed if w is not cause]
    if others:
        r.distributed = r.distributed or Distributed()
        r.distributed.also_failed_workers = others
    return r


def _worker_died(job: JobSpec, w: Worker, procs: list[Worker]) -> Result:
    how = w.proc.exit_description()
    r = Result.not_run(
        job,
        "failed",
        "WorkerCrash",
        f"worker {w.index} (pid {w.proc.pid}) {how} before reporting",
        f"the other workers were stopped; worker log: {w.log_path}",
    )
    r.error.worker, r.error.returncode, r.error.log_tail = w.index, w.proc.returncode, w.proc.log_tail()
    r.error.details["pid"] = w.proc.pid
    r.distributed = Distributed(workers=len(procs), worker_pids=[p.proc.pid for p in procs])
    return r


def _worker_failed(job: JobSpec, w: Worker, res: Result, procs: list[Worker]) -> Result:
    if res.error is None:
        res.error = ErrorInfo()
    res.error.message = f"worker {w.index}: {res.error.message}"
    res.error.worker = w.index
    res.distributed = res.distributed or Distributed()
    res.distributed.failed_worker = w.index
    res.distributed.worker_pids = [p.proc.pid for p in procs]
    return res


def combine(job: JobSpec, results: list[Result | None], procs: list[Worker], wall_s: float) -> Result:
    """Worker 0's measurement, every worker's summary, and the identical-loss check across workers."""
    chief = results[0]
    assert chief is not None
    per_worker = []
    for w, r in zip(procs, results):
        assert r is not None
        dist = r.distributed or Distributed()
        per_worker.append(
            WorkerSummary(
                index=w.index,
                pid=w.proc.pid,
                address=w.address,
                median_s=r.median_s,
                final_loss=dist.final_loss,
                probe_losses=dist.probe_losses,
                first_call_s=r.first_call_s,
                input_wait_fraction=r.input_wait_fraction,
                cuda_visible_devices=dist.cuda_visible_devices,
            )
        )
    chief.distributed = chief.distributed or Distributed()
    chief.distributed.per_worker = per_worker
    chief.wall_s = wall_s
    agree, detail = losses_agree([w.to_json() for w in per_worker])
    chief.distributed.losses_identical = agree
    if not agree:
        chief.status = "failed"
        chief.error = ErrorInfo(
            type="WorkersDiverged",
            message=f"workers disagree on the loss after the same steps: {detail}",
            hint="synchronous training keeps every worker's weights identical; a difference means gradients "
            "were "
            "not all-reduced (a custom optimizer or a step outside strategy.run)",
        )
    return chief


def losses_agree(per_worker: list[dict]) -> tuple[bool, str]:
    """Every worker's final training loss and probe loss equal (within LOSS_RTOL)."""
    for key in ("final_loss", "probe_losses"):
        values = []
        for w in per_worker:
            v = w.get(key)
            values.extend(v if isinstance(v, list) else [v])
        if any(v is None or not math.isfinite(v) for v in values):
            return False, f"{key} missing or not finite: {values}"
        lo, hi = min(values), max(values)
        if not math.isclose(lo, hi, rel_tol=LOSS_RTOL, abs_tol=1e-12):
            return False, f"{key} ranges from {lo!r} to {hi!r} across workers"
    return True, ""


def leftover_processes(pids: list[int]) -> list[int]:
    """Those of pids still alive (zombies count as gone): what a no-orphans check asserts is empty."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def run_distributed_job(
    case: CaseSpec, job: JobSpec, ctx: Any, resolve: Callable[[str], Any], deadline_s: float | None = None
) -> Result:
    """What the case worker calls for a job of a case with `distribute:`.

    multi_worker without TF_CONFIG launches a local cluster (`run_local_cluster`, below) and waits for it;
    everything else (one_device, mirrored, multi_worker joining the cluster TF_CONFIG describes) is measured
    in this process.
    """
    try:
        spec = DistributeSpec.from_dict(case.distribute)
    except DistributeError as exc:
        return Result.not_run(job, "failed", type(exc).__name__, str(exc))
    if spec.strategy == "multi_worker" and tf_config_task() is None:
        out_dir = getattr(ctx, "out_dir", None)
        work_dir = Path(out_dir) / "workers" if out_dir is not None else None
        if deadline_s is None:
            deadline_s = remaining_case_time(case)
        return run_local_cluster(
            case,
            job,
            spec.workers,
            work_dir=work_dir,
            out_dir=out_dir,
            timeout_s=deadline_s,
            gpus=visible_gpus(),
        )
    return measure_distributed(case, job, ctx, resolve)


def remaining_case_time(case: CaseSpec) -> float:
    """What is left of the case's timeout_s (counted by the runner from this process's start), minus a margin
    so the cluster reports its own `timeout` naming the worker before the runner kills this whole process."""
    elapsed = time.time() - psutil.Process().create_time()
    margin = max(3.0, 0.05 * case.timeout_s)
    return max(1.0, case.timeout_s - elapsed - margin)
