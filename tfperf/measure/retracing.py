"""Retracing, explained: which call retraced, which argument changed and how, and the spec every trace shares.

TensorFlow only warns that "N out of the last M calls triggered tf.function retracing". Every trace leaves a
concrete function in the tf.function's cache, keyed by the FunctionType of the arguments it was traced for
(`pretty_printed_concrete_signatures()` prints the same cache). Comparing each trace's FunctionType with the
nearest earlier one names the argument that made TensorFlow trace again: a Python scalar's value, a tensor's
shape or dtype, a new Python object, a different nesting structure.

Public functions:
- `explain_retraces(fn, trace_calls)` -> `[Retrace(call, changed, argument, kind, before, after, dims, ...)]`
- `signature_info(fn, fn_name)` -> per-parameter specs generalised over every trace (None where a dim varied);
  `tfperf.measure.retrace_fixes.fix_for` turns it into a complete `input_signature`.
- `note_trace(fn, call)` -> record the traces of a call while its arguments are alive (names the class of a
  new Python object, which a dead weak reference no longer can).
- `first_use_traces(fn)` -> traces that only re-ran the first call because it created variables (not
  retraces).

What to do about retraces (the fix, the message, the retrace budget) is in tfperf.measure.retrace_fixes, which
reads only the records and plain dicts these functions return.

TensorFlow is only touched through the objects passed in: importing this module does not import TensorFlow.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

from tfperf.results.records import Retrace

KINDS: tuple[str, ...] = ("python_value", "shape", "dtype", "new_object", "structure", "other")


@dataclass(frozen=True)
class Leaf:
    """One traced argument (or one element of a nested argument), as the trace saw it."""

    path: str  # "x", "batch[0]", "features['ids']"
    kind: str  # tensor | python | object | container | other
    shape: tuple | None = None  # tensors: dims (None = unknown); None = unknown rank
    dtype: str | None = None
    value: Any = None  # python: the literal value
    type_name: str = ""  # python type, class of an object, spec class, container description
    token: Any = None  # objects: identity of the referent; containers: their keys/length

    def same_as(self, other: "Leaf") -> bool:
        if self.kind != other.kind:
            return False
        if self.kind == "tensor":
            return (self.shape, self.dtype, self.type_name) == (other.shape, other.dtype, other.type_name)
        if self.kind == "python":
            return _literal_equal(self.value, other.value)
        if self.kind in ("object", "container"):
            return self.token == other.token and self.type_name == other.type_name
        return self.token == other.token


@dataclass
class Trace:
    call: int | None  # the call index that traced it
    leaves: dict[str, Leaf]
    scope: str | None  # VARIABLE_CREATION | NO_VARIABLE_CREATION
    context: Any  # FunctionContext.context (device scope, graph, xla context)
    first_use: bool = False  # the re-trace after the first call created variables


def _literal_equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - an exotic literal's __eq__; identity is the honest fallback
        return a is b


# --- reading a FunctionType -------------------------------------------------------------------------------


def _leaves(path: str, t: Any, out: dict[str, Leaf], objects: dict[str, str] | None = None) -> None:
    """Flatten one parameter's TraceType into leaves keyed by path (containers are leaves too)."""
    from tensorflow.core.function.trace_type import default_types as dt

    name = type(t).__name__
    if isinstance(t, dt.Literal):
        value = t.value
        if value is dt.NanMarker:
            value = float("nan")
        out[path] = Leaf(path, "python", value=value, type_name=type(value).__name__)
    elif isinstance(t, dt.Weakref):
        obj = t._ref()  # noqa: SLF001 - Weakref exposes its referent only this way
        cls = type(obj).__name__ if obj is not None else (objects or {}).get(path, "")
        out[path] = Leaf(path, "object", type_name=cls, token=id(t._ref))  # noqa: SLF001 - as above
    elif isinstance(t, dt.Dict):
        keys = list(t.mapping)
        out[path] = Leaf(
            path,
            "container",
            type_name=f"dict with keys {_sorted_repr(keys)}",
            token=("dict", tuple(map(repr, keys))),
        )
        for k in keys:
            _leaves(f"{path}[{k!r}]", t.mapping[k], out, objects)
    elif isinstance(t, (dt.NamedTuple, dt.Attrs)):
        nt = t.named_attributes if isinstance(t, dt.Attrs) else t
        out[path] = Leaf(
            path,
            "container",
            type_name=f"{nt.type_name}{tuple(nt.attribute_names)}",
            token=(nt.type_name, tuple(nt.attribute_names)),
        )
        for attr, comp in zip(nt.attribute_names, nt.attributes.components):
            _leaves(f"{path}.{attr}", comp, out, objects)
    elif isinstance(t, (dt.Tuple, dt.List)):
        comps = t.components if isinstance(t, dt.Tuple) else t.components_tuple.components
        kind = "tuple" if isinstance(t, dt.Tuple) else "list"
        out[path] = Leaf(
            path, "container", type_name=f"{kind} of length {len(comps)}", token=(kind, len(comps))
        )
        for i, comp in enumerate(comps):
            _leaves(f"{path}[{i}]", comp, out, objects)
    elif hasattr(t, "shape") and hasattr(t, "dtype"):
        # TensorSpec and the other TypeSpecs with a shape (RaggedTensorSpec, SparseTensorSpec,
        # VariableSpec...).
        shape = getattr(t, "shape", None)
        dims = None
        try:
            dims = tuple(shape.as_list()) if shape is not None and shape.rank is not None else None
        except (AttributeError, ValueError):
            dims = None
        dtype = getattr(t.dtype, "name", str(t.dtype))
        out[path] = Leaf(path, "tensor", shape=dims, dtype=dtype, type_name=name)
    else:
        out[path] = Leaf(path, "other", type_name=name, token=repr(t))


