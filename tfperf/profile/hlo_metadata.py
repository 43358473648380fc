"""What each instruction of an XLA executable computes, in the user's terms: its TF op and Keras layer.

XLA keeps, on every HLO instruction, the TensorFlow op it was lowered from (`metadata={op_type="MatMul"
op_name="forward/functional_1/dense_0_1/MatMul"}`), and a fusion keeps it on each instruction it fused. Two
sources hold the optimized module (the one that runs), checked on TensorFlow 2.21, CPU:

    the trace       the profiler writes every executable that ran during the session as an `HloProto` (stat
                    "Hlo Proto" of the `/host:metadata` plane, keyed by module name), so a profile read-out
                    needs nothing but the trace (`from_trace`)
    the function    `fn.experimental_get_compiler_ir(*args)(stage="optimized_hlo")`, the same module as text
                    (`from_text`)

Both give {instruction name: Instruction}. The names are those of the trace's per-HLO-op events (`MatMul.8`,
`broadcast_maximum_fusion`, `wrapped_reduce`), so the two join on them. No TensorFlow import at module level.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from tfperf.profile.graph_stats import called, hlo_computations

# Opcodes that do no work of their own at run time (a fusion's inputs, tuple plumbing, constants).
NO_WORK = frozenset({"parameter", "constant", "tuple", "get-tuple-element", "bitcast"})
# hlo_category: what kind of work an instruction is. A fusion that wraps one instruction (XLA:CPU names them
# `wrapped_<op>`) is that instruction's kind; any other fusion is "fusion".
CATEGORIES: dict[str, frozenset[str]] = {
    "dot": frozenset({"dot"}),
    "convolution": frozenset({"convolution"}),
    "reduce": frozenset({"reduce", "reduce-window", "reduce-precision", "select-and-scatter"}),
    "copy": frozenset({"copy", "copy-start", "copy-done", "transpose"}),
    "data movement": frozenset(
        {
            "slice",
            "dynamic-slice",
            "dynamic-update-slice",
            "gather",
            "scatter",
            "concatenate",
            "pad",
            "broadcast",
            "reshape",
            "reverse",
            "iota",
            "sort",
        }
    ),
    "control flow": frozenset({"while", "conditional", "call"}),
    "collective": frozenset(
        {
            "all-reduce",
            "all-gather",
            "all-to-all",
            "reduce-scatter",
            "collective-permute",
            "all-reduce-start",
            "all-reduce-done",
            "all-gather-start",
            "all-gather-done",
        }
    ),
    "custom call": frozenset({"custom-call"}),
    "random": frozenset({"rng", "rng-bit-generator", "rng-get-and-update-state"}),
}


@dataclass(frozen=True)
class Instruction:
    """One instruction of an optimized HLO module, with the TF ops it computes.

    `op_type`/`op_name` are its own metadata (for a fusion, its root's); `source_ops` every distinct TF op
    name it computes (a fusion's fused instructions' too), its own first; `fused_ops` how many instructions a
    fusion fused (work instructions only, not its parameters)."""

    name: str
    opcode: str
    op_type: str = ""
    op_name: str = ""
    fusion_kind: str | None = None
    source_ops: tuple[str, ...] = ()
    fused_ops: int = 0
    fused_opcodes: tuple[str, ...] = field(default=(), repr=False)
    # Where op_type/op_name came from: "own" (its metadata, or its fused instructions'), "consumer" (XLA left
    # none, and all it feeds is one TF op), or "" (unattributed).
    metadata_from: str = "own"

    @property
    def category(self) -> str:
        return category(self.opcode, self.fused_opcodes)


def category(opcode: str, fused_opcodes: Iterable[str] = ()) -> str:
    """fusion | dot | convolution | reduce | copy | data movement | control flow | collective | custom call |
    random | elementwise, from an instruction's opcode (and a fusion's fused opcodes)."""
    if opcode == "fusion":
        work = [op for op in fused_opcodes if op not in NO_WORK]
        if len(work) != 1:
            return "fusion"
        opcode = work[0]
    for name, opcodes in CATEGORIES.items():
        if opcode in opcodes:
            return name
    return "elementwise"


@dataclass
class _Raw:
    name: str
    opcode: str
    op_type: str
    op_name: str
    fusion_kind: str | None
    calls: list[str]
    operands: list[str] = field(default_factory=list)


def _build(computations: dict[str, list[_Raw]], entry_names: Iterable[str]) -> dict[str, Instruction]:
    """Instructions of the computations that run (entry, control-flow bodies), with their fusions resolved."""

    def fused(comp: str, seen: set[str]) -> list[_Raw]:
        out: list[_Raw] = []
        for raw in computations.get(comp, []):
            out.append(raw)
            if raw.opcode == "fusion":
                for callee in raw.calls:
                    if callee not in seen:
                        seen.add(callee)
                        out.extend(fused(callee, seen))
        return out

    result: dict[str, Instruction] = {}
    todo, done = list(entry_names), set()
    while todo:
        comp = todo.pop()
        if comp in done:
            continue
        done.add(comp)
        for raw in computations.get(comp, []):
            inner: list[_Raw] = []
            if raw.opcode == "fusion":
                for callee in raw.calls:
                    inner.extend(fused(callee, {callee}))
            elif raw.opcode in CATEGORIES["control flow"]:
                todo.extend(raw.calls)  # bodies and branches run as their own instructions
            names = [raw.op_name] + [r.op_name for r in inner if r.opcode not in NO_WORK]
            work = [r for r in inner if r.opcode not in NO_WORK and r.opcode != "fusion"]
            # A fusion XLA made after lowering (XLA:CPU's `wrapped_reduce-window`) carries no metadata of its
            # own: it computes what its fused instructions do, so it takes the first of theirs.
            own = raw if raw.op_name else next((r for r in work if r.op_name), raw)
            result[raw.name] = Instruction(
                name=raw.name,
                opcode=raw.opcode,
                op_type=own.op_type,
                op_name=own.op_name,
                fusion_kind=raw.fusion_kind,
                source_ops=tuple(dict.fromkeys(n for n in names if n)),
                fused_ops=len(work),
                fused_opcodes=tuple(r.opcode for r in work),
            )
        _borrow_metadata(computations.get(comp, []), result)
    return result


def _borrow_metadata(raws: list[_Raw], result: dict[str, Instruction]) -> None:
    """An instruction XLA left without any metadata takes the TF op it feeds: following its users through
    other instructions without metadata (tuple plumbing, intermediate fusions) to the first ones that have
    some, when those all name one TF op, the instruction is an intermediate of that op. Checked on a CNN's
    train step (TF
    2.21, CPU): a MaxPool gradient lowers to a variadic reduce-window over iotas, then a concatenate, then a
    scatter; only the scatter keeps `MaxPoolGrad`'s metadata. Feeding several ops (or only the output) leaves
    it unattributed rather than guessed. `metadata_from` says which it was."""
    users: dict[str, list[str]] = {}
    for raw in raws:
        for operand in raw.operands:
            users.setdefault(operand, []).append(raw.name)

    def named(ins: Instruction | None) -> bool:
        return ins is not None and bool(ins.op_name) and ins.metadata_from == "own"

    def consumers(name: str) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        todo, seen = list(users.get(name, [])), set()
        while todo:
            u = todo.pop()
            if u in seen:
                continue
            seen.add(u)
            ins = result.get(u)
            if named(ins):
                found.add((ins.op_type, ins.op_name))
            else:
                todo.extend(users.get(u, []))
        return found

    for raw in raws:
        ins = result.get(raw.name)
        if ins is None or ins.op_name or raw.opcode in NO_WORK:
            continue
        fed = consumers(raw.name)
        if len(fed) == 1:
            op_type, op_name = fed.pop()
            result[raw.name] = dataclasses.replace(
                ins, op_type=op_type, op_name=op_name, metadata_from="consumer"
            )
        else:
            result[raw.name] = dataclasses.replace(ins, metadata_from="")


def from_proto(module: Any) -> dict[str, Instruction]:
    """{name: Instruction} of an `xla.HloModuleProto` (the trace's `HloProto.hlo_module`)."""
    by_id = {c.id: c.name for c in module.computations}
    names = {i.id: i.name for c in module.computations for i in c.instructions}
    computations = {
        c.name: [
            _Raw(
                name=i.name,
                opcode=i.opcode,
                op_type=i.metadata.op_type,
                op_name=i.metadata.op_name,
                fusion_kind=(i.fusion_kind or None) if i.opcode == "fusion" else None,
                calls=[by_id[cid] for cid in i.called_computation_ids if cid in by_id],
                operands=[names[o] for o in i.operand_ids if o in names],
            )
            for i in c.instructions
        ]
        for c in module.computations
    }
    return _build(computations, [by_id.get(module.entry_computation_id, "")])


_META = re.compile(r"metadata=\{([^}]*)\}")
_KV = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_KIND = re.compile(r"\bkind=(k\w+)")


def from_text(text: str) -> dict[str, Instruction]:
    """{name: Instruction} of an HLO module's text
    (`experimental_get_compiler_ir(...)(stage="optimized_hlo")`), read with graph_stats' reader of the text
    format."""
    computations: dict[str, list[_Raw]] = {}
    entry: list[str] = []
    for comp, is_entry, instructions in hlo_computations(text):
        if is_entry:
            entry.append(comp)
        rows = computations.setdefault(comp, [])
        for name, opcode, body in instructions:
            meta = dict(_KV.findall((_META.search(body) or [None, ""])[1] or ""))
            kind = _KIND.search(body)
            start = body.find(f" {opcode}(")
            args = (
                body[start + len(opcode) + 2 :].split(")", 1)[0] if start >= 0 else ""
            )  # operands after `opcode(`
            rows.append(
                _Raw(
                    name=name,
                    opcode=opcode,
                    op_type=meta.get("op_type", ""),
                    op_name=meta.get("op_name", ""),
                    fusion_kind=kind.group(1) if kind else None,
                    calls=[callee for _, callee in called(body)],
                    operands=re.findall(r"%([\w.\-]+)", args),
                )
            )
    return _build(computations, entry)


def xplane_pb2() -> Any:
    """The XSpace protobuf module, wherever this TensorFlow keeps it."""
    try:
        from tsl.profiler.protobuf import xplane_pb2 as module  # type: ignore[import-not-found]
    except ImportError:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2 as module  # type: ignore[no-redef]
    return module


def _hlo_pb2() -> Any:
    try:
        from xla.service import hlo_pb2  # type: ignore[import-not-found]
    except ImportError:
        from tensorflow.compiler.xla.service import hlo_pb2  # type: ignore[no-redef]
    return hlo_pb2


def from_trace(spaces: Iterable[Any]) -> dict[str, dict[str, Instruction]]:
    """{module name: {instruction name: Instruction}} of every HLO module an XSpace's metadata plane holds."""
    hlo_pb2 = None
    out: dict[str, dict[str, Instruction]] = {}
    for space in spaces:
        for plane in space.planes:
            if plane.name != "/host:metadata":
                continue
            stat_names = {k: v.name for k, v in plane.stat_metadata.items()}
            for meta in plane.event_metadata.values():
                for stat in meta.stats:
                    if stat_names.get(stat.metadata_id) != "Hlo Proto" or not stat.bytes_value:
                        continue
                    hlo_pb2 = hlo_pb2 or _hlo_pb2()
                    proto = hlo_pb2.HloProto()
                    proto.ParseFromString(stat.bytes_value)
                    out[proto.hlo_module.name] = from_proto(proto.hlo_module)
    return out
