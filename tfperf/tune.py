"""`tfperf tune`: measure candidate configurations of each case, rank them against the suite's baseline, and
prove the winner by re-measuring it.

The search, per case, within a time budget:

1. **baseline worker** — the case as the suite gives it, under TensorFlow's default settings, in `function`
   and `xla` modes at every batch size of its sweep. The suite's baseline configuration is `function` at the
   first batch size. The fastest (mode, batch size) by time per sample is where the next phase searches.
2. **one worker per process-wide setting** (`tf_config`, tfperf/tfconfig.py), so no setting leaks into another
   configuration: tf.data what-ifs first when the baseline is input-bound (synthetic pipelines), CPU thread
   counts, XLA auto-clustering, Grappler off (the reference) and single Grappler optimizations off, mixed
   precision on a tensor-core GPU.
3. **combined** — the winners of different groups together, when more than one group won.
4. **confirm** — the best configuration and the baseline re-measured in fresh workers; a winner that does not
   hold up is not recommended.

Each configuration's forward output (fixed weights, fixed input) is compared with the baseline's: one that
differs beyond `OUTPUT_TOLERANCE` is excluded from the ranking and said so. A configuration is "faster" when the
Mann-Whitney U test on per-sample times gives p < compare.ALPHA; the best must also be `MIN_GAIN` faster.

No TensorFlow in this process: every measurement is a worker (tfperf.worker) supervised by the runner.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import __version__
from .environment import host_environment
from .results import Result, RunResult, atomic_write_text, write_results
from .runner import CaseRunner, SilentReporter, now_iso
from .spec import AUTOTUNE, CaseSpec, Suite
from .tfconfig import code_for, describe, output_difference

SEED = 1234
# A configuration whose forward output differs from the baseline's by more than this (max |diff| relative to
# the baseline's largest magnitude) changed the model, not just its speed. float16 rounds at ~1e-3.
OUTPUT_TOLERANCE = 1e-3
MIXED_PRECISION_OUTPUT_TOLERANCE = 3e-2
# The best configuration must be significantly faster AND at least this much faster than the baseline.
MIN_GAIN = 0.05
# Before starting a worker, the estimate of its wall time is multiplied by this (start-up varies with load).
ESTIMATE_MARGIN = 1.3
DEFAULT_BUDGET_S = 300.0
INPUT_BOUND_FRACTION = 0.20  # the advisor's threshold: tf.data what-ifs only for input-bound cases
GRAPPLER_TOGGLES = ("layout_optimizer", "remapping", "arithmetic_optimization", "constant_folding",
                    "loop_optimization")


# --- candidates ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One worker's worth of configuration: process-wide settings, plus the modes / batch sizes / pipeline it runs."""

    id: str  # filename-safe; the worker's case is named <case>+<id>
    group: str  # baseline | threads | jit | grappler | precision | pipeline | combined | confirm
    settings: dict = field(default_factory=dict)
    modes: tuple[str, ...] = ("function",)
    batch_sizes: tuple[int, ...] | None = None  # None: the best batch size of the baseline
    pipeline: dict = field(default_factory=dict)  # PipelineSpec changes
    note: str = ""

    @property
    def label(self) -> str:
        parts = [] if not self.settings else [describe(self.settings)]
        if self.pipeline:
            parts.append("tf.data: " + ", ".join(f"{k}={v}" for k, v in self.pipeline.items()))
        return "; ".join(parts) or "suite as written, TensorFlow defaults"


def pipeline_code(changes: dict) -> list[str]:
    lines = []
    if changes.get("num_parallel_calls") == AUTOTUNE:
        lines.append("dataset = dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)")
    if changes.get("cache"):
        lines.append("dataset = dataset.cache()  # after the expensive map, before batch")
    if changes.get("prefetch") == AUTOTUNE:
        lines.append("dataset = dataset.prefetch(tf.data.AUTOTUNE)")
    return lines


