"""Attribution beyond ops: self time per Keras layer and per phase of a step, from the op names in a trace.

TensorBoard's op tables list ops; a TensorFlow user asks "which layer?" and "forward, backward or the
optimizer?". Under `tf.function` every op name carries its name scopes, which is enough to answer both (names
checked in a trace of a Keras 3 MLP train step, TensorFlow 2.21):

    forward/mlp_1/dense_0_1/Relu                          forward pass, layer dense_0 (fused
                                                          MatMul+BiasAdd+Relu)
    gradient_tape/forward/mlp_1/dense_0_1/MatMul/MatMul   backward pass, layer dense_0
    optimizer/adam/Sub_2                                  optimizer update (Keras 3 names its scope after
                                                          the optimizer in lower case; Keras 2 used "Adam")
    Iterator::Root::Prefetch (type Dataset)               input: the tf.data iterator

The harness wraps the step's parts in `tf.name_scope("forward" / "backward" / "optimizer")`; a step without
them is still split by `gradient_tape/` and the optimizer's own scope. In graph mode TensorFlow makes scope
names unique with a `_N` suffix (`dense_0_1` is layer `dense_0`), so a component matches a layer name with or
without such suffixes. Eager ops carry no scopes and an XLA cluster is one op: there the split says so instead
of guessing.

Plain functions over op rows; no TensorFlow import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from tfperf import units

PHASES = ("forward", "backward", "optimizer", "input", "other")

# Keras 3 optimizers scope their update ops under their lower-case class name (keras.optimizers.Adam ->
# "adam"); Keras 2 / tf.keras used the class name itself. Both are matched case-insensitively.
OPTIMIZER_SCOPES = frozenset(
    {
        "optimizer",
        "adam",
        "adamw",
        "sgd",
        "rmsprop",
        "adagrad",
        "adadelta",
        "adamax",
        "nadam",
        "ftrl",
        "lion",
        "lamb",
        "adafactor",
        "loss_scale_optimizer",
        "muon",
        "training",
    }
)
# Scopes TensorFlow puts gradient ops under: GradientTape in TF 2, tf.gradients in graph code.
BACKWARD_SCOPES = frozenset({"gradient_tape", "gradients", "backward"})
# Op types of tf.data: the iterator's own events ("Iterator::Root::..." of type Dataset) and the graph ops
# that pull the next element inside a tf.function.
INPUT_OP_TYPES = frozenset(
    {
        "Dataset",
        "IteratorGetNext",
        "IteratorGetNextSync",
        "IteratorGetNextAsOptional",
        "OptionalGetValue",
        "MultiDeviceIteratorGetNextFromShard",
        "InfeedDequeue",
        "InfeedDequeueTuple",
    }
)

_SUFFIX = re.compile(r"(?:_\d+)+")


@dataclass(frozen=True)
class OpRow:
    """One op of the profiler's framework op stats: its full (scoped) name, type and total self time."""

    name: str
    type: str
    self_time_us: float
    occurrences: int = 0
    host_or_device: str = "Host"


def scopes(name: str) -> list[str]:
    """The name-scope components of an op name, the op's own name last."""
    return [c for c in name.split("/") if c]


def _matches(component: str, name: str) -> bool:
    if component == name:
        return True
    return component.startswith(name) and _SUFFIX.fullmatch(component[len(name) :]) is not None


def phase_of(op_name: str, op_type: str = "") -> str:
    """forward | backward | optimizer | input | other, from the op's scopes (see the module docstring)."""
    if op_type in INPUT_OP_TYPES or op_name.startswith("Iterator::") or "IteratorGetNext" in op_name:
        return "input"
    parts = [p.lower() for p in scopes(op_name)[:-1]]  # the op's own name is no scope
    # Gradient ops live under gradient_tape/forward/...: the backward test must come before the forward one.
    if any(_strip(p) in BACKWARD_SCOPES for p in parts):
        return "backward"
    if any(_strip(p) in OPTIMIZER_SCOPES for p in parts):
        return "optimizer"
    if any(_strip(p) == "forward" for p in parts):
        return "forward"
    return "other"


def _strip(component: str) -> str:
    m = re.fullmatch(r"(.*?)((?:_\d+)*)", component)
    return m.group(1) if m and m.group(1) else component


def layer_of(op_name: str, layer_names: Iterable[str]) -> str | None:
    """The Keras layer an op belongs to: the deepest scope component matching a layer name (exactly, or with a
    graph-mode `_N` suffix; an exact match wins over a suffixed one). None outside every layer."""
    names = sorted(set(layer_names), key=len, reverse=True)  # "dense_1" before "dense"
    if not names:
        return None
    for component in reversed(scopes(op_name)[:-1]):
        if component in names:
            return component
        for n in names:
            if _matches(component, n):
                return n
    return None


