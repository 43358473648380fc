"""The graph a step became: ops in the traced TensorFlow graph (and after Grappler's passes) and, under XLA,
HLO instructions before and after XLA's optimisation passes and the fusions they made.

`graph_stats(fn, args, kwargs, jit)` reads them from a tf.function; `count_hlo(text)` counts an HLO module's
text (pure, testable without TensorFlow). Importing this module does not import TensorFlow.

What is counted: XLA prints a module as computations. The ENTRY computation, and the bodies and branches of
its control flow, are what runs; a fusion's computation runs as part of its one `fusion` instruction, and a
reducer (`to_apply=`) is a scalar lambda applied inside its instruction. So `instructions` counts the
instructions of the computations that run (entry + control flow, followed recursively) and
`fused_instructions` those inside fusions: after fusion the first number falls, which is what "XLA fused the
graph" means.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from tfperf.profile import grappler

# `[ROOT] [%]name = <shape> opcode(` ; the shape is a token (f32[8,16]{1,0}) or a parenthesised tuple.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([^\s=]+)\s*=\s*(.*)$")
_COMPUTATION = re.compile(r"^\s*(ENTRY\s+)?%?([^\s(]+)\s*(?:\(.*\))?.*\{\s*$")
_CALLS = re.compile(
    r"\b(calls|body|condition|to_apply|true_computation|false_computation|branch_computations)="
    r"(\{[^}]*\}|%?[\w.\-]+)"
)
# Computations reached through these attributes run as their own code; the others run inside their caller.
_RUNS_SEPARATELY = {"body", "condition", "true_computation", "false_computation", "branch_computations"}


def _opcode(rest: str) -> str | None:
    """The opcode after `name = `: skip the shape (a token, or a balanced tuple), then read up to '('."""
    i = 0
    if rest.startswith("("):
        depth = 0
        for ch in rest:
            depth += ch == "("
            depth -= ch == ")"
            i += 1
            if depth == 0:
                break
    else:
        while i < len(rest) and not rest[i].isspace():
            i += 1
    m = re.match(r"\s*([a-z][\w\-]*)\(", rest[i:])
    return m.group(1) if m else None


def hlo_computations(text: str) -> Iterator[tuple[str, bool, list[tuple[str, str, str]]]]:
    """(name, is ENTRY, [(instruction name, opcode, the rest of its line)]) per computation of an HLO module's
    text: the one reader of XLA's text format (count_hlo here; hlo_metadata.from_text reads metadata from
    it)."""
    current: tuple[str, bool, list] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if current is None:
            if stripped.startswith("HloModule") or not stripped.endswith("{"):
                continue
            m = _COMPUTATION.match(stripped)
            if m:
                current = (m.group(2), bool(m.group(1)), [])
            continue
        if stripped == "}":
            yield current
            current = None
            continue
        m = _INSTRUCTION.match(stripped)
        if not m:
            continue
        op = _opcode(m.group(2))
        if op is not None:
            current[2].append((m.group(1), op, m.group(2)))
    if current is not None:  # a module cut short: keep what was read
        yield current


def called(body: str) -> list[tuple[str, str]]:
    """(attribute, computation) for each computation an instruction's line names (calls=, body=, to_apply=,
    ...)."""
    return [
        (attr, name) for attr, target in _CALLS.findall(body) for name in re.findall(r"%?([\w.\-]+)", target)
    ]


def parse_hlo(text: str) -> dict[str, dict]:
    """{computation name: {entry: bool, opcodes: [...], calls: [(attribute, callee)]}} of an HLO module's
    text."""
    comps: dict[str, dict] = {}
    for name, entry, instructions in hlo_computations(text):
        current = comps[name] = {"entry": entry, "opcodes": [], "calls": []}
        for _, op, body in instructions:
            current["opcodes"].append(op)
            for attr, callee in called(body):
                if attr == "calls" and op != "call" and op != "async-start":
                    attr = "fused" if op == "fusion" else attr
                current["calls"].append((attr, callee))
    return comps


def count_hlo(text: str) -> dict:
    """{instructions, fused_instructions, fusions, computations} of an HLO module's text."""
    comps = parse_hlo(text)
    entry = next((name for name, c in comps.items() if c["entry"]), None)
    running: set[str] = set()
    fused: set[str] = set()
    todo = [entry] if entry else []
    while todo:
        name = todo.pop()
        if name in running or name not in comps:
            continue
        running.add(name)
        for attr, callee in comps[name]["calls"]:
            if attr in _RUNS_SEPARATELY or attr == "calls":
                todo.append(callee)
            elif attr == "fused":
                fused.add(callee)
    # Fusions nest (a fusion inside a fused computation); count every instruction they hold.
    todo = list(fused)
    while todo:
        name = todo.pop()
        for attr, callee in comps.get(name, {}).get("calls", []):
            if attr == "fused" and callee not in fused:
                fused.add(callee)
                todo.append(callee)
    ops = [op for name in running for op in comps[name]["opcodes"]]
    return {
        "instructions": len(ops),
        "fused_instructions": sum(len(comps[n]["opcodes"]) for n in fused if n in comps),
        "fusions": sum(op == "fusion" for op in ops),
        "computations": len(comps),
    }


