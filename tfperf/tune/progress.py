"""What `tfperf tune` tells the user while it searches: nothing, a line per configuration, or a progress bar
over the budget with those lines above it."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from tfperf import units
from tfperf.tune.candidates import Candidate
from tfperf.tune.ranking import CaseTuning, Row


class TuneProgress(Protocol):
    def case_started(self, case: str, budget_s: float) -> None: ...
    def config_started(self, case: str, candidate: Candidate, index: int, planned: int) -> None: ...
    def config_finished(self, case: str, candidate: Candidate, rows: list[Row], wall_s: float) -> None: ...
    def config_skipped(self, case: str, candidate: Candidate, reason: str) -> None: ...
    def case_finished(self, tuning: CaseTuning) -> None: ...


class SilentTuneProgress:
    def case_started(self, case: str, budget_s: float) -> None: ...
    def config_started(self, case: str, candidate: Candidate, index: int, planned: int) -> None: ...
    def config_finished(self, case: str, candidate: Candidate, rows: list[Row], wall_s: float) -> None: ...
    def config_skipped(self, case: str, candidate: Candidate, reason: str) -> None: ...
    def case_finished(self, tuning: CaseTuning) -> None: ...


class LineTuneProgress(SilentTuneProgress):
    """One line per configuration: for logs, CI and --quiet."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def case_started(self, case: str, budget_s: float) -> None:
        self.line(f"tune {case}: budget {budget_s:g} s")

    def config_started(self, case: str, candidate: Candidate, index: int, planned: int) -> None:
        self.line(f"  [{index}/{planned}] {candidate.id}: {candidate.label} ...")

    def config_finished(self, case: str, candidate: Candidate, rows: list[Row], wall_s: float) -> None:
        for r in rows:
            self.line(
                f"      {r.mode}{f' bs={r.batch_size}' if r.batch_size else ''}: "
                + (
                    f"{units.ms(r.result.median_s)} ms/step"
                    if r.result.ok and r.result.samples
                    else f"{r.result.status} {r.result.error.message if r.result.error else ''}"[:160]
                )
                + f"  ({wall_s:.0f} s)"
            )

    def config_skipped(self, case: str, candidate: Candidate, reason: str) -> None:
        self.line(f"  skipped {candidate.id}: {reason}")


class BarTuneProgress(LineTuneProgress):
    """A rich progress bar over the budget (seconds), with a line per configuration above it."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task = None
        self.started = 0.0

    def line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def case_started(self, case: str, budget_s: float) -> None:
        super().case_started(case, budget_s)
        self.progress.start()
        self.started = time.monotonic()
        self.task = self.progress.add_task(f"tune {case}", total=budget_s)

    def config_started(self, case: str, candidate: Candidate, index: int, planned: int) -> None:
        self.progress.update(
            self.task,
            description=f"tune {case}: {candidate.id} ({index}/{planned})",
            completed=time.monotonic() - self.started,
        )

    def config_finished(self, case: str, candidate: Candidate, rows: list[Row], wall_s: float) -> None:
        super().config_finished(case, candidate, rows, wall_s)
        self.progress.update(self.task, completed=time.monotonic() - self.started)

    def case_finished(self, tuning: CaseTuning) -> None:
        self.progress.stop()


def progress_for(quiet: bool, stream=sys.stderr) -> TuneProgress:
    """Plain lines when asked or when stderr is not a terminal (a bar would fill a log with redraws)."""
    if quiet or not stream.isatty():
        return LineTuneProgress(stream)
    return BarTuneProgress()