def op_rows_from(rows: Iterable[dict | OpRow]) -> list[OpRow]:
    out = []
    for r in rows:
        if isinstance(r, OpRow):
            out.append(r)
        else:
            out.append(
                OpRow(
                    name=str(r.get("name", "")),
                    type=str(r.get("type", "")),
                    self_time_us=float(r.get("self_time_us") or 0.0),
                    occurrences=int(r.get("occurrences") or 0),
                    host_or_device=str(r.get("host_or_device") or "Host"),
                )
            )
    return out


def phase_split(
    rows: Iterable[dict | OpRow],
    layer_names: Iterable[str] | None = None,
    input_op_us: dict[str, float] | None = None,
) -> dict:
    """Self time per phase: {phase: {self_time_us, share}}, shares of all (non-idle) op self time.

    An op outside any phase scope but inside a Keras layer is forward work (a step without the harness's
    scopes). `input_op_us` is the time each op name ran on tf.data's own threads (a `map` function's ops, such
    as a py_function doing the decoding): that part of the op is input work, whatever its name says.
    """
    rows = [r for r in op_rows_from(rows) if r.type != "IDLE"]
    names = list(layer_names or [])
    input_op_us = dict(input_op_us or {})
    totals = {p: 0.0 for p in PHASES}
    for r in rows:
        phase = phase_of(r.name, r.type)
        if phase == "other" and names and layer_of(r.name, names) is not None:
            phase = "forward"
        on_data_threads = min(r.self_time_us, input_op_us.pop(r.name, 0.0)) if phase != "input" else 0.0
        totals["input"] += on_data_threads
        totals[phase] += r.self_time_us - on_data_threads
    whole = sum(totals.values())
    return {
        p: {"self_time_us": round(t, 3), "share": (t / whole) if whole > 0 else None}
        for p, t in totals.items()
    }


def layer_split(
    rows: Iterable[dict | OpRow], layer_names: Iterable[str], top: int | None = None
) -> list[dict]:
    """Self time per Keras layer, forward and backward together, most first: [{layer, self_time_us, share,
    forward_us, backward_us}]. Shares are of all (non-idle) op self time, so they sit beside the phase
    split."""
    rows = [r for r in op_rows_from(rows) if r.type != "IDLE"]
    names = list(layer_names)
    whole = sum(r.self_time_us for r in rows)
    per: dict[str, dict] = {}
    for r in rows:
        phase = phase_of(r.name, r.type)
        if phase == "other":
            phase = "forward"  # inside a layer but outside the phase scopes (checked just below)
        if phase in ("input", "optimizer"):  # the optimizer's scope names no layer
            continue
        layer = layer_of(r.name, names)
        if layer is None:
            continue
        entry = per.setdefault(
            layer, {"layer": layer, "self_time_us": 0.0, "forward_us": 0.0, "backward_us": 0.0}
        )
        entry["self_time_us"] += r.self_time_us
        if phase in ("forward", "backward"):
            entry[f"{phase}_us"] += r.self_time_us
        # The layer's biggest op, so a comparison between modes can name it ("conv_1's Conv2D").
        if r.self_time_us > entry.get("top_op", {}).get("self_time_us", -1.0):
            entry["top_op"] = {"name": r.name, "type": r.type, "self_time_us": round(r.self_time_us, 3)}
    out = sorted(per.values(), key=lambda e: e["self_time_us"], reverse=True)
    for e in out:
        e["share"] = e["self_time_us"] / whole if whole > 0 else None
        for k in ("self_time_us", "forward_us", "backward_us"):
            e[k] = round(e[k], 3)
    return out[:top] if top else out


def attribute(
    rows: Iterable[dict | OpRow],
    layer_names: Iterable[str] | None = None,
    top_layers: int = 10,
    input_op_us: dict[str, float] | None = None,
) -> dict:
    """The phase split and the top layers of one trace, with a note when the op names cannot support them."""
    rows = op_rows_from(rows)
    phases = phase_split(rows, layer_names, input_op_us)
    layers = layer_split(rows, layer_names or [], top_layers) if layer_names else []
    out: dict = {"phases": phases, "layers": layers}
    scoped = sum(r.self_time_us for r in rows if r.type != "IDLE" and "/" in r.name)
    total = sum(r.self_time_us for r in rows if r.type != "IDLE")
    # Below half, the split would describe the minority of the step without saying so.
    if total > 0 and scoped / total < 0.5:
        # Eager ops are recorded by type without scopes; an XLA cluster is a single op: nothing to split.
        out["attribution_note"] = (
            f"only {units.percent(scoped / total)} of op time carries name scopes "
            "(eager ops and XLA clusters do not): the phase and layer split covers that part"
        )
    if layer_names is None:
        out["attribution_note"] = (
            out.get("attribution_note", "") + "; " if out.get("attribution_note") else ""
        ) + "no layer names given: per-layer split skipped"
    return out


def phase_percentages(phases: dict) -> dict[str, float | None]:
    """{phase: percent} for a compact display."""
    return {p: (None if v.get("share") is None else round(100 * v["share"], 1)) for p, v in phases.items()}
