"""The timing core (tfperf.measure.timing, run by harness.run_job): driven by a clock of the test's own and
steps whose cost is set on that clock, so every number the harness records is known exactly: the first call
and the warm-up are never samples, a block is divided by its size, the sync cost is measured and recorded, the
method is per step unless the sync would dominate the step, and a job's later processes time it as its first
one did.

The pieces the other timed loops share (the distributed passes, `task: fit`: tests/test_timed_adapters.py) are
tested here on their own: the warm-up rule, one repeat, and the section around a process's warm-up and timed
steps (the collector off, the process's noise record).

A profiled pass that fails keeps the measured timing and says what failed in the profile record."""

from __future__ import annotations

import gc
import itertools
import json
import textwrap
import time
from pathlib import Path

import pytest
import tensorflow as tf

from tfperf.measure import harness, timing
from tfperf.measure.inputs import InputSource
from tfperf.measure.timing import (
    BLOCKED_BELOW_S,
    MAX_BLOCK_SIZE,
    SYNC_SHARE_FOR_BLOCKING,
    WARMUP_MAX_EXTRA_STEPS,
    WARMUP_MIN_S,
    StepTimer,
    TimedSection,
    block_size_for,
    choose_block_size,
    measure_sync_cost,
    sync_for,
    time_repeat,
    warm_up,
    warming_up,
)
from tfperf.suite.spec import CaseSpec

pytestmark = pytest.mark.tensorflow


class FakeClock:
    """Seconds that pass only when a fake step, its input or its sync says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Output:
    """A step's result whose fetch (the CPU sync calls .numpy()) costs `sync_s` on the fake clock."""

    def __init__(self, clock: FakeClock, sync_s: float) -> None:
        self.clock, self.sync_s, self.fetches = clock, sync_s, 0

    def numpy(self) -> None:
        self.fetches += 1
        self.clock.advance(self.sync_s)


