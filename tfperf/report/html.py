"""The self-contained HTML report: one offline file rendered from a RunResult (results.json) and nothing else.

Offline means no request to any address: the styles are inline, there are no scripts, fonts or images to
fetch, and the charts are matplotlib SVG inlined into the page (tfperf.report.charts). Every user string (suite,
case, model and mode names, error messages, the suite text) goes through jinja2's autoescape.

The work is split in two: `build_report` turns results into a plain view model (numbers already chosen and
formatted by `tfperf.units`, figures from `tfperf.figures`, findings from the advisor's suggestions:
`tfperf.report.view`, `.sections`, `.summary`), and the template only lays it out. Nothing here imports
TensorFlow.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import jinja2

from tfperf import units
from tfperf.figures.thresholds import NOISY_FRACTION, SIGNIFICANCE_ALPHA, WHAT_IF_MIN_SPEEDUP
from tfperf.report.summary import suggestion_groups
from tfperf.report.view import case_view
from tfperf.results.model import RunResult, atomic_write_text


def environment_facts(env: dict) -> list[tuple[str, str]]:
    out = []
    for k, v in env.items():
        if k == "gpus":
            v = [g.get("name", g) if isinstance(g, dict) else g for g in v or []] or "none"
        out.append((k, (units.text(v) if v else units.MISSING) if isinstance(v, dict) else units.text(v)))
    return out


def build_report(run: RunResult, out_dir: str | Path | None = None) -> dict:
    """The page's view model: plain dicts and strings, no markup except the charts' SVG."""
    cases, summary = [], []
    for i, name in enumerate(dict.fromkeys(r.case for r in run.results)):
        case, row = case_view(name, [r for r in run.results if r.case == name], i)
        cases.append(case)
        summary.append(row)
    suite = run.suite or {}
    out = shlex.quote(str(out_dir)) if out_dir is not None else "<out>"  # a placeholder when unknown
    totals = {s: sum(1 for r in run.results if r.status == s) for s in ("ok", "failed", "timeout", "skipped")}
    return {
        "title": f"tfperf · {suite.get('name') or 'run'}",
        "suite": {"name": suite.get("name"), "path": suite.get("path"), "sha256": suite.get("sha256"),
                  "text": suite.get("text")},
        "run": {"started_at": run.started_at, "finished_at": run.finished_at,
                "tfperf_version": run.tfperf_version, "interrupted": run.interrupted,
                "command": " ".join(shlex.quote(str(c)) for c in run.command) if run.command else None},
        "totals": totals,
        "summary": summary,
        "cases": cases,
        "suggestions": suggestion_groups(run),
        "environment": environment_facts(run.environment or {}),
        "tensorboard_command": f"tfperf tensorboard {out}",
        "noisy_threshold": units.percent(NOISY_FRACTION),
        "what_if_rule": f"faster by more than {WHAT_IF_MIN_SPEEDUP:.2f}× and Mann–Whitney p < {SIGNIFICANCE_ALPHA:g}",
    }


def template_env() -> jinja2.Environment:
    """Autoescape on for every template (they end in .j2, which select_autoescape would not recognise)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tfperf.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    # The number formats, as filters: a template writes numbers the way every other output does.
    env.filters.update(seconds=units.seconds, pct=units.percent, num=units.number, text=units.text,
                       bytes=units.size, speedup=units.speedup)
    return env


def render_html(run: RunResult, out_dir: str | Path | None = None) -> str:
    """The report page as one string. `out_dir` fills in the `tfperf tensorboard <out>` command."""
    return template_env().get_template("report.html.j2").render(**build_report(run, out_dir))


def write_html(run: RunResult, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, render_html(run, out_dir=path.parent))
    return path
