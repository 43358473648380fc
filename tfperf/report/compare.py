"""Renders a comparison of two runs (tfperf.analysis.compare) as a terminal table, Markdown for a pull-request
comment, JSON or a self-contained HTML page."""

from __future__ import annotations

import json

from tfperf import units
from tfperf.analysis.compare import Comparison, exit_code
from tfperf.analysis.row_comparison import VERDICTS, RowComparison
from tfperf.analysis.threshold import threshold_text
from tfperf.errors import TfperfError
from tfperf.figures.thresholds import NOISY_FRACTION
from tfperf.stats.significance import CONFIDENCE

_MARK = {
    "regression": "REGRESSION",
    "improvement": "improvement",
    "inconclusive": "inconclusive",
    "unchanged": "unchanged",
}


def _fmt_ratio(r: RowComparison) -> str:
    if r.ratio is None:
        return "–"
    s = f"{r.ratio:.3f}"
    if r.ci_low is not None:
        s += f" [{r.ci_low:.3f}, {r.ci_high:.3f}]"
    return s


def _diag_text(r: RowComparison) -> str:
    moved = [
        d for d in r.diagnostics if d.verdict in ("worse", "better") and not (d.note and d.note in r.reason)
    ]
    return "; ".join(f"{d.name} {d.verdict}" + (f" ({d.note})" if d.note else "") for d in moved)


def _table_rows(cmp: Comparison) -> list[list[str]]:
    order = {v: i for i, v in enumerate(VERDICTS)}
    rows = sorted(cmp.rows, key=lambda r: (order[r.verdict], r.case, r.mode, r.batch_size or 0))
    return [
        [
            r.label,
            units.seconds(r.base_median_s),
            units.seconds(r.current_median_s),
            _fmt_ratio(r),
            units.p_column(r.p_value),
            _MARK[r.verdict],
            r.reason + (f"; {_diag_text(r)}" if _diag_text(r) else ""),
        ]
        for r in rows
    ]


HEADERS = ["row", "base median", "current median", f"ratio [{CONFIDENCE:.0%} CI]", "p", "verdict", "why"]


def _summary_line(cmp: Comparison) -> str:
    c = cmp.counts()
    line = (
        f"{c['regression']} regression(s), {c['improvement']} improvement(s), {c['inconclusive']} "
        "inconclusive, "
        f"{c['unchanged']} unchanged; threshold {threshold_text(cmp.threshold)}"
    )
    if cmp.gate_failures:  # the HTML page shows this line: a failed gate must be in it
        line += f"; {_gate_headline(cmp)}"
    return line


def _gate_headline(cmp: Comparison) -> str:
    gaps = f"the comparison is incomplete ({len(cmp.gate_failures)} gap(s))"
    return (
        f"GATE FAILED (exit {exit_code(cmp)}): {gaps}"
        if cmp.gate_failed
        else f"{gaps}, allowed by --allow-missing"
    )


def _gate_lines(cmp: Comparison) -> list[str]:
    return [f"{g.kind}: {g.message}" for g in cmp.gate_failures]


def render_table(cmp: Comparison) -> str:
    from tabulate import tabulate

    lines = [_summary_line(cmp), ""]
    if cmp.gate_failures:
        lines += [_gate_headline(cmp) + ":"] + [f"  {x}" for x in _gate_lines(cmp)] + [""]
    if cmp.rows:
        lines.append(tabulate(_table_rows(cmp), headers=HEADERS, tablefmt="simple", disable_numparse=True))
    for title, items in (("only in base", cmp.only_in_base), ("only in current", cmp.only_in_current)):
        if items:
            lines += ["", f"Rows {title}:"] + [f"  {i['label']} ({i['status']})" for i in items]
    if cmp.environment_warnings:
        lines += ["", "Warning: the environments differ, so timings may not be comparable:"]
        lines += [f"  {w}" for w in cmp.environment_warnings]
    if cmp.warnings:
        lines += ["", "Warning: verdicts are less safe:"] + [f"  {w}" for w in cmp.warnings]
    lines += ["", f"Method: {cmp.method}."]
    return "\n".join(lines) + "\n"


