"""Inside an XLA executable: time per HLO op, as the XLA result's top ops.

framework_op_stats lists a compiled step as one op, the cluster (`__inference_step_678`, 100%). Underneath it
the runtime records one event per HLO op it runs; each event carries the stats `hlo_op` (the instruction's
name) and `hlo_module` (its module's). Checked on TensorFlow 2.21, CPU, a two-layer dense train step: the
events sit on the calling thread and on the Eigen pool's threads (`tf_numa_-1_Eigen/...`), `MatMul.8`,
`broadcast_maximum_fusion`, `wrapped_reduce` ...; on a GPU the kernel events on the device planes carry the
same two stats and are read the same way (not checked on a GPU here: this machine has none). xprof's own
`hlo_stats` tool comes back empty for a CPU trace, so tfperf reads the events itself.

An HLO op's self time is its events' duration minus the HLO op events nested inside them on the same line (a
`while` holds its body's ops). Its share is of the compiled step: the cluster's time in framework_op_stats, or
the summed HLO op time when that is larger (ops of one step can run at once on several threads), so the shares
of one executable's ops never sum past the step. The cluster's time no HLO op covers (the executable's own
dispatch) stays a row of its own, `<cluster> (outside HLO ops)`, so the phase split still adds up.

Each op is joined with its instruction (tfperf/profile/hlo_metadata.py): the TF ops it computes
(`source_ops`), the Keras layer and phase of its TF op name, its `hlo_category`, and for a fusion its kind and
size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tfperf.profile import attribution, hlo_metadata

# The module XLA compiles for `tf.function(jit_compile=True)` is named after the function:
# `a_inference_step_678__XlaMustCompile_true_config_proto_..._.7` runs the TF op `__inference_step_678`.
_MODULE_FUNCTION = re.compile(r"^a(_inference_.+?_\d+)__")


@dataclass
class HloOpTime:
    """The measured time of one HLO op of one module, summed over the profiled steps."""

    module: str
    name: str
    self_time_us: float = 0.0
    occurrences: int = 0
    host_or_device: str = "Host"


@dataclass
class HloTrace:
    """The HLO op events of a trace and the instructions of the modules they ran in."""

    ops: list[HloOpTime] = field(default_factory=list)
    instructions: dict[str, dict[str, hlo_metadata.Instruction]] = field(default_factory=dict)

    def instruction(self, op: HloOpTime) -> hlo_metadata.Instruction | None:
        return self.instructions.get(op.module, {}).get(op.name)


def module_function(module: str) -> str | None:
    """The TF function op an XLA module runs (`__inference_step_678`), or None for a module not named after
    one."""
    m = _MODULE_FUNCTION.match(module)
    return f"_{m.group(1)}" if m else None


def _stat_value(stat: Any, stat_names: dict[int, str]) -> Any:
    kind = stat.WhichOneof("value")
    if kind == "ref_value":
        return stat_names.get(stat.ref_value)
    return getattr(stat, kind) if kind else None


def _plane_ops(plane: Any, totals: dict[tuple[str, str], HloOpTime]) -> None:
    stat_names = {k: v.name for k, v in plane.stat_metadata.items()}
    where = "Device" if plane.name.startswith("/device:") else "Host"
    for line in plane.lines:
        events = []
        for ev in line.events:
            stats = list(ev.stats) + list(plane.event_metadata[ev.metadata_id].stats)
            values = {stat_names.get(s.metadata_id): s for s in stats}
            if "hlo_op" not in values or "hlo_module" not in values:
                continue
            op = _stat_value(values["hlo_op"], stat_names)
            module = _stat_value(values["hlo_module"], stat_names)
            if op and module:
                events.append((ev.offset_ps, ev.duration_ps, str(module), str(op)))
        # Self time: subtract the HLO op events nested inside an event on the same line (a while's body).
        events.sort(key=lambda e: (e[0], -e[1]))
        stack: list[list[Any]] = []  # [end_ps, key, child_ps]
        for start, duration, module, op in events:
            _close_nested(stack, totals, start)
            key = (module, op)
            entry = totals.setdefault(key, HloOpTime(module=module, name=op, host_or_device=where))
            entry.self_time_us += duration / 1e6
            entry.occurrences += 1
            if stack:
                stack[-1][2] += duration
            stack.append([start + duration, key, 0])
        _close_nested(stack, totals, 1 << 62)


def _close_nested(stack: list[list[Any]], totals: dict, until: int) -> None:
    """Pop the events that ended by `until`, subtracting the time of the events nested in each from its self
    time."""
    while stack and stack[-1][0] <= until:
        _end, key, child = stack.pop()
        totals[key].self_time_us -= child / 1e6


def read_hlo_trace(files: Iterable[Path]) -> HloTrace:
    """The HLO op times and module instructions of a profile run's xplane files (empty when no XLA ran)."""
    spaces = []
    for path in files:
        space = hlo_metadata.xplane_pb2().XSpace()
        space.ParseFromString(Path(path).read_bytes())
        spaces.append(space)
    totals: dict[tuple[str, str], HloOpTime] = {}
    for space in spaces:
        for plane in space.planes:
            if plane.name.startswith(("/host:CPU", "/device:")):
                _plane_ops(plane, totals)
    ops = [o for o in totals.values() if o.self_time_us > 0]
    return HloTrace(ops=ops, instructions=hlo_metadata.from_trace(spaces) if ops else {})