class FakeJob:
    """A `function:` case whose step costs `schedule[call]` (else `step_s`) on the fake clock, whose input
    costs `input_s`, and whose result costs `sync_s` to fetch. `fail_from`: calls from this index on raise."""

    def __init__(
        self,
        step_s: float,
        *,
        sync_s: float = 2e-6,
        input_s: float = 0.0,
        schedule: dict[int, float] | None = None,
        fail_from: int | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.step_s, self.sync_s, self.input_s = step_s, sync_s, input_s
        self.schedule = schedule or {}
        self.fail_from = fail_from
        self.calls = 0

    def step(self, x):
        call, self.calls = self.calls, self.calls + 1
        if self.fail_from is not None and call >= self.fail_from:
            raise RuntimeError(f"step broke on call {call}")
        self.clock.advance(self.schedule.get(call, self.step_s))
        return Output(self.clock, self.sync_s)

    def inputs(self):
        def items():
            while True:
                self.clock.advance(self.input_s)
                yield (1,), {}

        return items()

    def resolve(self, ref: str):
        return {"fake:step": self.step, "fake:inputs": self.inputs}[ref]

    def run(
        self,
        *,
        warmup_steps: int = 2,
        steps: int = 4,
        repeats: int = 2,
        profile: bool = False,
        out_dir: Path | None = None,
        block_size: int | None = None,
    ):
        case = CaseSpec(
            name="fake",
            function="fake:step",
            inputs="fake:inputs",
            modes=("eager",),
            device="cpu",
            warmup_steps=warmup_steps,
            steps=steps,
            repeats=repeats,
            profile=profile,
        )
        (job,) = case.jobs()
        ctx = harness.JobContext(out_dir=out_dir, tf_device="/CPU:0")
        return harness.run_job(case, job, ctx, self.resolve, block_size=block_size, clock=self.clock)


# --- what a sample is --------------------------------------------------------------------------------------


def test_the_first_call_and_the_warm_up_are_timed_apart_and_never_samples():
    # First call 100 s (tracing, compiling), two warm-up steps of 0.5 s, then 1 ms steps with a 0.2 ms input.
    fake = FakeJob(1e-3, sync_s=2e-6, input_s=2e-4, schedule={0: 100.0, 1: 0.5, 2: 0.5})
    r = fake.run(warmup_steps=2, steps=4, repeats=2)
    assert r.ok, r.error
    # A sample is a whole step: the input, the call and the fetch that forces completion.
    assert r.samples == pytest.approx([2e-4 + 1e-3 + 2e-6] * 8, rel=1e-6)
    assert r.repeat_sizes == [4, 4] and r.repeat_process == [0, 0]
    assert r.input_wait_s == pytest.approx([2e-4] * 8, rel=1e-6)
    # The first call is timed from the call to the end of the fetch (its input is drawn before the clock
    # starts).
    assert r.first_call_s == pytest.approx(100.0 + 2e-6, rel=1e-9)
    t = r.timing
    assert (t.method, t.block_size, t.sync) == ("per_step", 1, "fetch")
    assert t.warmup_steps == 2 and t.warmup_steps_run == 2
    assert t.warmup_s == pytest.approx(2 * (2e-4 + 0.5 + 2e-6), rel=1e-9)
    # The sync cost is measured on a finished result (the first call's) and recorded.
    assert t.sync_cost_s == pytest.approx(2e-6, rel=1e-6)
    # 1 first call + 2 warm-up + 8 timed: nothing else called the step.
    assert fake.calls == 11


def test_warm_up_lasts_at_least_warmup_min_s_and_zero_means_none():
    fake = FakeJob(0.1, sync_s=0.0)
    r = fake.run(warmup_steps=2, steps=3, repeats=1)
    # 2 steps of 0.1 s are not WARMUP_MIN_S (0.5 s): warm-up goes on until the steps add up to it.
    assert r.timing.warmup_steps_run == 5 and r.timing.warmup_s >= timing.WARMUP_MIN_S
    assert fake.calls == 1 + 5 + 3
    none = FakeJob(0.1, sync_s=0.0).run(warmup_steps=0, steps=3, repeats=1)
    assert none.timing.warmup_steps_run == 0 and none.timing.warmup_s == 0


# --- per step, or in blocks ---------------------------------------------------------------------------------


def test_a_short_cpu_step_is_timed_per_step_when_its_fetch_is_a_small_share():
    # 30 us with a 2 us fetch: the fetch is 6% of the step, under the share that would bias each sample by
    # more than tfperf's noise threshold. (docs/measuring.md and the harness both say CPU steps
    # this short are timed one by one; blocking them once contradicted both.)
    r = FakeJob(30e-6, sync_s=2e-6).run()
    assert (r.timing.method, r.timing.block_size) == ("per_step", 1)
    assert r.samples == pytest.approx([32e-6] * 8, rel=1e-6)


def test_a_step_the_sync_would_dominate_is_timed_in_blocks_divided_by_their_size():
    # 1 us with a 2 us fetch: per step, two thirds of every sample would be the fetch.
    r = FakeJob(1e-6, sync_s=2e-6).run(steps=3, repeats=2)
    size = block_size_for(3e-6)  # from the fastest warm-up step: call + fetch
    assert size == MAX_BLOCK_SIZE
    assert (r.timing.method, r.timing.block_size) == ("blocked", size)
    # One fetch per block of `size` calls, and the block's time divided by its size.
    assert r.samples == pytest.approx([1e-6 + 2e-6 / size] * 6, rel=1e-6)
    assert r.timing.sync_cost_s == pytest.approx(2e-6, rel=1e-6)


def test_the_blocking_rule_and_its_threshold():
    assert choose_block_size(1e-6, 2e-6) > 1
    assert choose_block_size(30e-6, 2e-6) == 1
    step = 20e-6
    assert choose_block_size(step, SYNC_SHARE_FOR_BLOCKING * step * 0.9) == 1
    assert choose_block_size(step, SYNC_SHARE_FOR_BLOCKING * step * 1.1) == block_size_for(step)
    # A step of BLOCKED_BELOW_S or longer is timed one by one however costly its sync.
    assert choose_block_size(BLOCKED_BELOW_S, BLOCKED_BELOW_S) == 1
    assert block_size_for(1e-3) == 10 and block_size_for(1.0) == 2


def test_a_given_block_size_is_used_whatever_this_process_would_decide():
    # How a later worker process times a job: as its first process did, so the merged samples are one kind.
    blocked = FakeJob(1e-3, sync_s=2e-6).run(block_size=7, steps=3, repeats=1)
    assert (blocked.timing.method, blocked.timing.block_size) == ("blocked", 7)
    assert blocked.samples == pytest.approx([1e-3 + 2e-6 / 7] * 3, rel=1e-6)
    per_step = FakeJob(1e-6, sync_s=2e-6).run(block_size=1, steps=3, repeats=1)
    assert (per_step.timing.method, per_step.timing.block_size) == ("per_step", 1)
    assert per_step.samples == pytest.approx([3e-6] * 3, rel=1e-6)


# --- the pieces ---------------------------------------------------------------------------------------------


def test_measure_sync_cost_is_the_median_cost_of_a_sync_of_a_finished_result():
    clock = FakeClock()
    costs = itertools.cycle([1e-6, 5e-6, 2e-6])

    def sync(out):
        clock.advance(next(costs))

    assert measure_sync_cost(sync, None, n=21, clock=clock) == pytest.approx(2e-6)


def test_sync_for_the_cpu_fetches_every_tensor_of_the_result():
    sync, name = sync_for("cpu")
    clock = FakeClock()
    parts = [Output(clock, 0.0) for _ in range(3)]
    sync({"loss": parts[0], "more": (parts[1], [parts[2], 3.0])})
    assert name == "fetch" and [p.fetches for p in parts] == [1, 1, 1]
    sync((tf.constant([1.0]), {"y": tf.constant(2)}))  # real tensors: .numpy() waits for their ops
    assert sync_for("gpu:0")[1] == sync_for("gpu")[1] == "sync_devices"


def test_step_timer_counts_calls_and_notes_the_calls_that_traced():
    fn = tf.function(lambda x: x * 2.0)
    shapes = iter([(2,), (2,), (3,), (3,)])
    source = InputSource("inputs", lambda: ((tf.zeros(next(shapes)),), {}))
    prepared = harness.PreparedStep(call=fn, source=source, traced=fn)
    timer = StepTimer(prepared, sync_for("cpu")[0])
    for _ in range(4):
        seconds, wait = timer.one_step()
        assert seconds > 0 and 0 <= wait <= seconds
    assert timer.calls == 4 and timer.trace_calls == [0, 2]


def test_step_timer_block_divides_by_its_size_and_syncs_once():
    clock = FakeClock()
    out = Output(clock, 4e-6)

    def call(x):
        clock.advance(1e-6)
        return out

    def next_args():
        clock.advance(5e-7)
        return (1,), {}

    timer = StepTimer(
        harness.PreparedStep(call=call, source=InputSource("inputs", next_args), traced=None),
        sync_for("cpu")[0],
        clock,
    )
    seconds, wait = timer.block(8)
    assert seconds == pytest.approx((8 * 1.5e-6 + 4e-6) / 8) and wait == pytest.approx(5e-7)
    assert timer.calls == 8 and out.fetches == 1


def fake_timer(clock: FakeClock, seconds: list[float]) -> StepTimer:
    """A StepTimer whose n-th step takes seconds[n] on the fake clock (its input and sync cost nothing)."""
    costs = iter(seconds)

    def call(x):
        clock.advance(next(costs))
        return Output(clock, 0.0)

    source = InputSource("inputs", lambda: ((1,), {}))
    return StepTimer(harness.PreparedStep(call=call, source=source, traced=None), sync_for("cpu")[0], clock)


def test_the_warm_up_rule_is_its_steps_then_warmup_min_s_at_most_its_cap_and_zero_is_none():
    assert warming_up([], 2) and warming_up([9.0], 2)  # the fixed steps, however long
    assert not warming_up([9.0, 9.0], 2)
    assert warming_up([0.1, 0.1], 2)  # 0.2 s: not WARMUP_MIN_S yet
    assert not warming_up([0.1] * 4 + [WARMUP_MIN_S], 2)
    assert not warming_up([1e-6] * (2 + WARMUP_MAX_EXTRA_STEPS), 2)  # the cap ends a warm-up of tiny steps
    assert warming_up([1e-6] * 3, 2, extra=2) and not warming_up([1e-6] * 4, 2, extra=2)
    assert not warming_up([], 0)  # warmup_steps: 0 means no warm-up at all


def test_warm_up_runs_the_rule_and_asks_agree_only_past_its_fixed_steps():
    clock = FakeClock()
    warm = warm_up(fake_timer(clock, [0.2] * 10), 2)
    assert warm == pytest.approx([0.2, 0.2, 0.2])  # 0.6 s >= WARMUP_MIN_S
    asked: list[bool] = []

    def agree(mine: bool) -> bool:
        # Another worker's answer: one more step than this process would run.
        asked.append(mine)
        return len(asked) < 3

    warm = warm_up(fake_timer(clock, [1.0] * 10), 2, agree)
    # Two fixed steps (1 s each: done by the rule), then the agreed answer: yes, yes, no.
    assert len(warm) == 4 and asked == [False, False, False]
    assert warm_up(fake_timer(clock, []), 0, agree) == [] and len(asked) == 3  # no warm-up: nothing to agree


def test_a_repeat_is_its_steps_samples_with_a_hook_after_each():
    clock = FakeClock()
    seen: list[int] = []
    samples, waits = time_repeat(fake_timer(clock, [0.1, 0.2, 0.3]), 3, after_sample=seen.append)
    assert samples == pytest.approx([0.1, 0.2, 0.3]) and waits == [0.0] * 3 and seen == [1, 2, 3]


def test_a_timed_section_turns_the_collector_off_and_records_the_process_noise_without_its_asides():
    assert gc.isenabled()
    section = TimedSection()
    with section:
        assert not gc.isenabled()
        with section.aside():  # a wait at a barrier: not this process's timed work
            time.sleep(0.3)
            assert not gc.isenabled()
        time.sleep(0.05)
    assert gc.isenabled()
    record = section.noise
    assert record is not None and 0.05 <= record["timed_s"] < 0.3
    assert set(record) == {
        "timed_s",
        "load_average",
        "voluntary_context_switches",
        "involuntary_context_switches",
        "cpu_affinity",
        "schedulable_cpus",
        "intra_op_threads",
        "inter_op_threads",
        "aslr",
        "cpu_governor",
        "warnings",
    }
    section.stop()  # a caller's `finally` may stop it again: nothing changes
    assert section.noise is record and gc.isenabled()
    TimedSection().stop()  # never started: the collector stays as it was
    assert gc.isenabled()


def test_the_harness_records_its_timed_section_noise_over_the_warm_up_and_timed_steps():
    # Real seconds for the record: the fake steps take none, so the section lasts no longer than the test.
    started = time.perf_counter()
    r = FakeJob(0.1, sync_s=0.0).run(warmup_steps=1, steps=2, repeats=2)
    assert r.ok and r.timing.gc_disabled_while_timing
    noise = r.timing.noise
    assert noise["timed_s"] < time.perf_counter() - started
    assert isinstance(noise["involuntary_context_switches"], int) and noise["schedulable_cpus"] >= 1
    assert gc.isenabled()


# --- the profiled pass --------------------------------------------------------------------------------------


def test_an_exception_in_the_profiled_pass_keeps_the_timing_and_records_the_error(tmp_path):
    # The step breaks after the timed pass: first call + 2 warm-up (of 0.5 s: no more needed) + 2 x 2 timed =
    # 7 calls, then the profiler's.
    fake = FakeJob(1e-3, schedule={1: 0.5, 2: 0.5}, fail_from=7)
    r = fake.run(warmup_steps=2, steps=2, repeats=2, profile=True, out_dir=tmp_path)
    assert r.ok and r.error is None
    assert len(r.samples) == 4 and r.timing.method == "per_step"
    assert r.profile is not None and "RuntimeError: step broke on call 7" in r.profile.error
    assert r.profile.tb_run == "fake-eager"
    assert r.to_json()["profile"]["error"] == r.profile.error  # in results.json, where the report reads it


# --- every process of a job, one method ---------------------------------------------------------------------


def test_the_rounds_hand_the_first_process_block_sizes_to_the_worker(tmp_path):
    from tfperf.results.model import JobSpec, Result
    from tfperf.results.records import Timing
    from tfperf.run.process import Part
    from tfperf.run.rounds import first_block_sizes
    from tfperf.suite.spec import CaseSpec

    firsts = {
        0: Result("c", "eager", "cpu", "train", None, samples=[1e-6], timing=Timing(block_size=250)),
        1: Result("c", "eager", "cpu", "train", None, samples=[1e-3], timing=Timing(block_size=1)),
        2: Result.not_run(JobSpec("c", "xla", "cpu", "train", None), "failed", "E", "no timing"),
    }
    assert first_block_sizes(firsts) == {0: 250, 1: 1}
    # The worker's plan names each job's block size; a job already reported is not run again.
    part = Part(CaseSpec(name="c"), tmp_path / "c.case.json", [0, 1], first_block_sizes(firsts))
    assert part.plan() == {
        "case_file": str(tmp_path / "c.case.json"),
        "jobs": [0, 1],
        "block_sizes": {"0": 250, "1": 1},
    }
    part.finished[0] = firsts[0]
    assert part.plan()["jobs"] == [1] and part.plan()["block_sizes"] == {"1": 1}


STEPS = """
import json
import sys
import time

import tensorflow as tf

DONE = tf.constant([1.0])
# The job's first worker process runs a step of a few microseconds, which the fetch would dominate: it is
# timed in blocks. A later process (its plan says process N >= 1) runs a 300 us step, which on its own would
# be timed per step: it must time the job as the first process did.
with open(sys.argv[1]) as f:
    LATER = json.load(f)["process"] >= 1


def step(x):
    if LATER:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 3e-4:
            pass
    return DONE


def inputs():
    return [((1,), {})]
"""


@pytest.mark.workers
def test_every_process_of_a_job_times_it_the_way_the_first_did(tmp_path):
    from tfperf.run.runner import run_suite
    from tfperf.suite.loader import load_suite

    (tmp_path / "steps.py").write_text(textwrap.dedent(STEPS))
    (tmp_path / "suite.yaml").write_text(
        "name: methods\n"
        "defaults: {warmup_steps: 1, steps: 3, repeats: 1, processes: 2, profile: false, timeout_s: 120}\n"
        "cases:\n"
        "  - name: tiny\n"
        "    modes: [eager]\n"
        "    device: cpu\n"
        "    function: steps.py:step\n"
        "    inputs: steps.py:inputs\n"
    )
    run = run_suite(load_suite(tmp_path / "suite.yaml"), tmp_path / "out")
    (r,) = run.results
    assert r.ok, r.error
    first, later = r.timing.by_process
    assert first.method == "blocked" and first.block_size > 1, r.timing
    assert (later.process, later.method, later.block_size) == (1, "blocked", first.block_size)
    plan = json.loads((tmp_path / "out" / "workers" / "tiny.p1.plan0.json").read_text())
    assert plan["process"] == 1 and plan["parts"][0]["block_sizes"] == {"0": first.block_size}
    saved = json.loads((tmp_path / "out" / "results.json").read_text())["results"][0]["timing"]
    assert {p["block_size"] for p in saved["by_process"]} == {first.block_size}