def thread_grid(cpu_count: int) -> list[tuple[int, int]]:
    """(intra, inter) pairs worth measuring; (all cores, all cores) is TensorFlow's own default, left out."""
    intra = sorted({1, max(1, cpu_count // 2), cpu_count})
    return [(a, b) for a in intra for b in (1, 2) if (a, b) != (cpu_count, cpu_count)]


def setting_candidates(case: CaseSpec, device: str, baseline: Result, environment: dict) -> list[Candidate]:
    """Phase 2, in the order they are worth the budget."""
    out: list[Candidate] = []
    pipeline = case.input.pipeline if case.input else None
    wait = baseline.input_wait_fraction or 0.0
    if pipeline is not None and case.dataset is None and wait > INPUT_BOUND_FRACTION:
        changes = []
        if pipeline.prefetch in (0, "0"):
            changes.append(("prefetch", {"prefetch": AUTOTUNE}))
        if pipeline.num_parallel_calls != AUTOTUNE:
            changes.append(("parallel-map", {"num_parallel_calls": AUTOTUNE}))
        if not pipeline.cache:
            changes.append(("cache", {"cache": True}))
        for cid, ch in changes:
            out.append(Candidate(cid, "pipeline", pipeline=ch))
        if len(changes) > 1:
            merged = {k: v for _, ch in changes for k, v in ch.items()}
            out.append(Candidate("pipeline-all", "pipeline", pipeline=merged))
    if device == "cpu":
        for intra, inter in thread_grid(int(environment.get("cpu_count") or os.cpu_count() or 1)):
            out.append(Candidate(f"threads-{intra}x{inter}", "threads",
                                 {"intra_op_threads": intra, "inter_op_threads": inter}))
    out.append(Candidate("autoclustering", "jit", {"jit": "autoclustering"}, modes=("function",),
                         note="XLA auto-clustering of a plain tf.function, instead of jit_compile=True"))
    out.append(Candidate("grappler-off", "grappler", {"grappler": {"disable_meta_optimizer": True}},
                         note="reference: every Grappler optimization off"))
    if device.startswith("gpu"):
        cc = _compute_capability(environment, device)
        if cc is not None and cc >= 7.0:
            out.append(Candidate("mixed-float16", "precision", {"mixed_precision": "mixed_float16"}))
    for opt in GRAPPLER_TOGGLES:
        out.append(Candidate(f"no-{opt.replace('_', '-')}", "grappler", {"grappler": {opt: False}}))
    return out


def _compute_capability(environment: dict, device: str) -> float | None:
    gpus = environment.get("gpus") or []
    index = int(device.partition(":")[2] or 0)
    try:
        return float(gpus[index].get("compute_capability"))
    except (IndexError, TypeError, ValueError):
        return None


def merge_settings(parts: list[dict]) -> dict:
    merged: dict = {}
    for s in parts:
        for k, v in s.items():
            if k == "grappler":
                merged.setdefault("grappler", {}).update(v)
            else:
                merged[k] = v
    return merged


# --- measured rows ------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One measured configuration: a candidate's result in one mode at one batch size."""

    candidate: Candidate
    result: Result
    speedup: float | None = None  # baseline time per sample / this time per sample
    ci: tuple[float, float] | None = None  # of the speed-up
    p_value: float | None = None
    verdict: str = ""  # baseline | faster | slower | no significant difference | excluded | failed
    excluded: str | None = None  # why it is not ranked (outputs differ, failed)
    output_difference: float | None = None

    @property
    def mode(self) -> str:
        return self.result.mode

    @property
    def batch_size(self) -> int | None:
        return self.result.batch_size

    @property
    def name(self) -> str:
        bits = [self.candidate.id, self.mode]
        if self.batch_size is not None:
            bits.append(f"bs={self.batch_size}")
        return " · ".join(bits)

    def per_sample(self) -> list[float]:
        bs = self.batch_size or 1
        return [s / bs for s in self.result.samples]

    def code(self) -> list[str]:
        lines = code_for(self.candidate.settings)
        if self.candidate.settings.get("jit") == "autoclustering":
            lines.append("step = tf.function(step)  # auto-clustering compiles clusters of it with XLA")
        elif self.mode == "xla":
            lines.append("step = tf.function(step, jit_compile=True)  # Keras: model.compile(..., jit_compile=True)")
        else:
            lines.append("step = tf.function(step)")
        lines.extend(pipeline_code(self.candidate.pipeline))
        if self.batch_size is not None:
            lines.append(f"dataset = dataset.batch({self.batch_size})")
        return lines

    def to_json(self) -> dict:
        return {
            "config": self.candidate.id, "group": self.candidate.group, "label": self.candidate.label,
            "settings": self.candidate.settings, "pipeline": self.candidate.pipeline, "note": self.candidate.note,
            "mode": self.mode, "batch_size": self.batch_size, "status": self.result.status,
            "median_s": self.result.median_s, "samples_per_s": (self.result.throughput or {}).get("samples_per_s"),
            "speedup": self.speedup, "speedup_ci": list(self.ci) if self.ci else None, "p_value": self.p_value,
            "verdict": self.verdict, "excluded": self.excluded, "output_difference": self.output_difference,
            "code": self.code(),
        }


@dataclass
class CaseTuning:
    case: str
    budget_s: float
    rows: list[Row] = field(default_factory=list)
    baseline: Row | None = None
    best: Row | None = None
    not_run: list[dict] = field(default_factory=list)  # [{config, reason}]
    confirmation: dict | None = None
    unconfirmed: Row | None = None  # the winner that did not hold when re-measured
    elapsed_s: float = 0.0
    message: str | None = None  # why the case could not be tuned

    def ranked(self) -> list[Row]:
        ok = [r for r in self.rows if r.speedup is not None and not r.excluded]
        return sorted(ok, key=lambda r: -r.speedup) + [r for r in self.rows if r not in ok]

    @property
    def recommended(self) -> Row | None:
        return self.best or self.baseline

    def to_json(self) -> dict:
        rec = self.recommended
        return {
            "case": self.case, "budget_s": self.budget_s, "elapsed_s": self.elapsed_s, "message": self.message,
            "baseline": self.baseline.to_json() if self.baseline else None,
            "best": self.best.to_json() if self.best else None,
            "recommended_code": rec.code() if rec else None,
            "confirmation": self.confirmation,
            "ranking": [r.to_json() for r in self.ranked()],
            "not_run": self.not_run,
        }


def _significance(base: Row, row: Row) -> tuple[float | None, tuple[float, float] | None, float | None]:
    from .compare import MIN_SAMPLES, bootstrap_ratio_ci, mann_whitney_p

    b, c = base.per_sample(), row.per_sample()
    if not b or not c:
        return None, None, None
    speedup = _median(b) / _median(c)
    if len(b) < MIN_SAMPLES or len(c) < MIN_SAMPLES:
        return speedup, None, None
    lo, hi = bootstrap_ratio_ci(b, c)  # of median(current) / median(base): invert for a speed-up
    return speedup, (1 / hi, 1 / lo), mann_whitney_p(b, c)


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def evaluate(tuning: CaseTuning) -> None:
    """Speed-up, significance, verdict and output check of every row against the baseline; pick the best."""
    from .compare import ALPHA

    base = tuning.baseline
    reference = ((base.result.extra or {}).get("output_fingerprint") or {}).get("values") if base else None
    for row in tuning.rows:
        if not row.result.ok or not row.result.samples:
            row.verdict, row.excluded = "failed", (row.result.error or {}).get("message") or row.result.status
            continue
        fp = (row.result.extra or {}).get("output_fingerprint") or {}
        if reference is not None and row is not base:
            tol = (MIXED_PRECISION_OUTPUT_TOLERANCE if "16" in str(row.candidate.settings.get("mixed_precision", ""))
                   else OUTPUT_TOLERANCE)
            row.output_difference = output_difference(fp.get("values") or [], reference)
            if fp.get("error"):
                row.excluded = f"output check failed: {fp['error']}"
            elif row.output_difference is None:
                row.excluded = "output check not comparable with the baseline's"
            elif row.output_difference > tol:
                row.excluded = (f"outputs differ from the baseline's by {row.output_difference:.2g} "
                                f"(relative; tolerance {tol:g})")
            if row.excluded:
                row.verdict = "excluded"
        if base is None or not base.result.ok:
            continue
        row.speedup, row.ci, row.p_value = _significance(base, row)
        if row is base:
            row.verdict = "baseline"
        elif not row.excluded:
            if row.p_value is not None and row.p_value < ALPHA:
                row.verdict = "faster" if row.speedup > 1 else "slower"
            else:
                row.verdict = "no significant difference"
    winners = [r for r in tuning.rows if r.verdict == "faster" and r.speedup >= 1 + MIN_GAIN]
    tuning.best = max(winners, key=lambda r: r.speedup, default=None)


# --- running ------------------------------------------------------------------------------------------------

class TuneProgress(Protocol):
    def case_started(self, case: str, budget_s: float) -> None: ...
    def config_started(self, case: str, candidate: Candidate, index: int, planned: int) -> None: ...
    def config_finished(self, case: str, candidate: Candidate, rows: list[Row], wall_s: float) -> None: ...
    def config_skipped(self, case: str, candidate: Candidate, reason: str) -> None: ...
    def case_finished(self, tuning: CaseTuning) -> None: ...


class SilentTuneProgress:
    def case_started(self, case: str, budget_s: float) -> None: ...
    def config_started(self, case: str, candidate: Candidate, index: int, planned: int) -> None: ...
    def config_finished(self, case: str, candidate: Candidate, rows: list[Row], wall_s: float) -> None: ...
    def config_skipped(self, case: str, candidate: Candidate, reason: str) -> None: ...
    def case_finished(self, tuning: CaseTuning) -> None: ...


class LineTuneProgress(SilentTuneProgress):
    """One line per configuration: for logs, CI and --quiet."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream

    def _p(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def case_started(self, case: str, budget_s: float) -> None:
        self._p(f"tune {case}: budget {budget_s:g} s")

    def config_started(self, case: str, candidate: Candidate, index: int, planned: int) -> None:
        self._p(f"  [{index}/{planned}] {candidate.id}: {candidate.label} ...")

    def config_finished(self, case: str, candidate: Candidate, rows: list[Row], wall_s: float) -> None:
        for r in rows:
            self._p(f"      {r.mode}{f' bs={r.batch_size}' if r.batch_size else ''}: "
                    + (f"{r.result.median_s * 1e3:.3f} ms/step" if r.result.ok and r.result.samples
                       else f"{r.result.status} {(r.result.error or {}).get('message', '')}"[:160])
                    + f"  ({wall_s:.0f} s)")

    def config_skipped(self, case: str, candidate: Candidate, reason: str) -> None:
        self._p(f"  skipped {candidate.id}: {reason}")


class BarTuneProgress(LineTuneProgress):
    """A rich progress bar over the budget (seconds), with a line per configuration above it."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed:.0f}/{task.total:.0f} s"), TimeElapsedColumn(),
                                 console=self.console, transient=True)
        self.task = None
        self.started = 0.0

    def _p(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def case_started(self, case: str, budget_s: float) -> None:
        super().case_started(case, budget_s)
        self.progress.start()
        self.started = time.monotonic()
        self.task = self.progress.add_task(f"tune {case}", total=budget_s)

    def config_started(self, case: str, candidate: Candidate, index: int, planned: int) -> None:
        self.progress.update(self.task, description=f"tune {case}: {candidate.id} ({index}/{planned})",
                             completed=time.monotonic() - self.started)

    def config_finished(self, case: str, candidate: Candidate, rows: list[Row], wall_s: float) -> None:
        super().config_finished(case, candidate, rows, wall_s)
        self.progress.update(self.task, completed=time.monotonic() - self.started)

    def case_finished(self, tuning: CaseTuning) -> None:
        self.progress.stop()


def progress_for(quiet: bool, stream=sys.stderr) -> TuneProgress:
    if quiet or not stream.isatty():
        return LineTuneProgress(stream)
    return BarTuneProgress()


class CaseTuner:
    """Runs the search for one case within its budget."""

    def __init__(self, case: CaseSpec, out_dir: Path, budget_s: float, environment: dict,
                 progress: TuneProgress, python: str):
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

    def estimate(self, jobs: int = 1) -> float:
        if self.worker_overhead_s is None or self.job_s is None:
            # No complete worker yet (the budget cut the first one short): assume the next costs as much.
            return self.last_wall_s
        return self.worker_overhead_s + jobs * self.job_s

    def measure(self, cand: Candidate, modes: tuple[str, ...], batch_sizes: tuple[int, ...],
                planned: int) -> list[Row]:
        """One worker for one candidate; its results become rows (and results for results.json)."""
        spec = self.case
        if cand.pipeline and spec.input and spec.input.pipeline:
            spec = spec.replace(input=dataclasses.replace(
                spec.input, pipeline=dataclasses.replace(spec.input.pipeline, **cand.pipeline)))
        name = f"{self.case.name}+{cand.id}"
        timeout = max(1.0, min(self.case.timeout_s, self.remaining()))
        spec = spec.replace(name=name, modes=modes, batch_sizes=batch_sizes if self.case.function is None else
                            self.case.batch_sizes, profile=False, what_if=False, timeout_s=timeout,
                            tf_config={**cand.settings, "output_check": True, "seed": SEED})
        self.count += 1
        self.progress.config_started(self.case.name, cand, self.count, planned)
        t0 = time.monotonic()
        runner = CaseRunner(spec, self.out_dir, SilentReporter(), False, self.python)
        results = runner.run()
        wall = self.last_wall_s = time.monotonic() - t0
        if runner.tensorflow and self.tensorflow_env is None:
            self.tensorflow_env = runner.tensorflow
        jobs_wall = sum(r.wall_s or 0.0 for r in results)
        if results and all(r.wall_s for r in results):
            # Running means: start-up (TF import) swings with the machine's load; one worker says little.
            self.observations.append((max(0.0, wall - jobs_wall), jobs_wall / len(results)))
            self.worker_overhead_s = sum(o for o, _ in self.observations) / len(self.observations)
            self.job_s = sum(j for _, j in self.observations) / len(self.observations)
        rows = []
        for r in results:
            r.extra["tune"] = {"case": self.case.name, "config": cand.id, "group": cand.group,
                               "settings": cand.settings, "pipeline": cand.pipeline, "label": cand.label}
            self.results.append(r)
            rows.append(Row(cand, r))
        self.tuning.rows.extend(rows)
        self.progress.config_finished(self.case.name, cand, rows, wall)
        return rows

    def confirm_reserve(self) -> float:
        """Time kept to re-measure the winner, once there is one: the search may not eat the proof."""
        if self.tuning.best is None:
            return 0.0
        return self.confirm_need()

    def confirm_need(self) -> float:
        return (self.estimate(2) if self._confirm_in_one_worker() else 2 * self.estimate(1)) * ESTIMATE_MARGIN

    def _confirm_in_one_worker(self) -> bool:
        best = self.tuning.best
        return best is not None and not best.candidate.settings and not best.candidate.pipeline

    def affordable(self, cand: Candidate, need: float, reserve_s: float) -> bool:
        if self.remaining() - reserve_s >= need:
            return True
        reason = (f"budget: {self.remaining():.0f} s left, about {need:.0f} s needed"
                  + (f" plus {reserve_s:.0f} s kept to confirm the winner" if reserve_s else ""))
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
        base_cand = Candidate("baseline", "baseline", modes=modes, note="the suite's case, TensorFlow defaults")
        rows = self.measure(base_cand, modes, sizes, planned=1)
        tuning.baseline = next((r for r in rows if r.mode == "function" and
                                (r.batch_size == sizes[0] or case.function is not None)), None)
        if tuning.baseline is None or not tuning.baseline.result.ok:
            err = (tuning.baseline.result.error or {}).get("message") if tuning.baseline else "no result"
            tuning.message = f"the baseline (function mode) did not run: {err}"
            evaluate(tuning)
            return
        evaluate(tuning)
        # Where to search: the fastest ok (mode, batch size) of the baseline worker, by time per sample.
        ranked = [r for r in rows if r.speedup is not None and not r.excluded]
        anchor = max(ranked, key=lambda r: r.speedup)
        mode, bs = anchor.mode, anchor.batch_size
        device = tuning.baseline.result.device
        candidates = setting_candidates(case, device, tuning.baseline.result, self.environment)
        planned = 1 + len(candidates) + 2
        for cand in candidates:
            cmodes = cand.modes if cand.group == "jit" else (mode,)
            if self.affordable(cand, self.estimate(len(cmodes)) * ESTIMATE_MARGIN, self.confirm_reserve()):
                self.measure(cand, cmodes, (bs,) if bs is not None else case.batch_sizes, planned)
                evaluate(tuning)

        # Combined: the best row of each group that won, together. A setting wins against the default-settings
        # row of its own mode and batch size (not against the baseline, whose batch size may differ).
        from .compare import ALPHA

        defaults = {(r.mode, r.batch_size): r for r in rows}
        group_best: dict[str, Row] = {}
        for r in tuning.rows:
            ref = defaults.get((r.mode, r.batch_size))
            if r.candidate.group == "baseline" or r.excluded or ref is None or not ref.result.ok:
                continue
            gain, _, p = _significance(ref, r)
            if gain is not None and p is not None and p < ALPHA and gain >= 1 + MIN_GAIN:
                if r.candidate.group not in group_best or r.speedup > group_best[r.candidate.group].speedup:
                    group_best[r.candidate.group] = r
        if len(group_best) > 1:
            parts = list(group_best.values())
            uses_autoclustering = "jit" in group_best
            combo = Candidate("combined", "combined", merge_settings([p.candidate.settings for p in parts]),
                              pipeline={k: v for p in parts for k, v in p.candidate.pipeline.items()},
                              note="the winners of " + ", ".join(sorted(group_best)))
            cmode = "function" if uses_autoclustering else mode
            if self.affordable(combo, self.estimate(1) * ESTIMATE_MARGIN, self.confirm_reserve()):
                self.measure(combo, (cmode,), (bs,) if bs is not None else case.batch_sizes, planned)
                evaluate(tuning)

        if tuning.best is not None:
            self._confirm(planned)

    def _confirm(self, planned: int) -> None:
        """Re-measure the winner and the baseline in fresh workers: a win that does not repeat is not one."""
        from .compare import ALPHA

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
            # Not recommended: a win measured once, in another worker than its baseline, can be the machine's load.
            tuning.unconfirmed, tuning.best = best, None
            best.verdict = "faster once, not re-measured (budget)"
            return
        best_bs = (best.batch_size,) if best.batch_size is not None else self.case.batch_sizes
        base_bs = (base.batch_size,) if base.batch_size is not None else self.case.batch_sizes
        if one:
            # Same process-wide settings: mode and batch size are per job, so one worker measures both.
            rows = self.measure(dataclasses.replace(confirm_base, id="confirm"),
                                tuple(dict.fromkeys((base.mode, best.mode))),
                                tuple(dict.fromkeys(base_bs + best_bs)), planned)
            new_best = [r for r in rows if r.mode == best.mode and r.batch_size == best.batch_size]
            new_base = [r for r in rows if r.mode == base.mode and r.batch_size == base.batch_size]
            for r in rows:
                tuning.rows.remove(r)
            new_best, new_base = new_best[:1], new_base[:1]
            rows_to_drop: list[Row] = []
        else:
            new_best = self.measure(confirm_best, (best.mode,), best_bs, planned)
            new_base = self.measure(confirm_base, (base.mode,), base_bs, planned)
            rows_to_drop = new_best + new_base
        # Rows of the confirmation are not ranked: they only decide whether the winner holds.
        for r in rows_to_drop:
            tuning.rows.remove(r)
        if not (new_best and new_base and new_best[0].result.ok and new_base[0].result.ok):
            tuning.confirmation = {"status": "failed", "reason": "a confirmation worker did not finish"}
            tuning.unconfirmed, tuning.best = best, None
            return
        speedup, ci, p = _significance(new_base[0], new_best[0])
        held = p is not None and p < ALPHA and speedup > 1
        tuning.confirmation = {"status": "confirmed" if held else "not confirmed", "speedup": speedup,
                               "speedup_ci": list(ci) if ci else None, "p_value": p,
                               "baseline_median_s": new_base[0].result.median_s,
                               "best_median_s": new_best[0].result.median_s}
        if not held:
            tuning.unconfirmed, tuning.best = best, None
            best.verdict = "faster once, not when re-measured"


# --- the whole run ------------------------------------------------------------------------------------------

_CHANGE_NAMES = {"prefetch": "prefetch", "num_parallel_calls": "parallel map", "cache": "cache"}


def record_what_ifs(t: CaseTuning) -> None:
    """The measured tf.data configurations as the baseline's `what_if` entries, so the advisor's `prefetch`,
    `parallelize-map` and `cache-dataset` carry tune's verified speed-ups (an existing what_if is kept)."""
    base = t.baseline
    rows = [r for r in t.rows if r.candidate.group == "pipeline" and r.speedup is not None and not r.excluded]
    if base is None or not rows or base.result.what_if:
        return
    base.result.what_if = [{
        "change": " + ".join(_CHANGE_NAMES.get(k, k) for k in r.candidate.pipeline),
        "median_s": r.result.median_s, "baseline_median_s": base.result.median_s, "speedup": r.speedup,
        "p_value": r.p_value, "input_wait_fraction": r.result.input_wait_fraction,
        "code": "\n".join(pipeline_code(r.candidate.pipeline)), "source": "tfperf tune",
    } for r in rows]

@dataclass
class TuneRun:
    run: RunResult
    cases: list[CaseTuning]
    out_dir: Path


def tune_suite(suite: Suite, out_dir: str | Path, *, budget_s: float = DEFAULT_BUDGET_S,
               progress: TuneProgress | None = None, python: str | None = None,
               command: list[str] | None = None) -> TuneRun:
    """Tune every case of the suite (each within `budget_s`), write results.json, the reports, tune.json,
    tune.md and tuned.yaml into out_dir."""
    from .advisor import attach_suggestions
    from .outputs import write_outputs

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or SilentTuneProgress()
    suite_dir = Path(suite.path).resolve().parent
    environment = host_environment(suite_dir)
    run = RunResult(suite={**suite.info, "text": suite.text}, environment=environment, started_at=now_iso(),
                    tfperf_version=__version__, command=command)
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
    attach_suggestions(run)
    write_outputs(run, out_dir)
    result = TuneRun(run, tunings, out_dir)
    atomic_write_text(out_dir / "tune.json", json.dumps(
        {"tfperf_version": __version__, "suite": suite.info, "budget_s_per_case": budget_s,
         "min_gain": MIN_GAIN, "output_tolerance": OUTPUT_TOLERANCE,
         "cases": [t.to_json() for t in tunings]}, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / "tune.md", render_markdown(result))
    atomic_write_text(out_dir / "tuned.yaml", tuned_yaml(suite, tunings))
    return result


# --- rendering ----------------------------------------------------------------------------------------------

def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:.3f}"


def _speedup_text(r: Row) -> str:
    if r.speedup is None:
        return "-"
    ci = f" [{r.ci[0]:.2f}–{r.ci[1]:.2f}]" if r.ci else ""
    return f"{r.speedup:.2f}×{ci}"


def _p_text(p: float | None) -> str:
    return "-" if p is None else (f"{p:.2g}" if p >= 1e-4 else "<1e-4")


def ranking_rows(t: CaseTuning) -> list[dict]:
    out = []
    rank = 0
    for r in t.ranked():
        ranked = r.speedup is not None and not r.excluded
        rank += ranked
        out.append({
            "#": str(rank) if ranked else "-",
            "configuration": r.candidate.id + (" (best)" if r is t.best else ""),
            "mode": r.mode,
            "batch": str(r.batch_size) if r.batch_size is not None else "-",
            "median ms/step": _ms(r.result.median_s) if r.result.samples else "-",
            "samples/s": f"{r.result.throughput['samples_per_s']:,.0f}"
            if r.result.samples and r.result.throughput and r.result.throughput.get("samples_per_s") else "-",
            "speed-up [99% CI]": _speedup_text(r),
            "p": _p_text(r.p_value),
            "verdict": r.excluded and f"excluded: {r.excluded}" or r.verdict,
            "what": ("jit_compile=True; " if r.mode == "xla" else "") + r.candidate.label,
        })
    return out


def summary_lines(t: CaseTuning) -> list[str]:
    lines = []
    if t.message:
        lines.append(f"could not tune: {t.message}")
    rec = t.recommended
    if t.best is not None:
        c = t.confirmation or {}
        conf = ""
        if c.get("status") == "confirmed":
            conf = f"; re-measured in fresh workers: {c['speedup']:.2f}× (p={_p_text(c.get('p_value'))})"
        elif c.get("status") == "not run":
            conf = f"; measured in the baseline's own worker, not re-measured ({c.get('reason')})"
        lines.append(f"best: {t.best.name} — {t.best.speedup:.2f}× the baseline ({t.baseline.name}){conf}")
    elif t.baseline is not None and t.baseline.result.ok:
        c = t.confirmation or {}
        if c.get("status") == "not confirmed" and t.unconfirmed is not None:
            lines.append(f"best: the baseline — {t.unconfirmed.name} measured {t.unconfirmed.speedup:.2f}× but did not "
                         f"hold when re-measured in fresh workers ({c.get('speedup', 0):.2f}×, "
                         f"p={_p_text(c.get('p_value'))})")
        elif t.unconfirmed is not None:
            lines.append(f"best: the baseline — {t.unconfirmed.name} measured {t.unconfirmed.speedup:.2f}× but could "
                         f"not be re-measured to prove it ({c.get('reason')}); a larger --budget-s would")
        else:
            lines.append(f"best: the baseline — no configuration was significantly ≥{MIN_GAIN:.0%} faster")
    excluded = [r for r in t.rows if r.excluded and r.verdict == "excluded"]
    for r in excluded:
        lines.append(f"excluded {r.name}: {r.excluded}")
    budget = [n["config"] for n in t.not_run if n["reason"].startswith("budget")]
    if budget:
        lines.append(f"not run (out of budget): {', '.join(budget)}")
    for n in t.not_run:
        if not n["reason"].startswith("budget"):
            lines.append(f"not run {n['config']}: {n['reason']}")
    if rec is not None:
        lines.append("code:")
        lines.extend(f"    {line}" for line in rec.code())
    lines.append(f"{t.elapsed_s:.0f} s of a {t.budget_s:g} s budget")
    return lines


def render_text(result: TuneRun) -> str:
    from tabulate import tabulate

    out = []
    for t in result.cases:
        out.append(f"== {t.case}")
        rows = ranking_rows(t)
        if rows:
            out.append(tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True))
        out.extend(summary_lines(t))
        out.append("")
    return "\n".join(out)


def render_markdown(result: TuneRun) -> str:
    from tabulate import tabulate

    out = [f"# tfperf tune: {result.run.suite.get('name', '?')}", "",
           f"Each configuration ran in its own worker process. Speed-up = the baseline's time per sample / the "
           f"configuration's (median), with a 99% bootstrap interval; p from a two-sided Mann-Whitney U test on "
           f"per-sample step times. The best must be significant (p < 0.01) and at least {MIN_GAIN:.0%} faster, "
           f"and is then re-measured against the baseline in fresh workers. A configuration whose forward output "
           f"differs from the baseline's beyond {OUTPUT_TOLERANCE:g} (relative) is excluded.", ""]
    for t in result.cases:
        out.append(f"## {t.case}")
        out.append("")
        rows = ranking_rows(t)
        if rows:
            out.append(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))
            out.append("")
        rec = t.recommended
        for line in summary_lines(t):
            if line == "code:" or line.startswith("    "):
                continue
            out.append(f"- {line}")
        if rec is not None:
            out.append("")
            out.append("```python")
            out.extend(rec.code())
            out.append("```")
        out.append("")
    return "\n".join(out) + "\n"


