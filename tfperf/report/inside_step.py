"""The page's view of what happens inside one case's step: per layer function vs XLA (a chart and a table),
the XLA executable's fusions, what Grappler's optimizers did, and what tf.data AUTOTUNE chose.

Rendered by `templates/_inside_step.html.j2` from `case.inside_step`. Every figure is read from results.json:
the per-layer comparison from `tfperf.profile.layers` (its one definition), the fusions from
`profile.fusions`, Grappler from `graph.grappler_passes`, AUTOTUNE from `profile.autotune`; numbers are
written by `tfperf.units`.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tfperf import units
from tfperf.figures import measures
from tfperf.profile import layers
from tfperf.report import chart_style
from tfperf.report.verdicts import job
from tfperf.results.model import Result

MAX_LAYERS = 12


def _us(v: float | None) -> str:
    return units.seconds(v / 1e6) if isinstance(v, (int, float)) else units.MISSING


def layer_chart(split: layers.ModeSplit, prefix: str) -> str | None:
    """Horizontal bars per layer: µs per step (split.basis) under tf.function and under XLA, side by side."""
    rows = [lt for lt in split.layers if lt.function_us is not None or lt.xla_us is not None][:MAX_LAYERS]
    if not rows:
        return None
    fig = Figure(figsize=(5.5, 0.9 + 0.42 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)
    with matplotlib.rc_context(chart_style.RC):
        ax = fig.add_subplot()
        ys = range(len(rows))
        for offset, mode, values in (
            (-0.2, "function", [lt.function_us or 0 for lt in rows]),
            (0.2, "xla", [lt.xla_us or 0 for lt in rows]),
        ):
            bars = ax.barh(
                [y + offset for y in ys], values, height=0.38, color=chart_style.mode_color(mode), label=mode
            )
            ax.bar_label(bars, labels=[f"{mode} {_us(v)}" for v in values], fontsize=7, padding=2)
        ax.set_yticks(list(ys))
        ax.set_yticklabels([lt.layer for lt in rows])
        ax.invert_yaxis()
        ax.set_xlabel(f"µs per step ({split.basis})")
        ax.set_title("Per Keras layer: tf.function vs XLA", loc="left")
        ax.margins(x=0.35)
    return chart_style.to_svg(fig, prefix)


def layer_view(fn: Result, xla: Result, prefix: str) -> dict | None:
    split = layers.split_of(fn, xla)
    if split is None:
        return None
    rows = []
    for lt in split.layers:
        ratio = lt.ratio
        verdict = {None: "", "faster": "XLA faster", "slower": "XLA slower", "same": "about the same"}[
            lt.change
        ]
        rows.append(
            {
                "layer": lt.layer,
                "function": _us(lt.function_us),
                "xla": _us(lt.xla_us),
                "function_fb": f"{_us(lt.function_forward_us)} / {_us(lt.function_backward_us)}",
                "xla_fb": f"{_us(lt.xla_forward_us)} / {_us(lt.xla_backward_us)}",
                "ratio": units.number(ratio, 2) if ratio is not None else units.MISSING,
                "function_op": lt.function_top_op or "",
                "xla_op": lt.xla_top_op or "",
                "verdict": verdict,
            }
        )
    phases = [
        {"phase": p, "function": _us(v.get("function_us")), "xla": _us(v.get("xla_us"))}
        for p, v in split.phases.items()
        if v.get("function_us") or v.get("xla_us")
    ]
    chart = layer_chart(split, prefix)
    return {
        "label": f"{job(fn)} vs xla",
        "rows": rows,
        "phases": phases,
        "chart": Markup(chart) if chart else None,
        "timed": split.basis == layers.TIMED,
    }


def fusion_rows(r: Result) -> list[dict]:
    out = []
    for f in (r.profile.fusions if r.profile else None) or []:
        out.append(
            {
                "name": units.text(f.get("name")),
                "kind": units.text(f.get("fusion_kind")),
                "fused": units.number(f.get("fused_ops")),
                "category": units.text(f.get("hlo_category")),
                "self_time": _us(f.get("self_time_us")),
                "share": units.percent(f.get("share"), 1),
                "layer": units.text(f.get("layer")) if f.get("layer") else "",
                "sources": ", ".join(str(s) for s in (f.get("source_ops") or [])[:4])
                + (" …" if len(f.get("source_ops") or []) > 4 else ""),
            }
        )
    return out


def grappler_rows(r: Result) -> list[dict]:
    passes: Sequence[dict[str, Any]] = (r.graph.grappler_passes if r.graph else None) or []
    return [
        {
            "optimizer": p.get("optimizer"),
            "before": units.number(p.get("ops_before")),
            "after": units.number(p.get("ops_after")),
            "changed": bool(p.get("changed")),
            "new_types": ", ".join(f"{k} ×{v}" for k, v in (p.get("new_op_types") or {}).items()),
        }
        for p in passes
    ]


def autotune_views(r: Result) -> list[dict]:
    """The job's own AUTOTUNE table (its profiled pass), then one per what-if variant that recorded one."""
    out = [v for v in [autotune_view((r.profile.autotune if r.profile else None) or None, job(r))] if v]
    for w in r.what_if or []:
        view = autotune_view((w.details or {}).get("autotune"), f"{job(r)} · what-if {w.change}")
        if view:
            out.append(view)
    return out


def autotune_view(at: dict | None, label: str) -> dict | None:
    if not at:
        return None
    stages = []
    for s in at.get("stages") or []:
        chosen = s.get("chosen") or {}
        stages.append(
            {
                "name": units.text(s.get("name")),
                "choices": ", ".join(f"{k} {units.number(v)}" for k, v in chosen.items()) or "-",
                "elements": units.number(s.get("num_elements")),
                "per_element": _us(s.get("time_per_element_us")),
                "buffered": units.number(s.get("buffered_elements")),
            }
        )
    return {
        "label": label,
        "stages": stages,
        "cpu_budget": units.number(at.get("cpu_budget")),
        "ram_budget": units.size(at.get("ram_budget_bytes")),
        "error": units.text(at["error"]) if at.get("error") else None,
    }


def inside_step_view(results: list[Result], prefix: str) -> dict | None:
    """The case's "Inside the step" section, or None when no result has anything to show there."""
    ok = measures.measured(results)
    layer_views = []
    for i, fn in enumerate(r for r in ok if r.mode == "function"):
        xla = measures.same_job_in_mode(ok, fn, "xla")
        view = layer_view(fn, xla, f"{prefix}-layers{i}") if xla else None
        if view:
            layer_views.append(view)
    fusions = [{"label": job(r), "rows": rows} for r in ok if (rows := fusion_rows(r))]
    grappler = [{"label": job(r), "rows": rows} for r in ok if (rows := grappler_rows(r))]
    autotune = [v for r in ok for v in autotune_views(r)]
    if not (layer_views or fusions or grappler or autotune):
        return None
    return {"layers": layer_views, "fusions": fusions, "grappler": grappler, "autotune": autotune}
