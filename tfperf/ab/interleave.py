"""Interleaved rounds: both sides' worker processes, in a random order within each round.

Round 0 runs, for each case, one worker process of the base tree and one of the current tree back to back, in
an order drawn at random for that case (so neither side is always first, after the other has warmed the
caches, or always last, when a neighbour's burst starts); it is each side's first process and does everything
`run` does but profile. The later rounds only time the jobs both first processes measured, with the timing
method (per step, or the block size) the first of the pair's processes chose, so every sample of a row, on
both sides, is of one kind; there the cases that can share a process run in one per side (`share_groups`:
TensorFlow's start-up is most of a process's cost), the two sides' processes again back to back in a random
order. The two processes of a round that timed a row are a pair: they saw the same machine within seconds of
each other.

After each round the rows are judged (`judge`, which the caller passes); a row whose interval has decided
stops being run, and the rounds end when every row decided, at `max_pairs`, or when one more round would pass
`budget_s` (judged from the last round's length).

This is `tfperf ab`'s schedule over the rounds every command shares (tfperf/run/rounds.py: round 0 measures,
later rounds time what it measured and merge; a crash or timeout fails its job, loudly). No TensorFlow here:
the workers import it.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tfperf.ab.trees import Tree
from tfperf.host.environment import host_environment
from tfperf.results.model import RunResult, now_iso, write_results
from tfperf.run.process import WorkerProcess, process_key
from tfperf.run.rounds import Assignment, Rounds, Subject
from tfperf.suite.spec import Suite
from tfperf.version import __version__

SIDES = ("base", "current")

RowKey = tuple  # (case, mode, batch_size, task): the device is resolved in the worker, the same on both sides


def row_key(r: Any) -> RowKey:
    return (r.case, r.mode, r.batch_size, r.task)


@dataclass
class Side:
    """One tree's part of the run: its suite, its folder, its run, and what each of its processes measured."""

    tree: Tree
    suite: Suite
    out_dir: Path
    env: dict[str, str]
    run: RunResult
    subjects: dict[str, Subject] = field(default_factory=dict)  # case -> its rounds' subject
    samples: dict[RowKey, dict[int, list[float]]] = field(default_factory=dict)  # row -> round -> its samples
    noise: dict[RowKey, dict[int, dict]] = field(default_factory=dict)  # row -> round -> noise record

    def save(self) -> None:
        write_results(self.run, self.out_dir / "results.json")


@dataclass
class Round:
    number: int
    seconds: float
    order: dict[str, list[str]]  # case -> the sides in the order they ran


@dataclass
class Limits:
    """How far the rounds may go: at most `max_pairs` rounds and about `budget_s` seconds, at least
    `min_pairs` rounds for a row to leave them."""

    max_pairs: int
    budget_s: float
    min_pairs: int
    seed: int | None = None
    python: str = sys.executable


def new_side(tree: Tree, suite: Suite, out_dir: Path, env: dict[str, str], command: list[str] | None) -> Side:
    out_dir.mkdir(parents=True, exist_ok=True)
    run = RunResult(
        suite={**suite.info, "text": suite.text},
        environment=host_environment(tree.suite.parent),
        started_at=now_iso(),
        tfperf_version=__version__,
        command=command,
    )
    run.environment["ab"] = tree.describe()
    side = Side(tree, suite, out_dir, env, run)
    side.subjects = {case.name: Subject(case, out_dir, env, run) for case in suite.cases}
    side.save()
    return side


def interleave(
    sides: dict[str, Side],
    limits: Limits,
    judge: Callable[[int], set[RowKey]],
    progress: Callable[[str], None],
) -> tuple[list[Round], str]:
    """Run rounds until every row decided (`judge(pairs)` returns the rows still undecided), max_pairs, or the
    budget. Returns the rounds and why they stopped. On Ctrl-C both sides' finished results are written and
    the KeyboardInterrupt goes on."""
    schedule = Interleaved(sides, limits, judge, progress)
    try:
        stop = Rounds(limits.python).run(schedule)
    except KeyboardInterrupt:
        for side in sides.values():
            side.run.interrupted = True
            side.run.finished_at = now_iso()
            side.save()
        raise
    return schedule.rounds, stop


