"""The profiled pass and what tfperf reads out of its trace.

`profile_job` runs a few steps under the TensorFlow profiler, each inside a step marker
(`tf.profiler.experimental.Trace(name, step_num=i, _r=1)`) so TensorBoard's step-time graph and the
input-pipeline analysis work, and writes `<logdir>/plugins/profile/<timestamp>/<host>.xplane.pb`: TensorBoard
shows it as run `<tb-run>/<timestamp>`. It runs after the timed pass: profiling changes timing.

`read_profile` reads a trace with xprof's own converters (`xspace_to_tool_data`, the code behind TensorBoard's
profile tabs), so the numbers match what a user sees there:

    input_pipeline_analyzer  -> step-time breakdown (ms), input-bound %, the profiler's input conclusion text
    framework_op_stats       -> top ops by self time (IDLE excluded), and per-layer / per-phase attribution
    overview_page            -> eager-op, device-idle and 16-bit compute percentages
    memory_profile           -> peak bytes in use per allocator

Each converter returns (bytes, content type); the tables are Google DataTable JSON (`cols`, `rows`, `p`), read
by tfperf/profile/xprof_tables.py.
A read-out failure never loses the trace: the reason goes into the profile dict (`readout_error`), and the
logdir still opens in TensorBoard. Failing to capture at all raises ProfileError.

The parsers below are plain functions over that JSON, testable without TensorFlow.
"""

from __future__ import annotations

import importlib
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tfperf.errors import TfperfError
from tfperf.profile import attribution, hlo_metadata, hlo_ops, xprof_tables

TOP_OPS = 10
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
# Step-time breakdown keys: ours -> the analyzer's `<key>_ms_avg` property.
BREAKDOWN = {
    "host_compute": "host_compute_time_ms_avg",
    "input": "infeed_time_ms_avg",
    "device_compute": "device_compute_time_ms_avg",
    "device_to_device": "device_to_device_time_ms_avg",
    "device_collectives": "device_collectives_time_ms_avg",
    "kernel_launch": "kernel_launch_time_ms_avg",
    "output": "outfeed_time_ms_avg",
    "compile": "compile_time_ms_avg",
    "other": "other_time_ms_avg",
    "average": "steptime_ms_average",
}


class ProfileError(TfperfError):
    """The profiler produced no trace (it could not start, or wrote nothing under plugins/profile/)."""


# ------------------------------------------------------------------------------------------------------------
# Capture


def stop_profiler_quietly() -> bool:
    """Stop a running profiler session, if any (only one can run per process). True when one was stopped."""
    import tensorflow as tf

    try:
        tf.profiler.experimental.stop()
        return True
    except Exception:  # noqa: BLE001 - UnavailableError "no profiler running" is the normal case
        return False


def profile_job(
    step: Callable[[int], Any],
    steps: int,
    trace_name: str,
    logdir: str | Path,
    layer_names: Iterable[str] | None = None,
) -> dict:
    """Run `steps` complete steps under the profiler, then read the trace out.

    `step(i)` runs ONE complete step (next batch, the step function, completion forced). `trace_name` is the
    step marker ("train" / "infer"), which the input-pipeline analyzer keys on. `layer_names` (the model's
    top-level Keras layers) enable the per-layer split.
    """
    logdir = Path(logdir)
    run_dir, profile_wall_s = trace_steps(step, steps, trace_name, logdir)
    out = read_profile(run_dir, layer_names=layer_names)
    # TensorBoard's profile tab lists this trace as "<tb-run>/<timestamp>" when served from the logdir's
    # parent.
    out.update(
        {
            "logdir": str(logdir),
            "tb_run": logdir.name,
            "run": f"{logdir.name}/{run_dir.name}",
            "profile_run": run_dir.name,
            "steps": steps,
            "trace_name": trace_name,
            "profile_wall_s": round(profile_wall_s, 4),
        }
    )
    return _ordered(out)


