"""The suite runner: every case of a suite in worker processes, in rounds (`processes: N`), results.json
rewritten after every process. It measures and records; it does not judge or render
(`tfperf.report.outputs.run_and_finish` adds the advisor's suggestions and the reports).

The rounds and the worker processes are tfperf/run/rounds.py and tfperf/run/process.py; this module is the
schedule `tfperf run` gives them: every case in round 0, in the suite's order, then each case's later
processes in rounds over the whole suite, until each case has its `processes`. No TensorFlow here: the workers
import it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Generator
from pathlib import Path

from tfperf.host.environment import host_environment
from tfperf.results.model import RunResult, now_iso, write_results
from tfperf.run.process import WorkerProcess
from tfperf.run.progress import Reporter, SilentReporter
from tfperf.run.rounds import Assignment, Rounds, Subject
from tfperf.suite.spec import CaseSpec, Suite
from tfperf.version import __version__


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM during a run; carries the partial run, already written to disk."""

    def __init__(self, run: RunResult, out_dir: Path):
        self.run, self.out_dir = run, out_dir
        super().__init__(f"interrupted: partial results in {out_dir / 'results.json'}")


def processes_for(case: CaseSpec) -> int:
    """A distributed case is already several processes, each with its own role: it runs once."""
    return 1 if case.distribute else max(1, case.processes)


class SuiteSchedule:
    """`tfperf run`'s rounds: round 0 runs every case (each in its own worker, in the suite's order); round N
    the cases with more than N `processes`, each timing what its round 0 measured. results.json is rewritten
    after every process, so a killed run keeps what finished."""

    def __init__(self, subjects: list[Subject], run: RunResult, results_path: Path):
        self.subjects, self.run, self.results_path = subjects, run, results_path
        self.rounds = max((processes_for(s.case) for s in subjects), default=1)

    def processes(self, number: int) -> Generator[list[Assignment], WorkerProcess | None, None]:
        for subject in self.subjects:
            if number < processes_for(subject.case):
                yield [Assignment(subject)]
                _note_load(self.run)
                self.save()

    def stop(self, number: int) -> str | None:
        return "done" if number + 1 >= self.rounds else None

    def save(self) -> None:
        write_results(self.run, self.results_path)


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    python: str | None = None,
    command: list[str] | None = None,
) -> RunResult:
    """Run every case in worker processes and write results.json after each; return the run.

    With `processes: N`, the suite runs in N rounds, as asv does: round 1 measures everything; rounds 2..N
    start a fresh worker per case that only times the jobs round 1 measured, and their samples join round 1's.
    On Ctrl-C or SIGTERM the finished results are written and RunInterrupted carries the partial run.
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
    schedule = SuiteSchedule(
        [Subject(case, out_dir, run=run) for case in suite.cases], run, out_dir / "results.json"
    )
    schedule.save()
    reporter.start(sum(len(case.jobs()) * processes_for(case) for case in suite.cases))
    previous_term = _terminate_as_interrupt()
    try:
        Rounds(python, reporter).run(schedule)
    except KeyboardInterrupt:
        run.interrupted = True
        run.finished_at = now_iso()
        schedule.save()
        reporter.finish()
        raise RunInterrupted(run, out_dir) from None
    finally:
        _restore_terminate(previous_term)
    run.finished_at = now_iso()
    schedule.save()
    reporter.finish()
    return run


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
