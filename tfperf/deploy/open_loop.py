"""Open-loop load for serve-bench: Poisson arrivals at a target rate, the Server scenario of MLPerf's LoadGen.

A closed loop (each client sends its next request when the last one answered) slows down with the server, so
it never sees the queue a production server builds when requests keep arriving at their own pace. Here the
arrival times are drawn first (exponential gaps at 1/qps, from a seed), and each request is due at its time
whatever happened to the ones before. `connections` client threads take the due requests in order; a request
that finds every connection busy starts late, and its latency is counted from the time it was due, not from
when it was sent, so a slow server cannot hide its queue (no coordinated omission). How late requests started
is reported: late starts mean the client fell behind (every connection busy: raise --concurrency; or the
client machine itself busy, which shows as sleep overshoot on a loaded host).

The verdict follows LoadGen's: VALID when the p99 latency is within the bound, there are enough samples for a
p99 (stats.sample_size), nothing failed, and the server completed requests at the rate they were scheduled.

No TensorFlow; the HTTP client is the caller's (`make_client() -> object with send() and close()`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from tfperf import stats, units
from tfperf.figures.thresholds import OPEN_LOOP_KEEP_UP_FRACTION, PERCENTILE_CONFIDENCE
from tfperf.results.serve_records import OpenLoop
from tfperf.stats.sample_size import samples_needed

PERCENTILES = (0.5, 0.9, 0.99)
# Connections when --qps is given without --concurrency: enough that a request rarely waits for a free one at
# the rates a 2-core client can send.
OPEN_LOOP_CONNECTIONS = 16
# A request that starts this much after it was due counts as a late start (the client was the limit).
LATE_START_S = 0.001


class Client(Protocol):
    def send(self) -> tuple[str, str | None, float, str | None]: ...  # (outcome, key, seconds, message)

    def close(self) -> None: ...


@dataclass
class Dispatch:
    """How the schedule was kept: requests scheduled and sent, how late each started, the run's length."""

    scheduled: int
    sent: int = 0
    start_delays_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    last_due_s: float = 0.0  # the last sent request's due time, from the start
    stopped_by: str = "requests"


def arrival_offsets(qps: float, max_requests: int, duration_s: float, seed: int = 0) -> list[float]:
    """Due times in seconds from the start: a Poisson process at `qps`, cut at the request cap and the time
    cap."""
    rng = np.random.default_rng(seed)
    offsets: list[float] = []
    t = 0.0
    while len(offsets) < max_requests:
        # Drawn in chunks: a long run at a high rate needs millions of gaps.
        for gap in rng.exponential(1.0 / qps, size=min(4096, max_requests - len(offsets))):
            t += float(gap)
            if t > duration_s:
                return offsets
            offsets.append(t)
    return offsets


def dispatch(
    offsets: list[float],
    connections: int,
    make_client: Callable[[], Client],
    record: Callable[[str, str | None, float, str | None], None],
    timeout_s: float,
    capped_by_duration: bool,
) -> Dispatch:
    """Send each request at its due time from `connections` threads; `record` gets the latency from the due
    time (start delay + response time)."""
    run = Dispatch(scheduled=len(offsets), stopped_by="duration" if capped_by_duration else "requests")
    lock = threading.Lock()
    state = {"next": 0}
    start = time.perf_counter()

    def worker() -> None:
        client = make_client()
        try:
            while True:
                with lock:
                    i = state["next"]
                    if i >= len(offsets):
                        return
                    state["next"] = i + 1
                due = start + offsets[i]
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sent_at = time.perf_counter()
                kind, key, elapsed, message = client.send()
                with lock:
                    run.sent += 1
                    run.start_delays_s.append(sent_at - due)
                    run.last_due_s = max(run.last_due_s, offsets[i])
                record(kind, key, (sent_at - due) + elapsed, message)
        finally:
            client.close()

    threads = [
        threading.Thread(target=worker, name=f"serve-bench-open-{i}", daemon=True) for i in range(connections)
    ]
    for t in threads:
        t.start()
    end = start + (offsets[-1] if offsets else 0.0)
    for t in threads:
        # As in the closed loop: past the last due time plus one timeout a stuck thread is abandoned (daemon).
        t.join(timeout=max(0.0, end - time.perf_counter()) + timeout_s + 1.0)
    run.wall_s = time.perf_counter() - start
    return run


