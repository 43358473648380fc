"""Loading and validating a suite file: every problem found, each named by file, line and key, before anything runs.

How: ruamel.yaml's round-trip loader (safe: it builds only plain mappings, lists and scalars, and it remembers
where each key and item was) → plain Python data plus a map from each path to its line → pydantic models with
`extra="forbid"` for keys and types (one model per level; messages written here, not pydantic's) → defaults
merged into each case → checks that need the merged case (model xor function, references, ...) → CaseSpecs.
No TensorFlow import: validating a suite takes a fraction of a second.
"""
from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import SuiteError, SuiteIssue
from .references import check_reference, parse_reference
from .spec import ALL_MODES, AUTOTUNE, DEPLOY_MODES, TASKS, CaseSpec, InputSpec, LabelsSpec, PipelineSpec, Suite

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
DEVICE_RE = re.compile(r"^(auto|cpu|gpu(:\d+)?)$")
DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16", "float64", "int32", "int64", "bool", "string")
STRATEGIES: tuple[str, ...] = ("one_device", "mirrored", "multi_worker")
REFERENCE_KEYS: tuple[str, ...] = ("model", "function", "inputs", "dataset")

Path_ = tuple[Any, ...]  # a path into the document: keys and list indexes


# --- value checks: each raises a PydanticCustomError whose message is the user-facing text ------------------------

