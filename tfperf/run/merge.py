"""How a later worker process's measurement of a job joins its first process's result: the rounds' merge
(tfperf/run/rounds.py). The first process did everything (first call, tracing, read-outs, profile); later
processes only timed steps, so they add samples and repeats and nothing else, and a later process that failed
fails the job."""

from __future__ import annotations

from pathlib import Path

from tfperf.results.job_records import ProcessError
from tfperf.results.model import Result, process_timing
from tfperf.results.records import ErrorInfo


def merge_process(first: Result, later: Result, process_no: int, log_path: str | Path | None = None) -> None:
    """Fold what a later worker process timed for the same job into the first process's result.

    The first process did everything (first call, tracing, read-outs, profile); later processes only timed
    steps, so they add samples and repeats and nothing else. A later process that failed (crashed, raised, ran
    out of time, timed nothing) fails the job: the same code that ran once and then crashed is not a
    measurement to report as ok. The samples of the processes that finished stay, for inspection;
    `process_errors` lists every later process that failed. `log_path` is that process's worker log.
    """
    if not first.ok and not (first.error and first.error.process is not None):
        return  # the first process's own failure stands: later processes never ran the job
    if not later.ok or not later.samples:
        _process_failed(first, later, process_no, log_path)
        return
    ft, lt = first.timing, later.timing
    if ft is not None and lt is not None and (ft.method, ft.block_size) != (lt.method, lt.block_size):
        # Per-step samples and block means are not one distribution. The runner hands the first process's
        # block size on, so a mismatch means a worker ignored it: fail rather than pool them.
        later.status = "failed"
        later.error = ErrorInfo(
            type="TimingMethodMismatch",
            message=f"process {process_no} timed {lt.method} x{lt.block_size}, the first process "
            f"{ft.method} x{ft.block_size}: samples not merged",
        )
        _process_failed(first, later, process_no, log_path)
        return
    if not first.repeat_process and first.samples:
        first.repeat_sizes = [len(g) for g in first.repeat_groups()]
        first.repeat_process = [0] * len(first.repeat_sizes)
    if first.timing is not None and first.timing.by_process is None:
        first.timing.by_process = [process_timing(first, 0)]
    sizes = [len(g) for g in later.repeat_groups()]
    first.samples = first.samples + later.samples
    first.repeat_sizes = first.repeat_sizes + sizes
    first.repeat_process = first.repeat_process + [process_no] * len(sizes)
    if len(first.input_wait_s) + len(later.input_wait_s) == len(first.samples):
        first.input_wait_s = first.input_wait_s + later.input_wait_s
        total = sum(first.samples)
        first.input_wait_fraction = sum(first.input_wait_s) / total if total > 0 else None
    if first.wall_s is not None and later.wall_s is not None:
        first.wall_s += later.wall_s
    if first.timing is not None:
        # Each process's own median, first call and load: a process that compiled or ran slower shows here.
        first.timing.by_process.append(process_timing(later, process_no))
        first.timing.processes = len(first.timing.by_process)


def _process_failed(first: Result, later: Result, process_no: int, log_path: str | Path | None) -> None:
    """Mark `first` failed by its later process `process_no` (the first such failure names the job's
    error)."""
    err = later.error
    log = str(log_path) if log_path is not None else None
    entry = ProcessError(process=process_no, status=later.status, error=err, log_path=log)
    first.process_errors = [*(first.process_errors or []), entry]
    if not first.ok:
        return  # already failed by an earlier process: that one is the job's error
    # The type stays the later error's own (WorkerCrash, Timeout, RuntimeError), so the message carries its
    # words.
    why = (err.message or err.type) if err else f"{later.status}, no samples timed"
    hint = err.hint if err else None
    if log and log not in (hint or ""):  # a crash's hint already names the log
        hint = f"{hint}; worker log: {log}" if hint else f"worker log: {log}"
    kept = first.process_count
    # Processes are counted from 1 in words (as the progress lines say "in process 2"), from 0 in `process`.
    first.status = "failed"
    first.error = ErrorInfo(
        type=err.type if err else "ProcessFailed",
        message=(
            f"process {process_no + 1} of this job failed after process 1 measured it: {why} "
            f"(the samples of the {kept} process{'es' if kept != 1 else ''} that finished are kept for "
            f"inspection)"
        ),
        hint=hint,
        phase=err.phase if err else None,
        returncode=err.returncode if err else None,
        log_tail=err.log_tail if err else None,
        traceback=err.traceback if err else None,
        process=process_no,
        log_path=log,
    )
