"""The run's suggestions as a reader acts on them: one card per fix, ranked by the gain it measured.

The advisor attaches a suggestion to every result it concerns, so one fix can appear once per case (`cache()`
five times in an input-pipeline suite). Here suggestions with the same code and the same fix become one card
that lists where it applies, each place with its own evidence, the fix written once. Cards are ranked by the
speed-up their evidence measured (`tfperf.figures.measures.suggestion_gain`, the best of the card's places):
measured gains first, largest first; then bounds (an input-bound step at best loses its wait); then context
with no gain of its own (payback, retracing, noise), by the severity the summary uses. The HTML page,
report.md and the terminal all list `ranked_cards(run)`, so they rank the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tfperf import units
from tfperf.figures.measures import Gain, suggestion_gain
from tfperf.report.summary import SEVERITY, UNKNOWN_CODE_SEVERITY
from tfperf.report.verdicts import job
from tfperf.results.model import Result, RunResult
from tfperf.results.records import Suggestion

# Context the terminal table already shows in its notes column (report.md and the page list it in full).
QUIET_IN_TERMINAL = ("noisy-measurement",)


@dataclass(frozen=True)
class Place:
    """One result a card's fix applies to, with the evidence the advisor found there."""

    case: str
    job: str
    label: str  # the JobSpec label, as the terminal names a job
    title: str
    evidence: str
    gain: Gain | None
    before_s: float | None = None  # the step before and after the fix, when the rule recorded both
    after_s: float | None = None


@dataclass
class Card:
    """One fix and every place it applies; `gain` is the best of its places'."""

    code: str
    title: str
    fix: str | None
    places: list[Place] = field(default_factory=list)
    gain: Gain | None = None

    @property
    def cases(self) -> list[str]:
        return list(dict.fromkeys(p.case for p in self.places))

    @property
    def gain_text(self) -> str:
        """ "2.39x", "up to 1.67x" for a bound, "" for context with no gain."""
        if self.gain is None:
            return ""
        return ("" if self.gain.measured else "up to ") + units.speedup(self.gain.factor)


def _better(a: Gain | None, b: Gain | None) -> Gain | None:
    """The larger gain, a measured one over a bound."""
    if a is None or b is None:
        return a or b
    return max(a, b, key=lambda g: (g.measured, g.factor))


def rank_key(card: Card) -> tuple:
    """Measured gains first (largest first), then bounds, then context by severity; ties keep run order."""
    severity = SEVERITY.get(card.code, UNKNOWN_CODE_SEVERITY)
    if card.gain is None:
        return (2, -severity, 0.0)
    return (0 if card.gain.measured else 1, -card.gain.factor, -severity)


def ranked_cards(run: RunResult | list[Result]) -> list[Card]:
    """Every suggestion of the run (or of a list of results), merged by (code, fix) and ranked by gain."""
    results = run.results if isinstance(run, RunResult) else run
    cards: dict[tuple, Card] = {}
    for r in results:
        for s in r.suggestions:
            place = _place(r, s)
            code = s.code or "other"
            card = cards.setdefault((code, s.fix), Card(code, place.title or code, s.fix))
            card.places.append(place)
            card.gain = _better(card.gain, place.gain)
    out = sorted(cards.values(), key=rank_key)
    for card in out:
        # The card's headline is its best place's own title ("cache(): measured 2.39× faster").
        best = max(
            card.places,
            key=lambda p: (
                p.gain is not None,
                p.gain.measured if p.gain else False,
                p.gain.factor if p.gain else 0.0,
            ),
        )
        card.title = best.title or card.code
    return out


def _place(r: Result, s: Suggestion) -> Place:
    data = s.evidence_data or {}
    before, after = data.get("baseline_median_s"), data.get("median_s")
    both = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (before, after))
    return Place(
        r.case,
        job(r),
        r.spec.label,
        units.text(s.title) if s.title else "",
        units.text(s.evidence) if s.evidence else "",
        suggestion_gain(s),
        before if both else None,
        after if both else None,
    )


def card_where(card: Card) -> str:
    """Where a card applies, in one line: "mlp · eager (batch 64); small_cnn · eager (batch 32)"."""
    return "; ".join(f"{p.case} · {p.job}" for p in card.places)


def terminal_lines(cards: list[Card]) -> list[str]:
    """The ranked cards for the terminal: code, gain, title, where, each place's evidence, the fix once."""
    lines = []
    for i, card in enumerate(c for c in cards if c.code not in QUIET_IN_TERMINAL):
        gain = f" ({card.gain_text})" if card.gain_text else ""
        lines.append(f"{i + 1}. [{card.code}]{gain} {card.title}")
        for p in card.places:
            lines.append(f"    {p.label}: {p.evidence}")
        if card.fix:
            lines.append("    fix: " + card.fix.replace("\n", "\n         "))
    return lines


def markdown_lines(cards: list[Card]) -> list[str]:
    """The ranked cards for report.md, numbered in rank order."""
    lines = []
    for i, card in enumerate(cards):
        gain = f" — **{card.gain_text}**" if card.gain_text else ""
        lines.append(f"{i + 1}. `{card.code}`{gain}: {card.title}")
        for p in card.places:
            lines.append(f"   - {p.label}: {p.evidence}")
        if card.fix and "\n" not in card.fix:
            lines.append(f"   - fix: `{card.fix}`")
        elif card.fix:
            lines.append(
                "   - fix:\n\n     ```python\n     " + card.fix.replace("\n", "\n     ") + "\n     ```"
            )
    return lines
