"""How often does `tfperf ab` catch a step made 10% slower in the code, and how often does it flag unchanged
code?

A git repository in a temporary folder holds a two-case suite: `same` (10 matmuls of 256x256 and tanh, a few
ms on this machine) and `grown` (the same chain, its length read from `CHAIN` in steps.py). The commit has
CHAIN = 10; the working tree either keeps it (`without` the change) or sets CHAIN = 11 (`with`: +10% of the
step's work). Each of the N runs per kind is a real `tfperf ab suite.yaml --baseline HEAD` at the threshold
given (default 5%), alternating with and without, so both kinds see the same hours of the machine.

    python benchmarks/ab_power.py                # --runs 10: 20 ab runs
    python benchmarks/ab_power.py --runs 3 --threshold 5% --max-pairs 20 --one-thread

Prints, per run, each row's verdict, ratio and interval; then the false regressions (any regression of `same`,
or of `grown` without the change), the detections (`grown` a regression with the change), and the median wall
time of one ab run. The goals: no false regression, 9 of 10 detected at 5%, each ab run within 3 min.

Measured on the 2-core VM tfperf is developed on (--runs 2 --one-thread), with one process per side and case
in every round (load average 1.3-4): 2 of 2 changes flagged (1.095 [1.062, 1.197], 1.088 [1.061, 1.114]), 0 of
6 unchanged rows flagged, median wall time 231 s per ab run (202-327 s). With the timing rounds in one process
per side (load average 1.0-5.4): 2 of 2 flagged (1.193 [1.076, 1.653], 1.105 [1.054, 1.130]), 0 of 6 unchanged
rows flagged, median 198 s: 144 s per run at load 1.0-1.7, 252-295 s at load 1.9-5.4 (each process up to twice
as slow, and the unchanged row needing 15 pairs). docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STEPS = """import tensorflow as tf

CHAIN = 10


def _chain(n):
    def step(x, w):
        for _ in range(n):
            x = tf.tanh(tf.matmul(x, w))
        return tf.reduce_sum(x)
    return step


same = _chain(10)
grown = _chain(CHAIN)


def inputs(size: int = 256):
    x = tf.random.stateless_normal((size, size), seed=[1, 2])
    w = tf.random.stateless_normal((size, size), seed=[3, 4]) * 0.05
    while True:
        yield (x, w), {}
"""

SUITE = """name: ab-power
defaults:
  modes: [function]
  warmup_steps: 3
  steps: 20
  repeats: 2
  profile: false
  timeout_s: 120
{threads}cases:
  - name: same
    function: steps.py:same
    inputs: steps.py:inputs
  - name: grown
    function: steps.py:grown
    inputs: steps.py:inputs
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def make_repo(work: Path, one_thread: bool) -> Path:
    repo = work / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "steps.py").write_text(STEPS)
    threads = "  tf_config: {intra_op_threads: 1, inter_op_threads: 1}\n" if one_thread else ""
    (repo / "suite.yaml").write_text(SUITE.format(threads=threads))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "baseline: CHAIN = 10")
    return repo


def ab(repo: Path, out: Path, args: argparse.Namespace) -> tuple[dict, float, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-m",
        "tfperf",
        "ab",
        str(repo / "suite.yaml"),
        "--baseline",
        "HEAD",
        "--out",
        str(out),
        "--threshold",
        args.threshold,
        "--max-pairs",
        str(args.max_pairs),
        "--budget-s",
        str(args.budget_s),
        "--format",
        "json",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    if proc.returncode not in (0, 1) or not proc.stdout.startswith("{"):
        sys.exit(f"tfperf ab failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout), wall, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="ab runs with the change, and as many without")
    ap.add_argument("--threshold", default="5%")
    ap.add_argument("--max-pairs", type=int, default=20)
    ap.add_argument("--budget-s", type=float, default=900)
    ap.add_argument(
        "--work", type=Path, default=None, help="folder for the repository and runs (default: temp)"
    )
    ap.add_argument(
        "--one-thread",
        action="store_true",
        help="time with one intra-op and one inter-op thread (the steady setting of compare_detection.py)",
    )
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="tfperf-ab-power-"))
    repo = make_repo(work, args.one_thread)
    false_regressions, detections, walls, rows = 0, 0, [], []
    for i in range(args.runs):
        for kind in ("with", "without"):
            (repo / "steps.py").write_text(
                STEPS.replace("CHAIN = 10", "CHAIN = 11") if kind == "with" else STEPS
            )
            cmp, wall, rc = ab(repo, work / f"run{i}-{kind}", args)
            walls.append(wall)
            for row in cmp["rows"]:
                changed = kind == "with" and row["case"] == "grown"
                regression = row["verdict"] == "regression"
                detections += changed and regression
                false_regressions += (not changed) and regression
                ci = f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]" if row.get("ci_low") is not None else ""
                rows.append(
                    {
                        "run": i,
                        "kind": kind,
                        "case": row["case"],
                        "verdict": row["verdict"],
                        "ratio": row["ratio"],
                        "ci": ci,
                        "pairs": row.get("pairs"),
                    }
                )
                print(
                    f"run {i} {kind:7} {row['case']:5} {row['verdict']:12} ratio {row['ratio'] or 0:.3f} "
                    f"{ci} "
                    f"pairs {row.get('pairs')}  ({wall:.0f} s, {len(cmp['rounds'])} rounds, stop: "
                    f"{cmp['stop_reason']}, "
                    f"exit {rc})",
                    flush=True,
                )
    print(
        f"\n{args.runs} ab runs with a +10% change in code, {args.runs} without; threshold {args.threshold}"
        + ("; one thread per op" if args.one_thread else "; default thread pools")
    )
    print(f"false regressions: {false_regressions} (of {3 * args.runs} unchanged rows)")
    print(f"detections: {detections} of {args.runs}")
    print(
        f"median wall time of one ab run: {statistics.median(walls):.0f} s "
        f"({min(walls):.0f}-{max(walls):.0f} s; "
        f"load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    (work / "summary.json").write_text(
        json.dumps(
            {"rows": rows, "walls": walls, "detections": detections, "false_regressions": false_regressions},
            indent=2,
        )
    )
    print(f"runs and summary.json in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
