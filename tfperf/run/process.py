"""Worker processes: the one place tfperf starts a process that measures, watches it, and turns how it ended
into results. Nothing else in tfperf starts one (tests/test_layout.py checks it).

    python -m tfperf.run.worker PLAN.json EVENTS.jsonl

A case worker (`WorkerProcess`) runs the jobs of one or more cases one after another: each case's share is a
`Part` (which of its jobs, and the block size a later process must time each with). The worker imports
TensorFlow; this module never does. It reports through an events file, one JSON line per event, flushed at
once, so the supervisor knows which job was running when the process died:

    hello   {tensorflow, pid}            TensorFlow has started (its import is in no job's time)
    part    {part, device}               a case begins; its device resolved (auto -> gpu:0 or cpu)
    start   {part, index}                a job begins
    result  {part, index, result}        a job's Result
    done                                 every job of the plan was reported

How a worker's end becomes results, so a measuring tool never says "ok" for what did not run:
- a crash (a signal, a non-zero exit, or an exit before `done`) fails the job it was in (`WorkerCrash`, named
  by its signal or exit code, with the log's last lines); the remaining jobs run again in a fresh process. A
  crash before any job started (an import error, a bad environment) fails every job it owed: a retry would
  crash again;
- a case that runs past its `timeout_s` (counted from the start of the process for its first case, from its
  own start for a later one) is killed: the job it was in is `timeout`, its jobs after it are `skipped`, and
  the cases after it in the plan run in a fresh process, each with its own `timeout_s`;
- Ctrl-C or SIGTERM kills the worker and keeps every result it reported; no child outlives its supervisor:
  each runs in its own session, and its whole process group is killed on every way out (`Child.kill`).

`Child` is the lower layer, shared with the local multi-worker cluster (tfperf/run/cluster.py): a process in
its own session, its log, its exit described in words. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfperf.host.processes import crash_message, die_with_parent, exit_description, kill_group, log_tail
from tfperf.results.model import JobSpec, Result
from tfperf.run.progress import Reporter
from tfperf.suite.spec import CaseSpec

POLL_S = 0.05
# The modules a child process of tfperf runs: the case worker, and one worker of a local multi-worker cluster.
CASE_WORKER = "tfperf.run.worker"
CLUSTER_WORKER = "tfperf.distributed.job"


class Child:
    """A child process started in its own session, with stdout and stderr appended to its log.

    Its own session (process group) lets `kill` end it together with the tf.data threads and helper processes
    it started; `die_with_parent` (Linux) kills it when its supervisor dies without a chance to clean up."""

    def __init__(
        self,
        module: str,
        args: list[str],
        log_path: Path,
        python: str,
        env: dict[str, str] | None = None,
        *,
        header: str = "",
        notes: tuple[str, ...] = (),
        inherit_env: bool = True,
    ):
        """`env` is added to this process's environment (`inherit_env=False`: it is the whole environment);
        `header` and `notes` are written to the log before the command's own output."""
        self.cmd = [python, "-m", module, *args]
        self.log_path = Path(log_path)
        environment = {**(os.environ if inherit_env else {}), **(env or {}), "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"--- {header}{' '.join(self.cmd)}\n")
            for note in notes:
                log.write(f"--- {note}\n")
            log.flush()
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
                env=environment,
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def poll(self) -> int | None:
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """End the child and everything it started (its process group, and children that left it)."""
        if self.proc.poll() is None:
            kill_group(self.proc)
        else:
            try:  # the child is gone; anything it started in its session must not outlive it
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def exit_description(self) -> str:
        """ "killed by SIGKILL" or "exited with code 3"."""
        return exit_description(self.proc.returncode)

    def log_tail(self) -> str:
        return log_tail(self.log_path)


def process_key(case: CaseSpec | None) -> str | None:
    """What a case sets for its whole process (thread pools, XLA and Grappler options, the device, the Keras
    version): cases with the same key can share a worker process. None: it runs alone (a distributed case is
    several processes already) or is absent."""
    if case is None or case.distribute:
        return None
    return json.dumps(
        {"tf_config": case.tf_config or {}, "device": case.device, "keras": case.keras}, sort_keys=True
    )


@dataclass
class Part:
    """One case's share of a worker process: the jobs to run (indices into `case.jobs()`, in order), the block
    size a later process must time each with (job index -> its first process's `timing.block_size`), and what
    the worker reported for it."""

    case: CaseSpec
    case_file: Path
    indices: list[int]
    block_sizes: dict[int, int] = field(default_factory=dict)
    finished: dict[int, Result] = field(default_factory=dict)
    device: str | None = None  # resolved by the worker (auto -> gpu:0 or cpu)
    deadline: float | None = None  # monotonic: when this case has used up its timeout_s

    def job(self, index: int) -> JobSpec:
        job = self.case.jobs()[index]
        return dataclasses.replace(job, device=self.device or job.device)

    def remaining(self) -> list[int]:
        return [i for i in self.indices if i not in self.finished]

    def plan(self) -> dict:
        """This part as the worker's plan lists it."""
        todo = self.remaining()
        return {
            "case_file": str(self.case_file),
            "jobs": todo,
            "block_sizes": {str(i): self.block_sizes[i] for i in todo if i in self.block_sizes},
        }


@dataclass
class _Attempt:
    """What one launch of the worker reported before it ended."""

    running: int | None = None  # the part in progress (index into the attempt's parts)
    current: int | None = None  # the job started but not finished
    started_any: bool = False
    done: bool = False
    offset: int = 0


class WorkerProcess:
    """Runs `parts` in worker processes of process number `process_no` (0: the first process of each of its
    cases, which does everything `tfperf run` does; later numbers only time steps) until every job has a
    result.

    `stem` names the files under `out_dir/workers/`: the log (`<stem>.log`), the plan and events of each
    launch. `env` is added to the worker's environment (`tfperf ab`: each tree's PYTHONPATH)."""

    def __init__(
        self,
        parts: list[Part],
        out_dir: Path,
        process_no: int,
        stem: str,
        *,
        python: str,
        env: dict[str, str] | None = None,
        reporter: Reporter | None = None,
    ):
        keys = {process_key(p.case) for p in parts}
        if len(parts) > 1 and (None in keys or len(keys) > 1):
            raise ValueError("cases share a worker process only with the same process-wide settings")
        self.parts, self.out_dir, self.process_no = parts, Path(out_dir), process_no
        self.python, self.env, self.reporter = python, dict(env or {}), reporter
        self.work = self.out_dir / "workers"
        self.work.mkdir(parents=True, exist_ok=True)
        self.stem = stem
        self.log_path = self.work / f"{stem}.log"
        self.tensorflow: dict | None = None  # what the worker's TensorFlow reported (version, devices)
        self.wall_s = 0.0
        self.launches = 0

    def run(self) -> None:
        """Launch workers until every job of every part has a result. On Ctrl-C the worker is killed, what it
        reported is kept in the parts, and KeyboardInterrupt goes on."""
        started = time.monotonic()
        try:
            while any(p.remaining() for p in self.parts):
                self._launch()
        finally:
            self.wall_s += time.monotonic() - started

    def _launch(self) -> None:
        todo = [p for p in self.parts if p.remaining()]
        n = self.launches
        self.launches += 1
        plan_path = self.work / f"{self.stem}.plan{n}.json"
        events_path = self.work / f"{self.stem}.events{n}.jsonl"
        plan = {"out_dir": str(self.out_dir), "process": self.process_no, "parts": [p.plan() for p in todo]}
        plan_path.write_text(json.dumps(plan, indent=2))
        events_path.write_text("")
        jobs = "; ".join(f"{p.case.name} jobs {','.join(map(str, p.remaining()))}" for p in todo)
        child = Child(
            CASE_WORKER,
            [str(plan_path), str(events_path)],
            self.log_path,
            self.python,
            self.env,
            header=f"worker launch {n} ({jobs}): ",
        )
        if todo[0].deadline is None:  # the first case's time includes the worker's start-up, as it always did
            todo[0].deadline = child.started + todo[0].case.timeout_s
        attempt = _Attempt()
        timed_out = False
        try:
            while True:
                self._read(events_path, attempt, todo)
                if not child.running():
                    self._read(events_path, attempt, todo)
                    break
                part = todo[attempt.running or 0]
                if part.deadline is not None and time.monotonic() > part.deadline:
                    timed_out = True
                    child.kill()
                    self._read(events_path, attempt, todo)
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            # A job the worker finished just before the interrupt is on disk but maybe not read yet: keep it.
            child.kill()
            self._read(events_path, attempt, todo)
            raise
        finally:
            child.kill()
        if attempt.done and not any(p.remaining() for p in todo):
            return
        if timed_out:
            self._time_out(todo[attempt.running or 0], attempt)
        else:
            self._crashed(child, todo, attempt)

    def _read(self, path: Path, attempt: _Attempt, todo: list[Part]) -> None:
        with open(path, encoding="utf-8") as f:
            f.seek(attempt.offset)
            while True:
                line = f.readline()
                if not line.endswith("\n"):
                    break  # a partly written line: read it next time
                attempt.offset = f.tell()
                event = json.loads(line)
                kind = event["event"]
                if kind == "hello":
                    self.tensorflow = self.tensorflow or event.get("tensorflow")
                elif kind == "part":
                    attempt.running = event["part"]
                    part = todo[event["part"]]
                    part.device = event["device"]
                    if part.deadline is None:
                        part.deadline = time.monotonic() + part.case.timeout_s
                elif kind == "start":
                    attempt.running, attempt.current, attempt.started_any = (
                        event["part"],
                        event["index"],
                        True,
                    )
                    if self.reporter is not None:
                        self.reporter.job_started(todo[event["part"]].job(event["index"]))
                elif kind == "result":
                    attempt.current = None
                    self._finish(todo[event["part"]], event["index"], Result.from_json(event["result"]))
                elif kind == "done":
                    attempt.done = True

    def _finish(self, part: Part, index: int, result: Result) -> None:
        part.finished[index] = result
        if self.reporter is not None:
            self.reporter.job_finished(result)

    def _where(self, part: Part) -> str:
        others = [p.case.name for p in self.parts if p is not part]
        return f"in the worker process it shared with {', '.join(others)}: " if others else ""

    def _time_out(self, part: Part, attempt: _Attempt) -> None:
        """The case ran out of its timeout_s: the job it was in timed out, the rest of its jobs did not run. A
        worker killed before it started a job (a slow import on a busy machine) ran out of time on the first
        job it owed."""
        remaining = part.remaining()
        running = attempt.current if attempt.current is not None else remaining[0]
        limit = f"the case's timeout_s of {part.case.timeout_s:g} s"
        for i in remaining:
            if i == running:
                r = Result.not_run(
                    part.job(i),
                    "timeout",
                    "Timeout",
                    f"{self._where(part)}killed after {limit}",
                    f"raise timeout_s for this case, or lower steps/repeats; worker log: {self.log_path}",
                )
            else:
                r = Result.not_run(part.job(i), "skipped", "NotRun", f"not run: the case used up {limit}")
            self._finish(part, i, r)

    def _crashed(self, child: Child, todo: list[Part], attempt: _Attempt) -> None:
        """The worker ended before it reported every job: the job it was in fails with the crash. Before any
        job started, every job it owed fails the same way: a retry would only crash again."""
        message, hint = crash_message(child.returncode if child.returncode is not None else -signal.SIGKILL)
        tail = child.log_tail()

        def crash(part: Part, index: int) -> None:
            r = Result.not_run(
                part.job(index),
                "failed",
                "WorkerCrash",
                f"{self._where(part)}{message}",
                f"{hint}; worker log: {self.log_path}",
            )
            r.error.returncode, r.error.log_tail = child.returncode, tail
            self._finish(part, index, r)

        if not attempt.started_any:
            for part in todo:
                for i in part.remaining():
                    crash(part, i)
            return
        if attempt.current is not None:
            crash(todo[attempt.running or 0], attempt.current)
            return
        # Between two jobs: the one it was about to start is the one it did not run.
        part = next(p for p in todo[attempt.running or 0 :] + todo if p.remaining())
        crash(part, part.remaining()[0])
