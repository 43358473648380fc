"""Interleaved rounds: both sides' worker processes, in a random order within each round.

Round 0 runs, for each case, one worker process of the base tree and one of the current tree back to back, in
an order drawn at random for that case (so neither side is always first, after the other has warmed the
caches, or always last, when a neighbour's burst starts); it is each side's first process and does everything
`run` does but profile. The later rounds only time the jobs both first processes measured, with the timing
method (per step, or the block size) the first of the pair's processes chose, so every sample of a row, on
both sides, is of one kind; there the cases that can share a process run in one per side (tfperf/ab/shared.py:
TensorFlow's start-up is most of a process's cost), the two sides' processes again back to back in a random
order. The two processes of a round that timed a row are a pair: they saw the same machine within seconds of
each other.

After each round the rows are judged (`judge`, which the caller passes); a row whose interval has decided
stops being run, and the rounds end when every row decided, at `max_pairs`, or when one more round would pass
`budget_s` (judged from the last round's length). No TensorFlow here: the workers import it.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tfperf.ab.shared import Work, run_processes, share_groups
from tfperf.ab.trees import Tree
from tfperf.host.environment import host_environment
from tfperf.results.model import Result, RunResult, merge_process, now_iso, write_results
from tfperf.run.runner import CaseRunner, first_block_sizes
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
    firsts: dict[str, dict[int, Result]] = field(default_factory=dict)  # case -> job index -> first result
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
class Schedule:
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
    side.save()
    return side


def interleave(
    sides: dict[str, Side],
    schedule: Schedule,
    judge: Callable[[int], set[RowKey]],
    progress: Callable[[str], None],
) -> tuple[list[Round], str]:
    """Run rounds until every row decided (`judge(pairs)` returns the rows still undecided), max_pairs, or the
    budget. Returns the rounds and why they stopped. On Ctrl-C both sides' finished results are written and
    the KeyboardInterrupt goes on."""
    rng = random.Random(schedule.seed)
    rounds: list[Round] = []
    started = time.monotonic()
    active: set[RowKey] | None = None  # None: round 0 runs every job
    shared_blocks: dict[RowKey, int] = {}
    cases = _case_names(sides)
    groups = share_groups([sides[s].suite for s in SIDES], cases)
    try:
        for number in range(schedule.max_pairs):
            t0 = time.monotonic()
            order: dict[str, list[str]] = {}
            # Round 0: a process per case, as `run`. Later rounds: a process per side for each group of cases
            # that can share one (tfperf/ab/shared.py), the two sides' processes in a random order.
            for group in [[n] for n in cases] if number == 0 else groups:
                present = [s for s in SIDES if any(n in case_names(sides[s].suite) for n in group)]
                rng.shuffle(present)
                for name in group:
                    order[name] = present
                for s in present:
                    _run_cases(sides[s], group, number, active, shared_blocks, schedule.python)
            for side in sides.values():
                side.save()
            rounds.append(Round(number, time.monotonic() - t0, order))
            # A row leaves the rounds when it failed on either side (a failed process fails its job), or when
            # its interval decided after at least min_pairs pairs.
            measured = _measured_on_both(sides)
            undecided = judge(number + 1)
            active = {
                k
                for k in (measured if active is None else active & measured)
                if k in undecided or number + 1 < schedule.min_pairs
            }
            elapsed = time.monotonic() - started
            progress(
                f"pair {number + 1}/{schedule.max_pairs} done in {rounds[-1].seconds:.0f} s "
                f"({elapsed:.0f} s in all)"
            )
            if not active:
                return rounds, "decided" if measured else "nothing to pair"
            if elapsed + rounds[-1].seconds > schedule.budget_s:
                return rounds, "budget"
        return rounds, "max_pairs"
    except KeyboardInterrupt:
        for side in sides.values():
            side.run.interrupted = True
            side.run.finished_at = now_iso()
            side.save()
        raise


def _case_names(sides: dict[str, Side]) -> list[str]:
    """Every case of either side, in the current suite's order, then the base's own."""
    names = case_names(sides["current"].suite)
    return names + [n for n in case_names(sides["base"].suite) if n not in names]


def case_names(suite: Suite) -> list[str]:
    return [c.name for c in suite.cases]


def _measured_on_both(sides: dict[str, Side]) -> set[RowKey]:
    ok = [{row_key(r) for r in side.run.results if r.ok and r.samples} for side in sides.values()]
    return ok[0] & ok[1]


def _run_cases(
    side: Side,
    names: list[str],
    number: int,
    active: set[RowKey] | None,
    shared_blocks: dict[RowKey, int],
    python: str,
) -> None:
    work = []
    for name in names:
        case = next((c for c in side.suite.cases if c.name == name), None)
        if case is None:
            continue
        jobs = case.jobs()
        if active is None:
            indices = list(range(len(jobs)))
        else:
            indices = [i for i, r in sorted(side.firsts.get(name, {}).items()) if row_key(r) in active]
        # The first process of a pair to time a row decides its method; the other side follows it.
        blocks = {i: shared_blocks[row_key(j)] for i, j in enumerate(jobs) if row_key(j) in shared_blocks}
        if indices:
            work.append(Work(case, indices, blocks))
    if not work:
        return
    runners: list[CaseRunner] = []
    try:
        runners = run_processes(work, side.out_dir, number, python, side.env)
    finally:
        tf_env = next((r.tensorflow for r in runners if r.tensorflow), None)
        if tf_env and "tensorflow" not in side.run.environment:
            side.run.environment.update(tf_env)
    for runner in runners:
        _fold(side, runner, number, shared_blocks)


def _fold(side: Side, runner: CaseRunner, number: int, shared_blocks: dict[RowKey, int]) -> None:
    """One case's results of a process into its side: its samples and noise per round, its first results."""
    name, jobs = runner.case.name, runner.jobs
    for index, result in runner.finished.items():
        key = row_key(result)
        if result.ok and result.samples:
            # This process's own samples and noise, before its samples join the first process's.
            side.samples.setdefault(key, {})[number] = list(result.samples)
            if result.timing is not None and result.timing.noise:
                side.noise.setdefault(key, {})[number] = result.timing.noise
        if number == 0:
            side.firsts.setdefault(name, {})[index] = result
            side.run.results.append(result)
        else:
            merge_process(side.firsts[name][index], result, number, log_path=runner.log_path)
    if number == 0:
        for index, size in first_block_sizes(side.firsts.get(name, {})).items():
            shared_blocks.setdefault(row_key(jobs[index]), size)
