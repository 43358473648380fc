"""The worker process: runs the jobs of one case and reports each as a JSON line in an events file.

    python -m tfperf.run.worker CASE.json EVENTS.jsonl OUT_DIR [--jobs 0,1,2] [--process N]
                                [--block-sizes 0:1,2:250] [--fail-on-retrace]

Isolation is the point: a crash, hang or out-of-memory kill here takes down this case only. The parent reads
the events file to know which job was running when the process died.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path


def emit(events_path: Path, event: dict) -> None:
    # One line per event, flushed at once: the parent must see a "start" before a crash can happen.
    with open(events_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(event, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def block_sizes(text: str) -> dict[int, int]:
    """`--block-sizes 0:1,2:250` -> {0: 1, 2: 250}."""
    try:
        sizes = {
            int(index): int(size) for index, size in (item.split(":") for item in text.split(",") if item)
        }
        if all(size >= 1 for size in sizes.values()):
            return sizes
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"expected index:size pairs with sizes >= 1, such as 0:1,2:250; got {text!r}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tfperf.run.worker")
    ap.add_argument("case_file")
    ap.add_argument("events_file")
    ap.add_argument("out_dir")
    ap.add_argument(
        "--jobs",
        default=None,
        help="comma-separated indices of the case's jobs to run, in order (default: all)",
    )
    ap.add_argument(
        "--process",
        type=int,
        default=0,
        help="which of the case's `processes` this is; after the first (0), only the timed pass runs",
    )
    ap.add_argument(
        "--block-sizes",
        type=block_sizes,
        default={},
        help="job index:block size pairs, how the job's first process timed it (1 = per step); this "
        "process times those jobs the same way, so the merged samples are of one kind",
    )
    ap.add_argument("--fail-on-retrace", action="store_true")
    args = ap.parse_args(argv)
    events = Path(args.events_file)

    from tfperf.suite.spec import CaseSpec

    case = CaseSpec.from_json(json.loads(Path(args.case_file).read_text()))

    # TensorFlow reads its log level once, at import: set it before anything below imports TensorFlow. (That
    # first import, and so TensorFlow's start-up, happens before the "hello" event: no job's time includes
    # it.)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    tf_config = case.tf_config or {}
    if tf_config:
        # Threads, jit and Grappler options cannot change once TF has run an op: apply them first.
        from tfperf.measure.tf_config import apply_tf_config

        tf_config_applied = apply_tf_config(tf_config)

    distribute_error = None
    if case.distribute:
        # Logical CPU devices (mirrored) and a joined cluster's strategy (multi_worker with TF_CONFIG set)
        # must exist before TensorFlow initializes its devices, i.e. before anything below lists them.
        from tfperf.distributed.job import configure_process

        try:
            configure_process(case.distribute)
        except Exception as exc:  # noqa: BLE001 - every job of the case reports it
            distribute_error = f"{type(exc).__name__}: {exc}"

    from tfperf.host.environment import tensorflow_environment
    from tfperf.measure import harness
    from tfperf.results.model import Result
    from tfperf.suite.references import resolve_reference

    env = tensorflow_environment()
    try:
        device = harness.resolve_device(case.device)
        device_error = None
    except harness.NoSuchDevice as exc:
        device, device_error = case.device, str(exc)
    emit(events, {"event": "hello", "device": device, "tensorflow": env, "pid": os.getpid()})

    def resolve(ref: str):
        return resolve_reference(ref, case.base_dir)

    jobs = case.jobs()
    ctx = harness.JobContext(
        out_dir=Path(args.out_dir),
        tf_device=harness.tf_device_name(device),
        multiple_batch_sizes=len(case.batch_sizes) > 1,
        fail_on_retrace=args.fail_on_retrace,
        process_no=args.process,
    )
    wanted = range(len(jobs)) if args.jobs is None else [int(i) for i in args.jobs.split(",") if i]
    for index in wanted:
        job = dataclasses.replace(
            jobs[index], device=device
        )  # the device resolved here (auto -> gpu:0 or cpu)
        emit(events, {"event": "start", "index": index})
        if device_error:
            result = Result.not_run(
                job,
                "failed",
                "NoSuchDevice",
                device_error,
                "use device: auto (first GPU, else CPU) or device: cpu",
            )
        elif case.distribute:
            from tfperf.distributed.job import run_distributed_job

            result = (
                Result.not_run(job, "failed", "DistributeError", distribute_error)
                if distribute_error
                else run_distributed_job(case, job, ctx, resolve)
            )
        else:
            result = harness.run_job(case, job, ctx, resolve, block_size=args.block_sizes.get(index))
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
        emit(events, {"event": "result", "index": index, "result": result.to_json()})
    emit(events, {"event": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
