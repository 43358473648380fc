"""Results and runs built for tests: every field of the job has a default, so a test names only the fields it
is about (`result("xla", 0.007, first_call_s=2.0)`, `run_of(a, b, environment=GPU)`).

Imported as `from builders import ...`, as `conftest` is: pytest puts tests/ on the path.
"""

from __future__ import annotations

from tfperf.results import Result, RunResult


def tight(median: float, n: int = 12, spread: float = 0.002) -> list[float]:
    """n step times evenly spaced around `median` (their median exactly), `spread` / n apart relative to it:
    tight enough that two results a few percent apart differ significantly."""
    return [median * (1 + spread * (i - (n - 1) / 2) / n) for i in range(n)]


# The median step of a result whose test is not about its time.
DEFAULT_MEDIAN_S = 0.010


def result(
    mode: str = "function",
    median: float | None = None,
    *,
    case: str = "c",
    device: str = "cpu",
    task: str = "train",
    batch_size: int | None = 32,
    n: int = 12,
    spread: float = 0.002,
    **fields,
) -> Result:
    """A result of the job (case, mode, device, task, batch_size); every other Result field is a keyword.

    Its samples are `samples=` when given, else `tight(median, n, spread)`. Without either, a result that ran
    (status ok, the default) has samples around DEFAULT_MEDIAN_S and one that did not run (failed, timeout,
    skipped) has none."""
    if median is not None:
        if "samples" in fields:
            raise TypeError("give median or samples, not both")
        fields["samples"] = tight(median, n, spread)
    elif "samples" not in fields and fields.get("status", "ok") == "ok":
        fields["samples"] = tight(DEFAULT_MEDIAN_S, n, spread)
    return Result(case=case, mode=mode, device=device, task=task, batch_size=batch_size, **fields)


def processes(*medians: float, n: int = 10, spread: float = 0.002, **fields) -> Result:
    """A result timed in one worker process per median, n tight steps in each: apart between processes, as
    the same code is when each process's machine state differs."""
    return result(
        samples=[x for m in medians for x in tight(m, n, spread)],
        repeat_sizes=[n] * len(medians),
        repeat_process=list(range(len(medians))),
        **fields,
    )


def run_of(
    *results: Result, suite: dict | None = None, environment: dict | None = None, **fields
) -> RunResult:
    """A run holding these results, of the suite {"name": "t"} on an unrecorded machine unless given."""
    return RunResult(
        suite={"name": "t"} if suite is None else suite,
        environment={} if environment is None else environment,
        results=list(results),
        **fields,
    )
