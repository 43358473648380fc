"""One job of a distributed case, measured in this process: the one-replica baseline, the distributed pass
taking turns with it repeat by repeat, scaling efficiency, the per-worker losses, and the profiled pass."""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

from tfperf.distributed.coordination import barrier
from tfperf.distributed.faults import kill_hook
from tfperf.distributed.passes import Pass, PassRunner
from tfperf.distributed.setup import local_device, make_strategy, tf_config_task
from tfperf.distributed.trace import profile_pass
from tfperf.measure.timing import TimedSection
from tfperf.results.job_records import Distributed, DistributedBaseline, Setup
from tfperf.results.model import JobSpec, Result
from tfperf.results.records import ErrorInfo, Profile, Timing
from tfperf.suite.distribute import DistributeError, DistributeSpec
from tfperf.suite.spec import CaseSpec


def describe_error(exc: BaseException, spec: DistributeSpec, mode: str, phase: str) -> ErrorInfo:
    """A failed job's error: XLA's known refusals under a strategy said plainly, with what to run instead."""
    import traceback

    text = str(exc).strip()
    message = (text.splitlines() or [type(exc).__name__])[0][:1000]
    hint = None
    if mode == "xla" and "Trying to access resource" in text and "located in device" in text:
        message = (
            f"XLA (jit_compile=True) cannot compile the {spec.strategy} step: one compiled function would "
            "read variables of replicas on other devices (tensorflow.org/xla/known_issues"
            "#tfvariable_on_a_different_device)"
        )
        hint = "run this case in mode 'function' under a strategy; jit_compile works with one_device"
    elif mode == "xla" and "Collectives are not yet implemented for CPU devices" in text:
        message = (
            f"XLA (jit_compile=True) cannot compile the {spec.strategy} step on CPU: XLA has no CPU "
            "implementation of the collective all-reduce the step needs"
        )
        hint = "run this case in mode 'function' under a strategy; jit_compile works with one_device"
    elif mode == "xla":
        from tfperf.measure.harness import xla_hint

        m, h = xla_hint(exc)
        message, hint = m or message, h
    return ErrorInfo(
        type=type(exc).__name__,
        message=message,
        hint=hint,
        phase=phase,
        traceback="".join(traceback.format_exception(exc))[-4000:],
    )


def measure_distributed(
    case: CaseSpec,
    job: JobSpec,
    ctx: Any = None,
    resolve: Callable[[str], Any] | None = None,
    *,
    baseline: bool = True,
) -> Result:
    """Measure one job of a distributed case in this process. Never raises: failures become a failed Result.

    Runs a one-replica baseline (OneDeviceStrategy on this process's first device, same per-replica batch) and
    then the distributed pass, and fills replicas, global_batch_size, scaling_efficiency and the per-worker
    losses. In a multi-worker cluster every worker calls this; worker 0 measures the baseline while the others
    wait at a barrier, so the baseline never shares the machine with another worker's steps.
    """
    started = time.perf_counter()
    resolve = resolve or _resolver(case)
    result = Result.for_job(job, model=case.model)
    phase = "set-up"
    try:
        spec = DistributeSpec.from_dict(case.distribute)
        import tensorflow as tf

        from tfperf.measure.memory import PeakMemory

        memory = PeakMemory(job.device)
        memory.reset()

        strategy = make_strategy(spec, job.device)
        task = tf_config_task() if spec.strategy == "multi_worker" else None
        worker_index, workers = task if task else (0, 1)
        result.distributed = Distributed(
            strategy=spec.strategy,
            devices=spec.devices,
            workers=workers,
            worker_index=worker_index,
            pid=os.getpid(),
            replica_devices=list(strategy.extended.worker_devices),
        )
        if spec.strategy == "multi_worker":  # the GPUs this worker was given (cluster.worker_gpu_env)
            result.distributed.cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        result.replicas = strategy.num_replicas_in_sync
        result.global_batch_size = job.batch_size * result.replicas if job.batch_size else None
        one: PassRunner | None = None
        with_baseline = baseline and spec.strategy != "one_device"
        if with_baseline:
            phase = "one-replica baseline"
            if workers > 1:
                barrier()
            if worker_index == 0:
                one = PassRunner.start(
                    tf.distribute.OneDeviceStrategy(local_device(strategy)), "one_device", case, job, resolve
                )
            if workers > 1:
                barrier()
        phase = f"{spec.strategy} pass"
        try:
            dist = PassRunner.start(strategy, spec.strategy, case, job, resolve)
        except Exception:
            if (
                one is not None and workers == 1
            ):  # still say what one device does (e.g. XLA fails only mirrored)
                with TimedSection():
                    one.warm_up()
                    for _ in range(case.repeats):
                        one.repeat()
                _record_baseline(result, one.finish(), strategy)
            raise
        kill = kill_hook(worker_index) if workers > 1 else None
        # Both passes' warm-ups and repeats are one timed section of this process, as the harness's timed
        # pass is one: the collector off throughout, and the process's noise record (timing.noise) over them.
        agree = worker0_decides(worker_index) if workers > 1 else None
        section = TimedSection()
        with section:
            for warming_up in [True] + [False] * case.repeats:  # the warm-ups take turns like the repeats
                # Baseline and distributed turns alternate, so a change in machine load hits both alike.
                # Across workers, worker 0 times its baseline while the others wait at a barrier, so the
                # baseline never shares the machine with another worker's steps; the waits are not this
                # process's timed work, and stay out of its noise record.
                if with_baseline:
                    phase = "one-replica baseline"
                    if workers > 1:
                        with section.aside():
                            barrier()
                    if one is not None and warming_up:
                        one.warm_up()
                    elif one is not None:
                        one.repeat()
                    if workers > 1:
                        with section.aside():
                            barrier()
                phase = f"{spec.strategy} pass"
                if warming_up:
                    dist.warm_up(agree)
                else:
                    dist.repeat(kill)
        main = dist.finish()
        result.peak_memory_bytes = memory.peak_bytes()  # this process (worker), both passes' models included
        result.rss_growth_bytes = memory.rss_growth_bytes()  # not a peak: see measure/memory.py
        base = one.finish() if one is not None else None
        if base is not None:
            _record_baseline(result, base, strategy)
        result.samples = main.samples
        result.repeat_sizes = [case.steps] * case.repeats
        result.repeat_process = [getattr(ctx, "process_no", 0)] * case.repeats
        result.input_wait_s = main.waits
        total = sum(main.samples)
        result.input_wait_fraction = sum(main.waits) / total if total > 0 else None
        result.first_call_s = main.first_call_s
        result.tracing_count = main.tracing_count
        result.replicas = main.replicas
        result.global_batch_size = main.global_batch
        result.timing = Timing(
            method="per_step",
            block_size=1,
            sync_cost_s=main.sync_cost_s,
            load_average_1m=os.getloadavg()[0],
            warmup_steps=case.warmup_steps,
            warmup_steps_run=len(main.warm),
            warmup_s=sum(main.warm),
            steps=case.steps,
            repeats=case.repeats,
            sync=main.sync,
            gc_disabled_while_timing=True,
            noise=section.noise,
        )
        dist = result.distributed
        dist.final_loss, dist.probe_losses = main.final_loss, main.probe_losses
        dist.samples_per_s = main.samples_per_s
        dist.synced_replicas = main.synced_replicas  # every local replica's loss, each step
        result.setup = Setup(
            **main.model_dtypes, loss_scale_optimizer=main.loss_scale_optimizer, **applied_settings(case)
        )
        if base is not None:
            result.scaling_efficiency = scaling_efficiency(
                main.samples_per_s, base.samples_per_s, main.replicas
            )
        if len(set(main.probe_losses)) > 1:
            result.distributed.replicas_diverged = True

        if case.profile and ctx is not None and getattr(ctx, "out_dir", None) is not None:
            phase = "profiled pass"
            try:
                result.profile = profile_pass(case, job, ctx, main, worker_index, workers)
            except Exception as exc:
                if workers > 1:
                    raise  # the peers are inside the same profiled steps: the job cannot go on consistently
                result.profile = Profile(error=f"{type(exc).__name__}: {exc}"[:500])
        if workers > 1:
            phase = "final barrier"
            # Leave together: a worker that exits while a peer still runs makes the peer's coordination
            # service report an error.
            barrier()
    except Exception as exc:  # noqa: BLE001 - any failure of user code or TF is this job's result
        result.status = "failed"
        result.error = describe_error(
            exc,
            DistributeSpec.from_dict(case.distribute) if _valid(case) else DistributeSpec(),
            job.mode,
            phase,
        )
    result.wall_s = time.perf_counter() - started
    return result


