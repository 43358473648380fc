"""What tfperf reads out of a trace, with xprof's own converters (`xspace_to_tool_data`, the code behind
TensorBoard's profile tabs), so the numbers match what a user sees there:

    input_pipeline_analyzer  -> step-time breakdown (ms), input-bound %, the profiler's input conclusion text
    framework_op_stats       -> top ops by self time (IDLE excluded), and per-layer / per-phase attribution
    overview_page            -> eager-op, device-idle and 16-bit compute percentages
    memory_profile           -> peak bytes in use per allocator

Each converter returns (bytes, content type); the tables are Google DataTable JSON (`cols`, `rows`, `p`), read
by tfperf/profile/xprof_tables.py and parsed per tool by tfperf/profile/xprof_tools.py. Eager traces and
tf.data threads are read from the host trace's events here. A read-out failure never loses the trace: the
reason goes into the profile dict (`readout_error`), and the logdir still opens in TensorBoard.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from tfperf.profile import attribution, hlo_metadata, hlo_ops, xprof_tables
from tfperf.profile.xprof_tools import (
    TOP_OPS,
    parse_input_pipeline,
    parse_memory_profile,
    parse_op_stats,
    parse_overview,
    top_ops,
)

# xprof's memory profile is built from the allocation events TensorFlow's BFC allocators write into the trace:
# the GPU's, and on the CPU only oneDNN's (TensorFlow turns oneDNN on by default only on some x86 CPUs; on an
# AMD EPYC without AVX-512 it was off and the memory profile came back empty). Say so rather than show
# nothing.
NO_ALLOCATION_EVENTS = (
    "the trace holds no memory allocation events, so xprof has no memory profile: on the CPU "
    "TensorFlow records them only with oneDNN on (TF_ENABLE_ONEDNN_OPTS=1); peak_memory_bytes "
    "(process RSS growth) still measures the job"
)
TOOLS = ("input_pipeline_analyzer", "framework_op_stats", "overview_page", "memory_profile")


def read_profile(run_dir: str | Path, layer_names: Iterable[str] | None = None) -> dict:
    """Everything tfperf reads out of one profile run folder (all its hosts' xplane files together).

    Never raises for a bad or partial read-out: each failing tool's reason lands in `readout_errors`, and
    `readout_error` summarizes them.
    """
    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("*.xplane.pb"))
    out: dict = {
        "run": run_dir.name,
        "profile_run": run_dir.name,
        "hosts": [f.name.removesuffix(".xplane.pb") for f in files],
        "xplane_files": [str(f) for f in files],
    }
    if not files:
        out["readout_error"] = f"no *.xplane.pb in {run_dir}"
        return out
    t0 = time.perf_counter()
    errors: dict[str, str] = {}
    raw: dict[str, Any] = {}
    try:
        importlib.import_module(
            "xprof.convert.raw_to_tool_data"
        )  # only whether it imports: xprof_tables calls it
    except Exception as exc:  # noqa: BLE001 - the trace stays; TensorBoard can still open it elsewhere
        out["readout_error"] = (
            f"xprof is not importable ({type(exc).__name__}: {exc}); pip install tensorboard-plugin-profile"
        )
        return out
    for tool in TOOLS:
        if tool == "memory_profile":
            continue
        try:
            raw[tool] = xprof_tables.tool_data(files, tool)
        except Exception as exc:  # noqa: BLE001 - one tool's failure is recorded; the others still read
            errors[tool] = f"{type(exc).__name__}: {str(exc)[:300]}"
    # The memory profile takes one host at a time (xprof asserts on several): read each, keep the largest
    # peak.
    peaks: dict[str, int] = {}
    for f in files:
        try:
            memory = parse_memory_profile(xprof_tables.tool_data([f], "memory_profile"))
        except Exception as exc:  # noqa: BLE001 - recorded in the read-out's errors
            errors["memory_profile"] = f"{f.name}: {type(exc).__name__}: {str(exc)[:300]}"
            continue
        host = f.name.removesuffix(".xplane.pb")
        for allocator, peak in memory["memory_peak_by_allocator"].items():
            peaks[allocator if len(files) == 1 else f"{host}/{allocator}"] = peak
    if peaks or "memory_profile" not in errors:
        out.update(
            {"memory_peak_bytes": max(peaks.values()) if peaks else None, "memory_peak_by_allocator": peaks}
        )
    if not peaks and "memory_profile" not in errors:
        out["memory_note"] = NO_ALLOCATION_EVENTS
    parsers = {
        "input_pipeline_analyzer": parse_input_pipeline,
        "framework_op_stats": None,
        "overview_page": parse_overview,
    }
    for tool, parse in parsers.items():
        if tool not in raw or parse is None:
            continue
        try:
            out.update(parse(raw[tool]))
        except Exception as exc:  # noqa: BLE001 - recorded in the read-out's errors
            errors[tool] = f"unreadable output: {type(exc).__name__}: {exc}"[:300]
    if "framework_op_stats" in raw:
        try:
            rows = parse_op_stats(raw["framework_op_stats"])
            source = "framework_op_stats"
            if _only_unscoped_zero_time(rows):
                # Eager ops: xprof's op stats list them with zero self time; the host trace has their
                # "EagerLocalExecute: <type>" events, which do carry the time.
                eager = eager_op_rows(files)
                if eager:
                    rows = [r for r in rows if r.type == "Dataset"] + eager
                    source = "eager_execute_events"
            try:
                input_op_us = data_thread_op_time(files)
            except Exception as exc:  # noqa: BLE001 - the split then counts only iterator ops as input
                input_op_us = {}
                errors["tf_data_threads"] = f"{type(exc).__name__}: {exc}"[:300]
            rows, hlo = _with_hlo_ops(files, rows, errors)
            names = list(layer_names) if layer_names is not None else None
            # An executable's own dispatch (outside every HLO op) stays in the split below, not among the top
            # ops.
            runtime = {n for n, d in hlo.items() if d.get("hlo_category") == "runtime"}
            ranked = [
                o
                for o in top_ops(rows, n=TOP_OPS + len(runtime), input_op_us=input_op_us)
                if o["name"] not in runtime
            ][:TOP_OPS]
            out["top_ops"] = hlo_ops.annotate_top_ops(ranked, hlo, names)
            out["op_source"] = source if not hlo else f"{source}+hlo_op_events"
            if hlo:
                out["fusions"] = hlo_ops.fusions(rows, hlo, names)
                out["compiled_step"] = hlo_ops.compiled_step(rows, hlo)
            # Under XLA the split reads each HLO op's TF op name (its scopes), not the instruction's.
            out.update(
                attribution.attribute(
                    hlo_ops.scoped_rows(rows, hlo), layer_names=names, input_op_us=input_op_us
                )
            )
        except Exception as exc:  # noqa: BLE001 - recorded in the read-out's errors
            errors["framework_op_stats"] = f"unreadable output: {type(exc).__name__}: {exc}"[:300]
    if errors:
        out["readout_errors"] = errors
        out["readout_error"] = "; ".join(f"{k}: {v}" for k, v in errors.items())
    out["readout_s"] = round(time.perf_counter() - t0, 4)
    return out


def _with_hlo_ops(
    files: list[Path], rows: list[attribution.OpRow], errors: dict[str, str]
) -> tuple[list[attribution.OpRow], dict[str, dict]]:
    """The op rows with each XLA cluster replaced by its HLO ops (tfperf/profile/hlo_ops.py), and their
    details; the rows unchanged when no XLA executable ran or its events cannot be read (the reason in
    `errors`)."""
    try:
        trace = hlo_ops.read_hlo_trace(files)
        return hlo_ops.expand_clusters(rows, trace) if trace.ops else (rows, {})
    except Exception as exc:  # noqa: BLE001 - the cluster-level rows still stand
        errors["hlo_ops"] = f"{type(exc).__name__}: {exc}"[:300]
        return rows, {}


def data_thread_op_time(files: Iterable[Path]) -> dict[str, float]:
    """{op name: µs} of TensorFlow ops that ran on tf.data's threads (`tf_data_*` lines of the host trace,
    where an op event is named "<op name>:<op type>"): the work of dataset functions such as a `map`."""
    out: dict[str, float] = {}
    for line_name, name, duration_ps in _host_events(files):
        if not line_name.startswith("tf_data"):
            continue
        op, sep, op_type = name.rpartition(":")
        if sep and op and op_type and "::" not in name and " " not in name:
            out[op] = out.get(op, 0.0) + duration_ps / 1e6
    return out


def _host_events(files: Iterable[Path]) -> Iterator[tuple[str, str, int]]:
    """(line name, event name, duration in ps) of every event on the host planes of the traces."""
    xplane_pb2 = _xplane_pb2()
    for path in files:
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(path).read_bytes())
        for plane in space.planes:
            if not plane.name.startswith("/host:"):
                continue
            for line in plane.lines:
                for ev in line.events:
                    yield line.name, plane.event_metadata[ev.metadata_id].name, ev.duration_ps


def _only_unscoped_zero_time(rows: list[attribution.OpRow]) -> bool:
    """Eager traces: every op except tf.data's own shows zero self time (or is not listed at all)."""
    ops = [r for r in rows if r.type not in ("IDLE", "Dataset")]
    return sum(r.self_time_us for r in ops) == 0


