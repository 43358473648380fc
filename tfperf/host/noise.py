"""What else was going on while one worker process timed its steps: the noise a process's median carries.

On a shared 2-core machine the same step's median moves 14-78% between fresh processes, in bursts that come
with the host's other tenants. A process records, around its timed pass: the load average, its own voluntary
and involuntary context switches (an involuntary one is the kernel taking a core away: another runnable thread
wanted it), the CPUs it may run on, TensorFlow's intra-/inter-op thread counts against those CPUs, whether
addresses are randomized (ASLR moves code and data between processes, one source of process-to-process
offsets) and the CPU frequency governor where the kernel exposes it. `tfperf ab` uses them to explain a pair
of processes that disagrees with the others (`explain`).

Linux-first: every figure that cannot be read here is None, never a guess. No TensorFlow: the harness passes
the thread counts it configured.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ASLR_PATH = Path("/proc/sys/kernel/randomize_va_space")
GOVERNOR_PATH = "/sys/devices/system/cpu/cpu{}/cpufreq/scaling_governor"
ASLR_NAMES = {0: "off", 1: "partial", 2: "full"}


@dataclass(frozen=True)
class NoiseStart:
    """The counters when the timed pass began."""

    wall: float
    voluntary: int
    involuntary: int


def start() -> NoiseStart:
    """Read the counters at the start of the timed pass (cheap: one getrusage)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return NoiseStart(time.perf_counter(), ru.ru_nvcsw, ru.ru_nivcsw)


@dataclass
class Tally:
    """The counters of a timed pass made of several stretches, summed over them: the pass leaves out what is
    not its own (a distributed pass's waits at the workers' barrier while another worker times its
    baseline). One stretch gives what `finish` gives."""

    timed_s: float = 0.0
    voluntary: int = 0
    involuntary: int = 0
    begun: NoiseStart | None = None

    def resume(self) -> None:
        if self.begun is None:
            self.begun = start()

    def pause(self) -> None:
        if self.begun is None:
            return
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.timed_s += time.perf_counter() - self.begun.wall
        self.voluntary += ru.ru_nvcsw - self.begun.voluntary
        self.involuntary += ru.ru_nivcsw - self.begun.involuntary
        self.begun = None

    def record(self, intra_op_threads: int | None, inter_op_threads: int | None) -> dict[str, Any]:
        """The noise record of the stretches so far (a running stretch ends here)."""
        self.pause()
        return record_of(self.timed_s, self.voluntary, self.involuntary, intra_op_threads, inter_op_threads)


