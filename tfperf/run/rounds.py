"""Rounds of worker processes: the protocol `tfperf run`, `tune` and `ab` share. Each command supplies only a
schedule: which subjects and jobs each round's processes run, in what order, and when the rounds stop.

- Round 0 measures: a subject's first process runs every job it is given as `tfperf run` does (first call,
  warm-up, timed repeats, read-outs, profile).
- Later rounds only time: a fresh process times the jobs round 0 measured (ok, with samples), each the way
  round 0 timed it (per step, or in blocks of round 0's size), and its samples join round 0's result
  (`merge.merge_process`); a later process that fails fails the job.
- What the workers' TensorFlow reported at start (version, devices) goes into each subject's run environment.

Rounds over all subjects, rather than one subject's processes back to back, spread each job's processes over
the run, so a slow minute of the machine does not land on every process of the same job (asv's rounds).

A schedule is an object with two methods:

    processes(number)  a generator of the round's processes, each a list of `Assignment`s (one subject's jobs;
                       several in one process share it). It is read one process at a time, so a budget can be
                       checked just before each; what the process did is sent back into it
                       (`outcome = yield [...]`: a `WorkerProcess`, or None when there was nothing to run).
    stop(number)       after round `number`: why the rounds stop (a short reason), or None to run another.

No TensorFlow here: the workers import it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator, Protocol

from tfperf.results.model import Result, RunResult
from tfperf.run.merge import merge_process
from tfperf.run.process import Part, WorkerProcess
from tfperf.run.progress import Reporter, SilentReporter
from tfperf.suite.spec import CaseSpec


@dataclass(eq=False)
class Subject:
    """One case as a command measures it: written under `out_dir`, its workers started with `env` added to
    their environment, its round-0 results appended to `run` (when given) as they finish. `firsts` holds round
    0's result per job index: later rounds merge into them."""

    case: CaseSpec
    out_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    run: RunResult | None = None
    firsts: dict[int, Result] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The case's name, with its variant: what its worker files are named by."""
        return f"{self.case.name}+{self.case.variant}" if self.case.variant else self.case.name

    def measured(self) -> list[int]:
        """The jobs round 0 measured (ok, with samples): what later rounds time. A job that failed would fail
        again, at a worker's cost."""
        return [i for i, r in sorted(self.firsts.items()) if r.ok and r.samples]

    def block_sizes(self) -> dict[int, int]:
        """How round 0 timed each job (job index -> `timing.block_size`, 1 = per step): later processes time
        it the same way, so the merged samples are of one kind."""
        return first_block_sizes(self.firsts)

    def results(self) -> list[Result]:
        return [self.firsts[i] for i in sorted(self.firsts)]


def first_block_sizes(firsts: dict[int, Result]) -> dict[int, int]:
    """job index -> the `timing.block_size` its first process chose (1 = per step)."""
    return {i: r.timing.block_size for i, r in firsts.items() if r.timing is not None and r.timing.block_size}


@dataclass
class Assignment:
    """A subject's share of one process: its jobs (None: every job in round 0, what round 0 measured later)
    and, when the schedule decides them, the block sizes to time them with (None: round 0 chooses, later
    rounds reuse round 0's)."""

    subject: Subject
    indices: list[int] | None = None
    block_sizes: dict[int, int] | None = None


class Schedule(Protocol):
    def processes(self, number: int) -> Generator[list[Assignment], WorkerProcess | None, None]: ...

    def stop(self, number: int) -> str | None: ...


class Rounds:
    """Runs a schedule's rounds; every worker process is started through `tfperf.run.process`."""

    def __init__(self, python: str | None = None, reporter: Reporter | None = None):
        self.python = python or sys.executable
        self.reporter = reporter or SilentReporter()

    def run(self, schedule: Schedule) -> str:
        """Round after round until the schedule stops them; returns its reason."""
        number = 0
        while True:
            processes = schedule.processes(number)
            outcome: WorkerProcess | None = None
            while True:
                try:
                    assignments = processes.send(outcome)  # the first send(None) starts the generator
                except StopIteration:
                    break
                outcome = self.run_process(number, assignments)
            reason = schedule.stop(number)
            if reason is not None:
                return reason
            number += 1

    def run_process(self, number: int, assignments: list[Assignment]) -> WorkerProcess | None:
        """One worker process of round `number` over `assignments`; what it measured is folded into each
        subject (round 0: its `firsts` and its run; later: merged into round 0's results). None when no
        assignment has a job to run."""
        parts: list[tuple[Subject, Part]] = []
        for a in assignments:
            subject = a.subject
            if number == 0:
                indices = list(range(len(subject.case.jobs()))) if a.indices is None else list(a.indices)
                sizes = dict(a.block_sizes or {})
            else:
                measured = subject.measured()
                indices = measured if a.indices is None else [i for i in a.indices if i in measured]
                sizes = subject.block_sizes() if a.block_sizes is None else dict(a.block_sizes)
                if len(indices) < len(subject.case.jobs()):
                    self.reporter.skip(len(subject.case.jobs()) - len(indices))
            if not indices:
                continue
            parts.append((subject, Part(subject.case, self._case_file(subject, number), indices, sizes)))
        if not parts:
            return None
        first = parts[0][0]
        if any(s.out_dir != first.out_dir or s.env != first.env for s, _ in parts):
            raise ValueError("subjects share a worker process only with the same folder and environment")
        names = "+".join(s.name for s, _ in parts)
        stem = names if number == 0 else f"{names}.p{number}"
        proc = WorkerProcess(
            [p for _, p in parts],
            first.out_dir,
            number,
            stem,
            python=self.python,
            env=first.env,
            reporter=self.reporter,
        )
        try:
            self.execute(proc)
        finally:  # on Ctrl-C too: what the process finished is kept
            for subject, part in parts:
                self._fold(subject, part, number, proc)
        return proc

    def execute(self, proc: WorkerProcess) -> None:
        """Run the worker process until every job of its parts has a result. (Tests of a schedule that
        construct each process's results instead of measuring them override this; the rounds around it stay
        real.)"""
        proc.run()

    def _fold(self, subject: Subject, part: Part, number: int, proc: WorkerProcess) -> None:
        if subject.run is not None and proc.tensorflow and "tensorflow" not in subject.run.environment:
            subject.run.environment.update(proc.tensorflow)
        if number == 0:
            new = {i: r for i, r in part.finished.items() if i not in subject.firsts}
            subject.firsts.update(new)
            if subject.run is not None:
                subject.run.results.extend(new[i] for i in sorted(new))
            return
        for index, later in part.finished.items():
            merge_process(subject.firsts[index], later, number, log_path=proc.log_path)

    def _case_file(self, subject: Subject, number: int) -> Path:
        """The case as its worker reads it; rewritten for every process (a schedule may change the case
        between rounds, as `tune` lowers timeout_s to the budget left)."""
        work = subject.out_dir / "workers"
        work.mkdir(parents=True, exist_ok=True)
        path = work / (f"{subject.name}.case.json" if number == 0 else f"{subject.name}.p{number}.case.json")
        path.write_text(json.dumps(subject.case.to_json(), indent=2))
        return path
