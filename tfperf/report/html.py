"""The self-contained HTML report: one offline file rendered from a RunResult (results.json) and nothing else.

Offline means no request to any address: the styles are inline, there are no scripts, fonts or images to
fetch, and the charts are matplotlib SVG inlined into the page (tfperf.report.charts). Every user string
(suite, case, model and mode names, error messages, the suite text) goes through jinja2's autoescape.

The work is split in two: `build_report` turns results into a plain view model (numbers already chosen and
formatted by `tfperf.units`, figures from `tfperf.figures`, findings from the advisor's suggestions:
`tfperf.report.view`, `.sections`, `.summary`), and the template only lays it out. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import jinja2
from markupsafe import Markup

from tfperf import units
from tfperf.figures.thresholds import NOISY_FRACTION, SIGNIFICANCE_ALPHA, WHAT_IF_MIN_SPEEDUP
from tfperf.report import charts, plain
from tfperf.report.headline import against_first, case_verdicts, one_question
from tfperf.report.ranked import ranked_cards
from tfperf.report.view import case_anchor, case_view
from tfperf.results.model import RunResult, atomic_write_text


def cross_case_chart(run: RunResult) -> str | None:
    """A suite whose cases each measured one job (an input-pipeline suite: naive, prefetch, cache ...) asks
    one question across cases (`headline.one_question`): one chart of every case's median step against the
    first case's, each bar marked faster or not by the test the verdict words (`headline.against_first`)."""
    jobs = one_question(run)
    if not jobs:
        return None
    first = jobs[0]
    rows = [{"label": first.case, "median_s": first.median_s, "speedup": None, "helped": False}]
    rows += [
        {
            "label": r.case,
            "median_s": r.median_s,
            "speedup": first.median_s / r.median_s,
            "helped": against_first(first, r)[1],
        }
        for r in jobs[1:]
    ]
    svg = charts.what_if_chart(rows, "suite-cases", f"Every case's median step against {first.case}")
    return Markup(svg) if svg else None


def build_report(run: RunResult, out_dir: str | Path | None = None) -> dict:
    """The page's view model: plain dicts and strings, no markup except the charts' SVG."""
    cases, summary, anchors = [], [], set()
    for i, name in enumerate(dict.fromkeys(r.case for r in run.results)):
        results = [r for r in run.results if r.case == name]
        case, row = case_view(name, results, i, case_anchor(name, anchors))
        cases.append(case)
        summary.append(row)
    # The answer first: the verdict block at the top of the page, one row per case.
    verdicts = [
        {"verdict": v, "anchor": c["anchor"], "counts": c["counts"]}
        for v, c in zip(case_verdicts(run), cases)
    ]
    suite = run.suite or {}
    out = shlex.quote(str(out_dir)) if out_dir is not None else "<out>"  # a placeholder when unknown
    totals = {s: sum(1 for r in run.results if r.status == s) for s in ("ok", "failed", "timeout", "skipped")}
    return {
        "title": f"tfperf · {suite.get('name') or 'run'}",
        "suite": {
            "name": suite.get("name"),
            "path": suite.get("path"),
            "sha256": suite.get("sha256"),
            "text": suite.get("text"),
        },
        "run": {
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "tfperf_version": run.tfperf_version,
            "interrupted": run.interrupted,
            "command": " ".join(shlex.quote(str(c)) for c in run.command) if run.command else None,
        },
        "totals": totals,
        "summary": summary,
        "cases": cases,
        "verdicts": verdicts,
        "cross_case_chart": cross_case_chart(run),
        "suggestions": [
            {
                "card": c,
                "anchor": f"fix-{i + 1}",
                "cases": [
                    {"name": n, "anchor": next(x["anchor"] for x in cases if x["name"] == n)} for n in c.cases
                ],
            }
            for i, c in enumerate(ranked_cards(run))
        ],
        "environment": plain.environment_facts(
            run.environment or {}, plain.is_cpu_only([r.device for r in run.results], run.environment or {})
        ),
        "glossary": plain.glossary_rows(),
        "tips": plain.GLOSSARY,
        "tensorboard_command": f"tfperf tensorboard {out}",
        "noisy_threshold": units.percent(NOISY_FRACTION),
        "what_if_rule": f"faster by more than {WHAT_IF_MIN_SPEEDUP:.2f}× and Mann–Whitney p < "
        f"{SIGNIFICANCE_ALPHA:g}",
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
    env.filters.update(
        seconds=units.seconds,
        pct=units.percent,
        num=units.number,
        text=units.text,
        bytes=units.size,
        speedup=units.speedup,
    )
    return env


def render_html(run: RunResult, out_dir: str | Path | None = None) -> str:
    """The report page as one string. `out_dir` fills in the `tfperf tensorboard <out>` command."""
    return template_env().get_template("report.html.j2").render(**build_report(run, out_dir))


def write_html(run: RunResult, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, render_html(run, out_dir=path.parent))
    return path
