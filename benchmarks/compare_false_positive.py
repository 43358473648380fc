"""How often does `tfperf compare` flag a change when nothing changed?

Runs a small suite N times, unchanged, with the real `tfperf run`, then compares every pair of runs
(N·(N-1)/2 comparisons, each over every row) with `tfperf.analysis.compare.compare_runs` and counts the
verdicts. Any `regression` or `improvement` here is a false positive: the code did not change, only the
machine's state did. The goal is none at the default threshold (10%). `inconclusive` rows are counted apart:
they are the comparator declining to decide on noisy samples, which is the honest answer, not an alarm.

    python benchmarks/compare_false_positive.py                  # 5 runs of the built-in suite (~2 min, 2
    cores) python benchmarks/compare_false_positive.py --runs 8 --threshold 5%
    python benchmarks/compare_false_positive.py --suite suites/smoke.yaml --runs 3
    python benchmarks/compare_false_positive.py --reuse /tmp/fp  # re-compare runs already in /tmp/fp/run-*/
    python benchmarks/compare_false_positive.py --processes 1    # what one worker process per job gives

Measured on the 2-core VM tfperf is developed on (5 runs, 60 row comparisons, 10% threshold): with one process
per job 15 rows were flagged; with 2 processes, 7; with the default 3, none (27 inconclusive, 33 unchanged).

Prints a table of verdicts per threshold and writes summary.json beside the runs. Exits 1 when any
comparison flagged a regression at the chosen threshold, so it can gate a change to
tfperf/analysis/row_comparison.py, which gives each row its verdict.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

from tfperf.analysis.compare import compare_runs
from tfperf.analysis.row_comparison import VERDICTS
from tfperf.analysis.threshold import parse_threshold
from tfperf.results.model import load_results

# Two steps of different character, each in all three modes: a compute-bound matmul chain (steady) and a
# chain of many tiny element-wise ops (dominated by per-op overhead in eager: the noisier kind).
STEPS = """
import tensorflow as tf


def matmul_chain(x, w):
    for _ in range(8):
        x = tf.tanh(tf.matmul(x, w))
    return tf.reduce_sum(x)


def small_ops(x, w):
    for _ in range(30):
        x = x * 0.999 + 0.001
    return tf.reduce_sum(x)


def inputs(size: int = 160):
    x = tf.random.stateless_normal((size, size), seed=[1, 2])
    w = tf.random.stateless_normal((size, size), seed=[3, 4]) * 0.05
    while True:
        yield (x, w), {}
"""

SUITE = """
name: compare-false-positive
defaults: {modes: [eager, function, xla], warmup_steps: 3, steps: 15, repeats: 3, profile: false,
           timeout_s: 180}
cases:
  - name: matmul-chain
    function: steps.py:matmul_chain
    inputs: steps.py:inputs
  - name: small-ops
    function: steps.py:small_ops
    inputs: steps.py:inputs
"""


def run_suite(suite: Path, out: Path, processes: int | None) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "tfperf", "run", str(suite), "--out", str(out), "--quiet"]
    if processes:
        cmd += ["--processes", str(processes)]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode not in (0, 1) or not (out / "results.json").exists():
        sys.exit(f"tfperf run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="unchanged runs of the suite (default 5)")
    ap.add_argument("--suite", type=Path, help="a suite file (default: a built-in 2-case, 3-mode suite)")
    ap.add_argument("--threshold", default="10%", help="the threshold whose figure decides the exit code")
    ap.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder, kept)")
    ap.add_argument("--reuse", type=Path, help="compare the run-*/results.json already in this folder")
    ap.add_argument(
        "--processes", type=int, help="worker processes per job (default: the suite's, 3 unless set)"
    )
    args = ap.parse_args(argv)
    threshold = parse_threshold(args.threshold)

    if args.reuse:
        root = args.reuse
        outs = sorted(p.parent for p in root.glob("run-*/results.json"))
    else:
        root = args.out or Path(tempfile.mkdtemp(prefix="tfperf-fp-"))
        root.mkdir(parents=True, exist_ok=True)
        suite = args.suite
        if suite is None:
            (root / "steps.py").write_text(textwrap.dedent(STEPS))
            suite = root / "suite.yaml"
            suite.write_text(textwrap.dedent(SUITE))
        outs = []
        loads = []
        for i in range(args.runs):
            out = root / f"run-{i}"
            before = os.getloadavg()[0]
            took = run_suite(suite.resolve(), out, args.processes)
            after = os.getloadavg()[0]
            loads.append((before, after))
            outs.append(out)
            # The load average says how busy the machine was: on a shared machine other processes, not the
            # code, decide whether two runs agree.
            print(
                f"run {i + 1}/{args.runs}: {took:.0f} s, load average {before:.1f} -> {after:.1f} on "
                f"{os.cpu_count()} CPUs -> {out}",
                file=sys.stderr,
            )
    if len(outs) < 2:
        sys.exit("need at least two runs to compare")

    runs = [load_results(o) for o in outs]
    thresholds = sorted({0.05, 0.10, 0.20, threshold})
    summary = {
        "runs": [str(o) for o in outs],
        "pairs": len(outs) * (len(outs) - 1) // 2,
        "by_threshold": {},
        "load_average_before_after": None if args.reuse else loads,
        "cpu_count": os.cpu_count(),
        "processes": sorted({r.process_count for run in runs for r in run.results if r.samples}),
    }
    flagged_rows: list[dict] = []
    for t in thresholds:
        counts: Counter = Counter()
        for (i, a), (j, b) in itertools.combinations(enumerate(runs), 2):
            cmp = compare_runs(a, b, t)
            counts.update(r.verdict for r in cmp.rows)
            counts["unmatched"] += len(cmp.only_in_base) + len(cmp.only_in_current)
            if t == threshold:
                flagged_rows += [
                    {
                        "base": i,
                        "current": j,
                        "row": r.label,
                        "verdict": r.verdict,
                        "ratio": r.ratio,
                        "p": r.p_value,
                        "reason": r.reason,
                    }
                    for r in cmp.rows
                    if r.verdict in ("regression", "improvement")
                ]
        summary["by_threshold"][f"{t:.0%}"] = {v: counts[v] for v in (*VERDICTS, "unmatched")}
    summary["threshold"] = f"{threshold:.0%}"
    summary["false_positives"] = flagged_rows
    (root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    rows_compared = sum(summary["by_threshold"][f"{threshold:.0%}"][v] for v in VERDICTS)
    print(
        f"{len(outs)} unchanged runs, {summary['pairs']} pairwise comparisons, "
        f"{rows_compared // summary['pairs']} rows each ({rows_compared} row comparisons); "
        f"worker processes per job: {', '.join(map(str, summary['processes']))}"
    )
    print(f"{'threshold':>9}  " + "  ".join(f"{v:>12}" for v in VERDICTS))
    for t, c in summary["by_threshold"].items():
        print(f"{t:>9}  " + "  ".join(f"{c[v]:>12}" for v in VERDICTS))
    n_false = sum(1 for f in flagged_rows if f["verdict"] == "regression")
    print(
        f"\nat {threshold:.0%}: {n_false} false regression(s), "
        f"{len(flagged_rows) - n_false} false improvement(s) out of {rows_compared} row comparisons"
    )
    for f in flagged_rows:
        print(f"  run {f['base']} -> run {f['current']}: {f['row']} {f['verdict']}: {f['reason']}")
    print(f"summary: {root / 'summary.json'}")
    return 1 if n_false else 0


if __name__ == "__main__":
    sys.exit(main())
