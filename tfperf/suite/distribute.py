"""The case key `distribute: {strategy, devices, workers}`: its rules, checked when the suite loads (so a
suite that cannot run fails with file:line before anything runs) and again by the worker that sets it up
(a CaseSpec can also be built in code, without a suite file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tfperf.errors import TfperfError
from tfperf.suite.spec import MODES

STRATEGIES = ("one_device", "mirrored", "multi_worker")
KEYS = ("strategy", "devices", "workers")
# (devices, workers) when the block does not say.
DEFAULTS: dict[str, tuple[int, int]] = {"one_device": (1, 1), "mirrored": (2, 1), "multi_worker": (1, 2)}
# Only a training step is measured under a strategy, in the execution modes (spec.MODES): the deployment modes
# time an exported artefact, which no strategy wraps.
TASK = "train"


class DistributeError(TfperfError):
    """A `distribute:` block that cannot run as written."""


def problem(d: dict | None) -> tuple[str | None, str] | None:
    """(key, reason) for the first rule the block breaks, None when it can run. The key is the one to point at
    (`workers` in `{strategy: mirrored, workers: 2}`); None for unknown keys, which have no key of their
    own."""
    d = {k: v for k, v in (d or {}).items() if v is not None}  # the suite loader passes unset keys as None
    unknown = sorted(set(d) - set(KEYS), key=str)
    if unknown:
        return None, f"unknown key(s) {', '.join(map(str, unknown))} (expected strategy, devices, workers)"
    strategy = d.get("strategy", "one_device")
    if strategy not in STRATEGIES:
        return "strategy", f"{strategy!r} is not one of {', '.join(STRATEGIES)}"
    devices, workers = d.get("devices", DEFAULTS[strategy][0]), d.get("workers", DEFAULTS[strategy][1])
    for key, value in (("devices", devices), ("workers", workers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return key, f"{value!r} must be a positive integer"
    if strategy == "one_device" and (devices != 1 or workers != 1):
        return (
            "devices" if devices != 1 else "workers",
            "one_device runs on one device of one worker (devices: 1, workers: 1)",
        )
    if strategy == "mirrored" and workers != 1:
        return "workers", "mirrored runs in one worker; use strategy: multi_worker for workers > 1"
    return None


def case_problems(task: str, modes: tuple[str, ...] | list[str], has_model: bool) -> list[tuple[str, str]]:
    """[(case key, reason)]: what a case with `distribute:` must also be (a Keras model trained in eager,
    function or xla). The worker fails the job for each of these; the loader says so before anything runs."""
    out = []
    if not has_model:
        out.append(
            ("function", "a 'distribute' case trains a Keras model: give it a 'model', not a 'function'")
        )
    if task != TASK:
        out.append(("task", f"only task: {TASK} is measured under a strategy (the task is {task})"))
    other = [m for m in modes if m not in MODES]
    if other:
        out.append(
            (
                "modes",
                f"mode{'s' if len(other) > 1 else ''} {', '.join(other)} cannot run under a strategy; "
                f"distributed cases run in {', '.join(MODES)}",
            )
        )
    return out


def json_schema() -> dict[str, Any]:
    """The block's combination rules, for the suite's JSON Schema (the types come from the pydantic model)."""

    def strategy_is(*names: str) -> dict:
        return {"properties": {"strategy": {"enum": list(names)}}, "required": ["strategy"]}

    return {
        "allOf": [
            {"if": strategy_is("mirrored"), "then": {"properties": {"workers": {"const": 1}}}},
            {
                "if": {"not": strategy_is("mirrored", "multi_worker")},
                "then": {"properties": {"devices": {"const": 1}, "workers": {"const": 1}}},
            },
        ]
    }


@dataclass(frozen=True)
class DistributeSpec:
    """The case key `distribute: {strategy, devices, workers}`."""

    strategy: str = "one_device"
    devices: int = 1  # mirrored: devices of this machine (GPUs, else logical CPU devices)
    workers: int = 1  # multi_worker: worker processes (local) or the cluster's size (TF_CONFIG)

    @classmethod
    def from_dict(cls, d: dict | None) -> "DistributeSpec":
        found = problem(d)
        if found:
            key, reason = found
            raise DistributeError(f"distribute{'.' + key if key else ''}: {reason}")
        d = {k: v for k, v in (d or {}).items() if v is not None}
        strategy = d.get("strategy", "one_device")
        return cls(strategy, d.get("devices", DEFAULTS[strategy][0]), d.get("workers", DEFAULTS[strategy][1]))
