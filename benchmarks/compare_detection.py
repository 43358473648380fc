"""How often does `tfperf compare` catch a step made about 25-30% slower, and pass an unchanged one?

Each pair is two real `tfperf run`s of a two-case suite: `same` runs 10 matmuls (384×384) in both runs (the
control: any flag on it is a false positive), `grown` runs 10 in the base run and 13 in the current one. Every
pair is compared with `tfperf.analysis.compare.compare_runs` at the threshold given, and the verdicts are
counted per case.
The same pairs are timed with TensorFlow's default thread pools and with one intra-op and one inter-op thread,
in turns, so both settings see the same machine.

    python benchmarks/compare_detection.py                 # 4 pairs per setting (~6 min on 2 cores)
    python benchmarks/compare_detection.py --pairs 8 --threshold 5%

Measured on the 2-core VM tfperf is developed on (4 pairs per setting, 10% threshold): with the default thread
pools `grown` was flagged in 1 of 4 pairs (ratios 1.12-2.12, the rest inconclusive); with one thread per op in
4 of 4 (ratios 1.23-1.28). The control `same` was never flagged (default: 2 unchanged, 2 inconclusive; one
thread: 4 unchanged).

Prints the verdict counts per setting and case and writes summary.json beside the runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from pathlib import Path

from tfperf.analysis.advisor import STEADY_THREADS
from tfperf.analysis.compare import compare_runs
from tfperf.analysis.row_comparison import VERDICTS
from tfperf.analysis.threshold import parse_threshold
from tfperf.results.model import load_results

STEPS = """
import tensorflow as tf


def _chain(n):
    def step(x, w):
        for _ in range(n):
            x = tf.tanh(tf.matmul(x, w))
        return tf.reduce_sum(x)
    return step


step10, step13 = _chain(10), _chain(13)


def inputs(size: int = 384):
    x = tf.random.stateless_normal((size, size), seed=[1, 2])
    w = tf.random.stateless_normal((size, size), seed=[3, 4]) * 0.05
    while True:
        yield (x, w), {}
"""

SUITE = """
name: compare-detection
defaults:
  modes: [function]
  warmup_steps: 3
  steps: 30
  repeats: 3
  profile: false
  timeout_s: 120
{tf_config}
cases:
  - name: same
    function: steps.py:step10
    inputs: steps.py:inputs
  - name: grown
    function: steps.py:{grown}
    inputs: steps.py:inputs
"""

SETTINGS = {"default threads": "", "one thread per op": f"  {STEADY_THREADS}"}


def suite_text(grown: str, setting: str) -> str:
    """The suite of one side of a pair: `grown` names the step of the `grown` case (step10 or step13). Also
    the suite of tests/test_compare.py's real two-run test."""
    return SUITE.format(tf_config=SETTINGS[setting], grown=grown)


def run(suite: Path, out: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tfperf", "run", str(suite), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"tfperf run {suite} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--threshold", default="10%")
    ap.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    args = ap.parse_args()
    threshold = parse_threshold(args.threshold)
    work = args.work or Path(tempfile.mkdtemp(prefix="tfperf-detect-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "steps.py").write_text(textwrap.dedent(STEPS))
    counts: dict[str, dict[str, Counter]] = {s: {"same": Counter(), "grown": Counter()} for s in SETTINGS}
    ratios: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for pair in range(args.pairs):
        for n, setting in enumerate(SETTINGS):
            outs = {}
            for side, grown in (("base", "step10"), ("current", "step13")):
                suite = work / f"s{n}-{side}.yaml"
                suite.write_text(suite_text(grown, setting))
                outs[side] = work / f"pair{pair}-s{n}-{side}"
                run(suite, outs[side])
            cmp = compare_runs(
                load_results(outs["base"] / "results.json"),
                load_results(outs["current"] / "results.json"),
                threshold=threshold,
            )
            for row in cmp.rows:
                counts[setting][row.case][row.verdict] += 1
                if row.case == "grown":
                    ratios[setting].append(row.ratio)
                print(f"pair {pair} {setting:18} {row.case:6} {row.verdict:12} {row.reason}", flush=True)
    print(
        f"\n{args.pairs} pairs per setting, threshold {threshold:.0%}; grown = 13 vs 10 matmuls, same = "
        "unchanged"
    )
    print(f"{'setting':18} {'case':6} " + " ".join(f"{v:>12}" for v in VERDICTS) + "   grown ratios")
    for setting, by_case in counts.items():
        for case, c in by_case.items():
            extra = " ".join(f"{r:.2f}" for r in ratios[setting]) if case == "grown" else ""
            print(f"{setting:18} {case:6} " + " ".join(f"{c[v]:>12}" for v in VERDICTS) + f"   {extra}")
    summary = {
        "pairs": args.pairs,
        "threshold": threshold,
        "counts": {s: {c: dict(v) for c, v in by.items()} for s, by in counts.items()},
        "ratios": ratios,
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nruns and summary.json in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