WARMUP_KEY = "tfperf-warmup-{}"
_warmup_decisions = 0  # numbers the keys; every worker makes the same decisions in the same order


def worker0_decides(worker_index: int) -> Callable[[bool], bool]:
    """The workers' shared answer to "one more warm-up step?" (timing.warm_up's `agree`): worker 0's.

    Every step of a multi-worker pass is a collective all workers take part in, so they must run the same
    number of steps; the warm-up's time-based rule, read on each worker's own clock, could end a step apart on
    two workers. Worker 0 (whose samples the result reports) publishes its answer in the coordination
    service's key-value store and the others wait for it there. A key is never reused (a joined cluster runs
    every job of the process, and a key stays set once written)."""
    from tensorflow.python.eager import context

    def agree(mine: bool) -> bool:
        global _warmup_decisions
        _warmup_decisions += 1
        key = WARMUP_KEY.format(_warmup_decisions)
        if worker_index == 0:
            context.context().set_config_key_value(key, "1" if mine else "0")
            return mine
        return context.context().get_config_key_value(key) == "1"

    return agree


def applied_settings(case: CaseSpec) -> dict:
    """`setup.tf_config` and `setup.tf_config_applied` of a distributed job, as the case worker records them
    for a single-process job: the settings, and what was in force after the model was built (the dtype policy,
    which the builder sets again after clearing the Keras session)."""
    if not case.tf_config:
        return {}
    from tfperf.measure.tf_config import settings_in_force

    return {"tf_config": dict(case.tf_config), "tf_config_applied": settings_in_force(case.tf_config)}


def _record_baseline(result: Result, base: Pass, strategy: Any) -> None:
    result.distributed.baseline = DistributedBaseline(
        strategy="one_device",
        device=local_device(strategy),
        replicas=1,
        global_batch_size=base.global_batch,
        median_s=base.median_s,
        samples_per_s=base.samples_per_s,
        first_call_s=base.first_call_s,
        final_loss=base.final_loss,
        samples=base.samples,
        interleaved_with_distributed_repeats=True,
    )


def _valid(case: CaseSpec) -> bool:
    try:
        DistributeSpec.from_dict(case.distribute)
        return True
    except DistributeError:
        return False


def scaling_efficiency(samples_per_s: float, baseline_samples_per_s: float, replicas: int) -> float | None:
    """Throughput with N replicas / (N × one-replica throughput at the same per-replica batch)."""
    if not baseline_samples_per_s or replicas < 1 or not math.isfinite(samples_per_s):
        return None
    return samples_per_s / (replicas * baseline_samples_per_s)


def _resolver(case: CaseSpec) -> Callable[[str], Any]:
    from tfperf.suite.references import resolve_reference

    return lambda ref: resolve_reference(ref, case.base_dir)
