"""`tfperf ab`: the baseline and the working tree measured in the same run, interleaved, with the process as
the unit (docs/architecture.md, "A/B runs").

    trees.py       which two trees: a git ref in a temporary worktree, or a second checkout; checked first
    interleave.py  the schedule of the rounds: both sides' worker processes in a random order (later rounds:
                   one per side for the cases that can share it), until the rows decide
    verdict.py     compare's comparison with each row's time verdict from its pairs (tfperf.stats.paired)
    render.py      compare's renderers plus the pairs and their noise

`run_ab` is the whole command without its option parsing; the CLI only reads options and prints.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tfperf.ab.interleave import Limits, interleave, new_side, row_key
from tfperf.ab.render import render
from tfperf.ab.trees import (
    Tree,
    baseline_worktree,
    check_baseline_dir,
    check_baseline_ref,
    current_tree,
    python_path,
)
from tfperf.ab.verdict import ABComparison, compare_sides, paired, undecided
from tfperf.analysis.threshold import read_threshold
from tfperf.errors import TfperfError
from tfperf.report.outputs import finish_run
from tfperf.results.model import atomic_write_text
from tfperf.run.outdir import choose_out_dir
from tfperf.stats.paired import DEFAULT_STATISTIC, STATISTICS, decide, min_pairs
from tfperf.suite.loader import load_suite
from tfperf.suite.plan import apply_overrides
from tfperf.suite.spec import Suite

__all__ = ["ABOptions", "run_ab", "read_confidence", "render"]

OUTPUTS = ("ab.json", "ab.md", "ab.html")


@dataclass
class ABOptions:
    baseline: str | None = None  # a git ref
    baseline_dir: Path | None = None  # or a second checkout
    threshold: float = 0.10
    confidence: float = 0.99
    statistic: str = DEFAULT_STATISTIC  # each process's figure (tfperf.stats.paired.process_figure)
    max_pairs: int = 20
    budget_s: float = 900.0
    seed: int | None = None
    cases: list[str] | None = None
    steps: int | None = None
    repeats: int | None = None


def read_confidence(text: str) -> float:
    """'99%' or '0.99': the interval's confidence, from 50% up to below 100%."""
    try:
        value = read_threshold(text).value
    except TfperfError:
        value = float("nan")
    if not 0.5 <= value < 1:
        raise TfperfError(f"--confidence {text}: expected a percentage from 50% to below 100%, such as 99%")
    return value


def plan(suite: Suite, options: ABOptions) -> Suite:
    """The suite as an A/B run times it: no profiled pass and no what-ifs (they time nothing compared), and
    one process per case and round (the rounds are the processes)."""
    planned = apply_overrides(
        suite, cases=options.cases, steps=options.steps, repeats=options.repeats, processes=1, profile=False
    )
    return dataclasses.replace(planned, cases=tuple(c.replace(what_if=False) for c in planned.cases))


def run_ab(
    suite_path: Path,
    out: Path | None,
    force: bool,
    options: ABOptions,
    progress: Callable[[str], None] = lambda line: None,
    command: list[str] | None = None,
) -> tuple[ABComparison, Path]:
    """Check the input, run the interleaved rounds, write both sides' outputs and the comparison; return
    it."""
    if options.statistic not in STATISTICS:
        raise TfperfError(f"--statistic {options.statistic}: choose one of {', '.join(STATISTICS)}")
    if (options.baseline is None) == (options.baseline_dir is None):
        raise TfperfError("give --baseline REF or --baseline-dir DIR (one of them)")
    current = current_tree(suite_path)
    if options.baseline is not None:
        commit = check_baseline_ref(current, options.baseline)
    else:
        base_dir_tree = check_baseline_dir(current, options.baseline_dir)
    current_suite = plan(load_suite(current.suite), options)
    out_dir = choose_out_dir(f"{current_suite.name}-ab", out, force)
    with ExitStack() as stack:
        base = (
            stack.enter_context(baseline_worktree(current, options.baseline, commit))
            if options.baseline is not None
            else base_dir_tree
        )
        try:
            base_suite = plan(load_suite(base.suite), options)
        except TfperfError as exc:
            raise TfperfError(f"the baseline's suite ({base.ref or base.root}): {exc}") from None
        return _measure(
            current, current_suite, base, base_suite, out_dir, options, progress, command
        ), out_dir


def _measure(
    current: Tree,
    current_suite: Suite,
    base: Tree,
    base_suite: Suite,
    out_dir: Path,
    options: ABOptions,
    progress: Callable[[str], None],
    command: list[str] | None,
) -> ABComparison:
    root = Path(__file__).resolve().parents[2]  # the folder holding the running tfperf package
    sides = {
        "base": new_side(base, base_suite, out_dir / "base", python_path(base, root), command),
        "current": new_side(current, current_suite, out_dir / "current", python_path(current, root), command),
    }
    need = min_pairs(1 - options.confidence)
    limits = Limits(
        max_pairs=max(options.max_pairs, 1),
        budget_s=options.budget_s,
        min_pairs=need,
        seed=options.seed,
        python=sys.executable,
    )

    def judge(pairs: int) -> set:
        for key in sorted(set(sides["base"].samples) & set(sides["current"].samples), key=str):
            pc = paired(sides["base"], sides["current"], key, options.confidence, options.statistic)
            if pc is not None:
                label = next(r.spec.label for r in sides["current"].run.results if row_key(r) == key)
                progress(
                    f"  {label}: {pc.pairs} pair(s), ratio {pc.ratio:.3f} [{pc.ci_low:.3f}, {pc.ci_high:.3f}]"
                    f" {decide(pc, options.threshold) if pc.decisive else f'(needs {need} pairs)'}"
                )
        return undecided(
            sides["base"], sides["current"], options.threshold, options.confidence, options.statistic
        )

    started = time.monotonic()
    progress(
        f"tfperf ab: {len(current_suite.cases)} case(s), base {base.ref or base.root} vs the working tree; "
        f"pairs {need}..{limits.max_pairs}, budget {options.budget_s:g} s, each process's "
        f"{options.statistic}"
    )
    rounds, stop = interleave(sides, limits, judge, progress)
    elapsed = time.monotonic() - started
    for side in sides.values():
        finish_run(side.run, side.out_dir)
    cmp = compare_sides(
        sides,
        options.threshold,
        options.confidence,
        options.statistic,
        base_tree=base.describe(),
        current_tree=current.describe(),
        max_pairs=limits.max_pairs,
        budget_s=options.budget_s,
        stop_reason=stop,
        elapsed_s=elapsed,
        rounds=[dataclasses.asdict(r) for r in rounds],
    )
    for name, fmt in zip(OUTPUTS, ("json", "markdown", "html")):
        atomic_write_text(out_dir / name, render(cmp, fmt))
    return cmp
