"""`tfperf tune`: measure candidate configurations of each case, rank them against the suite's baseline, and
prove the winner by re-measuring it.

The search, per case, within a time budget:

Every configuration is timed in the case's `processes` worker processes (default 3), as `tfperf run` times a
job: the first does everything, the later ones only time steps and their samples join the first's, so each
result carries the spread between processes that compare's decision needs.

1. **baseline** — the case as the suite gives it, under TensorFlow's default settings, in `function`
   and `xla` modes at every batch size of its sweep. The suite's baseline configuration is `function` at the
   first batch size. The fastest (mode, batch size) by time per sample is where the next phase searches.
2. **one configuration per process-wide setting** (tfperf.tune.candidates), each in its own workers, so no
   setting leaks into another: tf.data what-ifs first when the baseline is input-bound (synthetic pipelines),
   mixed precision where the hardware computes in 16-bit (a tensor-core GPU, a CPU with bfloat16
   instructions), CPU thread counts, XLA auto-clustering, Grappler off (the reference) and single Grappler
   optimizations off.
3. **combined** — the winners of different groups together, when more than one group won.
4. **confirm** — the best configuration and the baseline re-measured in fresh workers, alternating; a winner
   that does not pass the same test again is not recommended.

How a configuration is judged (speed-up, significance, the output check) is tfperf.tune.ranking; what is
written for a reader, tfperf.tune.render.

No TensorFlow in this process: every measurement is a worker process, run in rounds by tfperf/run/rounds.py;
each configuration is a variant of the case (`CaseSpec.variant` = its id; results keep the case's name).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Generator
from pathlib import Path

from tfperf.figures.thresholds import MIXED_PRECISION_OUTPUT_TOLERANCE, OUTPUT_TOLERANCE, XLA_OUTPUT_TOLERANCE
from tfperf.host.environment import host_environment
from tfperf.report.outputs import finish_run
from tfperf.results.model import Result, RunResult, atomic_write_text, now_iso, write_results
from tfperf.results.records import WhatIf
from tfperf.results.variants import TuneConfig
from tfperf.run.process import WorkerProcess
from tfperf.run.rounds import Assignment, Rounds, Subject
from tfperf.run.runner import processes_for
from tfperf.suite.spec import CaseSpec, Suite
from tfperf.tune.candidates import Candidate, merge_settings, pipeline_code, setting_candidates
from tfperf.tune.progress import SilentTuneProgress, TuneProgress
from tfperf.tune.ranking import MIN_GAIN, CaseTuning, Row, TuneRun, evaluate, gain
from tfperf.tune.render import render_markdown, tuned_yaml
from tfperf.version import __version__

SEED = 1234
# Before starting a worker, the estimate of its wall time is multiplied by this (start-up varies with load).
ESTIMATE_MARGIN = 1.3
DEFAULT_BUDGET_S = 300.0


class CaseTuner:
    """Runs the search for one case within its budget."""

    def __init__(
        self,
        case: CaseSpec,
        out_dir: Path,
        budget_s: float,
        environment: dict,
        progress: TuneProgress,
        python: str,
    ):
        self.case, self.out_dir, self.budget_s = case, out_dir, budget_s
        self.environment, self.progress, self.python = environment, progress, python
        self.started = time.monotonic()
        self.tuning = CaseTuning(case.name, budget_s)
        self.results: list[Result] = []
        self.worker_overhead_s: float | None = None  # start-up: TF import, device discovery
        self.job_s: float | None = None  # one job's wall time in the worker
        self.tensorflow_env: dict | None = None
        self.observations: list[tuple[float, float]] = []  # (worker start-up s, per-job s)
        self.last_wall_s = 0.0
        self.count = 0

    def remaining(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def estimate(self, jobs: int = 1, workers: int = 1) -> float:
        """Wall time of `workers` worker processes of `jobs` jobs each, from the running means of the workers
        so far."""
        if self.worker_overhead_s is None or self.job_s is None:
            # No complete worker yet (the budget cut the first one short): assume the next costs as much.
            return self.last_wall_s * workers
        return workers * (self.worker_overhead_s + jobs * self.job_s)

    @property
    def processes(self) -> int:
        """Worker processes per configuration: the case's `processes`, as `tfperf run` times it, so the spread
        between processes is in every result compare's decision is given."""
        return processes_for(self.case)

    def search_environment(self) -> dict:
        """The run's environment with what the workers' TensorFlow reported (its `gpus` and their compute
        capability): the parent imports no TensorFlow, so the host environment alone lists no GPU."""
        return {**self.environment, **(self.tensorflow_env or {})}

    def spec_for(self, cand: Candidate, modes: tuple[str, ...], batch_sizes: tuple[int, ...]) -> CaseSpec:
        spec = self.case
        if cand.pipeline and spec.input and spec.input.pipeline:
            spec = spec.replace(
                input=dataclasses.replace(
                    spec.input, pipeline=dataclasses.replace(spec.input.pipeline, **cand.pipeline)
                )
            )
        spec = spec.replace(**cand.case_changes)  # CaseSpec keys of the configuration (steps_per_execution)
        return spec.replace(
            variant=cand.id,
            modes=modes,
            batch_sizes=batch_sizes if self.case.function is None else self.case.batch_sizes,
            profile=False,
            what_if=False,
            timeout_s=self.case.timeout_s,
            tf_config={**cand.settings, "output_check": True, "seed": SEED},
        )

    def observe(self, proc: WorkerProcess | None) -> None:
        """Learn a worker process's start-up and per-job time, for the estimates that keep the budget."""
        if proc is None:
            return
        wall = self.last_wall_s = proc.wall_s
        if proc.tensorflow and self.tensorflow_env is None:
            self.tensorflow_env = proc.tensorflow
        results = [r for part in proc.parts for r in part.finished.values()]
        jobs_wall = sum(r.wall_s or 0.0 for r in results)
        if results and all(r.wall_s for r in results):
            # Running means: start-up (TF import) swings with the machine's load; one worker says little.
            self.observations.append((max(0.0, wall - jobs_wall), jobs_wall / len(results)))
            self.worker_overhead_s = sum(o for o, _ in self.observations) / len(self.observations)
            self.job_s = sum(j for _, j in self.observations) / len(self.observations)

    def rounds(self) -> Rounds:
        """The rounds every configuration is measured in (a new one per measurement)."""
        return Rounds(self.python)

    def capped(self, spec: CaseSpec) -> CaseSpec:
        """The case as its next worker runs it: killed at the budget's end at the latest."""
        return spec.replace(timeout_s=max(1.0, min(self.case.timeout_s, self.remaining())))

    def measure(
        self, cand: Candidate, modes: tuple[str, ...], batch_sizes: tuple[int, ...], planned: int
    ) -> list[Row]:
        """One configuration in `processes` workers; its results become rows (and results for
        results.json)."""
        return self.measure_together([(cand, modes, batch_sizes)], planned)[0]

    def measure_together(
        self, configs: list[tuple[Candidate, tuple[str, ...], tuple[int, ...]]], planned: int
    ) -> list[list[Row]]:
        """Several configurations in rounds, as `tfperf run` measures a suite (tfperf/run/rounds.py): round 1
        runs every configuration's first worker, rounds 2..N a fresh worker each that only times what round 1
        measured, the way round 1 timed it, its samples joining round 1's. Alternating the configurations
        spreads a slow minute of the machine over both sides of a comparison. A later round the budget cannot
        pay for is left out, and the result shows fewer processes."""
        schedule = ConfigSchedule(self, configs, planned)
        self.rounds().run(schedule)
        out = []
        for (cand, _, _), subject, wall in zip(configs, schedule.subjects, schedule.walls):
            rows = []
            for r in subject.results():
                r.tune = TuneConfig(
                    group=cand.group, label=cand.label, settings=cand.settings, pipeline=cand.pipeline
                )
                self.results.append(r)
                rows.append(Row(cand, r))
            self.tuning.rows.extend(rows)
            self.progress.config_finished(self.case.name, cand, rows, wall)
            out.append(rows)
        return out

    def confirm_reserve(self) -> float:
        """Time kept to re-measure the winner, once there is one: the search may not eat the proof."""
        if self.tuning.best is None:
            return 0.0
        return self.confirm_need()

    def confirm_need(self) -> float:
        one = self._confirm_in_one_worker()
        return self.estimate(2 if one else 1, (1 if one else 2) * self.processes) * ESTIMATE_MARGIN

    def _confirm_in_one_worker(self) -> bool:
        best = self.tuning.best
        return best is not None and not best.candidate.settings and not best.candidate.pipeline

    def candidate_need(self, jobs: int) -> float:
        """What measuring one configuration of `jobs` jobs in `processes` workers is expected to take."""
        return self.estimate(jobs, self.processes) * ESTIMATE_MARGIN

    def affordable(self, cand: Candidate, need: float, reserve_s: float) -> bool:
        if self.remaining() - reserve_s >= need:
            return True
        reason = f"budget: {self.remaining():.0f} s left, about {need:.0f} s needed" + (
            f" plus {reserve_s:.0f} s kept to confirm the winner" if reserve_s else ""
        )
        self.tuning.not_run.append({"config": cand.id, "label": cand.label, "reason": reason})
        self.progress.config_skipped(self.case.name, cand, reason)
        return False

    def run(self) -> CaseTuning:
        self.progress.case_started(self.case.name, self.budget_s)
        try:
            self._search()
        finally:
            self.tuning.elapsed_s = time.monotonic() - self.started
            self.progress.case_finished(self.tuning)
        return self.tuning

    def _search(self) -> None:
        case, tuning = self.case, self.tuning
        sizes = case.batch_sizes
        modes = ("function", "xla")
        base_cand = Candidate(
            "baseline", "baseline", modes=modes, note="the suite's case, TensorFlow defaults"
        )
        rows = self.measure(base_cand, modes, sizes, planned=1)
        tuning.baseline = next(
            (
                r
                for r in rows
                if r.mode == "function" and (r.batch_size == sizes[0] or case.function is not None)
            ),
            None,
        )
        if tuning.baseline is None or not tuning.baseline.result.ok:
            if tuning.baseline is None:
                err = "no result"
            else:
                err = tuning.baseline.result.error.message if tuning.baseline.result.error else None
            tuning.message = f"the baseline (function mode) did not run: {err}"
            evaluate(tuning)
            return
        evaluate(tuning)
        # Where to search: the fastest ok (mode, batch size) of the baseline worker, by time per sample.
        ranked = [r for r in rows if r.speedup is not None and not r.excluded]
        anchor = max(ranked, key=lambda r: r.speedup)
        mode, bs = anchor.mode, anchor.batch_size
        device = tuning.baseline.result.device
        candidates = setting_candidates(case, device, tuning.baseline.result, self.search_environment())
        planned = 1 + len(candidates) + 2
        for cand in candidates:
            cmodes = cand.modes if cand.group == "jit" else (mode,)
            if self.affordable(cand, self.candidate_need(len(cmodes)), self.confirm_reserve()):
                self.measure(cand, cmodes, (bs,) if bs is not None else case.batch_sizes, planned)
                evaluate(tuning)

        # Combined: the best row of each group that won, together. A setting wins against the default-settings
        # row of its own mode and batch size (not against the baseline, whose batch size may differ).
        defaults = {(r.mode, r.batch_size): r for r in rows}
        group_best: dict[str, Row] = {}
        for r in tuning.rows:
            ref = defaults.get((r.mode, r.batch_size))
            if r.candidate.group == "baseline" or r.excluded or ref is None or not ref.result.ok:
                continue
            if gain(ref, r).wins:
                if r.candidate.group not in group_best or r.speedup > group_best[r.candidate.group].speedup:
                    group_best[r.candidate.group] = r
        if len(group_best) > 1:
            parts = list(group_best.values())
            uses_autoclustering = "jit" in group_best
            combo = Candidate(
                "combined",
                "combined",
                merge_settings([p.candidate.settings for p in parts]),
                pipeline={k: v for p in parts for k, v in p.candidate.pipeline.items()},
                case_changes={k: v for p in parts for k, v in p.candidate.case_changes.items()},
                note="the winners of " + ", ".join(sorted(group_best)),
            )
            cmode = "function" if uses_autoclustering else mode
            if self.affordable(combo, self.candidate_need(1), self.confirm_reserve()):
                self.measure(combo, (cmode,), (bs,) if bs is not None else case.batch_sizes, planned)
                evaluate(tuning)

        if tuning.best is not None:
            self._confirm(planned)

    def _confirm(self, planned: int) -> None:
        """Re-measure the winner and the baseline in fresh workers: a win that does not repeat is not one."""
        tuning = self.tuning
        best, base = tuning.best, tuning.baseline
        confirm_best = dataclasses.replace(best.candidate, id=f"{best.candidate.id}-confirm", group="confirm")
        confirm_base = dataclasses.replace(base.candidate, id="baseline-confirm", group="confirm")
        one = self._confirm_in_one_worker()
        # No margin here: the reserve was kept with one, and each worker is killed at the budget's end anyway.
        if not self.affordable(confirm_best, self.confirm_need() / ESTIMATE_MARGIN, 0.0):
            tuning.confirmation = {"status": "not run", "reason": tuning.not_run[-1]["reason"]}
            if best.candidate is base.candidate:
                # A mode or batch size of the baseline's own worker: measured side by side with the baseline,
                # in the same process minutes apart at most: recommended, and said to be measured once.
                return
            # Not recommended: a win measured once, in another worker than its baseline, can be the machine's
            # load.
            tuning.unconfirmed, tuning.best = best, None
            best.verdict = "faster once, not re-measured (budget)"
            return
        best_bs = (best.batch_size,) if best.batch_size is not None else self.case.batch_sizes
        base_bs = (base.batch_size,) if base.batch_size is not None else self.case.batch_sizes
        if one:
            # Same process-wide settings: mode and batch size are per job, so one worker measures both.
            rows = self.measure(
                dataclasses.replace(confirm_base, id="confirm"),
                tuple(dict.fromkeys((base.mode, best.mode))),
                tuple(dict.fromkeys(base_bs + best_bs)),
                planned,
            )
            new_best = [r for r in rows if r.mode == best.mode and r.batch_size == best.batch_size]
            new_base = [r for r in rows if r.mode == base.mode and r.batch_size == base.batch_size]
            for r in rows:
                tuning.rows.remove(r)
            new_best, new_base = new_best[:1], new_base[:1]
            rows_to_drop: list[Row] = []
        else:
            # Baseline and winner in alternating workers: a slow stretch of the machine lands on both.
            new_base, new_best = self.measure_together(
                [(confirm_base, (base.mode,), base_bs), (confirm_best, (best.mode,), best_bs)], planned
            )
            rows_to_drop = new_best + new_base
        # Rows of the confirmation are not ranked: they only decide whether the winner holds.
        for r in rows_to_drop:
            tuning.rows.remove(r)
        if not (new_best and new_base and new_best[0].result.ok and new_base[0].result.ok):
            tuning.confirmation = {"status": "failed", "reason": "a confirmation worker did not finish"}
            tuning.unconfirmed, tuning.best = best, None
            return
        # The same test the winner passed, again: compare's decision at MIN_GAIN, not just "faster at all".
        g = gain(new_base[0], new_best[0])
        held = g.wins
        tuning.confirmation = {
            "status": "confirmed" if held else "not confirmed",
            "speedup": g.speedup,
            "speedup_ci": list(g.ci) if g.ci else None,
            "p_value": g.p_value,
            "verdict": g.verdict,
            "reason": g.reason,
            "baseline_median_s": new_base[0].result.median_s,
            "best_median_s": new_best[0].result.median_s,
        }
        if not held:
            tuning.unconfirmed, tuning.best = best, None
            best.verdict = "faster once, not when re-measured"