def op_count(concrete_fn: Any) -> int:
    """Ops in a concrete function's graph, including the bodies of the functions it calls (control flow)."""
    graph_def = concrete_fn.graph.as_graph_def()
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


def grappler_op_count(concrete_fn: Any) -> int:
    """Ops left after Grappler's default passes (constant folding, pruning, arithmetic and remapper rewrites).

    An estimate of the graph the runtime executes: the same optimizer the runtime applies to a function,
    run here on its graph with the outputs and the stateful ops (variable updates) as fetches so nothing
    that matters is pruned. TensorFlow exposes this only through its grappler module.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = concrete_fn.graph
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(add_shapes=True), graph=graph)
    fetches = [t.op.name for t in tf.nest.flatten(concrete_fn.outputs)]
    fetches += [op.name for op in getattr(graph, "control_outputs", [])]
    meta.collection_def["train_op"].node_list.value.extend(dict.fromkeys(fetches))
    optimized = tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta)
    return len(optimized.node) + sum(len(f.node_def) for f in optimized.library.function)


def graph_stats(fn: Any, args: tuple, kwargs: dict, jit: bool) -> dict:
    """{op_count, grappler_op_count} of the step's traced graph (before and after Grappler), plus for XLA
    {hlo_instructions, optimized_hlo_instructions, fusions, fused_instructions}. `args`/`kwargs` are a call's
    arguments (they pick the trace; a new shape would trace again, so pass arguments the function was already
    called with).

    A part that cannot be read is left out and its reason put under `errors`; it never raises.
    """
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    concrete = None
    try:
        concrete = fn.get_concrete_function(*args, **kwargs)
        out["op_count"] = op_count(concrete)
    except Exception as exc:  # noqa: BLE001 - a read-out must never fail the measured result
        errors["op_count"] = _one_line(exc)
    if concrete is not None:
        try:
            out["grappler_op_count"] = grappler_op_count(concrete)
        except Exception as exc:  # noqa: BLE001 - a read-out that fails is recorded; the timing stands
            errors["grappler_op_count"] = _one_line(exc)
        if not jit:  # under XLA Grappler's graph is not what runs (XLA compiles the function whole)
            try:
                out["grappler_passes"] = [p.to_json() for p in grappler.grappler_passes(concrete)]
            except Exception as exc:  # noqa: BLE001 - recorded in the graph read-out's errors
                errors["grappler_passes"] = _one_line(exc)
    if jit:
        try:
            ir = fn.experimental_get_compiler_ir(*args, **kwargs)
            hlo = count_hlo(ir(stage="hlo"))
            optimized = count_hlo(ir(stage="optimized_hlo"))
            out["hlo_instructions"] = hlo["instructions"]
            out["optimized_hlo_instructions"] = optimized["instructions"]
            out["fusions"] = optimized["fusions"]
            out["fused_instructions"] = optimized["fused_instructions"]
        except Exception as exc:  # noqa: BLE001 - recorded in the graph read-out's errors
            errors["hlo"] = _one_line(exc)
    if errors:
        out["errors"] = errors
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def example_call_args(fn: Any) -> tuple[tuple, dict] | None:
    """Arguments matching the latest trace (zeros of its static shapes, its Python values), or None.

    Lets the harness read the graph of the trace it timed without drawing another batch from the inputs
    (a generator of growing shapes would trace again).
    """
    import tensorflow as tf

    lister = getattr(fn, "_list_all_concrete_functions", None)
    concretes = lister() if lister is not None else []
    if not concretes:
        return None
    args, kwargs = concretes[-1].structured_input_signature

    ok = True

    def make(spec: Any) -> Any:
        nonlocal ok
        if isinstance(spec, tf.TensorSpec):
            if not spec.shape.is_fully_defined():
                ok = False
                return None
            return tf.zeros(spec.shape, spec.dtype)
        if isinstance(spec, tf.TypeSpec) or type(spec).__name__ == "UnknownArgument":
            ok = False
            return None
        return spec

    built = tf.nest.map_structure(make, (tuple(args), dict(kwargs)))
    return built if ok else None