def schedulable_cpus() -> list[int] | None:
    """The CPUs this process may run on (its affinity mask), or None where the OS does not say."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def aslr() -> str | None:
    try:
        value = int(ASLR_PATH.read_text().strip())
    except (OSError, ValueError):
        return None
    return ASLR_NAMES.get(value, str(value))


def governors(cpus: list[int] | None) -> list[str] | None:
    """The distinct frequency governors of `cpus` (None when unreadable: a VM often exposes no cpufreq)."""
    found = set()
    for cpu in cpus or []:
        try:
            found.add(Path(GOVERNOR_PATH.format(cpu)).read_text().strip())
        except OSError:
            continue
    return sorted(found) or None


def finish(begun: NoiseStart, intra_op_threads: int | None, inter_op_threads: int | None) -> dict[str, Any]:
    """The noise record of the timed pass that began at `begun` (`timing.noise`, `timing.by_process[].noise`).

    `intra_op_threads` / `inter_op_threads` are what TensorFlow was configured with (0 or None: its default,
    which is one thread per schedulable CPU for both pools)."""
    return Tally(begun=begun).record(intra_op_threads, inter_op_threads)


def record_of(
    timed_s: float,
    voluntary: int,
    involuntary: int,
    intra_op_threads: int | None,
    inter_op_threads: int | None,
) -> dict[str, Any]:
    """The noise record of a timed pass that took `timed_s` seconds and was switched out `voluntary` and
    `involuntary` times; the load average, affinity, ASLR and governor are read now, at its end."""
    cpus = schedulable_cpus()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    n_cpus = len(cpus) if cpus else os.cpu_count()
    intra = intra_op_threads or n_cpus
    inter = inter_op_threads or n_cpus
    record: dict[str, Any] = {
        "timed_s": round(timed_s, 6),
        "load_average": load,
        "voluntary_context_switches": voluntary,
        "involuntary_context_switches": involuntary,
        "cpu_affinity": cpus,
        "schedulable_cpus": n_cpus,
        "intra_op_threads": intra,
        "inter_op_threads": inter,
        "aslr": aslr(),
        "cpu_governor": governors(cpus),
    }
    record["warnings"] = warnings(record)
    return record


def warnings(record: dict[str, Any]) -> list[str]:
    """Oversubscription: more threads in one of TensorFlow's pools, or more runnable processes on the machine,
    than CPUs this process may use. Either way threads wait for a core, and how long they wait is noise."""
    out = []
    cpus = record.get("schedulable_cpus")
    if not cpus:
        return out
    for key, pool in (("intra_op_threads", "intra-op"), ("inter_op_threads", "inter-op")):
        n = record.get(key)
        if isinstance(n, int) and n > cpus:
            out.append(f"{n} {pool} threads on {cpus} schedulable CPU(s): oversubscribed")
    load = record.get("load_average")
    if load and load[0] > cpus:
        out.append(
            f"load average {load[0]:.1f} on {cpus} schedulable CPU(s): other processes wanted the cores"
        )
    return out


# The columns of a noise record in every report (`fields`), one wording for the terminal, Markdown and HTML.
FIELDS = (
    "load average 1/5/15 min",
    "context switches voluntary / involuntary",
    "involuntary per s",
    "CPU affinity",
    "threads intra / inter-op on CPUs",
    "ASLR",
    "CPU governor",
)
MISSING = "–"


def cpu_ranges(cpus: list[int] | None) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    if not cpus:
        return MISSING
    runs: list[list[int]] = []
    for cpu in cpus:
        if runs and cpu == runs[-1][-1] + 1:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}" for run in runs)


def fields(record: dict[str, Any] | None) -> list[str]:
    """A noise record's figures as text, in the order of FIELDS ("–" where it was not readable)."""
    if not record:
        return [MISSING] * len(FIELDS)
    r = record
    load = r.get("load_average")
    vol, invol = r.get("voluntary_context_switches"), r.get("involuntary_context_switches")
    rate = per_second(r, "involuntary_context_switches")
    intra, inter, cpus = r.get("intra_op_threads"), r.get("inter_op_threads"), r.get("schedulable_cpus")
    return [
        " ".join(f"{x:.2f}" for x in load) if load else MISSING,
        f"{vol} / {invol}" if vol is not None and invol is not None else MISSING,
        f"{rate:.0f}" if rate is not None else MISSING,
        cpu_ranges(r.get("cpu_affinity")),
        f"{intra} / {inter} on {cpus}" if intra is not None and inter is not None and cpus else MISSING,
        r.get("aslr") or MISSING,
        ", ".join(r.get("cpu_governor") or []) or "not readable",
    ]


def per_second(record: dict[str, Any], key: str) -> float | None:
    """A counter of the record per second of its timed pass."""
    n, s = record.get(key), record.get("timed_s")
    return n / s if isinstance(n, (int, float)) and isinstance(s, (int, float)) and s > 0 else None


# How much more one process must have suffered than its pair's to explain its pair's slower median: twice the
# involuntary switches per second (and at least this many more per second: a handful is every process's
# share), or a 1-minute load average higher by at least one runnable process.
SWITCH_FACTOR = 2.0
SWITCH_MIN_EXTRA_PER_S = 20.0
LOAD_MIN_EXTRA = 1.0


def explain(slow: dict[str, Any] | None, fast: dict[str, Any] | None) -> list[str]:
    """Why the slower process of a pair may have been slower, from the two noise records: the reasons that
    point at the slower one only (more preemption, a busier machine, fewer CPUs, an oversubscribed pool).
    Empty when the records do not explain it (or were not recorded)."""
    if not slow or not fast:
        return []
    out = []
    s, f = per_second(slow, "involuntary_context_switches"), per_second(fast, "involuntary_context_switches")
    if s is not None and f is not None and s > SWITCH_FACTOR * f and s - f > SWITCH_MIN_EXTRA_PER_S:
        out.append(f"preempted {s:.0f}/s vs {f:.0f}/s (involuntary context switches)")
    ls, lf = (slow.get("load_average") or [None])[0], (fast.get("load_average") or [None])[0]
    if isinstance(ls, (int, float)) and isinstance(lf, (int, float)) and ls - lf >= LOAD_MIN_EXTRA:
        out.append(f"load average {ls:.1f} vs {lf:.1f}")
    cs, cf = slow.get("schedulable_cpus"), fast.get("schedulable_cpus")
    if isinstance(cs, int) and isinstance(cf, int) and cs < cf:
        out.append(f"{cs} schedulable CPU(s) vs {cf}")
    extra = [
        w
        for w in slow.get("warnings") or []
        if w not in (fast.get("warnings") or []) and "oversubscribed" in w
    ]
    out += extra
    return out
