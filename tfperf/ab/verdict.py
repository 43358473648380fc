"""The verdicts of an A/B run: `tfperf compare`'s comparison of the two sides' results, with each timed row's
step-time verdict taken from its interleaved pairs (`tfperf.stats.paired`) instead of from pooled samples.

Everything else is compare's, unchanged: rows are matched by job, the diagnostics (tracing count, input-bound
share, first call, peak memory) are compared the same way, a retrace that grew is a regression, and the gate
fails closed. One addition to the gate: a row that failed on the *base* side fails it too, because an A/B run
vouches for both trees (compare only refuses a row the current run lost).

A pair whose ratio is far from its row's (by more than half the threshold, or three robust spreads of the
pairs) is looked up in the two processes' noise records (`tfperf.host.noise.explain`): the note says what the
slower process suffered more of, or that the records do not explain it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from tfperf import units
from tfperf.ab.interleave import RowKey, Side
from tfperf.analysis.compare import Comparison, compare_runs
from tfperf.analysis.compare_warnings import separate_runs_warning
from tfperf.analysis.gate import GateFailure
from tfperf.analysis.row_comparison import RowComparison
from tfperf.analysis.threshold import threshold_text
from tfperf.host.noise import explain, per_second
from tfperf.stats.paired import (
    DEFAULT_STATISTIC,
    PairedComparison,
    decide,
    min_pairs,
    paired_comparison,
    process_figure,
)

METHOD = (
    "interleaved A/B: in each round one worker process per side and case (after the first round, one per "
    "side for the cases that can share it), the sides in a random order; each process's {statistic} of a "
    "row is one unit and the two processes of a round are a pair; the ratio "
    "(current / base) is the Hodges-Lehmann estimate over the pairs' ratios with the {conf:.0%} "
    "signed-rank interval, and the exact Wilcoxon signed-rank test; a row is a regression or improvement "
    "only when its interval lies wholly beyond the threshold, unchanged when wholly inside it (at least "
    "{n} pairs), else inconclusive"
)


STATISTIC_WORDS = {"min": "fastest step", "p10": "10th-percentile step", "median": "median step"}


@dataclass
class ABRow(RowComparison):
    """A compare row with its pairs: each round's ratio, when it decided, and the pairs the noise explains."""

    pairs: int = 0
    pair_ratios: list[float] = field(default_factory=list)
    pair_rounds: list[int] = field(default_factory=list)
    noise_notes: list[str] = field(default_factory=list)
    # per pair: {round, base: {...}, current: {...}} with each process's load, context switches per second,
    # CPUs
    pair_noise: list[dict] = field(default_factory=list)


@dataclass
class ABComparison(Comparison):
    """compare's Comparison plus the run's shape: the trees, the rounds, why they stopped."""

    base_tree: dict = field(default_factory=dict)
    current_tree: dict = field(default_factory=dict)
    confidence: float = 0.99
    statistic: str = DEFAULT_STATISTIC  # each process's figure: min | p10 | median of its steps
    min_pairs: int = 0
    max_pairs: int = 0
    budget_s: float = 0.0
    rounds: list[dict] = field(default_factory=list)  # {number, seconds, order}
    stop_reason: str = ""  # decided | max_pairs | budget | nothing to pair
    elapsed_s: float = 0.0
    noise_warnings: list[str] = field(default_factory=list)


def pairs_of(
    base: Side, current: Side, key: RowKey, statistic: str
) -> tuple[list[int], list[float], list[float]]:
    """The rounds in which both sides timed the row, and their per-process figures in round order."""
    b, c = base.samples.get(key, {}), current.samples.get(key, {})
    rounds = sorted(set(b) & set(c))
    return (
        rounds,
        [process_figure(b[r], statistic) for r in rounds],
        [process_figure(c[r], statistic) for r in rounds],
    )


def paired(
    base: Side, current: Side, key: RowKey, confidence: float, statistic: str
) -> PairedComparison | None:
    rounds, b, c = pairs_of(base, current, key, statistic)
    return paired_comparison(b, c, confidence) if rounds else None


def undecided(base: Side, current: Side, threshold: float, confidence: float, statistic: str) -> set[RowKey]:
    """The rows timed on both sides whose interval has not decided yet (the rounds go on for them)."""
    out = set()
    for key in set(base.samples) & set(current.samples):
        pc = paired(base, current, key, confidence, statistic)
        if pc is None or decide(pc, threshold) == "inconclusive":
            out.add(key)
    return out


def paired_reason(
    pc: PairedComparison, verdict: str, threshold: float, statistic: str = DEFAULT_STATISTIC
) -> str:
    t = threshold_text(threshold)
    change = f"{pc.ratio - 1:+.1%}"
    word = "slower" if pc.ratio > 1 else "faster"
    interval = f"{pc.confidence:.0%} interval {pc.ci_low:.3f}–{pc.ci_high:.3f}"
    head = (
        f"{change} {word} ({STATISTIC_WORDS[statistic]} per process) over {pc.pairs} pair(s) "
        f"({units.p_value(pc.p_value)}), {interval}"
    )
    if not pc.decisive:
        return (
            f"{head}: {pc.pairs} pair(s) cannot reach {pc.confidence:.0%} "
            f"(needs {min_pairs(1 - pc.confidence)})"
        )
    if verdict in ("regression", "improvement"):
        return f"{head} wholly beyond the {t} threshold"
    if verdict == "unchanged":
        return f"{head} wholly within the {t} threshold"
    return f"{head} straddles the {t} threshold: more pairs would decide"


