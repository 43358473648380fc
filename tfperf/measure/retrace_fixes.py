"""What to do about retraces: the line of code that stops them, and the retrace budget that fails a job.

Reads the `Retrace` records `tfperf.measure.retracing.explain_retraces` and the plain signature
`signature_info` wrote into a Result (`Result.retraces`, `Result.tracing.signature`), so it works on a
results.json as well as in a worker; it never touches TensorFlow.

Public functions:
- `fix_for(retraces, fn_name="step", signature=None)` -> the line of code to write (the advisor's `retracing`
  fix). `retraces` may also be a Result: its `tracing.signature` then makes the fix a complete
  `input_signature`.
- `tensor_spec_code(shape, dtype)` -> `tf.TensorSpec([None, 16], tf.float32)`.
- `effective_traces(result)`, `retrace_message(result, max_traces)` -> the count the budget judges, and why.
- `check_trace_budget(result, max_traces)` -> turns more traces than `max_traces` into a failed Result.
"""

from __future__ import annotations

from tfperf.results.model import Result
from tfperf.results.records import ErrorInfo, Retrace

# Shown per retrace in messages; the rest are counted ("and N more").
MAX_REASONS_IN_MESSAGE = 3


def tensor_spec_code(shape: list | None, dtype: str | None) -> str:
    dims = "None" if shape is None else "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"
    return f"tf.TensorSpec({dims}, tf.{dtype or 'float32'})"


def _shape_with_none(entry: dict) -> list | None:
    after = entry.get("after")
    if not isinstance(after, list):
        return None
    dims = set(entry.get("dims") or [])
    return [None if i in dims else d for i, d in enumerate(after)]


def fix_for(
    retraces: list[Retrace] | Result, fn_name: str | None = None, signature: dict | None = None
) -> str:
    """The line(s) of code that stop these retraces, by cause. For the advisor's `retracing` suggestion.

    `retraces` is the list of `Retrace` from `explain_retraces` (or a Result, whose `retraces` and
    `tracing.signature` are used). `signature` is `signature_info(fn)`: with it, a shape fix is a
    complete `@tf.function(input_signature=[...])` with None in the dims that varied.

    - a Python scalar that changes: pass a tensor, `step(..., scale=tf.constant(4.0))`
    - a tensor shape that changes: `@tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32)])`,
      or `@tf.function(reduce_retracing=True)` when an input_signature cannot cover the arguments
    - a dtype that changes: cast to one dtype before the call
    - a new Python object per call: an ExtensionType (traced by field specs) or one object reused
    - a different structure: keep the nesting (keys, lengths) fixed
    Returns "" when there is nothing to fix.
    """
    if isinstance(retraces, Result):
        signature = signature or (retraces.tracing.signature if retraces.tracing else None)
        retraces = retraces.retraces
    if not retraces:
        return ""
    fn_name = fn_name or (signature or {}).get("function") or "step"
    # Each difference as a plain object: a retrace's own `changes`, or the retrace itself when one argument
    # changed.
    changes: list[dict] = []
    for r in retraces:
        changes.extend(r.changes or [r.to_json()])
    lines: list[str] = []

    def add(line: str) -> None:
        if line not in lines:
            lines.append(line)

    kinds = [c.get("kind") for c in changes]
    by_kind: dict[str, list[dict]] = {}
    for c in changes:
        by_kind.setdefault(str(c.get("kind")), []).append(c)

    for c in by_kind.get("python_value", [])[:1]:
        arg = c.get("argument") or "value"
        value = c.get("after")
        add(
            f"{fn_name}(..., {arg}=tf.constant({value!r}))  # a tensor argument: a new value reuses the "
            "trace, "
            f"a new Python {type(value).__name__} retraces"
        )
    if "shape" in kinds:
        params = (signature or {}).get("parameters") or []
        if params and all(p.get("kind") == "tensor" for p in params):
            specs = ", ".join(tensor_spec_code(p.get("shape"), p.get("dtype")) for p in params)
            varying = sorted(
                {f"{c.get('argument')} dim {d}" for c in by_kind["shape"] for d in c.get("dims") or []}
            )
            add(
                f"@tf.function(input_signature=[{specs}])  # None where the shape varied "
                f"({', '.join(varying)}); or @tf.function(reduce_retracing=True)"
            )
        else:
            c = by_kind["shape"][0]
            arg = c.get("argument") or "x"
            spec = tensor_spec_code(_shape_with_none(c), _dtype_of(arg, params) or c.get("dtype"))
            why = (
                "other arguments are not tensors, so input_signature cannot cover them"
                if params
                else f"or input_signature with {arg}: {spec}"
            )
            add(f"@tf.function(reduce_retracing=True)  # one trace with None in the varying dims; {why}")
        if any((c.get("dims") or []) == [0] for c in by_kind["shape"]):
            add("dataset = dataset.batch(batch_size, drop_remainder=True)  # if dim 0 is a ragged last batch")
    for c in by_kind.get("dtype", [])[:1]:
        arg = c.get("argument") or "x"
        add(
            f"{fn_name}(..., {arg}=tf.cast({arg}, tf.{c.get('before')}))  # one dtype per argument, one trace"
        )
    for c in by_kind.get("new_object", [])[:1]:
        arg = c.get("argument") or "obj"
        cls = str(c.get("after") or "")
        cls = cls.rsplit("class ", 1)[1] if "class " in cls else "Config"
        add(
            f"class {cls}(tf.experimental.ExtensionType): ...  # traced by its fields' specs, not identity; "
            f"or build one {cls} outside the loop and pass the same object as {arg}"
        )
    for c in by_kind.get("structure", [])[:1]:
        arg = c.get("argument") or "the argument"
        add(
            f"# give {arg} the same structure every call (same keys, lengths, None-ness); "
            f"pad or fill missing entries instead of leaving them out"
        )
    if not lines:
        add("@tf.function(reduce_retracing=True)  # or a fixed input_signature")
    return "\n".join(lines)