def _fail(message: str) -> PydanticCustomError:
    # No context dict: the message is used verbatim (braces in user values stay as they are).
    return PydanticCustomError("tfperf", message)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"'{value}'"
    return repr(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(v: Any, lo: int | None) -> int:
    if not _is_int(v):
        raise _fail(f"expected an integer, got {_show(v)}")
    if lo is not None and v < lo:
        raise _fail(f"must be >= {lo}, got {v}")
    return v


def Int(lo: int | None = None, nullable: bool = False) -> Any:
    def check(v: Any) -> int | None:
        if v is None and nullable:
            return None
        return _check_int(v, lo)
    return Annotated[Any, PlainValidator(check)]


def Float(lo: float, strict: bool = False) -> Any:
    """A number (ints accepted) >= lo, or > lo when strict."""
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(f"expected a number, got {_show(v)}")
        if v != v or v in (float("inf"), float("-inf")):
            raise _fail(f"expected a finite number, got {v}")
        if (v <= lo) if strict else (v < lo):
            raise _fail(f"must be {'>' if strict else '>='} {lo:g}, got {v:g}")
        return float(v)
    return Annotated[Any, PlainValidator(check)]


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(f"expected true or false, got {_show(v)}")
    return v


Bool = Annotated[Any, PlainValidator(_bool)]


def Str(nullable: bool = False) -> Any:
    def check(v: Any) -> str | None:
        if v is None and nullable:
            return None
        if not isinstance(v, str) or not v.strip():
            raise _fail(f"expected a non-empty string, got {_show(v)}")
        return v
    return Annotated[Any, PlainValidator(check)]


def _choice(v: Any, choices: tuple[str, ...], what: str) -> str:
    if not isinstance(v, str):
        raise _fail(f"expected a {what} ({' | '.join(choices)}), got {_show(v)}")
    if v not in choices:
        raise _fail(f"unknown {what} '{v}'{_did_you_mean(v, choices)}; choose from {', '.join(choices)}")
    return v


def OneOf(choices: tuple[str, ...], what: str) -> Any:
    return Annotated[Any, PlainValidator(lambda v: _choice(v, choices, what))]


def IntOrAuto(lo: int) -> Any:
    def check(v: Any) -> int | str:
        if v == AUTOTUNE:
            return v
        if not _is_int(v):
            raise _fail(f"expected an integer or '{AUTOTUNE}', got {_show(v)}")
        return _check_int(v, lo)
    return Annotated[Any, PlainValidator(check)]


def _shape(v: Any) -> list[int]:
    if not isinstance(v, list):
        raise _fail(f"expected a list of integers such as [28, 28, 1], got {_show(v)}")
    for i, d in enumerate(v):
        if not _is_int(d) or d < 1:
            raise _fail(f"item {i} of the shape: expected an integer >= 1, got {_show(d)}")
    return v


Shape = Annotated[Any, PlainValidator(_shape)]


def _batch_size(v: Any) -> int | list[int]:
    if isinstance(v, list):
        if not v:
            raise _fail("an empty list: give one batch size or a list of them")
        for i, b in enumerate(v):
            if not _is_int(b) or b < 1:
                raise _fail(f"item {i} of the list: expected an integer >= 1, got {_show(b)}")
        if len(set(v)) != len(v):
            raise _fail(f"a batch size appears twice in {v}")
        return v
    if not _is_int(v):
        raise _fail(f"expected an integer or a list of integers, got {_show(v)}")
    return _check_int(v, 1)


def _modes(v: Any) -> list[str]:
    if not isinstance(v, list):
        raise _fail(f"expected a list of modes such as [eager, function, xla], got {_show(v)}")
    if not v:
        raise _fail("an empty list: give at least one mode")
    for m in v:
        _choice(m, ALL_MODES, "mode")
    if len(set(v)) != len(v):
        raise _fail(f"a mode appears twice in [{', '.join(map(str, v))}]")
    return v


def _device(v: Any) -> str:
    if not isinstance(v, str) or not DEVICE_RE.match(v):
        raise _fail(f"bad device {_show(v)}: expected auto, cpu, gpu or gpu:N")
    return v


def _name(v: Any) -> str:
    if not isinstance(v, str) or not NAME_RE.match(v):
        raise _fail(f"bad name {_show(v)}: use letters, digits, '_', '.' and '-' only")
    return v


def _mapping(v: Any) -> dict:
    if not isinstance(v, dict):
        raise _fail(f"expected a mapping of keyword arguments, got {_show(v)}")
    for k in v:
        if not isinstance(k, str) or not k.isidentifier():
            raise _fail(f"key {_show(k)} is not a Python keyword argument name")
    return v


def _reference_syntax(v: Any) -> str | None:
    if v is None:
        return None  # null in a case unsets a default
    if not isinstance(v, str):
        raise _fail(f"expected a reference string (zoo:NAME, package.module:attr, path/to/file.py:attr), got {_show(v)}")
    try:
        parse_reference(v)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    return v


Reference = Annotated[Any, PlainValidator(_reference_syntax)]


def _tf_config(v: Any) -> dict | None:
    from .tfconfig import validate

    if v is None:
        return None
    problems = validate(v)
    if problems:
        raise _fail("; ".join(f"{key}: {message}" for key, message in problems))
    return v


# --- the models: one per level, extra keys forbidden ---------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PipelineModel(_Strict):
    map_cost_ms: Float(0) = None
    num_parallel_calls: IntOrAuto(1) = None
    prefetch: IntOrAuto(0) = None
    cache: Bool = None
    num_elements: Int(1) = None
    file_open_ms: Float(0) = None
    element_read_ms: Float(0) = None
    num_files: Int(1) = None
    interleave: IntOrAuto(0) = None


class InputModel(_Strict):
    shape: Shape = None
    dtype: OneOf(DTYPES, "dtype") = None
    maxval: Int(1) = None
    pipeline: PipelineModel | None = None


class LabelsModel(_Strict):
    classes: Int(1) = None
    shape: Shape = None
    dtype: OneOf(DTYPES, "dtype") = None


class DistributeModel(_Strict):
    strategy: OneOf(STRATEGIES, "strategy") = None
    devices: Int(1) = None
    workers: Int(1) = None


class CaseModel(_Strict):
    """Every key a case (or `defaults`) may hold. None = not given (a case's explicit null unsets a default)."""

    name: Annotated[Any, PlainValidator(_name)] = None
    model: Reference = None
    function: Reference = None
    inputs: Reference = None
    dataset: Reference = None
    params: Annotated[Any, PlainValidator(_mapping)] = None
    input: InputModel | None = None
    labels: LabelsModel | None = None
    modes: Annotated[Any, PlainValidator(_modes)] = None
    device: Annotated[Any, PlainValidator(_device)] = None
    task: OneOf(TASKS, "task") = None
    batch_size: Annotated[Any, PlainValidator(_batch_size)] = None
    warmup_steps: Int(0) = None
    steps: Int(1) = None
    repeats: Int(1) = None
    processes: Int(1) = None
    profile: Bool = None
    timeout_s: Float(0, strict=True) = None
    max_traces: Int(1, nullable=True) = None
    what_if: Bool = None
    distribute: DistributeModel | None = None
    tf_config: Annotated[Any, PlainValidator(_tf_config)] = None  # threads, jit, Grappler, mixed precision


class SuiteModel(_Strict):
    name: Annotated[Any, PlainValidator(_name)]
    description: Str(nullable=True) = None
    defaults: CaseModel | None = None
    cases: list[CaseModel]


# Allowed keys per level, for "did you mean" and for naming the level in messages.
_KEYS: dict[str, tuple[str, ...]] = {
    "top": tuple(SuiteModel.model_fields),
    "case": tuple(CaseModel.model_fields),
    "input": tuple(InputModel.model_fields),
    "pipeline": tuple(PipelineModel.model_fields),
    "labels": tuple(LabelsModel.model_fields),
    "distribute": tuple(DistributeModel.model_fields),
}


# --- YAML → plain data + line map ----------------------------------------------------------------------------------

def _plain(node: Any, path: Path_, lines: dict[Path_, int]) -> Any:
    """ruamel's round-trip nodes → dict/list/str/int/float/bool/None, recording the line (1-based) of every key
    and list item under its path."""
    if isinstance(node, CommentedMap):
        out = {}
        for key in node:
            try:
                lines[path + (key,)] = node.lc.key(key)[0] + 1
            except (KeyError, TypeError, AttributeError):  # a key that came in through a `<<:` merge
                lines.setdefault(path + (key,), lines.get(path, 1))
            out[key if isinstance(key, (str, int, float, bool)) or key is None else str(key)] = _plain(
                node[key], path + (key,), lines)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, item in enumerate(node):
            try:
                lines[path + (i,)] = node.lc.item(i)[0] + 1
            except (KeyError, TypeError, AttributeError):
                lines.setdefault(path + (i,), lines.get(path, 1))
            out_list.append(_plain(item, path + (i,), lines))
        return out_list
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dict):  # plain dict (not produced by round-trip, but be lenient)
        return {k: _plain(v, path + (k,), lines) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, path + (i,), lines) for i, v in enumerate(node)]
    return str(node)  # timestamps, binary: keep as text; the models will reject them where a type is expected


