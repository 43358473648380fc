"""Supervising child processes: how tfperf starts, watches, kills and describes the workers it launches.

The suite runner's case workers and the local multi-worker cluster both run each child in its own session (so
killing its process group also ends the tf.data threads and helpers it started) and report a crash by its
signal with the tail of its log. One copy of that lives here.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from pathlib import Path

import psutil

LOG_TAIL_LINES = 15


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a worker's log, for the error a crash is reported with."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def exit_description(returncode: int) -> str:
    """ "killed by SIGKILL" or "exited with code 3"."""
    return f"killed by {signal_name(returncode)}" if returncode < 0 else f"exited with code {returncode}"


def crash_message(returncode: int) -> tuple[str, str]:
    """A worker's end before it finished, and a hint at the likely cause."""
    if returncode < 0:
        name = signal_name(returncode)
        hint = {
            "SIGKILL": "the kernel's out-of-memory killer sends SIGKILL: lower batch_size or model size (see "
            "dmesg)",
            "SIGSEGV": "a segmentation fault inside TensorFlow or a native extension",
            "SIGABRT": "the process aborted (a failed check in native code, or os.abort())",
        }.get(name, "the worker was killed by a signal")
        return f"worker process crashed: killed by {name}", hint
    return f"worker process exited with code {returncode} before finishing", "see the worker log"


def kill_group(proc: subprocess.Popen) -> None:
    """Kill a worker started in its own session together with its whole process group, and any child that left
    the group; wait for the worker itself."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    psutil.wait_procs(children, timeout=5)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """preexec_fn: send this child `sig` when the process that launched it dies (Linux prctl
    PR_SET_PDEATHSIG), so a killed tfperf never leaves a worker or a server behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the worker's own parent watch covers it
