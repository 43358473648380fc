"""How progress looks: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from tfperf import units
from tfperf.results.model import JobSpec, Result


class Reporter(Protocol):
    """Progress sink: the runner never prints; the command decides how progress looks."""

    def start(self, total_jobs: int) -> None: ...

    def job_started(self, job: JobSpec) -> None: ...

    def job_finished(self, result: Result) -> None: ...

    def skip(self, jobs: int) -> None:
        """Planned jobs that will not run (a later process leaves out the jobs its first process failed)."""

    def finish(self) -> None: ...


class SilentReporter:
    def start(self, total_jobs: int) -> None: ...

    def job_started(self, job: JobSpec) -> None: ...

    def job_finished(self, result: Result) -> None: ...

    def skip(self, jobs: int) -> None: ...

    def finish(self) -> None: ...


def describe(result: Result) -> str:
    """One finished job in a line: its median step and first call, or why it has none."""
    if result.ok and result.median_s is not None:
        later = (
            result.repeat_process[0] if result.repeat_process and len(set(result.repeat_process)) == 1 else 0
        )
        if later:  # a later process of `processes`: it only timed steps
            return f"ok  {units.ms(result.median_s)} ms/step in process {later + 1}"
        tail = f"{units.ms(result.median_s)} ms/step, first call {units.seconds(result.first_call_s)}"
        if result.tracing_count is not None:
            tail += f", {result.tracing_count} trace(s)"
        return f"ok  {tail}"
    err = result.error
    return f"{result.status}  {err.type if err else ''}: {err.message if err else ''}"[:200]


class LineReporter:
    """One line per finished job: for logs, CI, pipes and --quiet."""

    def __init__(self, stream: TextIO = sys.stderr):
        self.stream = stream
        self.total = 0
        self.done = 0

    def start(self, total_jobs: int) -> None:
        self.total = total_jobs

    def job_started(self, job: JobSpec) -> None:
        pass

    def job_finished(self, result: Result) -> None:
        self.done += 1
        print(
            f"[{self.done}/{self.total}] {result.spec.label}: {describe(result)}",
            file=self.stream,
            flush=True,
        )

    def skip(self, jobs: int) -> None:
        self.total -= jobs

    def finish(self) -> None:
        pass


class BarReporter:
    """A rich progress bar with the running job's name, and a line per finished job above it."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task = None

    def start(self, total_jobs: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("starting", total=total_jobs)

    def job_started(self, job: JobSpec) -> None:
        self.progress.update(self.task, description=f"running {job.label}")

    def job_finished(self, result: Result) -> None:
        from rich.markup import escape

        style = "green" if result.ok else "red"
        # Case names and error messages are user text: escape them so "[x]" is not read as markup.
        self.console.print(
            f"[{style}]{escape(result.spec.label)}[/{style}]: {escape(describe(result))}",
            markup=True,
            highlight=False,
        )
        self.progress.advance(self.task)

    def skip(self, jobs: int) -> None:
        if jobs:
            self.progress.update(self.task, total=self.progress.tasks[0].total - jobs)

    def finish(self) -> None:
        self.progress.stop()


def reporter_for(quiet: bool, stream: TextIO = sys.stderr):
    if quiet or not stream.isatty():
        return LineReporter(stream)
    return BarReporter()