def eager_op_rows(files: Iterable[Path]) -> list[attribution.OpRow]:
    """Per op type, the time of the host trace's `EagerLocalExecute: <type>` events (dispatch plus kernel:
    what an eager op costs), as op rows named by type."""
    totals: dict[str, list[float]] = {}
    for _line, name, duration_ps in _host_events(files):
        if name.startswith("EagerLocalExecute: "):
            entry = totals.setdefault(name.split(": ", 1)[1], [0.0, 0])
            entry[0] += duration_ps / 1e6
            entry[1] += 1
    return [
        attribution.OpRow(name=f"EagerLocalExecute: {t}", type=t, self_time_us=us, occurrences=int(n))
        for t, (us, n) in totals.items()
    ]


def _xplane_pb2():
    return hlo_metadata.xplane_pb2()


# ------------------------------------------------------------------------------------------------------------
# A one-screen summary (capture, doctor)


def summarize(profile: dict, top: int = 5) -> str:
    lines = []
    if profile.get("readout_error"):
        lines.append(f"read-out problem: {profile['readout_error']}")
    if profile.get("input_bound_percent") is not None:
        lines.append(f"input-bound: {profile['input_bound_percent']:.1f}% of the step")
    if profile.get("input_conclusion"):
        lines.append(f"profiler: {profile['input_conclusion']}")
    b = profile.get("step_time_breakdown_ms") or {}
    if b.get("average") is not None:
        parts = ", ".join(
            f"{k.replace('_', ' ')} {v:.2f}" for k, v in b.items() if k not in ("average", "total") and v
        )
        lines.append(f"step {b['average']:.2f} ms: {parts}")
    phases = profile.get("phases") or {}
    if phases:
        pct = attribution.phase_percentages(phases)
        lines.append("phases: " + ", ".join(f"{k} {v:.0f}%" for k, v in pct.items() if v))
    for layer in (profile.get("layers") or [])[:top]:
        lines.append(
            f"  layer {layer['layer']}: {layer['self_time_us']:.0f} us ({(layer['share'] or 0) * 100:.0f}%)"
        )
    ops = profile.get("top_ops") or []
    if ops:
        lines.append("top ops by self time:")
        for op in ops[:top]:
            lines.append(
                f"  {(op['share'] or 0) * 100:5.1f}%  {op['self_time_us']:>10.0f} us  {op['type']:<24} "
                f"{op['name']}"
            )
    if profile.get("memory_peak_bytes"):
        lines.append(f"memory peak: {profile['memory_peak_bytes'] / 1e6:.1f} MB")
    return "\n".join(lines)
