"""How an A/B run reads: `tfperf compare`'s renderers (table, Markdown, JSON, HTML) of its comparison,
followed by what only an A/B run has: the trees, the pairs of each row, the noise that explains a stray pair,
and why the rounds stopped. The verdicts and figures are the comparison's; nothing here decides anything.
"""

from __future__ import annotations

import html

from tfperf import units
from tfperf.ab.verdict import ABComparison
from tfperf.report.compare import RENDERERS
from tfperf.report.compare import render as render_compare
from tfperf.stats.significance import CONFIDENCE

FORMATS = tuple(RENDERERS)

STOPS = {
    "decided": "every row's interval decided",
    "max_pairs": "--max-pairs reached",
    "budget": "one more round would pass --budget-s",
    "nothing to pair": "no row was measured on both sides",
}


def tree_line(tree: dict) -> str:
    if tree.get("ref"):
        return f"{tree['ref']} ({(tree.get('commit') or '')[:12]}) in a temporary worktree"
    commit = f" at {tree['commit'][:12]}" if tree.get("commit") else ""
    return f"{tree.get('root')}{commit}"


def detail_lines(cmp: ABComparison) -> list[str]:
    """The A/B part, as plain lines (the table and Markdown indent or list them)."""
    lines = [
        f"base: {tree_line(cmp.base_tree)}",
        f"current: {tree_line(cmp.current_tree)}",
        f"{len(cmp.rounds)} round(s) in {units.seconds(cmp.elapsed_s)}: stopped because "
        f"{STOPS.get(cmp.stop_reason, cmp.stop_reason)} (at least {cmp.min_pairs} pairs for a "
        f"{cmp.confidence:.0%} interval; --max-pairs {cmp.max_pairs}, --budget-s {cmp.budget_s:g})",
    ]
    for r in cmp.rows:
        if not r.pairs:
            continue
        ratios = " ".join(f"{x:.3f}" for x in r.pair_ratios)
        lines.append(f"{r.label}: {r.pairs} pair(s), ratios {ratios}")
        lines += [f"  {side}: {text}" for side, text in noise_ranges(r.pair_noise)]
        lines += [f"  {n}" for n in r.noise_notes]
    lines += [f"process noise: {w}" for w in cmp.noise_warnings]
    return lines


def noise_ranges(pair_noise: list[dict]) -> list[tuple[str, str]]:
    """Per side, the range of its processes' load and preemption over the pairs (what each side ran
    through)."""
    out = []
    for side in ("base", "current"):
        records = [p[side] for p in pair_noise if p.get(side)]
        parts = []
        for key, what, unit in (("load_1m", "load average", ""), ("involuntary_per_s", "preempted", "/s")):
            values = [x[key] for x in records if isinstance(x.get(key), (int, float))]
            if values:
                parts.append(
                    f"{what} {min(values):.1f}–{max(values):.1f}{unit}"
                    if unit == ""
                    else f"{what} {min(values):.0f}–{max(values):.0f}{unit}"
                )
        if parts:
            out.append((side, ", ".join(parts)))
    return out


def render(cmp: ABComparison, fmt: str) -> str:
    text = render_compare(cmp, fmt)
    if fmt == "json":
        return text
    # compare's column names its fixed confidence; an A/B run's interval has the confidence it was run with.
    text = text.replace(f"[{CONFIDENCE:.0%} CI]", f"[{cmp.confidence:.0%} CI]")
    details = detail_lines(cmp)
    if fmt == "table":
        return text + "\nA/B run:\n" + "".join(f"  {line}\n" for line in details)
    if fmt == "markdown":
        text = text.replace("### tfperf compare:", "### tfperf ab:", 1)
        return text + "\n**A/B run**\n\n" + "".join(f"- {line}\n" for line in details)
    # html: the same lines as a section of compare's page, before the end of its <main>
    section = (
        '<section class="ab"><h2>A/B run</h2><ul>'
        + "".join(f"<li>{html.escape(line)}</li>" for line in details)
        + "</ul></section>\n"
    )
    text = text.replace("<title>tfperf compare</title>", "<title>tfperf ab</title>", 1)
    text = text.replace("<h1>tfperf compare:", "<h1>tfperf ab:", 1)
    at = text.rfind("</main>")
    return text[:at] + section + text[at:] if at >= 0 else text + section
