"""The timed loops that are not the harness's, over the timing core and driven by a fake clock (FakeClock,
as in tests/test_timing_core.py): a distributed pass (PassRunner, over a fake training step with no strategy),
and `task: fit`'s timer (ExecutionTimer, fed the executions Keras would report). Each must keep the harness's
conventions: the first call timed apart, the warm-up rule, a sample being a whole step, the sync's cost
measured, the collector off from warm-up to the last timed step, and the process's noise record.

The same loops under real TensorFlow: tests/test_distributed.py (mirrored, multi-worker) and
tests/test_model_inputs.py (`-k fit`)."""

from __future__ import annotations

import gc

import pytest
from test_timing_core import FakeClock, Output

from tfperf.distributed.passes import DistributedStep, PassRunner
from tfperf.measure.fit import ExecutionTimer
from tfperf.measure.timing import WARMUP_MIN_S, sync_for
from tfperf.suite.spec import CaseSpec

# test_timing_core and the fit module import TensorFlow (fake clocks drive the loops; no step runs a model).
pytestmark = pytest.mark.tensorflow


def fake_case(**timing) -> CaseSpec:
    return CaseSpec(name="fake", function="fake:step", inputs="fake:inputs", modes=("function",), **timing)


class Loss:
    """A reduced loss whose value is the number of the call that returned it."""

    def __init__(self, value: float) -> None:
        self.value = value

    def numpy(self) -> float:
        return self.value


class FakeDistributedStep:
    """A training step over two replicas on the fake clock: the next global batch costs `input_s`, the call
    `schedule[call]` (else `step_s`), and waiting for the replicas `sync_s`."""

    def __init__(self, step_s: float, *, input_s: float, sync_s: float, schedule: dict[int, float]) -> None:
        self.clock = FakeClock()
        self.step_s, self.input_s, self.sync_s, self.schedule = step_s, input_s, sync_s, schedule
        self.calls = 0

    def batches(self):
        while True:
            self.clock.advance(self.input_s)
            yield "batch"

    def call(self, batch):
        call, self.calls = self.calls, self.calls + 1
        self.clock.advance(self.schedule.get(call, self.step_s))
        return Loss(float(call)), ["replica 0", "replica 1"]

    def replica_sync(self, per_replica) -> int:
        self.clock.advance(self.sync_s)
        return len(per_replica)

    def built(self) -> DistributedStep:
        return DistributedStep(
            call=self.call,
            traced=None,
            iterator=self.batches(),
            source_kind="in_memory",
            replica_sync=self.replica_sync,
            sync_name="fetch every replica's loss",
            replicas=2,
            global_batch=32,
            probe=lambda: [1.5, 1.5],
        )


def test_a_distributed_pass_is_timed_by_the_timing_core_like_a_harness_job():
    fake = FakeDistributedStep(0.1, input_s=0.01, sync_s=0.001, schedule={0: 100.0})
    case = fake_case(warmup_steps=2, steps=3, repeats=2)
    runner = PassRunner("mirrored", case, fake.built(), clock=fake.clock)
    runner.first_call()
    # The first call (tracing) is timed apart: its batch is drawn before the clock starts; it waited for the
    # replicas.
    assert runner.first_call_s == pytest.approx(100.0 + 0.001)
    killed_at: list[int] = []
    runner.warm_up()
    runner.repeat(killed_at.append)
    runner.repeat(killed_at.append)
    p = runner.finish()
    # Warm-up: the 2 steps asked for (0.111 s each) are not WARMUP_MIN_S, so it went on to 5 (0.555 s).
    assert len(p.warm) == 5 and sum(p.warm) >= WARMUP_MIN_S
    # A sample is a whole step: the next global batch, the call, the wait for every replica.
    assert p.samples == pytest.approx([0.01 + 0.1 + 0.001] * 6)
    assert p.waits == pytest.approx([0.01] * 6)
    assert p.sync_cost_s == pytest.approx(0.001)  # measured on the first call's finished step
    assert p.synced_replicas == 2 and p.final_loss == 11.0  # the last timed call: 1 + 5 + 6 - 1
    assert killed_at == [1, 2, 3, 4, 5, 6]  # the fault hook counts the pass's timed steps across repeats
    assert fake.calls == 1 + 5 + 6 and p.first_call_s == runner.first_call_s
    assert p.probe_losses == [1.5, 1.5] and p.tracing_count is None


