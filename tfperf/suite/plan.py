"""Command-line overrides over a loaded suite: which cases, modes, device, step counts. Validated like the
suite."""

from __future__ import annotations

import dataclasses
import difflib

from tfperf.errors import TfperfError
from tfperf.suite.schema import DEVICE_RE
from tfperf.suite.spec import ALL_MODES, DEPLOY_MODES, Suite


def apply_overrides(
    suite: Suite,
    *,
    cases: list[str] | None = None,
    modes: list[str] | None = None,
    device: str | None = None,
    steps: int | None = None,
    repeats: int | None = None,
    processes: int | None = None,
    profile: bool | None = None,
    max_traces: int | None = None,
) -> Suite:
    selected = list(suite.cases)
    if cases:
        names = [c.name for c in suite.cases]
        # A case written with `keras: [3, 2]` became <name>-keras3 and <name>-keras2: its own name selects
        # both.
        cases = [
            n
            for name in cases
            for n in (
                [name]
                if name in names
                else [x for x in names if x in (f"{name}-keras3", f"{name}-keras2")] or [name]
            )
        ]
        for name in cases:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                raise TfperfError(
                    f"--case {name}: no such case in {suite.path}"
                    + (f" (did you mean '{close[0]}'?)" if close else f"; cases: {', '.join(names)}")
                )
        selected = [c for c in suite.cases if c.name in cases]
    if modes is not None:
        for m in modes:
            if m not in ALL_MODES:
                raise TfperfError(f"--modes: unknown mode '{m}'; choose from {', '.join(ALL_MODES)}")
    if device is not None and not DEVICE_RE.match(device):
        raise TfperfError(f"--device {device}: expected auto, cpu, gpu or gpu:N")
    out = []
    for c in selected:
        changes: dict = {}
        if modes is not None:
            # A deployment mode only applies to infer cases; leave it out where it cannot run.
            changes["modes"] = tuple(m for m in modes if c.task == "infer" or m not in DEPLOY_MODES)
        if device is not None:
            changes["device"] = device
        if steps is not None:
            changes["steps"] = steps
        if repeats is not None:
            changes["repeats"] = repeats
        if processes is not None:
            changes["processes"] = processes
        if profile is not None:
            changes["profile"] = profile
        if max_traces is not None and c.max_traces is None:
            changes["max_traces"] = max_traces
        out.append(c.replace(**changes) if changes else c)
    out = [c for c in out if c.modes]
    if not out:
        raise TfperfError("nothing to run: no case has a mode left after --modes/--case")
    return dataclasses.replace(suite, cases=tuple(out))
