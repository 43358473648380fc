"""What `tfperf tune` writes for a reader: the ranked table per case (terminal and tune.md), the summary lines
around it, and tuned.yaml (the suite with each case's winning configuration)."""

from __future__ import annotations

import io
from pathlib import Path

from tfperf import units
from tfperf.figures.thresholds import REGRESSION_ALPHA, output_tolerance
from tfperf.stats.significance import CONFIDENCE
from tfperf.suite.spec import Suite
from tfperf.tune.ranking import MIN_GAIN, CaseTuning, Row, TuneRun
from tfperf.version import __version__

# Tune's tables write a missing figure as "-" (its tables predate units.MISSING; tune.md stays as it was).
MISSING = "-"
# What tune says when the baseline stayed best: the suite's case as written is the recommendation.
NO_CHANGE = "no change: keep the case as the suite writes it"
# Keys of a suite whose value may be a file reference relative to the suite file.
REFERENCE_KEYS = ("model", "function", "inputs", "dataset")


def speedup_cell(r: Row) -> str:
    """The speed-up with its interval: "1.25× [1.20–1.30]". No "(slower)" here: the verdict column says
    whether a difference is significant, and a factor below 1 within the noise is not a loss."""
    if r.speedup is None:
        return MISSING
    ci = f" [{r.ci[0]:.2f}–{r.ci[1]:.2f}]" if r.ci else ""
    return f"{r.speedup:.2f}×{ci}"


def ranking_rows(t: CaseTuning) -> list[dict]:
    out = []
    rank = 0
    for r in t.ranked():
        ranked = r.speedup is not None and not r.excluded
        rank += ranked
        out.append(
            {
                "#": str(rank) if ranked else MISSING,
                "configuration": r.candidate.id + (" (best)" if r is t.best else ""),
                "mode": r.mode,
                "batch": str(r.batch_size) if r.batch_size is not None else MISSING,
                "median ms/step": units.ms_column(r.result.median_s, MISSING)
                if r.result.samples
                else MISSING,
                "samples/s": f"{r.result.throughput['samples_per_s']:,.0f}"
                if r.result.samples and r.result.throughput and r.result.throughput.get("samples_per_s")
                else MISSING,
                f"speed-up [{CONFIDENCE:.0%} CI]": speedup_cell(r),
                "p": units.p_column(r.p_value, MISSING),
                "verdict": r.excluded
                and f"excluded: {r.excluded}"
                or (f"{r.verdict}: {r.reason}" if r.verdict == "inconclusive" and r.reason else r.verdict),
                "what": ("jit_compile=True; " if r.mode == "xla" else "") + r.candidate.label,
            }
        )
    return out


def summary_lines(t: CaseTuning) -> list[str]:
    lines = []
    if t.message:
        lines.append(f"could not tune: {t.message}")
    rec = t.recommended
    c = t.confirmation or {}
    if t.best is not None:
        conf = ""
        if c.get("status") == "confirmed":
            conf = f"; re-measured in fresh workers: {c['speedup']:.2f}× ({units.p_value(c.get('p_value'))})"
        elif c.get("status") == "not run":
            conf = f"; measured in the baseline's own worker, not re-measured ({c.get('reason')})"
        lines.append(f"best: {t.best.name} — {t.best.speedup:.2f}× the baseline ({t.baseline.name}){conf}")
    elif t.baseline is not None and t.baseline.result.ok:
        if c.get("status") == "not confirmed" and t.unconfirmed is not None:
            lines.append(
                f"best: the baseline — {t.unconfirmed.name} measured {t.unconfirmed.speedup:.2f}× but did "
                "not "
                f"hold when re-measured in fresh workers ({c.get('speedup', 0):.2f}×, "
                f"{units.p_value(c.get('p_value'))})"
            )
        elif t.unconfirmed is not None:
            lines.append(
                f"best: the baseline — {t.unconfirmed.name} measured {t.unconfirmed.speedup:.2f}× but could "
                f"not be re-measured to prove it ({c.get('reason')}); a larger --budget-s would let tune "
                "re-measure it"
            )
        else:
            lines.append(
                f"best: the baseline — no configuration was significantly more than {MIN_GAIN:.0%} faster"
            )
    for r in t.rows:
        if r.excluded and r.verdict == "excluded":
            lines.append(f"excluded {r.name}: {r.excluded}")
    budget = [n["config"] for n in t.not_run if n["reason"].startswith("budget")]
    if budget:
        lines.append(f"not run (out of budget): {', '.join(budget)}")
    for n in t.not_run:
        if not n["reason"].startswith("budget"):
            lines.append(f"not run {n['config']}: {n['reason']}")
    if t.best is not None:
        lines.append("code:")
        lines.extend(f"    {line}" for line in t.recommended_code())
    elif rec is not None:
        lines.append(NO_CHANGE)
    lines.append(f"{t.elapsed_s:.0f} s of a {t.budget_s:g} s budget")
    return lines


