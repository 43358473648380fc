"""The worker process: runs the jobs of the cases its plan lists and reports each as a JSON line in an events
file (tfperf/run/process.py starts it, reads the events and turns a crash or a timeout into results).

    python -m tfperf.run.worker PLAN.json EVENTS.jsonl

PLAN.json: {"out_dir": ..., "process": N, "parts": [{"case_file": CASE.json, "jobs": [0, 2], "block_sizes":
{"2": 250}}, ...]}. Process 0 is a job's first process and does everything; a later process only times the
steps, each job the way its first process did (`block_sizes`), so the samples merged are of one kind. Several
parts share a process only when their process-wide settings are the same (`process.process_key`): the first
part's are applied, before TensorFlow starts.

Isolation is the point: a crash, hang or out-of-memory kill here takes down this process only. The parent
reads the events file to know which job was running when the process died.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any


def emit(events_path: Path, event: dict) -> None:
    # One line per event, flushed at once: the parent must see a "start" before a crash can happen.
    with open(events_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(event, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tfperf.run.worker PLAN.json EVENTS.jsonl", file=sys.stderr)
        return 2
    plan = json.loads(Path(args[0]).read_text())
    events = Path(args[1])

    from tfperf.suite.spec import CaseSpec

    cases = [CaseSpec.from_json(json.loads(Path(p["case_file"]).read_text())) for p in plan["parts"]]
    first = cases[0]

    # TensorFlow reads its log level once, at import: set it before anything below imports TensorFlow. (That
    # first import, and so TensorFlow's start-up, happens before the "hello" event: no job's time includes
    # it.)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    tf_config = first.tf_config or {}
    tf_config_applied: dict = {}
    if tf_config:
        # Threads, jit and Grappler options cannot change once TF has run an op: apply them first.
        from tfperf.measure.tf_config import apply_tf_config

        tf_config_applied = apply_tf_config(tf_config)

    distribute_error = None
    if first.distribute:
        # Logical CPU devices (mirrored) and a joined cluster's strategy (multi_worker with TF_CONFIG set)
        # must exist before TensorFlow initializes its devices, i.e. before anything below lists them.
        from tfperf.distributed.setup import configure_process

        try:
            configure_process(first.distribute)
        except Exception as exc:  # noqa: BLE001 - every job of the case reports it
            distribute_error = f"{type(exc).__name__}: {exc}"

    from tfperf.host.environment import tensorflow_environment

    emit(events, {"event": "hello", "tensorflow": tensorflow_environment(), "pid": os.getpid()})
    for k, (case, part) in enumerate(zip(cases, plan["parts"])):
        sizes = {int(i): int(n) for i, n in (part.get("block_sizes") or {}).items()}
        run_part(
            case,
            k,
            part["jobs"],
            sizes,
            events,
            Path(plan["out_dir"]),
            int(plan.get("process", 0)),
            tf_config_applied,
            distribute_error,
        )
    emit(events, {"event": "done"})
    return 0


def run_part(
    case: Any,
    part: int,
    indices: list[int],
    block_sizes: dict[int, int],
    events: Path,
    out_dir: Path,
    process_no: int,
    tf_config_applied: dict,
    distribute_error: str | None,
) -> None:
    """One case's jobs, each reported as it starts and as it ends."""
    from tfperf.measure import harness
    from tfperf.results.model import Result
    from tfperf.suite.references import resolve_reference

    tf_config = case.tf_config or {}
    try:
        device = harness.resolve_device(case.device)
        device_error = None
    except harness.NoSuchDevice as exc:
        device, device_error = case.device, str(exc)
    emit(events, {"event": "part", "part": part, "device": device})

    def resolve(ref: str):
        return resolve_reference(ref, case.base_dir)

    jobs = case.jobs()
    ctx = harness.JobContext(
        out_dir=out_dir,
        tf_device=harness.tf_device_name(device),
        multiple_batch_sizes=len(case.batch_sizes) > 1,
        process_no=process_no,
    )
    for index in indices:
        # the device resolved here (auto -> gpu:0 or cpu)
        job = dataclasses.replace(jobs[index], device=device)
        emit(events, {"event": "start", "part": part, "index": index})
        if device_error:
            result = Result.not_run(
                job,
                "failed",
                "NoSuchDevice",
                device_error,
                "use device: auto (first GPU, else CPU) or device: cpu",
            )
        elif case.distribute:
            from tfperf.run.cluster import run_distributed_job

            result = (
                Result.not_run(job, "failed", "DistributeError", distribute_error)
                if distribute_error
                else run_distributed_job(case, job, ctx, resolve)
            )
        else:
            result = harness.run_job(case, job, ctx, resolve, block_size=block_sizes.get(index))
            if case.what_if and not ctx.timing_only:
                from tfperf.measure.whatif import attach_what_ifs

                # Input-bound jobs only: re-run with each tf.data change (tfperf/measure/whatif.py).
                attach_what_ifs(case, job, ctx, resolve, result)
            if tf_config:
                from tfperf.results.job_records import Setup

                setup = result.setup = result.setup or Setup()
                setup.tf_config = tf_config
                # What TF reports back at start, and what the job found in force when it built its model (the
                # Keras dtype policy, reset by the clear_session before each build:
                # model_step.apply_dtype_policy).
                setup.tf_config_applied = {**tf_config_applied, **(setup.tf_config_applied or {})}
            if tf_config.get("output_check") and result.ok and not ctx.timing_only:
                from tfperf.measure.tf_config import output_fingerprint
                from tfperf.results.job_records import OutputCheck, OutputValues

                check = result.output_check = result.output_check or OutputCheck()
                try:  # `tfperf tune` compares this across configurations to exclude one that breaks the model
                    check.fingerprint = OutputValues.from_json(
                        output_fingerprint(case, job, ctx.tf_device, resolve, tf_config.get("seed", 1234))
                    )
                except Exception as exc:  # noqa: BLE001 - a failed check is recorded, the timing stands
                    check.fingerprint = OutputValues(error=f"{type(exc).__name__}: {exc}"[:500])
        emit(events, {"event": "result", "part": part, "index": index, "result": result.to_json()})


if __name__ == "__main__":
    sys.exit(main())