def expand_clusters(rows: list[attribution.OpRow], trace: HloTrace) -> tuple[list[attribution.OpRow], dict]:
    """framework_op_stats' rows with each XLA cluster replaced by its HLO ops.

    Returns (rows, {row name: detail}): an HLO op's row is named by its instruction (`MatMul.8`), typed by its
    TF op type (or its opcode), and the detail holds what top ops and the layer split add (`hlo_category`,
    `source_ops`, `layer` ...). A cluster whose module has no HLO op events stays as it was, and HLO ops of a
    module no row is named after are not added.
    """
    by_function: dict[str, list[HloOpTime]] = {}
    for op in trace.ops:
        by_function.setdefault(module_function(op.module) or op.module, []).append(op)
    out: list[attribution.OpRow] = []
    details: dict[str, dict] = {}
    for row in rows:
        ops = by_function.pop(row.name, None)
        if ops is None:
            out.append(row)
            continue
        hlo_us = sum(o.self_time_us for o in ops)
        step_us = max(row.self_time_us, hlo_us)
        for o in ops:
            ins = trace.instruction(o)
            name = o.name if o.name not in details else f"{o.module}/{o.name}"
            out.append(
                attribution.OpRow(
                    name=name,
                    type=(ins.op_type if ins and ins.op_type else ins.opcode if ins else "HLO"),
                    self_time_us=o.self_time_us,
                    occurrences=o.occurrences,
                    host_or_device=o.host_or_device,
                )
            )
            details[name] = {
                "hlo_module": o.module,
                "cluster": row.name,
                "compiled_step_us": round(step_us, 3),
                "op_name": ins.op_name if ins else "",
                "hlo_opcode": ins.opcode if ins else None,
                "hlo_category": ins.category if ins else "unknown",
                "source_ops": list(ins.source_ops) if ins else [],
                "fusion_kind": ins.fusion_kind if ins else None,
                "fused_ops": ins.fused_ops if ins and ins.opcode == "fusion" else None,
            }
        rest = row.self_time_us - hlo_us
        if rest > 0:  # the executable's own dispatch, outside every HLO op
            name = f"{row.name} (outside HLO ops)"
            out.append(
                attribution.OpRow(
                    name=name,
                    type=row.type,
                    self_time_us=rest,
                    occurrences=row.occurrences,
                    host_or_device=row.host_or_device,
                )
            )
            details[name] = {
                "cluster": row.name,
                "compiled_step_us": round(step_us, 3),
                "hlo_category": "runtime",
                "source_ops": [],
            }
    # HLO ops of a module no row names (auto-clustering's `cluster_N`, or a GPU's device rows already listing
    # the kernels) are left out: adding them beside the rows that hold their time would count it twice.
    return out, details