class Interleaved:
    """`tfperf ab`'s schedule: each round, for each case (round 0) or group of cases that share a process
    (later rounds), both sides' processes back to back in a random order; after each round the rows still open
    are what the next round times."""

    def __init__(
        self,
        sides: dict[str, Side],
        limits: Limits,
        judge: Callable[[int], set[RowKey]],
        progress: Callable[[str], None],
    ):
        self.sides, self.limits, self.judge, self.progress = sides, limits, judge, progress
        self.rng = random.Random(limits.seed)
        self.rounds: list[Round] = []
        self.started = time.monotonic()
        self.active: set[RowKey] | None = None  # None: round 0 runs every job
        self.shared_blocks: dict[RowKey, int] = {}
        self.cases = _case_names(sides)
        self.groups = share_groups([sides[s].suite for s in SIDES], self.cases)

    def processes(self, number: int) -> Generator[list[Assignment], WorkerProcess | None, None]:
        t0 = time.monotonic()
        order: dict[str, list[str]] = {}
        # Round 0: a process per case, as `run`. Later rounds: a process per side for each group of cases that
        # can share one, the two sides' processes in a random order.
        for group in [[n] for n in self.cases] if number == 0 else self.groups:
            present = [s for s in SIDES if any(n in self.sides[s].subjects for n in group)]
            self.rng.shuffle(present)
            for name in group:
                order[name] = present
            for s in present:
                side = self.sides[s]
                assignments = [
                    self._assignment(side.subjects[n], number) for n in group if n in side.subjects
                ]
                proc = yield assignments
                if proc is not None:
                    self._record(side, proc, number)
        for side in self.sides.values():
            side.save()
        self.rounds.append(Round(number, time.monotonic() - t0, order))

    def stop(self, number: int) -> str | None:
        # A row leaves the rounds when it failed on either side (a failed process fails its job), or when its
        # interval decided after at least min_pairs pairs.
        measured = _measured_on_both(self.sides)
        undecided = self.judge(number + 1)
        self.active = {
            k
            for k in (measured if self.active is None else self.active & measured)
            if k in undecided or number + 1 < self.limits.min_pairs
        }
        elapsed = time.monotonic() - self.started
        self.progress(
            f"pair {number + 1}/{self.limits.max_pairs} done in {self.rounds[-1].seconds:.0f} s "
            f"({elapsed:.0f} s in all)"
        )
        if not self.active:
            return "decided" if measured else "nothing to pair"
        if elapsed + self.rounds[-1].seconds > self.limits.budget_s:
            return "budget"
        return "max_pairs" if number + 1 >= self.limits.max_pairs else None

    def _assignment(self, subject: Subject, number: int) -> Assignment:
        if number == 0:
            # The first process of a pair to time a row decides its method; the other side follows it.
            jobs = subject.case.jobs()
            blocks = {
                i: self.shared_blocks[row_key(j)]
                for i, j in enumerate(jobs)
                if row_key(j) in self.shared_blocks
            }
            return Assignment(subject, block_sizes=blocks)
        active = self.active or set()
        return Assignment(subject, [i for i, r in sorted(subject.firsts.items()) if row_key(r) in active])

    def _record(self, side: Side, proc: WorkerProcess, number: int) -> None:
        """Each row's samples and noise record of this process, before its samples join the first process's;
        after round 0, the block size each row's first process chose."""
        for part in proc.parts:
            for result in part.finished.values():
                key = row_key(result)
                if result.ok and result.samples:
                    side.samples.setdefault(key, {})[number] = list(result.samples)
                    if result.timing is not None and result.timing.noise:
                        side.noise.setdefault(key, {})[number] = result.timing.noise
            if number == 0:
                subject = side.subjects[part.case.name]
                jobs = subject.case.jobs()
                for index, size in subject.block_sizes().items():
                    self.shared_blocks.setdefault(row_key(jobs[index]), size)


def share_groups(suites: list[Suite], names: list[str]) -> list[list[str]]:
    """`names` in groups that may share a process on every side: the same process-wide settings as each other
    on each side (`process_key`). A group keeps the order of `names` (the suite's)."""
    groups: dict[tuple, list[str]] = {}
    for name in names:
        keys = tuple(process_key(next((c for c in s.cases if c.name == name), None)) for s in suites)
        alone = any(k is None for k in keys)
        groups.setdefault(("alone", name) if alone else keys, []).append(name)
    return list(groups.values())


def _case_names(sides: dict[str, Side]) -> list[str]:
    """Every case of either side, in the current suite's order, then the base's own."""
    names = case_names(sides["current"].suite)
    return names + [n for n in case_names(sides["base"].suite) if n not in names]


def case_names(suite: Suite) -> list[str]:
    return [c.name for c in suite.cases]


def _measured_on_both(sides: dict[str, Side]) -> set[RowKey]:
    ok = [{row_key(r) for r in side.run.results if r.ok and r.samples} for side in sides.values()]
    return ok[0] & ok[1]