def _dtype_of(arg: str, params: list[dict]) -> str | None:
    return next((p.get("dtype") for p in params if p.get("name") == arg), None)


# --- the retrace budget -----------------------------------------------------------------------------------


def retrace_message(result: Result, max_traces: int) -> str:
    """'traced 3 times, more than max_traces: 1 — call 1: scale: 3.0 -> 4.0 (python float); ...'"""
    retraces = result.retraces or []
    shown = retraces[:MAX_REASONS_IN_MESSAGE]
    text = f"traced {effective_traces(result)} times, more than max_traces: {max_traces}"
    if shown:
        text += " — " + "; ".join(f"call {r.call}: {r.changed}" for r in shown)
        if len(retraces) > len(shown):
            text += f" (and {len(retraces) - len(shown)} more)"
    return text


def effective_traces(result: Result) -> int:
    """Traces that count against the budget: the first-use re-trace of a variable-creating call is not one."""
    first_use = result.tracing.first_use_traces if result.tracing else None
    return int(result.tracing_count or 0) - int(first_use or 0)


def check_trace_budget(result: Result, max_traces: int | None) -> None:
    """Fail an ok function/xla Result that traced more than `max_traces` times (`max_traces:` /
    --fail-on-retrace).

    The error is ErrorInfo(type=RetraceBudgetExceeded, message=the retrace reasons, hint=the fix); the
    measurement itself is kept, so the table still shows what the retracing cost.
    """
    if max_traces is None or result.tracing_count is None or result.status != "ok":
        return
    if effective_traces(result) <= max_traces:
        return
    result.status = "failed"
    result.error = ErrorInfo(
        type="RetraceBudgetExceeded",
        message=retrace_message(result, max_traces),
        hint=fix_for(result) or "@tf.function(reduce_retracing=True)",
    )