class ConfigSchedule:
    """`tune`'s rounds over configurations measured together: round 0 each configuration's first worker in
    order, then a later worker each per round up to the case's `processes`, while the budget pays for it (a
    process the budget cannot pay for is left out and said, so the result shows fewer processes)."""

    def __init__(
        self,
        tuner: CaseTuner,
        configs: list[tuple[Candidate, tuple[str, ...], tuple[int, ...]]],
        planned: int,
    ):
        self.tuner, self.configs, self.planned = tuner, configs, planned
        self.subjects = [
            Subject(tuner.spec_for(cand, modes, sizes), tuner.out_dir) for cand, modes, sizes in configs
        ]
        self.walls = [0.0] * len(configs)

    def processes(self, number: int) -> Generator[list[Assignment], WorkerProcess | None, None]:
        tuner = self.tuner
        for k, subject in enumerate(self.subjects):
            cand = self.configs[k][0]
            if number == 0:
                tuner.count += 1
                tuner.progress.config_started(tuner.case.name, cand, tuner.count, self.planned)
            else:
                jobs = len(subject.measured())
                if not jobs:
                    continue
                need = tuner.estimate(jobs) * ESTIMATE_MARGIN
                if tuner.remaining() < need:
                    # Said, not silent: the result then holds fewer processes than the case asks for.
                    reason = f"budget: {tuner.remaining():.0f} s left, about {need:.0f} s needed"
                    tuner.tuning.not_run.append(
                        {
                            "config": f"{cand.id} (process {number + 1} of {tuner.processes})",
                            "label": cand.label,
                            "reason": reason,
                        }
                    )
                    continue
            subject.case = tuner.capped(subject.case)
            proc = yield [Assignment(subject)]
            tuner.observe(proc)
            self.walls[k] += proc.wall_s if proc is not None else 0.0

    def stop(self, number: int) -> str | None:
        return "done" if number + 1 >= self.tuner.processes else None


