"""Keras 3 against Keras 2 (tf_keras) on the same models, and what `steps_per_execution` buys `model.fit`.

Users report Keras 3 on TensorFlow running slower than Keras 2 for the same model; this runs zoo models under
`keras: [3, 2]` (tfperf's train step, function and xla) and `task: fit` with steps_per_execution 1 and 8,
through a real `tfperf run`, and prints ratios of medians (no timed assert: the machine is shared and noisy).

    python benchmarks/keras_versions.py                 # mlp, lstm, small_cnn; ~3 min on 2 cores
    python benchmarks/keras_versions.py --models mlp --processes 1

Needs `pip install -e ".[models]"` (tf-keras).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"mlp": "{hidden: 128}", "lstm": "{seq_len: 16}", "small_cnn": "{}"}


def suite_text(models: list[str], processes: int) -> str:
    lines = [
        "name: keras_versions",
        f"defaults: {{steps: 20, repeats: 3, warmup_steps: 3, processes: {processes}, profile: false, "
        "batch_size: 32}",
        "cases:",
    ]
    for m in models:
        lines += [
            f"  - name: {m}",
            f"    model: zoo:{m}",
            f"    params: {PARAMS.get(m, '{}')}",
            "    keras: [3, 2]",
            "    modes: [function, xla]",
        ]
        for spe in (1, 8):
            lines += [
                f"  - name: {m}-fit-spe{spe}",
                f"    model: zoo:{m}",
                f"    params: {PARAMS.get(m, '{}')}",
                "    task: fit",
                f"    steps_per_execution: {spe}",
                "    steps: 32",
                "    modes: [function]",
            ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lstm,small_cnn")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "keras_versions.yaml"
        suite.write_text(suite_text(models, args.processes))
        out = Path(tmp) / "out"
        proc = subprocess.run(
            [sys.executable, "-m", "tfperf", "run", str(suite), "--out", str(out), "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode not in (0, 1):
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        results = json.loads((out / "results.json").read_text())["results"]
    median = {(r["case"], r["mode"]): (r.get("step_time_s") or {}).get("median") for r in results}
    print(f"{'model':<10} {'mode':<9} {'keras 3 ms':>10} {'keras 2 ms':>10} {'3 / 2':>7}")
    for m in models:
        for mode in ("function", "xla"):
            k3, k2 = median.get((f"{m}-keras3", mode)), median.get((f"{m}-keras2", mode))
            if k3 and k2:
                print(f"{m:<10} {mode:<9} {k3 * 1e3:>10.3f} {k2 * 1e3:>10.3f} {k3 / k2:>7.2f}")
    print(f"\n{'model':<10} {'fit spe=1 ms':>12} {'fit spe=8 ms':>12} {'1 / 8':>7}")
    for m in models:
        one, eight = median.get((f"{m}-fit-spe1", "function")), median.get((f"{m}-fit-spe8", "function"))
        if one and eight:
            print(f"{m:<10} {one * 1e3:>12.3f} {eight * 1e3:>12.3f} {one / eight:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