def percentile_figures(latencies_s: list[float]) -> dict:
    """Each latency percentile with the samples it was computed from and the samples it needs."""
    n = len(latencies_s)
    values = sorted(latencies_s)
    out = {}
    for p in PERCENTILES:
        needed = samples_needed(p, PERCENTILE_CONFIDENCE)
        out[f"p{round(p * 100)}"] = {
            "value": stats.quantile(values, p) if values else None,
            "samples": n,
            "needed": needed,
            "enough": n >= needed,
        }
    return out


def open_loop_figures(
    target_qps: float, run: Dispatch, latencies_s: list[float], failed: int, p99_bound_s: float | None
) -> OpenLoop:
    """`serve.open_loop`: target, scheduled and achieved rates, the start delays, the percentiles with their
    sample counts, and the verdict when a p99 bound was given."""
    ok = len(latencies_s)
    scheduled_qps = run.sent / run.last_due_s if run.last_due_s > 0 else None
    achieved_qps = ok / run.wall_s if run.wall_s > 0 else None
    delays = sorted(run.start_delays_s)
    late = sum(1 for d in delays if d > LATE_START_S)
    percentiles = percentile_figures(latencies_s)
    reasons: list[str] = []
    verdict = None
    if p99_bound_s is not None:
        p99 = percentiles["p99"]
        if p99["value"] is None:
            reasons.append("no request succeeded")
        elif p99["value"] > p99_bound_s:
            reasons.append(
                f"p99 {units.seconds(p99['value'])} is above the bound {units.seconds(p99_bound_s)}"
            )
        if not p99["enough"]:
            reasons.append(
                f"p99 from {p99['samples']} samples, {p99['needed']} needed "
                f"({PERCENTILE_CONFIDENCE:.0%} confidence): run longer or at a higher --qps"
            )
        if failed:
            reasons.append(f"{failed} request(s) failed")
        if (
            scheduled_qps
            and achieved_qps is not None
            and achieved_qps < OPEN_LOOP_KEEP_UP_FRACTION * scheduled_qps
        ):
            reasons.append(
                f"completed {units.number(achieved_qps)} requests/s of {units.number(scheduled_qps)} "
                f"scheduled (below {OPEN_LOOP_KEEP_UP_FRACTION:.0%}): the server did not keep up"
            )
        verdict = "INVALID" if reasons else "VALID"
    return OpenLoop(
        target_qps=target_qps,
        scheduled_qps=scheduled_qps,
        achieved_qps=achieved_qps,
        scheduled=run.scheduled,
        latency_from="due time",
        late_starts=late,
        start_delay_p99_s=stats.quantile(delays, 0.99) if delays else None,
        percentiles=percentiles,
        p99_bound_s=p99_bound_s,
        verdict=verdict,
        reasons=reasons,
    )


def summary_lines(figures: OpenLoop | None) -> list[str]:
    """The terminal lines for `serve.open_loop`."""
    if not figures:
        return []
    lines = [
        f"open loop    target {units.number(figures.target_qps)} QPS (Poisson), scheduled "
        f"{units.number(figures.scheduled_qps)}, achieved {units.number(figures.achieved_qps)}; "
        f"latency from the due time"
    ]
    for name, p in (figures.percentiles or {}).items():
        flag = "" if p["enough"] else f"  (from {p['samples']} samples, {p['needed']} needed)"
        lines.append(f"  {name:<4} {units.seconds(p['value'])}{flag}")
    if figures.late_starts:
        lines.append(
            f"  {figures.late_starts} request(s) started over {units.seconds(LATE_START_S)} late (p99 "
            f"{units.seconds(figures.start_delay_p99_s)}): the client fell behind its schedule (every "
            "connection busy, or a busy client machine); raise --concurrency if many did"
        )
    if figures.verdict:
        lines.append(
            f"verdict      {figures.verdict} (p99 bound {units.seconds(figures.p99_bound_s)})"
            + "".join(f"\n  - {r}" for r in figures.reasons or [])
        )
    return lines