def _md_escape(s: str) -> str:
    return (
        s.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\n", " ")
    )


def render_markdown(cmp: Comparison) -> str:
    """For a pull-request comment or $GITHUB_STEP_SUMMARY: a headline, the rows that moved, then the rest."""
    icon = {"regression": "🔴", "improvement": "🟢", "inconclusive": "🟡", "unchanged": "⚪"}
    head = (
        "⚠️ Comparison incomplete"
        if cmp.gate_failed
        else "❌ Performance regression"
        if cmp.regressed
        else "✅ No performance regression"
    )
    lines = [f"### tfperf compare: {head}", "", _md_escape(_summary_line(cmp)) + ".", ""]
    if cmp.gate_failures:
        lines += [f"**{_md_escape(_gate_headline(cmp))}:**", ""]
        lines += [f"- {_md_escape(x)}" for x in _gate_lines(cmp)] + [""]
    if cmp.environment_warnings:
        lines += ["> **Warning:** the environments differ, so timings may not be comparable:"]
        lines += [f"> - {_md_escape(w)}" for w in cmp.environment_warnings] + [""]
    if cmp.warnings:
        lines += ["> **Warning:** verdicts are less safe:"]
        lines += [f"> - {_md_escape(w)}" for w in cmp.warnings] + [""]
    if cmp.rows:
        lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        for row, r in zip(
            _table_rows(cmp),
            sorted(cmp.rows, key=lambda r: (VERDICTS.index(r.verdict), r.case, r.mode, r.batch_size or 0)),
        ):
            cells = [_md_escape(x) for x in row]
            cells[5] = f"{icon[r.verdict]} {cells[5]}"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for title, items in (("Only in base", cmp.only_in_base), ("Only in current", cmp.only_in_current)):
        if items:
            lines += [
                f"**{title}:** " + ", ".join(f"`{_md_escape(i['label'])}` ({i['status']})" for i in items),
                "",
            ]
    lines += [f"<sub>{_md_escape(cmp.method)}.</sub>", ""]
    return "\n".join(lines)


def render_json(cmp: Comparison) -> str:
    return json.dumps(cmp.to_json(), indent=2, allow_nan=False, default=str) + "\n"


def render_html(cmp: Comparison) -> str:
    from tfperf.report import charts  # matplotlib: only for the HTML page
    from tfperf.report.html import template_env

    order = {v: i for i, v in enumerate(VERDICTS)}
    rows = sorted(cmp.rows, key=lambda r: (order[r.verdict], r.case, r.mode, r.batch_size or 0))
    view = [
        {
            "row": r,
            "label": r.label,
            "base": units.seconds(r.base_median_s),
            "current": units.seconds(r.current_median_s),
            "ratio": f"{r.ratio:.3f}" if r.ratio is not None else "–",
            "ci": f"{r.ci_low:.3f} – {r.ci_high:.3f}" if r.ci_low is not None else "–",
            "p": units.p_column(r.p_value),
            "diagnostics": [
                d for d in r.diagnostics if d.verdict != "same" and not (d.note and d.note in r.reason)
            ],
        }
        for r in rows
    ]
    chart = charts.ratio_chart(
        [
            {
                "label": r.label,
                "ratio": r.ratio,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "verdict": r.verdict,
            }
            for r in rows
        ],
        cmp.threshold,
        "cmp",
    )
    from markupsafe import Markup

    return (
        template_env()
        .get_template("compare.html.j2")
        .render(
            cmp=cmp,
            rows=view,
            counts=cmp.counts(),
            summary=_summary_line(cmp),
            chart=Markup(chart) if chart else None,
            regressed=cmp.regressed,
            threshold=threshold_text(cmp.threshold),
            noisy_threshold=units.percent(NOISY_FRACTION),
        )
    )


RENDERERS = {"table": render_table, "markdown": render_markdown, "json": render_json, "html": render_html}


def render(cmp: Comparison, fmt: str) -> str:
    if fmt not in RENDERERS:
        raise TfperfError(f"--format {fmt}: choose one of {', '.join(RENDERERS)}")
    return RENDERERS[fmt](cmp)
