"""The timing rounds' worker processes: one per side for every case that can share it, not one per case.

A worker process of a two-case suite costs 6.4-6.6 s on a 2-core VM, of which the timed steps are ~0.3 s and
TensorFlow's import alone 6.2 s: the process count is an A/B run's wall time. Round 0 keeps
one process per case (it measures everything `run` does: first call, memory, tracing, each case in a fresh
process as in `tfperf run`); the rounds after it only time steps, and there the cases with the same
process-wide settings run one after another in one process per side (tfperf/run/shared_worker.py).

Pairing stays sound: in a round both sides run the same cases in the same order in their process, so the
later cases of both processes follow the same earlier ones, and the two processes still run back to back in
an order drawn at random per round. When a shared process crashes or runs out of time, what it finished is
kept, the job it was in fails with that crash or timeout (`blame_unfinished`: not re-run, so a crash that
would not repeat alone is still counted), and the jobs after it run in processes of their own (CaseRunner). No
TensorFlow here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tfperf.host.processes import crash_message, kill_group, log_tail
from tfperf.results.model import Result
from tfperf.run.runner import CaseRunner, SilentReporter
from tfperf.suite.spec import CaseSpec, Suite


@dataclass
class Work:
    """One case's part of a process: the jobs to time and how (job index -> block size)."""

    case: CaseSpec
    indices: list[int]
    block_sizes: dict[int, int]


def process_key(case: CaseSpec | None) -> str | None:
    """What a case sets for its whole process: cases with the same key can share one. None: it runs alone (a
    distributed case is several processes already) or is not in this suite."""
    if case is None or case.distribute:
        return None
    return json.dumps(
        {"tf_config": case.tf_config or {}, "device": case.device, "keras": case.keras}, sort_keys=True
    )


def share_groups(suites: list[Suite], names: list[str]) -> list[list[str]]:
    """`names` in groups that may share a process on every side: the same settings as each other on each side.
    A group keeps the order of `names` (the suite's)."""
    groups: dict[tuple, list[str]] = {}
    for name in names:
        keys = tuple(process_key(next((c for c in s.cases if c.name == name), None)) for s in suites)
        alone = any(k is None for k in keys)
        groups.setdefault(("alone", name) if alone else keys, []).append(name)
    return list(groups.values())


def run_processes(
    work: list[Work], out_dir: Path, process_no: int, python: str, env: dict[str, str]
) -> list[CaseRunner]:
    """Time `work` in one worker process (one per case when there is one case); a runner per case, with what
    its jobs gave in `finished`."""
    runners = [
        CaseRunner(
            w.case,
            out_dir,
            SilentReporter(),
            False,
            python,
            process_no=process_no,
            indices=w.indices,
            block_sizes=w.block_sizes,
            env=env,
        )
        for w in work
    ]
    if len(runners) > 1:
        _run_shared(runners, process_no, python, env)
    for runner in runners:
        runner.run()  # the jobs the shared process did not finish (all of them when it ran alone)
    return runners


def _run_shared(runners: list[CaseRunner], process_no: int, python: str, env: dict[str, str]) -> None:
    work_dir = runners[0].work
    stem = "+".join(r.case.name for r in runners) + f".p{process_no}"
    plan, events = [], []
    for r in runners:
        path = r.work / f"{r.stem}.shared.events.jsonl"
        path.write_text("")
        events.append(path)
        # The arguments CaseRunner gives a worker of its own (tfperf.run.worker's command line).
        args = [
            str(r.case_file),
            str(path),
            str(r.out_dir),
            "--jobs",
            ",".join(map(str, r.indices)),
            "--process",
            str(process_no),
        ]
        sizes = {i: r.block_sizes[i] for i in r.indices if i in r.block_sizes}
        if sizes:
            args += ["--block-sizes", ",".join(f"{i}:{n}" for i, n in sizes.items())]
        plan.append(args)
    plan_path = work_dir / f"{stem}.plan.json"
    plan_path.write_text(json.dumps(plan, indent=2))
    log_path = work_dir / f"{stem}.log"
    with open(log_path, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [python, "-m", "tfperf.run.shared_worker", str(plan_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        )
    timed_out = False
    try:
        proc.wait(timeout=sum(r.case.timeout_s for r in runners))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        if proc.poll() is None:
            kill_group(proc)
        else:
            try:  # anything the worker started in its session must not outlive it
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for runner, path in zip(runners, events):
            read_events(runner, path, log_path)
    if timed_out or proc.returncode:
        blame_unfinished(runners, proc.returncode, timed_out, log_path)


def blame_unfinished(
    runners: list[CaseRunner], returncode: int | None, timed_out: bool, log_path: Path
) -> None:
    """A shared process that died or ran out of time fails the job it was in, as a worker of its own would:
    the first job the plan had not finished gets the crash (or the timeout), loudly, and is not run again, so
    a crash that would not repeat alone is not hidden. The jobs after it run in processes of their own."""
    runner = next((r for r in runners if any(i not in r.finished for i in r.indices)), None)
    if runner is None:
        return
    index = next(i for i in runner.indices if i not in runner.finished)
    others = ", ".join(r.case.name for r in runners if r is not runner)
    where = f"in the timing process it shared with {others}"
    if timed_out:
        result = Result.not_run(
            runner._job(index),
            "timeout",
            "Timeout",
            f"{where}: killed after the cases' summed timeout_s",
            f"raise timeout_s for this case; shared worker log: {log_path}",
        )
    else:
        message, hint = crash_message(returncode)
        result = Result.not_run(
            runner._job(index),
            "failed",
            "WorkerCrash",
            f"{where}: {message}",
            f"{hint}; shared worker log: {log_path}",
        )
        result.error.returncode = returncode
        result.error.log_tail = log_tail(log_path)
    runner.finished[index] = result


def read_events(runner: CaseRunner, path: Path, log_path: Path) -> None:
    """The results a shared process reported for `runner`'s case, into `runner.finished`."""
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # cut off when the process died
        event = json.loads(line)
        if event["event"] == "hello":
            runner.device, runner.tensorflow = event["device"], event.get("tensorflow")
        elif event["event"] == "result":
            runner.finished[event["index"]] = Result.from_json(event["result"])
    runner.log_path = log_path  # merge_process records where this process's output went