def _sorted_repr(keys: list) -> str:
    try:
        return repr(sorted(keys))
    except TypeError:
        return repr(keys)


def flatten_function_type(function_type: Any, objects: dict[str, str] | None = None) -> dict[str, Leaf]:
    """The leaves of a FunctionType: one per parameter and per element of nested parameters."""
    out: dict[str, Leaf] = {}
    for p in function_type.parameters.values():
        if p.type_constraint is None:
            continue
        _leaves(p.name, p.type_constraint, out, objects)
    return out


def _cache_entries(fn: Any) -> list[tuple[Any, Any]]:
    """(FunctionContext or None, FunctionType) of every trace, oldest first.

    The function cache is an insertion-ordered dict, so its order is the trace order; it is what
    `pretty_printed_concrete_signatures()` prints. The cache's keys also carry the scope (variable creation or
    not) that tells the first-use re-trace apart; without them, the public concrete-function list is used.
    """
    cache = getattr(fn, "_function_cache", None)
    primary = getattr(cache, "_primary", None)
    if isinstance(primary, dict):
        return [(ctx, ft) for (ctx, ft) in primary.keys()]
    lister = getattr(fn, "_list_all_concrete_functions", None)
    if lister is None:
        return []
    return [(None, cf.function_type) for cf in lister()]


def _scope_name(ctx: Any) -> str | None:
    scope = getattr(ctx, "scope_type", None)
    return getattr(scope, "name", None) if scope is not None else None


# Per tf.function: id(FunctionType) -> (call, leaves) captured by note_trace while the arguments were alive.
_SNAPSHOTS: "weakref.WeakKeyDictionary[Any, dict[int, tuple[int, dict[str, Leaf]]]]" = (
    weakref.WeakKeyDictionary()
)


def note_trace(fn: Any, call: int) -> None:
    """Record the traces added by call `call` (call it right after a call that traced, args still alive)."""
    try:
        seen = _SNAPSHOTS.setdefault(fn, {})
    except TypeError:
        return
    for _, ft in _cache_entries(fn):
        if id(ft) not in seen:
            seen[id(ft)] = (call, flatten_function_type(ft))


def _traces(fn: Any, trace_calls: list[int]) -> list[Trace]:
    """Each cache entry as a Trace with the call that made it (from note_trace, else matched in order)."""
    snaps = {}
    try:
        snaps = _SNAPSHOTS.get(fn, {})
    except TypeError:
        pass
    traces: list[Trace] = []
    pending = list(trace_calls)
    for ctx, ft in _cache_entries(fn):
        snap = snaps.get(id(ft))
        objects = (
            {p: leaf.type_name for p, leaf in snap[1].items() if leaf.kind == "object"} if snap else None
        )
        leaves = flatten_function_type(ft, objects)
        trace = Trace(call=None, leaves=leaves, scope=_scope_name(ctx), context=getattr(ctx, "context", None))
        # The first call that creates variables traces once with variable creation allowed, then again
        # without: same arguments, same call. Not a retrace: a Keras optimizer that builds its variables
        # in the first call makes every train step trace twice this way.
        if (
            traces
            and trace.scope == "NO_VARIABLE_CREATION"
            and traces[0].scope == "VARIABLE_CREATION"
            and not any(t.scope == "NO_VARIABLE_CREATION" for t in traces)
            and _same_leaves(traces[0].leaves, leaves)
        ):
            trace.first_use = True
            trace.call = traces[0].call
        elif snap is not None:
            trace.call = snap[0]
            if trace.call in pending:
                pending.remove(trace.call)
        elif pending:
            trace.call = pending.pop(0)
        traces.append(trace)
    return traces


