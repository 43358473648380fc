"""What makes a comparison's verdicts less safe without being a verdict: the two machines or software stacks
differ, a machine was busy, every row drifted the same way, a run timed each job in one process, or the runs
were made at different times."""

from __future__ import annotations

from typing import Sequence

from tfperf.analysis.row_comparison import RowComparison


def environment_warnings(base: dict, current: dict) -> list[str]:
    """What differs between the two machines or software stacks, in the terms a reader checks first."""
    out = []

    def gpus(env: dict) -> list[str]:
        return [g.get("name", str(g)) if isinstance(g, dict) else str(g) for g in env.get("gpus") or []]

    for key, label in (
        ("tensorflow", "TensorFlow version"),
        ("keras", "Keras version"),
        ("python", "Python version"),
        ("cpu_model", "CPU model"),
        ("cpu_count", "CPU count"),
    ):
        bv, cv = base.get(key), current.get(key)
        if bv != cv and (bv is not None or cv is not None):
            out.append(f"{label} differs: {bv} (base) vs {cv} (current)")
    bg, cg = gpus(base), gpus(current)
    if bg != cg:
        out.append(f"GPUs differ: {', '.join(bg) or 'none'} (base) vs {', '.join(cg) or 'none'} (current)")
    be, ce = base.get("env") or {}, current.get("env") or {}
    for k in sorted(set(be) | set(ce)):
        if be.get(k) != ce.get(k):
            out.append(f"environment variable {k} differs: {be.get(k)!r} (base) vs {ce.get(k)!r} (current)")
    return out


def busy_warnings(base: dict, current: dict) -> list[str]:
    """A run that recorded a load average (1-minute first) above one runnable process per CPU: other processes
    shared the cores its steps were timed on. Not a difference between the runs: the same run can be busy."""
    out = []
    for label, env in (("base", base), ("current", current)):
        load = env.get("load_average")
        load = load[0] if isinstance(load, (list, tuple)) and load else load
        cpus = env.get("cpu_count")
        if isinstance(load, (int, float)) and isinstance(cpus, int) and cpus > 0 and load > cpus:
            out.append(
                f"the machine was busy during the {label} run (load average {load:.1f} on {cpus} CPUs): "
                f"its timings include waiting for other processes"
            )
    return out


def separate_runs_warning(rows: Sequence[RowComparison]) -> str | None:
    """Runs made at different times carry their own moment's machine: a change smaller than how far the same
    code moves between worker processes is not visible. `tfperf ab` interleaves both versions in one run
    instead."""
    spreads = [
        x for r in rows if r.ratio is not None for x in (r.base_spread, r.current_spread) if x is not None
    ]
    return (
        (
            "these runs were made at different times: a change smaller than their process-to-process spread "
            "(up "
            f"to {max(spreads):.0%} here) cannot be seen; to gate on a small change, measure both versions "
            "in one "
            f"interleaved run with `tfperf ab`"
        )
        if spreads
        else None
    )


def single_process_warnings(rows: Sequence[RowComparison]) -> list[str]:
    """A run whose jobs each ran in one worker process cannot show how far the same code moves between
    processes, so its spread understates the noise and a verdict on it is less safe than it looks."""
    timed = [r for r in rows if r.ratio is not None]
    sides = [
        side
        for side in ("base", "current")
        if timed and all(getattr(r, f"{side}_processes") == 1 for r in timed)
    ]
    if not sides:
        return []
    which = "both runs" if len(sides) == 2 else f"the {sides[0]} run"
    return [
        f"{which} timed each job in one worker process: process-to-process variation is not in "
        f"{'their' if len(sides) == 2 else 'its'} spread, so verdicts are less safe (run with processes: 2 "
        f"or more)"
    ]


def drift_warning(rows: Sequence[RowComparison], threshold: float) -> str | None:
    """Every timed row moved the same way by a similar amount: more likely the machine than the code.

    A code change usually moves some rows; a busier machine, a different CPU governor or a thermal limit
    moves all of them. Needs at least three timed rows to say anything.
    """
    ratios = sorted(r.ratio for r in rows if r.ratio is not None and r.p_value is not None)
    if len(ratios) < 3:
        return None
    half = threshold / 2
    if ratios[0] > 1 + half or ratios[-1] < 1 / (1 + half):
        mid = ratios[len(ratios) // 2]
        return (
            f"all {len(ratios)} timed rows moved the same way (median ratio {mid:.2f}): the machine's state "
            f"(load, frequency scaling, thermal limits) may differ between the runs"
        )
    return None