def ab_row(
    row: RowComparison, base: Side, current: Side, threshold: float, confidence: float, statistic: str
) -> ABRow:
    out = ABRow(**{f.name: getattr(row, f.name) for f in dataclasses.fields(RowComparison)})
    key = (row.case, row.mode, row.batch_size, row.task)
    rounds, b, c = pairs_of(base, current, key, statistic)
    if not rounds or row.base_status != "ok" or row.current_status != "ok":
        return out  # compare's own verdict: failed on a side, or nothing paired
    pc = paired_comparison(b, c, confidence)
    out.pairs, out.pair_ratios, out.pair_rounds = pc.pairs, pc.ratios, rounds
    out.ratio, out.ci_low, out.ci_high, out.p_value = pc.ratio, pc.ci_low, pc.ci_high, pc.p_value
    out.verdict = decide(pc, threshold)
    out.reason = paired_reason(pc, out.verdict, threshold, statistic)
    out.noisy = False  # the pairs' interval already carries their scatter
    out.time_verdict = out.verdict
    grew = next((d for d in out.diagnostics if d.name == "tracing_count" and d.verdict == "worse"), None)
    if grew:  # retracing is a bug, not noise: compare's rule
        out.verdict, out.reason = "regression", f"{grew.note}; time: {out.reason}"
    out.noise_notes = noise_notes(pc, rounds, base.noise.get(key, {}), current.noise.get(key, {}), threshold)
    out.pair_noise = [
        {
            "round": rnd,
            "base": brief(base.noise.get(key, {}).get(rnd)),
            "current": brief(current.noise.get(key, {}).get(rnd)),
        }
        for rnd in rounds
    ]
    return out


def brief(record: dict | None) -> dict | None:
    """The figures of a noise record that tell two processes apart, per second where they are counts."""
    if not record:
        return None
    invol, vol = (
        per_second(record, "involuntary_context_switches"),
        per_second(record, "voluntary_context_switches"),
    )
    return {
        "load_1m": (record.get("load_average") or [None])[0],
        "involuntary_per_s": round(invol, 1) if invol is not None else None,
        "voluntary_per_s": round(vol, 1) if vol is not None else None,
        "schedulable_cpus": record.get("schedulable_cpus"),
        "warnings": record.get("warnings") or [],
    }


def noise_notes(
    pc: PairedComparison,
    rounds: list[int],
    base_noise: dict[int, dict],
    current_noise: dict[int, dict],
    threshold: float,
) -> list[str]:
    """A note for each pair far from the row's ratio: what the slower process of the pair suffered more of."""
    logs = [math.log(r) for r in pc.ratios]
    centre = math.log(pc.ratio)
    mad = sorted(abs(x - centre) for x in logs)[len(logs) // 2] * 1.4826 if logs else 0.0
    limit = max(math.log1p(threshold) / 2, 3 * mad)
    notes = []
    for rnd, ratio, x in zip(rounds, pc.ratios, logs):
        if abs(x - centre) <= limit:
            continue
        slow, fast = ("current", "base") if x > centre else ("base", "current")
        records = {"base": base_noise.get(rnd), "current": current_noise.get(rnd)}
        why = explain(records[slow], records[fast])
        head = f"pair {rnd + 1}: {ratio:.3f} (row {pc.ratio:.3f})"
        notes.append(
            f"{head}: the {slow} process {'; '.join(why)}"
            if why
            else f"{head}: not explained by the recorded noise (load, context switches, CPUs, threads)"
        )
    return notes


def noise_warnings(sides: dict[str, Side]) -> list[str]:
    """What the processes' noise records warned of, once per kind: oversubscribed thread pools by their text,
    a busy machine (load average above the schedulable CPUs) as a count with the highest load seen."""
    pools: dict[str, int] = {}
    busy, total, top = 0, 0, 0.0
    for side in sides.values():
        for by_round in side.noise.values():
            for record in by_round.values():
                total += 1
                for w in record.get("warnings") or []:
                    if w.startswith("load average"):
                        busy += 1
                        top = max(top, (record.get("load_average") or [0.0])[0])
                    else:
                        pools[w] = pools.get(w, 0) + 1
    out = [f"{w} ({n} of {total} timed passes)" for w, n in sorted(pools.items())]
    if busy:
        out.append(
            f"{busy} of {total} timed passes (a row in one process) ran with a load average above their "
            "schedulable CPUs (up to "
            f"{top:.1f}): other processes shared the cores, which interleaving spreads over both sides"
        )
    return out


def compare_sides(
    sides: dict[str, Side],
    threshold: float,
    confidence: float,
    statistic: str = DEFAULT_STATISTIC,
    **shape: Any,
) -> ABComparison:
    base, current = sides["base"], sides["current"]
    cmp = compare_runs(
        base.run,
        current.run,
        threshold,
        base_path=base.out_dir / "results.json",
        current_path=current.out_dir / "results.json",
    )
    out = ABComparison(
        **{f.name: getattr(cmp, f.name) for f in dataclasses.fields(Comparison)},
        confidence=confidence,
        min_pairs=min_pairs(1 - confidence),
        statistic=statistic,
        **shape,
    )
    out.method = METHOD.format(conf=confidence, n=out.min_pairs, statistic=STATISTIC_WORDS[statistic])
    out.rows = [ab_row(r, base, current, threshold, confidence, statistic) for r in cmp.rows]
    for r in out.rows:
        if r.base_status != "ok" and r.current_status == "ok":
            out.gate_failures.append(
                GateFailure("failed", f"{r.label}: {r.base_status} on the base side", r.label)
            )
    # compare's warnings about pooled samples (drift between runs, one process per job) do not apply to pairs.
    out.warnings = [
        w
        for w in out.warnings
        if "moved the same way" not in w
        and "one worker process" not in w
        and w != separate_runs_warning(cmp.rows)
    ]
    out.noise_warnings = noise_warnings(sides)
    return out