def _line(lines: dict[Path_, int], path: Path_) -> int:
    """The line of `path`, or of its nearest ancestor that the document has."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 1


def _did_you_mean(word: Any, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- the loader ----------------------------------------------------------------------------------------------------

class _Issues:
    def __init__(self, file: str, lines: dict[Path_, int]):
        self.file, self.lines, self.items = file, lines, []  # type: ignore[var-annotated]
        self._seen: set[tuple[int | None, str]] = set()

    def add(self, path: Path_ | int | None, key: str | None, message: str) -> None:
        line = path if isinstance(path, int) or path is None else _line(self.lines, path)
        if (line, message) not in self._seen:  # a bad default would otherwise be reported once per case
            self._seen.add((line, message))
            self.items.append(SuiteIssue(self.file, line, key, message))


def load_suite(path: str | Path) -> Suite:
    """Read, validate and expand a suite file. Raises SuiteError listing every problem found."""
    shown = str(path)
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise SuiteError.single(shown, None, None, "suite file not found") from None
    except IsADirectoryError:
        raise SuiteError.single(shown, None, None, "is a folder, not a suite file") from None
    except OSError as exc:
        raise SuiteError.single(shown, None, None, f"cannot read the suite file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError.single(shown, None, None, f"not UTF-8 text (byte {exc.start})") from None

    yaml = YAML(typ="rt")  # round-trip: safe (no arbitrary objects) and keeps line numbers
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.problem:
            started = f" at line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
            what += f" ({exc.context}{started})"
        raise SuiteError.single(shown, line, None, f"YAML syntax error: {what}") from None
    except YAMLError as exc:
        raise SuiteError.single(shown, None, None, f"YAML error: {exc}") from None

    lines: dict[Path_, int] = {}
    if not isinstance(doc, CommentedMap):
        kind = "empty" if doc is None else f"a {'list' if isinstance(doc, list) else type(doc).__name__}"
        raise SuiteError.single(shown, 1, None, f"the top level must be a mapping with name and cases, but it is {kind}")
    plain = _plain(doc, (), lines)
    base_dir = file.resolve().parent
    issues = _Issues(shown, lines)

    _validate_structure(plain, issues)
    if not issues.items:
        cases = _build_cases(plain, base_dir, issues)
    if issues.items:
        raise SuiteError(sorted(issues.items, key=lambda i: i.line or 0))
    return Suite(name=plain["name"], path=shown, sha256=hashlib.sha256(data).hexdigest(), text=text,
                 cases=tuple(cases))


def _level(loc: Path_, doc: dict) -> tuple[str, str]:
    """(kind of mapping at loc, how to name it in a message), e.g. ("pipeline", "under case 'x' input.pipeline")."""
    if not loc:
        return "top", "at the top level"
    kind = "case"
    for part in loc:
        if part in ("input", "labels", "distribute", "pipeline"):
            kind = str(part)
    return kind, f"under {_where(loc, doc)}"


def _where(loc: Path_, doc: dict) -> str:
    """defaults / defaults.input / case 'mlp' / case 'mlp' input.pipeline, from a path into the document."""
    if loc[0] == "defaults":
        return ".".join(map(str, loc))
    if loc[0] == "cases" and len(loc) >= 2 and isinstance(loc[1], int):
        name = None
        cases = doc.get("cases")
        if isinstance(cases, list) and loc[1] < len(cases) and isinstance(cases[loc[1]], dict):
            name = cases[loc[1]].get("name")
        label = f"case '{name}'" if isinstance(name, str) else f"cases[{loc[1]}]"
        rest = ".".join(map(str, loc[2:]))
        return f"{label} {rest}" if rest else label
    return ".".join(map(str, loc))


def _validate_structure(doc: dict, issues: _Issues) -> None:
    try:
        SuiteModel.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors():
            _report(err, doc, issues)
    cases = doc.get("cases")
    if isinstance(cases, list) and not cases:
        issues.add(("cases",), "cases", "cases is empty: a suite needs at least one case")
    if isinstance(doc.get("defaults"), dict) and "name" in doc["defaults"]:
        issues.add(("defaults", "name"), "name", "name cannot be a default: each case needs its own name")


def _report(err: dict, doc: dict, issues: _Issues) -> None:
    loc: Path_ = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        key, parent = loc[-1], loc[:-1]
        level, where = _level(parent, doc)
        issues.add(loc, str(key), f"unknown key '{key}' {where}{_did_you_mean(key, _KEYS[level])}")
        return
    if kind == "missing":
        key, parent = loc[-1], loc[:-1]
        if not parent:
            hint = " (the suite's name: letters, digits, _ . -)" if key == "name" else " (a list of cases)"
            issues.add(1, str(key), f"missing required key '{key}'{hint}")
        else:
            issues.add(parent, str(key), f"missing required key '{key}' {_level(parent, doc)[1]}")
        return
    key = next((str(p) for p in reversed(loc) if isinstance(p, str)), None)
    if kind == "model_type" or kind == "dict_type":
        message = f"expected a mapping, got {_show(err.get('input'))}"
    elif kind == "list_type":
        message = f"expected a list, got {_show(err.get('input'))}"
    else:
        message = err["msg"]
    if loc == ("cases",) or (len(loc) == 2 and loc[0] == "cases" and isinstance(loc[1], int) and kind == "model_type"):
        label = "cases" if loc == ("cases",) else _where(loc, doc)
        issues.add(loc, key, f"{label}: {message}" if loc != ("cases",) else f"cases: {message} of case mappings")
        return
    if len(loc) == 1:
        issues.add(loc, key, f"{loc[0]}: {message}")
        return
    if loc[0] == "cases" and len(loc) >= 3:
        where = _where(loc[:2], doc)
        issues.add(loc, key, f"{where}: {'.'.join(map(str, loc[2:]))}: {message}")
        return
    issues.add(loc, key, f"{'.'.join(map(str, loc))}: {message}")


def _build_cases(doc: dict, base_dir: Path, issues: _Issues) -> list[CaseSpec]:
    defaults: dict = doc.get("defaults") or {}
    out: list[CaseSpec] = []
    first_line: dict[str, int] = {}
    checked_refs: dict[str, str | None] = {}
    for index, raw in enumerate(doc["cases"]):
        case_path: Path_ = ("cases", index)
        merged = {**defaults, **raw}

        def at(key: str) -> Path_:
            """Where the merged value of `key` was written: in the case, else in defaults, else the case start."""
            if key in raw:
                return case_path + (key,)
            if key in defaults:
                return ("defaults", key)
            return case_path

        name = raw.get("name")
        if name is None:
            issues.add(case_path, "name", f"cases[{index}] has no name")
            continue
        label = f"case '{name}'"
        if name in first_line:
            issues.add(at("name"), "name", f"duplicate case name '{name}' (first at line {first_line[name]})")
        else:
            first_line[name] = _line(issues.lines, at("name"))

        model, function = merged.get("model"), merged.get("function")
        if model is None and function is None:
            issues.add(case_path, "model", f"{label} has neither 'model' nor 'function': give one of them")
        elif model is not None and function is not None:
            where = "model" if "model" in raw else "function"
            issues.add(at(where), where, f"{label} has both 'model' and 'function': give only one"
                       + (" (set the other to null to drop a default)" if ("model" in raw) != ("function" in raw) else ""))
        if function is not None and merged.get("inputs") is None:
            issues.add(at("function"), "function", f"{label}: 'function' needs 'inputs' "
                       "(a callable returning an iterable of (args, kwargs) per step)")
        if function is None and merged.get("inputs") is not None:
            issues.add(at("inputs"), "inputs", f"{label}: 'inputs' only applies to a 'function' case")
        if function is not None and merged.get("dataset") is not None:
            issues.add(at("dataset"), "dataset", f"{label}: 'dataset' feeds a model; a 'function' case is fed by 'inputs'")
        inp = merged.get("input")
        if merged.get("dataset") is not None and isinstance(inp, dict) and inp.get("pipeline") is not None:
            issues.add(at("dataset"), "dataset", f"{label}: 'dataset' and 'input.pipeline' both say how to feed the "
                       "model; give only one")
        if isinstance(inp, dict) and "shape" not in inp:
            issues.add(at("input"), "input", f"{label}: 'input' needs a 'shape' (the shape of one example, "
                       "without the batch dimension)")
        labels = merged.get("labels")
        if isinstance(labels, dict):
            if labels.get("classes") is not None and labels.get("shape") is not None:
                issues.add(at("labels"), "labels", f"{label}: labels take either 'classes' or 'shape' (+ 'dtype'), not both")
            elif labels.get("classes") is None and labels.get("shape") is None:
                issues.add(at("labels"), "labels", f"{label}: labels need 'classes' (integer labels) or 'shape' (+ 'dtype')")
        task = merged.get("task") or CaseSpec.task
        modes = merged.get("modes") or list(CaseSpec.modes)
        deploy = [m for m in modes if m in DEPLOY_MODES]
        if deploy and function is not None:
            issues.add(at("modes"), "modes", f"{label}: deployment mode{'s' if len(deploy) > 1 else ''} "
                       f"{', '.join(deploy)} export a Keras model: give the case a 'model', not a 'function'")
        elif deploy and task != "infer":
            issues.add(at("modes"), "modes", f"{label}: deployment mode{'s' if len(deploy) > 1 else ''} "
                       f"{', '.join(deploy)} need{'' if len(deploy) > 1 else 's'} task: infer (the task is {task})")

        for key in REFERENCE_KEYS:
            ref = merged.get(key)
            if ref is None:
                continue
            if ref not in checked_refs:
                checked_refs[ref] = check_reference(ref, base_dir)
            problem = checked_refs[ref]
            if problem:
                issues.add(at(key), key, f"{key}: {problem}")

        if model is not None and not checked_refs.get(model) and isinstance(merged.get("params"), dict):
            problem = _zoo_params_problem(model, merged["params"])
            if problem:
                issues.add(at("params"), "params", f"{label}: {problem}")

        if not issues.items:
            out.append(_case_spec(merged, base_dir, _line(issues.lines, case_path)))
    return out


def _zoo_params_problem(model: str, params: dict) -> str | None:
    """A misspelled zoo parameter is caught here, with its line, not later as a TypeError in the worker."""
    ref = parse_reference(model)
    if ref.kind != "zoo":
        return None
    from .zoo import MODELS

    entry = MODELS.get(ref.target)
    unknown = sorted(set(params) - set(entry.params)) if entry else []
    if not unknown:
        return None
    hints = [f"'{u}'" + _did_you_mean(u, tuple(entry.params)) for u in unknown]
    return (f"zoo:{entry.name} has no parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
            f"valid: {', '.join(entry.params)}")


_FLOAT_KEYS = frozenset({"map_cost_ms", "file_open_ms", "element_read_ms"})


def _case_spec(m: dict, base_dir: Path, line: int) -> CaseSpec:
    inp = m.get("input")
    pipeline = inp.get("pipeline") if inp else None
    labels = m.get("labels")
    batch = m.get("batch_size", CaseSpec.batch_sizes[0])
    given: Callable[[str], bool] = lambda key: m.get(key) is not None  # noqa: E731
    return CaseSpec(
        name=m["name"],
        model=m.get("model"),
        function=m.get("function"),
        inputs=m.get("inputs"),
        dataset=m.get("dataset"),
        params=dict(m.get("params") or {}),
        input=None if inp is None else InputSpec(
            shape=tuple(inp.get("shape") or ()),
            dtype=inp.get("dtype") or "float32",
            maxval=inp.get("maxval"),
            pipeline=None if pipeline is None else PipelineSpec(**{
                k: float(v) if k in _FLOAT_KEYS else v for k, v in pipeline.items() if v is not None})),
        labels=None if labels is None else LabelsSpec(
            classes=labels.get("classes"),
            shape=tuple(labels["shape"]) if labels.get("shape") is not None else None,
            dtype=labels.get("dtype") or ("float32" if labels.get("shape") is not None else None)),
        modes=tuple(m["modes"]) if given("modes") else CaseSpec.modes,
        device=m["device"] if given("device") else CaseSpec.device,
        task=m["task"] if given("task") else CaseSpec.task,
        batch_sizes=tuple(batch) if isinstance(batch, list) else (batch,),
        warmup_steps=m["warmup_steps"] if given("warmup_steps") else CaseSpec.warmup_steps,
        steps=m["steps"] if given("steps") else CaseSpec.steps,
        repeats=m["repeats"] if given("repeats") else CaseSpec.repeats,
        processes=m["processes"] if given("processes") else CaseSpec.processes,
        profile=m["profile"] if given("profile") else CaseSpec.profile,
        timeout_s=float(m["timeout_s"]) if given("timeout_s") else CaseSpec.timeout_s,
        max_traces=m.get("max_traces"),
        what_if=m["what_if"] if given("what_if") else CaseSpec.what_if,
        distribute=dict(m["distribute"]) if m.get("distribute") is not None else None,
        tf_config=dict(m["tf_config"]) if m.get("tf_config") else None,
        base_dir=str(base_dir),
        line=line,
    )