def trace_steps(
    step: Callable[[int], Any], steps: int, trace_name: str, logdir: str | Path
) -> tuple[Path, float]:
    """Run `steps` steps, each in a step marker, inside a local profiler session of this process.

    Returns the run folder the profiler wrote (`<logdir>/plugins/profile/<timestamp>/`) and the session's wall
    time. Raises ProfileError when the profiler cannot start or writes nothing.
    """
    import tensorflow as tf

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    stop_profiler_quietly()
    started_wall = time.time()
    t0 = time.perf_counter()
    try:
        tf.profiler.experimental.start(str(logdir))
    except Exception as exc:  # noqa: BLE001 - e.g. a session started elsewhere in this process
        stop_profiler_quietly()
        try:
            tf.profiler.experimental.start(str(logdir))
        except Exception as exc2:
            raise ProfileError(
                f"{logdir}: the TensorFlow profiler did not start ({type(exc2).__name__}: "
                f"{str(exc2).strip().splitlines()[0] if str(exc2).strip() else exc}); run `tfperf doctor`"
            ) from exc2
    try:
        for i in range(steps):
            with tf.profiler.experimental.Trace(trace_name, step_num=i, _r=1):
                step(i)
    finally:
        try:
            tf.profiler.experimental.stop()
        except Exception as exc:
            raise ProfileError(f"{logdir}: the profiler did not stop cleanly: {exc}") from exc
    wall_s = time.perf_counter() - t0
    run_dir = newest_run_dir(logdir, since=started_wall - 2)
    if run_dir is None:
        raise ProfileError(
            f"{logdir}: the profiler wrote no trace under plugins/profile/ "
            "(run `tfperf doctor` to check the profiler)"
        )
    return run_dir, wall_s


def newest_run_dir(logdir: str | Path, since: float | None = None) -> Path | None:
    """The newest `<logdir>/plugins/profile/<timestamp>/` holding an xplane.pb (written after `since`, if
    given)."""
    root = Path(logdir) / "plugins" / "profile"
    candidates = []
    for run in root.glob("*") if root.is_dir() else []:
        files = list(run.glob("*.xplane.pb"))
        if not files:
            continue
        mtime = max(f.stat().st_mtime for f in files)
        if since is None or mtime >= since:
            candidates.append((mtime, run.name, run))
    return max(candidates)[2] if candidates else None


# ------------------------------------------------------------------------------------------------------------
# Read-out


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


# "...HIGHLY input-bound because 97.7% of the total step time sampled is waiting for input." Other conclusions
# quote a different share ("47.7% ... is spent on 'All Others' time"), which is not input time.
_INPUT_PERCENT = re.compile(r"([0-9.]+)\s*%\s*of the total step time sampled is waiting for input")


def parse_input_pipeline(data: Any) -> dict:
    """From input_pipeline_analyzer's tables: the step-time breakdown, input-bound % and conclusion.

    The analysis is the table whose properties hold `steptime_ms_average` (xprof 2.24 puts it second, after an
    empty table).
    """
    table = next((t for t in xprof_tables.tables(data) if "steptime_ms_average" in (t.get("p") or {})), None)
    if table is None:
        raise ValueError("no step-time analysis in input_pipeline_analyzer output")
    p = table["p"]
    breakdown = {k: xprof_tables.number(p.get(v)) for k, v in BREAKDOWN.items()}
    breakdown["total"] = breakdown["average"]
    steps = xprof_tables.cells(table)
    step_ms = [xprof_tables.number(s.get("stepTimeMs")) or 0.0 for s in steps]
    input_ms = [xprof_tables.number(s.get("infeedTimeMs")) or 0.0 for s in steps]
    conclusion = (p.get("input_conclusion") or "").strip() or None
    # The analyzer's own number (in its conclusion) first; it rounds the per-step sums the same way we would.
    m = _INPUT_PERCENT.search(conclusion or "")
    if m:
        percent = float(m.group(1))
    elif sum(step_ms) > 0:
        percent = 100 * sum(input_ms) / sum(step_ms)
    else:
        percent = None
    return {
        "input_bound_percent": percent,
        "input_conclusion": conclusion,
        "input_next_step": (p.get("summary_nextstep") or "").strip() or None,
        "step_time_breakdown_ms": breakdown,
        "step_time_ms": breakdown["average"],
        "host_compute_ms": breakdown["host_compute"],
        "device_compute_ms": breakdown["device_compute"],
        "kernel_launch_ms": breakdown["kernel_launch"],
        "profiled_steps": len(steps),
        "hardware_type": p.get("hardware_type"),
    }