def tuned_yaml(suite: Suite, tunings: list[CaseTuning]) -> str:
    """The suite with each case's winning settings: `tfperf run tuned.yaml` measures the tuned configuration."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML(typ="rt")
    yaml.width = 4096  # keep flow mappings on one line
    doc = yaml.load(suite.text)
    base_dir = Path(suite.path).resolve().parent
    by_name = {t.case: t for t in tunings}
    header = [f"tuned by tfperf tune {__version__} from {suite.path}"]
    # Only the cases that were tuned (--case selects some): an untuned case would read as tuned.
    doc["cases"] = [c for c in doc.get("cases") or [] if c.get("name") in by_name] or doc.get("cases")
    for case in doc.get("cases") or []:
        name = case.get("name")
        t = by_name.get(name)
        # References relative to the suite file would break next to the results: make them absolute.
        for key in ("model", "function", "inputs", "dataset"):
            ref = case.get(key)
            if isinstance(ref, str) and ".py:" in ref and not Path(ref.split(":")[0]).is_absolute():
                case[key] = f"{(base_dir / ref.split(':')[0]).resolve()}:{ref.split(':', 1)[1]}"
        if t is None or t.recommended is None:
            continue
        rec = t.recommended
        case["modes"] = [rec.mode]
        if rec.batch_size is not None:
            case["batch_size"] = rec.batch_size
        if rec.candidate.pipeline:
            inp = case.setdefault("input", CommentedMap())
            pipe = inp.setdefault("pipeline", CommentedMap())
            for k, v in rec.candidate.pipeline.items():
                pipe[k] = v
        if rec.candidate.settings:
            case["tf_config"] = dict(rec.candidate.settings)
        elif "tf_config" in case:
            del case["tf_config"]
        header.append(f"{name}: {rec.name}" + (f", {t.best.speedup:.2f}× the baseline" if t.best else
                                                 " (the baseline stayed best)"))
    for key in ("model", "function", "inputs", "dataset"):
        ref = (doc.get("defaults") or {}).get(key)
        if isinstance(ref, str) and ".py:" in ref and not Path(ref.split(":")[0]).is_absolute():
            doc["defaults"][key] = f"{(base_dir / ref.split(':')[0]).resolve()}:{ref.split(':', 1)[1]}"
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return "".join(f"# {h}\n" for h in header) + buf.getvalue()
