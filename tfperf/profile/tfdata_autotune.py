"""What tf.data AUTOTUNE chose: per stage of a pipeline, the parallelism and buffer sizes it settled on.

AUTOTUNE is a black box to its users: `prefetch(AUTOTUNE)` helped, but with what buffer? tf.data keeps the
model its autotuner optimizes, and `tf.data.experimental.get_model_proto(iterator)` returns it (checked on
TensorFlow 2.21, CPU): one node per stage (`Prefetch`, `ParallelMapV2`, `MapAndBatch` when tf.data fused a map
into its batch, `Range` ...), each with

    parameters       the tunables: `parallelism`, `buffer_size`, `cycle_length`; `state_value` is the value in
                     effect, `value` the model's last optimum, `min`/`max` its bounds
    processing_time  ns spent in the stage itself over `num_elements` elements
    buffered_*       what the stage holds now

and `optimization_params` the CPU and RAM budget it tuned within. Read it after the job's steps ran, so the
autotuner has had time to settle. `from_model_proto` is pure (any object shaped like the proto), so it is
testable on a hand-made model; `read(iterator)` imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Stage:
    """One stage of the pipeline as the autotuner last saw it."""

    name: str
    id: int
    parameters: dict[str, dict[str, float | None]] = field(
        default_factory=dict
    )  # {name: {value, state_value, min, max, tunable}}
    num_elements: int = 0
    processing_time_ns: int = 0
    buffered_elements: int | None = None
    buffered_bytes: int | None = None
    autotune: bool = True
    inputs: list[int] = field(default_factory=list)

    @property
    def time_per_element_us(self) -> float | None:
        return round(self.processing_time_ns / self.num_elements / 1e3, 3) if self.num_elements else None

    def chosen(self, name: str) -> float | None:
        """The value in effect for a tunable (its shared state), else the model's."""
        p = self.parameters.get(name)
        if not p:
            return None
        return p.get("state_value") if p.get("state_value") is not None else p.get("value")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["time_per_element_us"] = self.time_per_element_us
        # Only what the autotuner tunes: a FlatMap's fixed cycle_length is no choice of its.
        out["chosen"] = {k: self.chosen(k) for k, p in self.parameters.items() if p.get("tunable")}
        return out


@dataclass
class AutotuneReport:
    """The pipeline's stages from output to source, and the budget the autotuner worked within."""

    stages: list[Stage] = field(default_factory=list)
    cpu_budget: int | None = None
    ram_budget_bytes: int | None = None
    algorithm: str | None = None

    def stage(self, contains: str) -> Stage | None:
        return next((s for s in self.stages if contains.lower() in s.name.lower()), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": [s.to_json() for s in self.stages],
            "cpu_budget": self.cpu_budget,
            "ram_budget_bytes": self.ram_budget_bytes,
            "algorithm": self.algorithm,
        }


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    if f >= 2.0**62:  # int64's maximum: the parameter has no upper bound
        return None
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def from_model_proto(model: Any) -> AutotuneReport:
    """The stages of a `tensorflow.core.framework.model_pb2.ModelProto`, from the output (`model.output`)
    down."""
    nodes = {int(k): v for k, v in model.nodes.items()}
    order: list[int] = []
    todo = (
        [int(model.output)]
        if getattr(model, "output", None) in nodes or int(getattr(model, "output", 0)) in nodes
        else sorted(nodes)
    )
    while todo:
        nid = todo.pop(0)
        if nid in order or nid not in nodes:
            continue
        order.append(nid)
        todo.extend(int(i) for i in nodes[nid].inputs)
    stages = []
    for nid in order:
        n = nodes[nid]
        params = {
            p.name: {
                "value": _num(p.value),
                "state_value": _num(p.state_value),
                "min": _num(p.min),
                "max": _num(p.max),
                "tunable": bool(p.tunable),
            }
            for p in n.parameters
        }
        stages.append(
            Stage(
                name=n.name,
                id=nid,
                parameters=params,
                num_elements=int(n.num_elements),
                processing_time_ns=int(n.processing_time),
                buffered_elements=int(n.buffered_elements),
                buffered_bytes=int(n.buffered_bytes),
                autotune=bool(n.autotune),
                inputs=[int(i) for i in n.inputs],
            )
        )
    params = getattr(model, "optimization_params", None)
    algorithm = None
    if params is not None:
        try:
            from tensorflow.core.framework import model_pb2

            algorithm = model_pb2.AutotuneAlgorithm.Name(params.algorithm)
        except Exception:  # noqa: BLE001 - a name for the enum is a nicety
            algorithm = str(getattr(params, "algorithm", "")) or None
    return AutotuneReport(
        stages=stages,
        cpu_budget=int(params.cpu_budget) if params is not None else None,
        ram_budget_bytes=int(params.ram_budget) if params is not None else None,
        algorithm=algorithm,
    )


def read(iterator: Any) -> AutotuneReport:
    """The autotuner's model of a live tf.data iterator (raises when the iterator has none, e.g. autotune
    off)."""
    import tensorflow as tf

    return from_model_proto(tf.data.experimental.get_model_proto(iterator))


def record(iterator: Any) -> dict[str, Any] | None:
    """`profile.autotune` for a job: the report as JSON; None when the step reads no tf.data iterator; and
    when the model cannot be read (autotune off, as in tfperf's naive baseline), `{"error": ...}` saying why,
    so an absent table is never mistaken for a pipeline without tunables."""
    if iterator is None:
        return None
    try:
        return read(iterator).to_json()
    except Exception as exc:  # noqa: BLE001 - the job's measurement stands; the reason is recorded
        first = (str(exc).strip().splitlines() or [""])[0]
        return {"error": f"{type(exc).__name__}: {first[:300]}"}
