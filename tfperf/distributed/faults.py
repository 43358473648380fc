"""Fault injection for the failure-handling tests and for trying failure handling out, read only in the worker
processes of a multi-worker case (the local cluster passes its environment on to every worker)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable

# "INDEX:STEP" makes worker INDEX SIGKILL itself after STEP timed steps of the distributed pass;
# "INDEX:hang" makes it hang at start (before joining the cluster); "INDEX:abort-once:PATH" makes it abort at
# start unless PATH exists, creating PATH first (a start-up crash that a restart gets past).
KILL_ENV = "TFPERF_DISTRIBUTED_KILL"


def kill_hook(worker_index: int) -> Callable[[int], None] | None:
    """For "INDEX:STEP" naming this worker: a hook, called with the number of timed steps done, that SIGKILLs
    this process once STEP are done. None otherwise."""
    raw = os.environ.get(KILL_ENV)
    if not raw:
        return None
    index, _, step = raw.partition(":")
    if int(index) != worker_index or not step.isdigit():
        return None
    at = int(step or 1)

    def hook(done: int) -> None:
        if done >= at:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def inject_start_fault(worker_index: int) -> None:
    """The start-up faults of KILL_ENV for this worker: hang for ever, or abort once."""
    raw = os.environ.get(KILL_ENV, "")
    if raw == f"{worker_index}:hang":
        while True:  # a worker that never joins (its supervisor must time out and kill it)
            time.sleep(1)
    if raw.startswith(f"{worker_index}:abort-once:"):
        flag = Path(raw.split(":", 2)[2])
        if not flag.exists():  # die in start-up, once
            flag.write_text("aborted")
            os.abort()