def parse_op_stats(data: Any) -> list[attribution.OpRow]:
    """framework_op_stats' first table (the one including IDLE) as op rows. On a GPU both host and device ops
    are listed; the device rows are what the step waits for, so they are kept alone when present."""
    number = xprof_tables.number
    rows = []
    for c in xprof_tables.cells(xprof_tables.op_stats_table(data)):
        rows.append(
            attribution.OpRow(
                name=str(c.get("operation") or ""),
                type=str(c.get("type") or ""),
                self_time_us=number(c.get("total_self_time")) or 0.0,
                occurrences=int(number(c.get("occurrences")) or 0),
                host_or_device=str(c.get("host_or_device") or "Host"),
            )
        )
    device = [r for r in rows if r.host_or_device == "Device" and r.type != "IDLE"]
    return device if device and sum(r.self_time_us for r in device) > 0 else rows


def top_ops(
    rows: Iterable[attribution.OpRow], n: int = TOP_OPS, input_op_us: dict[str, float] | None = None
) -> list[dict]:
    """The n ops with the most self time, IDLE excluded; share is of all non-idle op self time. `phase` is
    where the op's time went (an op that mostly ran on tf.data threads is input)."""
    rows = [r for r in rows if r.type != "IDLE" and r.name != "IDLE"]
    total = sum(r.self_time_us for r in rows)
    best = sorted(rows, key=lambda r: r.self_time_us, reverse=True)[:n]
    input_op_us = input_op_us or {}

    def phase(r: attribution.OpRow) -> str:
        if input_op_us.get(r.name, 0.0) > r.self_time_us / 2:
            return "input"
        return attribution.phase_of(r.name, r.type)

    return [
        {
            "name": r.name,
            "type": r.type,
            "self_time_us": round(r.self_time_us, 3),
            "share": (r.self_time_us / total) if total > 0 else None,
            "occurrences": r.occurrences,
            "host_or_device": r.host_or_device,
            "phase": phase(r),
        }
        for r in best
    ]


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


def parse_overview(data: Any) -> dict:
    """overview_page's analysis properties as numbers (percent strings like "12.5%"). The 16- and 32-bit
    shares of device compute (`device_compute_16bit_percent`, `..._32bit_percent`) are what the
    mixed-precision rule reads; xprof fills them where it counts device ops by precision (GPU, TPU) and leaves
    them out on a CPU."""
    keep = (
        "host_op_time_eager_percent",
        "device_op_time_eager_percent",
        "device_idle_time_percent",
        "host_idle_time_percent",
        "device_duty_cycle_percent",
        "host_tf_op_percent",
        "device_tf_op_percent",
        "device_compute_16bit_percent",
        "device_compute_32bit_percent",
    )
    for t in xprof_tables.tables(data):
        p = t.get("p") or {}
        if any(k in p for k in keep):
            out = {k: xprof_tables.number(p.get(k)) for k in keep if k in p}
            if p.get("remark_text"):
                out["remark"] = p["remark_text"]
            return {"overview": out}
    raise ValueError("no analysis properties in overview_page output")


def parse_memory_profile(data: Any) -> dict:
    """memory_profile's peak bytes in use, per allocator and the largest of them."""
    per = {}
    for name, alloc in ((data or {}).get("memoryProfilePerAllocator") or {}).items():
        summary = alloc.get("profileSummary") or {}
        peak = (summary.get("peakStats") or {}).get("peakBytesInUse") or summary.get("peakBytesUsageLifetime")
        if peak is not None:
            per[name] = int(peak)
    return {"memory_peak_bytes": max(per.values()) if per else None, "memory_peak_by_allocator": per}


_ORDER = (
    "logdir",
    "tb_run",
    "run",
    "profile_run",
    "hosts",
    "profile_wall_s",
    "readout_s",
    "readout_error",
    "input_bound_percent",
    "input_conclusion",
    "step_time_ms",
    "host_compute_ms",
    "step_time_breakdown_ms",
    "top_ops",
    "phases",
    "layers",
    "memory_peak_bytes",
)


def _ordered(d: dict) -> dict:
    """The headline fields first, so results.json reads top-down."""
    return {**{k: d[k] for k in _ORDER if k in d}, **{k: v for k, v in d.items() if k not in _ORDER}}


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