def tolerance_words() -> str:
    """The output check in words, with the tolerances thresholds.output_tolerance gives each case."""
    return (
        "A configuration whose output differs from the baseline's (max difference relative to the "
        "baseline's "
        f"largest output) beyond the tolerance of its compute dtype and mode is excluded: "
        f"{output_tolerance('float32', 'function'):g} in float32, "
        f"{output_tolerance('float32', 'xla'):g} when either side is compiled by XLA (its fusions reorder "
        "float "
        f"arithmetic), {output_tolerance('float16', 'function'):g} when either computes in 16 bits "
        f"(float16 or bfloat16, as measured on the built model)."
    )


def render_text(result: TuneRun) -> str:
    from tabulate import tabulate

    out = []
    for t in result.cases:
        out.append(f"== {t.case}")
        rows = ranking_rows(t)
        if rows:
            out.append(tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True))
        out.extend(summary_lines(t))
        out.append("")
    return "\n".join(out)


def render_markdown(result: TuneRun) -> str:
    from tabulate import tabulate

    out = [
        f"# tfperf tune: {result.run.suite.get('name', '?')}",
        "",
        "Each configuration ran in its own worker processes (the case's `processes`). Speed-up = the "
        "baseline's "
        f"time per sample / the configuration's (median), with a {CONFIDENCE:.0%} bootstrap interval over "
        "whole "
        "repeats; p from a two-sided Mann-Whitney U test on per-sample step times. A configuration is "
        "faster by "
        f"`tfperf compare`'s decision: significant (p < {REGRESSION_ALPHA:g}), more than {MIN_GAIN:.0%} "
        "faster, "
        "its interval excluding no change, and beyond either side's own spread between repeats and "
        "processes. "
        "The best is then re-measured against the baseline in fresh workers and must pass the same test "
        "again. "
        f"{tolerance_words()}",
        "",
    ]
    for t in result.cases:
        out.append(f"## {t.case}")
        out.append("")
        rows = ranking_rows(t)
        if rows:
            out.append(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))
            out.append("")
        for line in summary_lines(t):
            if line == "code:" or line.startswith("    "):
                continue
            out.append(f"- {line}")
        if t.best is not None:
            out.append("")
            out.append("```python")
            out.extend(t.recommended_code())
            out.append("```")
        out.append("")
    return "\n".join(out) + "\n"


def make_references_absolute(mapping, base_dir: Path) -> None:
    """`file.py:attr` references relative to the suite file, made absolute in place: tuned.yaml is written
    next to the results, where a relative reference would break."""
    for key in REFERENCE_KEYS:
        ref = mapping.get(key)
        if isinstance(ref, str) and ".py:" in ref and not Path(ref.split(":")[0]).is_absolute():
            mapping[key] = f"{(base_dir / ref.split(':')[0]).resolve()}:{ref.split(':', 1)[1]}"


def per_keras(case, keras_default) -> list:
    """A `keras: [3, 2]` entry as the cases tune measured: one entry per Keras, named `<name>-keras3` /
    `<name>-keras2` as the loader names them, each with its own `keras:`, so each gets its own winner (the
    two Keras may tune differently). Any other entry as it is."""
    import copy

    versions = case.get("keras", keras_default)
    if not isinstance(versions, list) or len(versions) < 2:
        return [case]
    out = []
    for v in versions:
        split = copy.deepcopy(case)
        split["name"] = f"{case.get('name')}-keras{v}"
        split["keras"] = v
        out.append(split)
    return out


def tuned_yaml(suite: Suite, tunings: list[CaseTuning]) -> str:
    """The suite with each case's winning settings: `tfperf run tuned.yaml` measures the tuned
    configuration."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML(typ="rt")
    yaml.width = 4096  # keep flow mappings on one line
    doc = yaml.load(suite.text)
    base_dir = Path(suite.path).resolve().parent
    by_name = {t.case: t for t in tunings}
    header = [f"tuned by tfperf tune {__version__} from {suite.path}"]
    keras_default = (doc.get("defaults") or {}).get("keras")
    cases = [split for c in doc.get("cases") or [] for split in per_keras(c, keras_default)]
    # Only the cases that were tuned (--case selects some): an untuned case would read as tuned.
    doc["cases"] = [c for c in cases if c.get("name") in by_name] or cases
    for case in doc.get("cases") or []:
        name = case.get("name")
        t = by_name.get(name)
        make_references_absolute(case, base_dir)
        if t is None or t.recommended is None:
            continue
        rec = t.recommended
        case["modes"] = [rec.mode]
        if rec.batch_size is not None:
            case["batch_size"] = rec.batch_size
        if rec.candidate.pipeline:
            inp = case.setdefault("input", CommentedMap())
            pipe = inp.setdefault("pipeline", CommentedMap())
            for k, v in rec.candidate.pipeline.items():
                pipe[k] = v
        for key, value in rec.candidate.case_changes.items():  # steps_per_execution, for task: fit
            case[key] = value
        if rec.candidate.settings:
            case["tf_config"] = dict(rec.candidate.settings)
        elif "tf_config" in case:
            del case["tf_config"]
        header.append(
            f"{name}: {rec.name}"
            + (f", {t.best.speedup:.2f}× the baseline" if t.best else " (the baseline stayed best)")
        )
    if doc.get("defaults"):
        make_references_absolute(doc["defaults"], base_dir)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return "".join(f"# {h}\n" for h in header) + buf.getvalue()
