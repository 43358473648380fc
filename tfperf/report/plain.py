"""Plain language for the page: one-line explanations of every metric name it shows, xprof's tips as the links
they are (and nothing else as markup), the environment without fields that do not apply.

Why the tips need care: xprof writes its "next step" advice as HTML (`Consider using <a href="...">the tf.data
API</a>`). Escaping it all prints tags as text; trusting it all would let a results file inject markup. So
only xprof's own anchor shape with an http(s) address is kept as a link, and every other character is escaped.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

from tfperf import units

# One line per metric name the page shows, for its glossary and its header tooltips.
GLOSSARY: dict[str, str] = {
    "median step": "the middle of every timed step (half were faster, half slower); warm-up steps are not "
    "timed",
    "IQR / median": "interquartile range (the middle half of the step times) as a share of the median: the "
    "noise",
    "noisy": "IQR above the threshold: the step time moved a lot between steps, repeats or processes",
    "throughput": "samples (or steps) per second at the median step",
    "vs eager": "the eager step over this mode's at the same batch size: 3.00x is three times faster",
    "first call": "the first call alone: tracing, compiling (XLA) and one step; timed apart from the steady "
    "steps",
    "traces": "how many times tf.function built the graph; more than one is a retrace",
    "input-bound": "the share of the step spent waiting for the next batch, measured around next(iterator)",
    "peak memory": "the GPU allocator's peak, or the profiled pass's memory profile; none on a CPU without "
    "one",
    "p": "Mann–Whitney U p-value: the chance of a difference this large if the two modes were equally fast",
    "payback": "steps after the first call until XLA's dearer compile is repaid by its cheaper steps",
    "scaling efficiency": "samples/s with N replicas over N × samples/s with one replica",
    "all-reduce share": "the share of op time spent summing gradients across replicas",
    "op_count": "ops in the graph TensorFlow runs after grappler's rewrites (fewer usually means less "
    "overhead)",
    "hlo_instructions": "instructions in XLA's compiled program (HLO) for the step",
    "fusions": "groups of ops XLA fused into one kernel (more fusions, fewer memory round trips)",
    "host compute": "time on the CPU running ops, from the profiled pass",
    "profiled step": "the step time the profiler saw in its one untimed profiled pass",
    "speed-up": "old time / new time: 2.00x takes half the time",
}

_ANCHOR = re.compile(r'<a\s+href="(https?://[^"<>\s]+)"(?:\s+target="_blank")?\s*>([^<>]*)</a>', re.I)


def safe_links(text: Any) -> Markup:
    """xprof's tip as markup: its `<a href="https://...">words</a>` anchors become links, everything else is
    escaped (a `<script>` stays text)."""
    s = units.text(text)
    out, pos = [], 0
    for m in _ANCHOR.finditer(s):
        out.append(escape(s[pos : m.start()]))
        out.append(Markup('<a href="{}" rel="noopener noreferrer">{}</a>').format(m.group(1), m.group(2)))
        pos = m.end()
    out.append(escape(s[pos:]))
    return Markup("").join(out)


def is_cpu_only(devices: list[str], env: dict) -> bool:
    """A run with no GPU job and no GPU on the host: device-side figures and CUDA versions mean nothing."""
    return not env.get("gpus") and not any(d.startswith("gpu") for d in devices)


# Environment keys about the GPU stack, shown only when a GPU is there.
GPU_KEYS = ("cuda", "cudnn", "cuda_visible_devices")
THREAD_KEYS = ("intra_op_threads", "inter_op_threads")


def thread_setting(value: Any, cores: Any) -> str:
    """TensorFlow reads 0 threads as "let me choose": say so, with the cores it chooses from."""
    if value in (0, None):
        return f"default ({cores})" if isinstance(cores, int) else "default"
    return units.text(value)


def environment_facts(env: dict, cpu_only: bool) -> list[tuple[str, str]]:
    """The environment as (name, value) rows: no GPU stack on a CPU-only run, thread pools as "default
    (2)"."""
    out = []
    for k, v in env.items():
        if cpu_only and k in GPU_KEYS:
            continue
        if k == "gpus":
            v = [g.get("name", g) if isinstance(g, dict) else g for g in v or []] or "none"
        if k in THREAD_KEYS:
            out.append((k, thread_setting(v, env.get("cpu_count"))))
            continue
        out.append((k, (units.text(v) if v else units.MISSING) if isinstance(v, dict) else units.text(v)))
    return out


def glossary_rows() -> list[tuple[str, str]]:
    return sorted(GLOSSARY.items(), key=lambda kv: kv[0].lower())