def test_a_distributed_pass_with_no_warm_up_runs_none_and_other_workers_follow_worker_0():
    fake = FakeDistributedStep(0.3, input_s=0.0, sync_s=0.0, schedule={})
    runner = PassRunner("one_device", fake_case(warmup_steps=0, steps=2, repeats=1), fake.built(), fake.clock)
    runner.first_call()
    runner.warm_up(agree=lambda mine: pytest.fail("no warm-up: nothing to agree on"))
    assert runner.warm == []
    # Worker 0 wanted one step more than this worker's own clock said: this worker follows it.
    answers = iter([True, False])
    follower = PassRunner(
        "multi_worker", fake_case(warmup_steps=1, steps=1, repeats=1), fake.built(), fake.clock
    )
    follower.first_call()
    follower.warm_up(agree=lambda mine: next(answers))
    assert len(follower.warm) == 2


def fit_logs(clock: FakeClock, sync_s: float) -> dict:
    """An execution's logs; fetching its loss (the CPU sync) costs `sync_s` on the fake clock."""
    return {"loss": Output(clock, sync_s)}


def run_executions(timer: ExecutionTimer, clock: FakeClock, costs: dict[int, float], default: float):
    """Drive the timer as Keras' fit would: begin, then one end per execution until the timer says stop.
    Returns whether the collector was on during each execution."""
    gc_on = []
    timer.begin()
    for execution in range(timer.max_executions):
        gc_on.append(gc.isenabled())
        clock.advance(costs.get(execution, default))
        if timer.end(fit_logs(clock, 0.002), batch=(execution + 1) * timer.spe - 1):
            return gc_on
    pytest.fail("the timer never asked fit to stop")


def test_fit_executions_are_timed_with_the_harness_conventions():
    clock = FakeClock()
    case = fake_case(warmup_steps=2, steps=8, repeats=2)
    timer = ExecutionTimer(case, 4, sync_for("cpu")[0], clock)  # 4 steps per execution
    gc_on = run_executions(timer, clock, {0: 50.0}, 0.2)
    # The first execution (tracing, Keras' set-up) is the first call, timed apart.
    assert timer.first_call_s == pytest.approx(50.002)
    # Warm-up in whole executions: 1 asked for (2 steps of 4), then more until WARMUP_MIN_S: 3 of 0.202 s.
    assert timer.warm == pytest.approx([0.202] * 3)
    # 2 repeats of 2 executions (8 steps each); fit was told to stop after the last.
    assert timer.times == pytest.approx([0.202] * 4) and timer.executions == 1 + 3 + 4
    assert timer.steps_run == timer.executions * 4
    assert timer.sync_cost_s == pytest.approx(0.002)
    # The collector is on for the first call, off from the warm-up to the last timed execution, on after.
    assert gc_on == [True] + [False] * 7 and gc.isenabled()
    assert timer.section.noise is not None and timer.section.noise["timed_s"] >= 0


def test_fit_with_no_warm_up_times_the_execution_after_the_first_call():
    clock = FakeClock()
    timer = ExecutionTimer(fake_case(warmup_steps=0, steps=1, repeats=3), 1, sync_for("cpu")[0], clock)
    run_executions(timer, clock, {0: 5.0, 1: 0.3}, 0.1)
    assert timer.warm == [] and timer.times == pytest.approx([0.302, 0.102, 0.102])
    assert timer.executions == 4 and gc.isenabled()
