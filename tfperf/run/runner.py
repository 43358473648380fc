"""Runs a suite: one worker process per case, supervised for crashes and timeouts, results.json rewritten
atomically after every case so an interrupted run keeps everything that finished.

No TensorFlow here: the parent process stays light; workers import it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from tfperf.host.environment import host_environment
from tfperf.host.processes import crash_message, kill_group, log_tail
from tfperf.results.model import JobSpec, Result, RunResult, merge_process, now_iso, write_results
from tfperf.suite.spec import CaseSpec, Suite
from tfperf.version import __version__

POLL_S = 0.05


class Reporter(Protocol):
    """Progress sink: the runner never prints; the CLI decides how progress looks."""

    def start(self, total_jobs: int) -> None: ...
    def job_started(self, job: JobSpec) -> None: ...
    def job_finished(self, result: Result) -> None: ...
    def skip(
        self, jobs: int
    ) -> None: ...  # planned jobs that will not run (a later process skips failed jobs)
    def finish(self) -> None: ...


class SilentReporter:
    def start(self, total_jobs: int) -> None: ...
    def job_started(self, job: JobSpec) -> None: ...
    def job_finished(self, result: Result) -> None: ...
    def skip(self, jobs: int) -> None: ...
    def finish(self) -> None: ...


class RunInterrupted(Exception):
    """Ctrl-C during a run; carries the partial run, already written to disk."""

    def __init__(self, run: RunResult, out_dir: Path):
        self.run, self.out_dir = run, out_dir
        super().__init__(f"interrupted: partial results in {out_dir / 'results.json'}")


@dataclass
class _Attempt:
    """What one worker process reported before it ended."""

    device: str | None = None
    tensorflow: dict | None = None
    current: int | None = None  # index of the job started but not finished
    done: bool = False
    results: dict[int, Result] = field(default_factory=dict)


class CaseRunner:
    """Supervises the worker(s) of one case: in one process of `processes`, the jobs at `indices` (default
    all).

    `block_sizes` (job index -> `timing.block_size` of the job's first process) makes a later process time
    each job the way the first did: per step or in blocks of the same size, so the merged samples are of one
    kind."""

    def __init__(
        self,
        case: CaseSpec,
        out_dir: Path,
        reporter: Reporter,
        fail_on_retrace: bool,
        python: str,
        process_no: int = 0,
        indices: list[int] | None = None,
        block_sizes: dict[int, int] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.case, self.out_dir, self.reporter = case, out_dir, reporter
        self.env = dict(env or {})  # set in the worker's environment (`tfperf ab`: each tree's PYTHONPATH)
        self.fail_on_retrace, self.python = fail_on_retrace, python
        self.process_no = process_no
        self.block_sizes = dict(block_sizes or {})
        self.work = out_dir / "workers"
        self.work.mkdir(parents=True, exist_ok=True)
        # The first process keeps the plain names; later ones (timing only) are told apart by a suffix.
        self.stem = case.name if process_no == 0 else f"{case.name}.p{process_no}"
        self.case_file = self.work / f"{self.stem}.case.json"
        self.case_file.write_text(json.dumps(case.to_json(), indent=2))
        self.log_path = self.work / f"{self.stem}.log"
        self.jobs = case.jobs()
        self.indices = list(range(len(self.jobs))) if indices is None else list(indices)
        self.device: str | None = None
        self.tensorflow: dict | None = None
        # Kept on the instance so an interrupted run still keeps the jobs of this case that finished.
        self.finished: dict[int, Result] = {}

    def finished_results(self) -> list[Result]:
        return [self.finished[i] for i in sorted(self.finished)]

    def _job(self, index: int) -> JobSpec:
        return dataclasses.replace(self.jobs[index], device=self.device or self.jobs[index].device)

    def _remaining(self) -> list[int]:
        return [i for i in self.indices if i not in self.finished]

    def run(self) -> list[Result]:
        results = self.finished
        deadline = time.monotonic() + self.case.timeout_s
        attempt_no = 0
        while self._remaining():
            outcome = self._attempt(attempt_no, self._remaining(), deadline, results)
            attempt_no += 1
            if outcome != "crashed":
                break
        return [results[i] for i in self.indices if i in results]

    def _attempt(self, attempt_no: int, todo: list[int], deadline: float, results: dict[int, Result]) -> str:
        """Run one worker over the jobs `todo`; returns "done", "timeout" or "crashed" (each crash finishes a
        job)."""
        events_path = self.work / f"{self.stem}.events{attempt_no}.jsonl"
        events_path.write_text("")
        cmd = [
            self.python,
            "-m",
            "tfperf.run.worker",
            str(self.case_file),
            str(events_path),
            str(self.out_dir),
            "--jobs",
            ",".join(map(str, todo)),
        ]
        if self.process_no:
            cmd += ["--process", str(self.process_no)]
        sizes = {i: self.block_sizes[i] for i in todo if i in self.block_sizes}
        if sizes:
            cmd += ["--block-sizes", ",".join(f"{i}:{n}" for i, n in sizes.items())]
        if self.fail_on_retrace:
            cmd.append("--fail-on-retrace")
        attempt = _Attempt()
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"--- worker attempt {attempt_no} (jobs {','.join(map(str, todo))}): {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            )
        offset = 0
        timed_out = False
        try:
            while True:
                offset = self._read_events(events_path, offset, attempt, results)
                if proc.poll() is not None:
                    offset = self._read_events(events_path, offset, attempt, results)
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    kill_group(proc)
                    offset = self._read_events(events_path, offset, attempt, results)
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            # A job the worker finished just before the interrupt is on disk but maybe not polled yet: keep
            # it.
            kill_group(proc)
            self._read_events(events_path, offset, attempt, results)
            raise
        finally:
            if proc.poll() is None:
                kill_group(proc)
            else:
                # The worker is gone; anything it started in its session must not outlive it.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if attempt.done:
            return "done"
        remaining = self._remaining()
        if timed_out:
            # Killed before it started a job (a slow import on a busy machine): the first job it owed is the
            # one that ran out of time.
            running = (
                attempt.current if attempt.current is not None else (remaining[0] if remaining else None)
            )
            for i in remaining:
                if i == running:
                    r = Result.not_run(
                        self._job(i),
                        "timeout",
                        "Timeout",
                        f"killed after the case's timeout_s of {self.case.timeout_s:g} s",
                        "raise timeout_s for this case, or lower steps/repeats",
                    )
                else:
                    r = Result.not_run(
                        self._job(i),
                        "skipped",
                        "NotRun",
                        f"not run: the case used up its timeout_s of {self.case.timeout_s:g} s",
                    )
                self._finish(i, r, results)
            return "timeout"
        message, hint = crash_message(proc.returncode)
        tail = log_tail(self.log_path)
        crashed = attempt.current if attempt.current is not None else (remaining[0] if remaining else None)
        if crashed is None:
            return "done"
        r = Result.not_run(
            self._job(crashed), "failed", "WorkerCrash", message, f"{hint}; worker log: {self.log_path}"
        )
        r.error.returncode = proc.returncode
        r.error.log_tail = tail
        self._finish(crashed, r, results)
        if attempt.current is None:
            # The worker died before starting any job (import error, bad environment): retrying would only
            # crash again, so every remaining job carries the same failure.
            for i in remaining[1:]:
                self._finish(
                    i, Result.not_run(self._job(i), "failed", "WorkerCrash", message, r.error.hint), results
                )
        return "crashed"

    def _finish(self, index: int, result: Result, results: dict[int, Result]) -> None:
        results[index] = result
        self.reporter.job_finished(result)

    def _read_events(self, path: Path, offset: int, attempt: _Attempt, results: dict[int, Result]) -> int:
        with open(path, encoding="utf-8") as f:
            f.seek(offset)
            while True:
                line = f.readline()
                if not line.endswith("\n"):
                    break  # a partly written line: read it next time
                offset = f.tell()
                event = json.loads(line)
                kind = event["event"]
                if kind == "hello":
                    attempt.device = self.device = event["device"]
                    attempt.tensorflow = self.tensorflow = event.get("tensorflow")
                elif kind == "start":
                    attempt.current = event["index"]
                    self.reporter.job_started(self._job(event["index"]))
                elif kind == "result":
                    attempt.current = None
                    self._finish(event["index"], Result.from_json(event["result"]), results)
                elif kind == "done":
                    attempt.done = True
        return offset


def _terminate_as_interrupt():
    """A `kill` (SIGTERM) stops a run like Ctrl-C: workers killed, finished results written. Only the main
    thread can set handlers; elsewhere (a library caller's thread) the default stays."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def _restore_terminate(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _note_load(run: RunResult) -> None:
    """Keep the busiest load average seen between cases: compare warns when other processes shared the
    cores."""
    try:
        load = list(os.getloadavg())
    except OSError:
        return
    seen = run.environment.get("load_average")
    if not seen or load[0] > seen[0]:
        run.environment["load_average"] = [round(x, 2) for x in load]


def first_block_sizes(firsts: dict[int, Result]) -> dict[int, int]:
    """How the first process timed each job (job index -> `timing.block_size`, 1 = per step): the method is
    decided once per job, by its first process, and every later process reuses it."""
    return {i: r.timing.block_size for i, r in firsts.items() if r.timing is not None and r.timing.block_size}


def processes_for(case: CaseSpec) -> int:
    """A distributed case is already several processes, each with its own role: it runs once."""
    return 1 if case.distribute else max(1, case.processes)


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    fail_on_retrace: bool = False,
    python: str | None = None,
    command: list[str] | None = None,
    annotate: Callable[[RunResult], None] | None = None,
) -> RunResult:
    """Run every case in its own worker and write results.json after each case; return the run.

    The runner measures and records; it does not judge or render. `annotate(run)` runs before every write of
    results.json (the CLI passes the advisor, so a run killed mid-way still has its suggestions on disk);
    `tfperf.report.outputs.finish_run` writes the reports once the run is over. On Ctrl-C or SIGTERM the
    finished results are written and RunInterrupted carries the partial run.

    With `processes: N`, the suite runs in N rounds, as asv does: round 1 measures everything; rounds 2..N
    start a fresh worker per case that only times the jobs round 1 measured, and their samples join round 1's.
    Rounds over the whole suite, rather than N processes back to back, spread each job's processes over the
    run, so a slow minute of the machine does not land on every process of the same job.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reporter = reporter or SilentReporter()
    suite_dir = Path(suite.path).resolve().parent
    run = RunResult(
        suite={**suite.info, "text": suite.text},
        environment=host_environment(suite_dir),
        started_at=now_iso(),
        tfperf_version=__version__,
        command=command,
    )
    results_path = out_dir / "results.json"
    write_results(run, results_path)
    reporter.start(sum(len(case.jobs()) * processes_for(case) for case in suite.cases))
    runner: CaseRunner | None = None
    firsts: dict[str, dict[int, Result]] = {}  # case -> job index -> the first process's result
    previous_term = _terminate_as_interrupt()

    def save() -> None:
        if annotate is not None:
            annotate(run)
        write_results(run, results_path)

    def fold_in(runner: CaseRunner) -> None:
        if runner.process_no == 0:
            firsts[runner.case.name] = dict(runner.finished)
            run.results.extend(runner.finished_results())
        else:
            for index, later in runner.finished.items():
                merge_process(
                    firsts[runner.case.name][index], later, runner.process_no, log_path=runner.log_path
                )

    try:
        for process_no in range(max((processes_for(c) for c in suite.cases), default=1)):
            for case in suite.cases:
                if process_no >= processes_for(case):
                    continue
                indices = None
                if process_no:
                    # Only what the first process measured: a failed job would fail again, at a worker's cost.
                    indices = [i for i, r in sorted(firsts.get(case.name, {}).items()) if r.ok and r.samples]
                    reporter.skip(len(case.jobs()) - len(indices))
                    if not indices:
                        continue
                runner = CaseRunner(
                    case,
                    out_dir,
                    reporter,
                    fail_on_retrace,
                    python or sys.executable,
                    process_no=process_no,
                    indices=indices,
                    block_sizes=first_block_sizes(firsts.get(case.name, {})),
                )
                try:
                    runner.run()
                finally:
                    if runner.tensorflow and "tensorflow" not in run.environment:
                        run.environment.update(runner.tensorflow)
                fold_in(runner)
                runner = None
                _note_load(run)
                save()
    except KeyboardInterrupt:
        if runner is not None:  # the case in progress: keep the jobs it finished
            fold_in(runner)
        run.interrupted = True
        run.finished_at = now_iso()
        save()
        reporter.finish()
        raise RunInterrupted(run, out_dir) from None
    finally:
        _restore_terminate(previous_term)
    run.finished_at = now_iso()
    save()
    reporter.finish()
    return run