def _same_leaves(a: dict[str, Leaf], b: dict[str, Leaf]) -> bool:
    return a.keys() == b.keys() and all(a[k].same_as(b[k]) for k in a)


def first_use_traces(fn: Any) -> int:
    """How many traces only repeated the first call because it created variables (0 or 1)."""
    return sum(1 for t in _traces(fn, []) if t.first_use)


# --- comparing two traces ---------------------------------------------------------------------------------


def _differences(
    before: dict[str, Leaf], after: dict[str, Leaf]
) -> list[tuple[str, Leaf | None, Leaf | None]]:
    """Paths whose leaf differs, outermost only (a changed container hides its elements' differences)."""
    diffs = []
    for path in list(dict.fromkeys([*before, *after])):
        a, b = before.get(path), after.get(path)
        if a is not None and b is not None and a.same_as(b):
            continue
        diffs.append((path, a, b))
    changed = [p for p, a, b in diffs if a is None or b is None or a.kind != b.kind or a.kind == "container"]
    return [d for d in diffs if not any(d[0] != c and _is_inside(d[0], c) for c in changed)]


def _is_inside(path: str, container: str) -> bool:
    return path.startswith(container) and path[len(container) : len(container) + 1] in ("[", ".")


def _top_argument(path: str) -> str:
    for i, ch in enumerate(path):
        if ch in "[.":
            return path[:i]
    return path