def scoped_rows(rows: list[attribution.OpRow], details: dict[str, dict]) -> list[attribution.OpRow]:
    """The rows renamed by the TF op name each HLO op computes, so the phase and layer split read its
    scopes."""
    return [
        attribution.OpRow(
            name=details[r.name]["op_name"] or r.name,
            type=r.type,
            self_time_us=r.self_time_us,
            occurrences=r.occurrences,
            host_or_device=r.host_or_device,
        )
        if r.name in details and details[r.name].get("op_name")
        else r
        for r in rows
    ]


def annotate_top_ops(
    top: list[dict], details: dict[str, dict], layer_names: Iterable[str] | None
) -> list[dict]:
    """Top op entries (today's keys) with the HLO keys added: `hlo_category`, `source_ops`, `layer`, `phase`
    from the TF op name, `fusion_kind`, `fused_ops`, and `share` of the compiled step."""
    names = list(layer_names or [])
    for entry in top:
        d = details.get(entry["name"])
        if d is None:
            continue
        op_name = d.get("op_name") or ""
        entry.update({k: v for k, v in d.items() if k not in ("op_name", "compiled_step_us")})
        entry["tf_op"] = op_name or None
        entry["layer"] = attribution.layer_of(op_name, names) if op_name and names else None
        if op_name:
            entry["phase"] = attribution.phase_of(op_name, entry.get("type", ""))
        if d.get("compiled_step_us"):
            entry["share_of_all_ops"] = entry.get("share")
            entry["share"] = entry["self_time_us"] / d["compiled_step_us"]
    return top


def fusions(
    rows: list[attribution.OpRow], details: dict[str, dict], layer_names: Iterable[str] | None, n: int = 15
) -> list[dict]:
    """The executable's fusions, most time first: [{name, fusion_kind, fused_ops, self_time_us, share,
    source_ops, layer}] (the HTML report's fusion table)."""
    names = list(layer_names or [])
    out = []
    for r in rows:
        d = details.get(r.name)
        if not d or d.get("hlo_opcode") != "fusion":
            continue
        op_name = d.get("op_name") or ""
        out.append(
            {
                "name": r.name,
                "fusion_kind": d.get("fusion_kind"),
                "fused_ops": d.get("fused_ops"),
                "hlo_category": d.get("hlo_category"),
                "self_time_us": round(r.self_time_us, 3),
                "share": r.self_time_us / d["compiled_step_us"] if d.get("compiled_step_us") else None,
                "source_ops": d.get("source_ops") or [],
                "layer": attribution.layer_of(op_name, names) if op_name and names else None,
            }
        )
    return sorted(out, key=lambda f: f["self_time_us"], reverse=True)[:n]


def compiled_step(rows: list[attribution.OpRow], details: dict[str, dict]) -> dict:
    """Per XLA cluster: {cluster: {compiled_step_us, hlo_op_us, outside_hlo_us, hlo_ops}}, summed over the
    profiled steps: how much of the compiled step the HLO ops account for."""
    out: dict[str, dict] = {}
    for r in rows:
        d = details.get(r.name)
        if not d or not d.get("cluster"):
            continue
        entry = out.setdefault(
            d["cluster"],
            {
                "compiled_step_us": d["compiled_step_us"],
                "hlo_op_us": 0.0,
                "outside_hlo_us": 0.0,
                "hlo_ops": 0,
            },
        )
        if d.get("hlo_category") == "runtime":
            entry["outside_hlo_us"] = round(entry["outside_hlo_us"] + r.self_time_us, 3)
        else:
            entry["hlo_op_us"] = round(entry["hlo_op_us"] + r.self_time_us, 3)
            entry["hlo_ops"] += 1
    return out