# --- the whole run ------------------------------------------------------------------------------------------

# How the advisor's what-if evidence names each tf.data change.
_CHANGE_NAMES = {"prefetch": "prefetch", "num_parallel_calls": "parallel map", "cache": "cache"}


def record_what_ifs(t: CaseTuning) -> None:
    """The measured tf.data configurations as the baseline's `what_if` entries, so the advisor's `prefetch`,
    `parallelize-map` and `cache-dataset` carry tune's verified speed-ups (an existing what_if is kept)."""
    base = t.baseline
    rows = [r for r in t.rows if r.candidate.group == "pipeline" and r.speedup is not None and not r.excluded]
    if base is None or not rows or base.result.what_if:
        return
    base.result.what_if = [
        WhatIf(
            change=" + ".join(_CHANGE_NAMES.get(k, k) for k in r.candidate.pipeline),
            median_s=r.result.median_s,
            baseline_median_s=base.result.median_s,
            speedup=r.speedup,
            p_value=r.p_value,
            input_wait_fraction=r.result.input_wait_fraction,
            code="\n".join(pipeline_code(r.candidate.pipeline)),
            details={"source": "tfperf tune"},
        )
        for r in rows
    ]


def tune_suite(
    suite: Suite,
    out_dir: str | Path,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    progress: TuneProgress | None = None,
    python: str | None = None,
    command: list[str] | None = None,
) -> TuneRun:
    """Tune every case of the suite (each within `budget_s`), write results.json, the reports, tune.json,
    tune.md and tuned.yaml into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or SilentTuneProgress()
    suite_dir = Path(suite.path).resolve().parent
    environment = host_environment(suite_dir)
    run = RunResult(
        suite={**suite.info, "text": suite.text},
        environment=environment,
        started_at=now_iso(),
        tfperf_version=__version__,
        command=command,
    )
    tunings: list[CaseTuning] = []
    for case in suite.cases:
        tuner = CaseTuner(case, out_dir, budget_s, environment, progress, python or sys.executable)
        try:
            tunings.append(tuner.run())
        finally:
            run.results.extend(tuner.results)
            if tuner.tensorflow_env and "tensorflow" not in run.environment:
                run.environment.update(tuner.tensorflow_env)
            write_results(run, out_dir / "results.json")
    run.finished_at = now_iso()
    for t in tunings:
        record_what_ifs(t)
    finish_run(run, out_dir)
    result = TuneRun(run, tunings, out_dir)
    atomic_write_text(
        out_dir / "tune.json",
        json.dumps(
            {
                "tfperf_version": __version__,
                "suite": suite.info,
                "budget_s_per_case": budget_s,
                # `output_tolerance` keeps its meaning (float32 in graph mode, a number); each row records the
                # tolerance its check used (its compute dtype and mode), one of `output_tolerances`.
                "min_gain": MIN_GAIN,
                "output_tolerance": OUTPUT_TOLERANCE,
                "output_tolerances": {
                    "float32": OUTPUT_TOLERANCE,
                    "float32_xla": XLA_OUTPUT_TOLERANCE,
                    "16bit": MIXED_PRECISION_OUTPUT_TOLERANCE,
                },
                "cases": [t.to_json() for t in tunings],
            },
            indent=2,
            default=str,
        )
        + "\n",
    )
    atomic_write_text(out_dir / "tune.md", render_markdown(result))
    atomic_write_text(out_dir / "tuned.yaml", tuned_yaml(suite, tunings))
    return result
