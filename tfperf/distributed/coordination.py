"""The barrier the workers of a multi-worker job meet at (between the baseline's and the distributed pass's
repeats, around the profiled steps, and before leaving)."""

from __future__ import annotations

_barrier_count = 0
BARRIER_TIMEOUT_S = 3600.0  # a bound, not a deadline: the supervisor's timeout_s ends a stuck job first


def barrier() -> None:
    """Every worker waits here until all arrive. Only meaningful across workers; every worker calls the
    barriers in the same order, so the n-th call of each meets the others' n-th.

    The coordination service's barrier (an RPC to the cluster's leader) rather than a one-number all-reduce:
    an eager all-reduce runs through a Python thread pool (TensorFlow warns it "has significant overhead"),
    and a barrier should not take part in the collectives the profiler attributes to the step.
    """
    from tensorflow.python.eager import context

    global _barrier_count
    _barrier_count += 1
    context.context().wait_at_barrier(f"tfperf-barrier-{_barrier_count}", int(BARRIER_TIMEOUT_S * 1000))
