"""What tfperf takes from each xprof tool's output (Google DataTable JSON, read by
tfperf/profile/xprof_tables.py): the input-pipeline analysis, the op statistics, the overview page and the
memory profile. Plain functions over that JSON, testable without TensorFlow.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from tfperf.profile import attribution, xprof_tables

TOP_OPS = 10
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
