"""The entry point of each worker process of a local multi-worker cluster, `main`:

    python -m tfperf.distributed.job CASE.json JOB.json RESULT.json [--out-dir D]

(tfperf/run/cluster.py launches it through tfperf/run/process.py; `run_distributed_job`, what the suite's
case worker calls for a `distribute:` case, is there too.)
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tfperf.distributed.faults import inject_start_fault
from tfperf.distributed.measure import measure_distributed
from tfperf.distributed.setup import configure_process, tf_config_task
from tfperf.results.model import JobSpec, atomic_write_text
from tfperf.suite.spec import CaseSpec


@dataclass
class WorkerContext:
    """What a launched worker's measurement needs of the case worker's context: where the profiled pass
    writes."""

    out_dir: Path | None


def watch_parent() -> None:
    """A launched worker must not outlive its supervisor (PR_SET_PDEATHSIG covers Linux; this covers the
    rest)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, daemon=True, name="tfperf-parent-watch").start()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tfperf.distributed.job")
    ap.add_argument("case_file")
    ap.add_argument("job_file")
    ap.add_argument("result_file")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args(argv)
    # A native crash (SIGABRT/SIGSEGV in TensorFlow) then leaves every thread's Python stack in the worker
    # log.
    faulthandler.enable(all_threads=True)
    watch_parent()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    task = tf_config_task()
    if task is not None:
        inject_start_fault(task[0])
    case = CaseSpec.from_json(json.loads(Path(args.case_file).read_text()))
    job = JobSpec(**json.loads(Path(args.job_file).read_text()))
    if getattr(case, "tf_config", None):
        # The same threading/jit settings as a single-process case; they too must precede TF's start-up.
        from tfperf.measure.tf_config import apply_tf_config

        apply_tf_config(case.tf_config)
    configure_process(case.distribute)
    # Joined: past TensorFlow's start-up and the cluster's servers. The supervisor restarts a cluster once
    # when a worker dies before this, and never after (a crash in the user's step is the job's result).
    Path(args.result_file + ".joined").write_text(str(os.getpid()))
    ctx = WorkerContext(Path(args.out_dir) if args.out_dir else None)
    result = measure_distributed(case, job, ctx)
    atomic_write_text(Path(args.result_file), json.dumps(result.to_json(), default=str) + "\n")
    sys.stdout.flush()
    # os._exit: skip interpreter teardown, where TensorFlow's collective and gRPC threads can hang the exit
    # after the result is safely on disk.
    os._exit(0 if result.ok else 3)


if __name__ == "__main__":
    sys.exit(main())