def _fmt_shape(shape: tuple | None) -> str:
    if shape is None:
        return "(unknown rank)"
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _json_value(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else repr(v)
    return repr(v)


def _describe_leaf(leaf: Leaf | None) -> str:
    if leaf is None:
        return "absent"
    if leaf.kind == "tensor":
        kind = leaf.type_name.replace("Spec", "").lower() or "tensor"
        return f"a {leaf.dtype} {kind} of shape {_fmt_shape(leaf.shape)}"
    if leaf.kind == "python":
        return "None" if leaf.value is None else f"python {leaf.type_name} {leaf.value!r}"
    if leaf.kind == "object":
        return f"an instance of class {leaf.type_name}" if leaf.type_name else "a Python object"
    return leaf.type_name or leaf.kind


def describe_change(path: str, a: Leaf | None, b: Leaf | None) -> dict:
    """One difference as {changed, argument, kind, before, after, dims}."""
    arg = _top_argument(path)
    entry: dict[str, Any] = {"argument": arg, "path": path, "dims": []}
    if a is not None and b is not None and a.kind == b.kind == "tensor":
        entry["dtype"] = b.dtype  # lets fix_for write the TensorSpec without the signature
        if a.dtype != b.dtype:
            entry.update(
                kind="dtype", before=a.dtype, after=b.dtype, changed=f"{path}: dtype {a.dtype} -> {b.dtype}"
            )
            return entry
        if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
            rank_a = None if a.shape is None else len(a.shape)
            rank_b = None if b.shape is None else len(b.shape)
            dims = list(range(max(rank_a or 0, rank_b or 0)))
            entry.update(
                kind="shape",
                before=_json_value(list(a.shape) if a.shape else a.shape),
                after=_json_value(list(b.shape) if b.shape else b.shape),
                dims=dims,
                changed=f"{path}: shape {_fmt_shape(a.shape)} -> {_fmt_shape(b.shape)} (rank {rank_a} -> "
                f"{rank_b})",
            )
            return entry
        if a.shape != b.shape:
            dims = [i for i, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y]
            entry.update(
                kind="shape",
                before=list(a.shape),
                after=list(b.shape),
                dims=dims,
                changed=f"{path}: shape {_fmt_shape(a.shape)} -> {_fmt_shape(b.shape)} "
                f"(dim{'s' if len(dims) > 1 else ''} {', '.join(map(str, dims))})",
            )
            return entry
        entry.update(
            kind="other",
            before=a.type_name,
            after=b.type_name,
            changed=f"{path}: {a.type_name} -> {b.type_name}",
        )
        return entry
    if a is not None and b is not None and a.kind == b.kind == "python":
        kinds = (
            f"python {b.type_name}"
            if a.type_name == b.type_name
            else f"python {a.type_name} -> python {b.type_name}"
        )
        entry.update(
            kind="python_value",
            before=_json_value(a.value),
            after=_json_value(b.value),
            changed=f"{path}: {a.value!r} -> {b.value!r} ({kinds})",
        )
        return entry
    if b is not None and b.kind == "object":
        what = f"a new instance of class {b.type_name}" if b.type_name else "a new Python object"
        entry.update(
            kind="new_object",
            before=_describe_leaf(a),
            after=what,
            changed=f"{path}: a new Python object ({what}; objects are traced by identity)",
        )
        return entry
    if a is not None and b is not None and a.kind == b.kind == "other":
        entry.update(kind="other", before=a.token, after=b.token, changed=f"{path}: {a.token} -> {b.token}")
        return entry
    entry.update(
        kind="structure",
        before=_describe_leaf(a),
        after=_describe_leaf(b),
        changed=f"{path}: a different structure ({_describe_leaf(a)} -> {_describe_leaf(b)})",
    )
    return entry


def explain_retraces(fn: Any, trace_calls: list[int]) -> list[Retrace]:
    """For each trace after the first: the call that traced and what differed from the nearest earlier trace.

    `trace_calls` are the call indices at which `fn.experimental_get_tracing_count()` grew. The nearest
    earlier trace is the one with the fewest differing arguments (the latest on a tie), so a shape that grows
    by one each call is reported against the previous shape, and a value that comes back is not blamed on a
    new one. Each entry is a `Retrace`: {call, changed, argument, kind, before, after, dims, nearest_call};
    `changed` joins every difference, `argument`/`kind`/`before`/`after`/`dims` describe the first one; when
    more than one argument differed, `changes` lists each the same way (plain objects). A single tensor change
    also carries the new `dtype` (in `details`; each of `changes` has its own).
    """
    traces = _traces(fn, trace_calls)
    out: list[Retrace] = []
    earlier: list[Trace] = []
    for trace in traces:
        if trace.first_use:
            continue
        if earlier:
            best: tuple[Trace, list] | None = None
            for prev in earlier:
                diffs = _differences(prev.leaves, trace.leaves)
                if best is None or len(diffs) <= len(best[1]):  # <=: the latest of equally near traces
                    best = (prev, diffs)
            assert best is not None
            prev, diffs = best
            changes = [describe_change(p, a, b) for p, a, b in diffs]
            if not changes:
                same_scope = prev.scope == trace.scope
                changes = [
                    {
                        "argument": None,
                        "path": None,
                        "kind": "other",
                        "before": prev.scope,
                        "after": trace.scope,
                        "dims": [],
                        "changed": (
                            "the arguments were the same: the calling context changed (device scope, "
                            "graph or distribution strategy)"
                            if same_scope
                            else f"the arguments were the same: traced for {str(trace.scope).lower()} "
                            f"after {str(prev.scope).lower()}"
                        ),
                    }
                ]
            first = changes[0]
            entry = Retrace(
                call=trace.call,
                changed="; ".join(c["changed"] for c in changes),
                argument=first["argument"],
                kind=first["kind"],
                before=first["before"],
                after=first["after"],
                dims=first["dims"],
                nearest_call=prev.call,
            )
            if (
                len(changes) > 1
            ):  # the first is already spelled out above; list them all only when there are more
                entry.changes = [
                    {
                        k: c[k]
                        for k in ("argument", "path", "kind", "before", "after", "dims", "changed", "dtype")
                        if k in c
                    }
                    for c in changes
                ]
            elif "dtype" in first:
                entry.details["dtype"] = first["dtype"]
            out.append(entry)
        earlier.append(trace)
    return out


# --- the spec every trace shares ---------------------------------------------------------------------------


def signature_info(fn: Any, fn_name: str = "step") -> dict:
    """Every parameter's spec over all traces: {function, parameters: [{name, kind, shape, dtype, value}]}.

    A tensor dim that differed between traces (or a rank that differed) is None: exactly the
    `tf.TensorSpec` an `input_signature` needs so those calls share one trace.
    """
    traces = [t for t in _traces(fn, []) if not t.first_use]
    params: list[dict] = []
    if traces:
        latest = traces[-1].leaves
        names = [p for p in latest if _top_argument(p) == p]
        for name in names:
            leaf = latest[name]
            same = [t.leaves.get(name) for t in traces]
            entry: dict[str, Any] = {"name": name, "kind": leaf.kind, "type": leaf.type_name}
            if leaf.kind == "tensor":
                shapes = [s.shape for s in same if s is not None and s.kind == "tensor"]
                dtypes = {s.dtype for s in same if s is not None and s.kind == "tensor"}
                entry["dtype"] = leaf.dtype if len(dtypes) == 1 else None
                if any(s is None for s in shapes) or len({len(s) for s in shapes}) > 1:
                    entry["shape"] = None
                else:
                    entry["shape"] = [dims[0] if len(set(dims)) == 1 else None for dims in zip(*shapes)]
                entry["varies"] = len(set(shapes)) > 1 or len(dtypes) > 1
            elif leaf.kind == "python":
                entry["value"] = _json_value(leaf.value)
                entry["varies"] = (
                    len({repr(s.value) for s in same if s is not None and s.kind == "python"}) > 1
                )
            else:
                entry["varies"] = any(s is None or not s.same_as(leaf) for s in same)
            params.append(entry)
    return {"function": fn_name, "parameters": params}
