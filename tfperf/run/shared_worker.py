"""One worker process for several cases, one after another: `tfperf ab`'s timing rounds (tfperf/ab/shared.py).

    python -m tfperf.run.shared_worker PLAN.json

PLAN.json is a list of `tfperf.run.worker` argument lists (CASE.json EVENTS.jsonl OUT_DIR [--jobs ...]
[--process N] [--block-sizes ...]); each runs in this process, in the plan's order, through the worker's own
`main`, so every case writes the same events to its own file as in a process of its own. What the cases share
is TensorFlow's import and start-up (the import alone took 6.2 s of a 6.4-6.6 s process on a 2-core VM,
against ~0.3 s of timed steps), which is why they share it. The parent only groups cases whose process-wide
settings are the same (`tf_config`, device, Keras version, no `distribute`), so applying the second case's
settings changes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tfperf.run import worker


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tfperf.run.shared_worker PLAN.json", file=sys.stderr)
        return 2
    for worker_args in json.loads(Path(args[0]).read_text()):
        code = worker.main([str(a) for a in worker_args])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
