"""Loading and validating a suite file: every problem found, each named by file, line and key, before anything
runs.

How: the YAML → plain Python data plus a map from each path to its line (tfperf.suite.yaml_lines) → pydantic
models with `extra="forbid"` for keys and types (tfperf.suite.schema; messages written there, not pydantic's)
→ the `distribute:` blocks' combination rules → defaults merged into each case → checks that need the merged
case (model xor function, references, ...) → CaseSpecs.
No TensorFlow import: validating a suite takes a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from tfperf.errors import SuiteError, SuiteIssue
from tfperf.suite.distribute import case_problems, problem
from tfperf.suite.references import check_reference, is_saved_model_reference, parse_reference
from tfperf.suite.schema import INPUT_FORMS, KEYS, REFERENCE_KEYS, SuiteModel, did_you_mean, input_form, show
from tfperf.suite.spec import DEPLOY_MODES, CaseSpec, InputSpec, LabelsSpec, PipelineSpec, Suite
from tfperf.suite.yaml_lines import DocPath, line_of, read_document

# Keys that shape what a model case is fed, and what each is for: a 'function' case has no model factory and
# no synthetic data (CaseSpec.jobs gives it no batch size), so any of these written in one would be silently
# unused.
MODEL_ONLY_KEYS: dict[str, str] = {
    "params": "holds keyword arguments for a model factory",
    "input": "shapes a model's synthetic features",
    "labels": "shapes a model's synthetic labels",
    "batch_size": "sets the batch of a model's synthetic data",
}


class _Issues:
    def __init__(self, file: str, lines: dict[DocPath, int]):
        self.file, self.lines, self.items = file, lines, []  # type: ignore[var-annotated]
        self._seen: set[tuple[int | None, str]] = set()

    def add(self, path: DocPath | int | None, key: str | None, message: str) -> None:
        line = path if isinstance(path, int) or path is None else line_of(self.lines, path)
        if (line, message) not in self._seen:  # a bad default would otherwise be reported once per case
            self._seen.add((line, message))
            self.items.append(SuiteIssue(self.file, line, key, message))


def load_suite(path: str | Path) -> Suite:
    """Read, validate and expand a suite file. Raises SuiteError listing every problem found."""
    shown = str(path)
    doc = read_document(path)
    plain = doc.data
    base_dir = Path(path).resolve().parent
    issues = _Issues(shown, doc.lines)

    _validate_structure(plain, issues)
    if not issues.items:  # the checks below read values of the types the models checked
        _validate_distribute(plain, issues)
        cases = _build_cases(plain, base_dir, issues)
    if issues.items:
        raise SuiteError(sorted(issues.items, key=lambda i: i.line or 0))
    return Suite(name=plain["name"], path=shown, sha256=doc.sha256, text=doc.text, cases=tuple(cases))


def _level(loc: DocPath, doc: dict) -> tuple[str, str]:
    """(kind of mapping at loc, how to name it in a message), e.g. ("pipeline", "under case 'x'
    input.pipeline")."""
    if not loc:
        return "top", "at the top level"
    kind = "case"
    for part in loc:
        if part in ("input", "labels", "distribute", "pipeline"):
            kind = str(part)
    return kind, f"under {_where(loc, doc)}"


def _where(loc: DocPath, doc: dict) -> str:
    """defaults / defaults.input / case 'mlp' / case 'mlp' input.pipeline, from a path into the document."""
    if loc[0] == "defaults":
        return ".".join(map(str, loc))
    if loc[0] == "cases" and len(loc) >= 2 and isinstance(loc[1], int):
        name = None
        cases = doc.get("cases")
        if isinstance(cases, list) and loc[1] < len(cases) and isinstance(cases[loc[1]], dict):
            name = cases[loc[1]].get("name")
        # A name too long to be one is named by its index: quoting it whole would bury the message.
        label = f"case '{name}'" if isinstance(name, str) and len(name) <= 60 else f"cases[{loc[1]}]"
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


def _validate_distribute(doc: dict, issues: _Issues) -> None:
    """The strategy/devices/workers combinations the per-key types cannot say (mirrored runs in one worker,
    one_device on one device), at the line of the key that breaks them. The worker checks them again for a
    CaseSpec built in code; here a suite that cannot run fails before anything runs."""
    owners: list[tuple[DocPath, dict]] = [(("defaults",), doc.get("defaults") or {})]
    owners += [(("cases", i), case) for i, case in enumerate(doc["cases"])]
    for owner_path, owner in owners:
        block = owner.get("distribute")
        found = problem(block) if block is not None else None
        if found:
            key, reason = found
            name = f"distribute.{key}" if key else "distribute"
            path = owner_path + ("distribute",) + ((key,) if key in block else ())
            where = "defaults." if owner_path == ("defaults",) else f"{_where(owner_path, doc)}: "
            issues.add(path, key or "distribute", f"{where}{name}: {reason}")


def _report(err: dict, doc: dict, issues: _Issues) -> None:
    # The two forms of `input:` are tagged unions: their tags are in pydantic's location, not in the file.
    raw = tuple(err["loc"])
    loc: DocPath = tuple(
        p for i, p in enumerate(raw) if not (p in INPUT_FORMS and i and raw[i - 1] == "input")
    )
    kind = err["type"]
    if kind == "extra_forbidden":
        key, parent = loc[-1], loc[:-1]
        level, where = _level(parent, doc)
        issues.add(loc, str(key), f"unknown key '{key}' {where}{did_you_mean(key, KEYS[level])}")
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
        message = f"expected a mapping, got {show(err.get('input'))}"
    elif kind == "list_type":
        message = f"expected a list, got {show(err.get('input'))}"
    else:
        message = err["msg"]
    if loc == ("cases",) or (
        len(loc) == 2 and loc[0] == "cases" and isinstance(loc[1], int) and kind == "model_type"
    ):
        label = "cases" if loc == ("cases",) else _where(loc, doc)
        issues.add(
            loc, key, f"{label}: {message}" if loc != ("cases",) else f"cases: {message} of case mappings"
        )
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
        case_path: DocPath = ("cases", index)
        merged = {**defaults, **raw}

        def at(key: str, raw: dict = raw, case_path: DocPath = case_path) -> DocPath:
            """Where the merged value of `key` was written: in the case, else in defaults, else the case
            start."""
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
            first_line[name] = line_of(issues.lines, at("name"))

        model, function = merged.get("model"), merged.get("function")
        if model is None and function is None:
            issues.add(case_path, "model", f"{label} has neither 'model' nor 'function': give one of them")
        elif model is not None and function is not None:
            where = "model" if "model" in raw else "function"
            issues.add(
                at(where),
                where,
                f"{label} has both 'model' and 'function': give only one"
                + (
                    " (set the other to null to drop a default)"
                    if ("model" in raw) != ("function" in raw)
                    else ""
                ),
            )
        if function is not None and merged.get("inputs") is None:
            issues.add(
                at("function"),
                "function",
                f"{label}: 'function' needs 'inputs' "
                "(a callable returning an iterable of (args, kwargs) per step)",
            )
        if function is None and merged.get("inputs") is not None:
            issues.add(at("inputs"), "inputs", f"{label}: 'inputs' only applies to a 'function' case")
        if function is not None and merged.get("dataset") is not None:
            issues.add(
                at("dataset"),
                "dataset",
                f"{label}: 'dataset' feeds a model; a 'function' case is fed by 'inputs'",
            )
        if function is not None:
            # Written in the case itself only: a default (batch_size: 64 for the suite) is meant for its model
            # cases.
            for key, why in MODEL_ONLY_KEYS.items():
                if raw.get(key) is not None:
                    issues.add(
                        case_path + (key,),
                        key,
                        f"{label}: '{key}' {why}; a 'function' case ignores it "
                        "(its 'inputs' give every argument and shape)",
                    )
        inp = merged.get("input")
        if merged.get("dataset") is not None and isinstance(inp, dict) and inp.get("pipeline") is not None:
            issues.add(
                at("dataset"),
                "dataset",
                f"{label}: 'dataset' and 'input.pipeline' both say how to feed the model; give only one",
            )
        by_name = isinstance(inp, dict) and input_form(inp) == "by_name"
        if isinstance(inp, dict) and not by_name and "shape" not in inp:
            issues.add(
                at("input"),
                "input",
                f"{label}: 'input' needs a 'shape' (the shape of one example, without the batch dimension)",
            )
        for input_name, one in inp.items() if by_name else ():
            if "shape" not in one:
                issues.add(
                    at("input"),
                    "input",
                    f"{label}: input '{input_name}' needs a 'shape' (the shape of one "
                    "example of it, without the batch dimension)",
                )
        labels = merged.get("labels")
        if isinstance(labels, dict):
            if labels.get("classes") is not None and labels.get("shape") is not None:
                issues.add(
                    at("labels"),
                    "labels",
                    f"{label}: labels take either 'classes' or 'shape' (+ 'dtype'), not both",
                )
            elif labels.get("classes") is None and labels.get("shape") is None:
                issues.add(
                    at("labels"),
                    "labels",
                    f"{label}: labels need 'classes' (integer labels) or 'shape' (+ 'dtype')",
                )
        task = merged.get("task") or CaseSpec.task
        modes = merged.get("modes") or list(CaseSpec.modes)
        deploy = [m for m in modes if m in DEPLOY_MODES]
        if deploy and function is not None:
            issues.add(
                at("modes"),
                "modes",
                f"{label}: deployment mode{'s' if len(deploy) > 1 else ''} "
                f"{', '.join(deploy)} export a Keras model: give the case a 'model', not a 'function'",
            )
        elif deploy and task != "infer":
            issues.add(
                at("modes"),
                "modes",
                f"{label}: deployment mode{'s' if len(deploy) > 1 else ''} "
                f"{', '.join(deploy)} need{'' if len(deploy) > 1 else 's'} task: infer (the task is {task})",
            )

        if task == "fit" and function is not None:
            issues.add(
                at("task"),
                "task",
                f"{label}: task: fit trains a Keras model with model.fit; a 'function' "
                "case has none (use task: train)",
            )
        if merged.get("steps_per_execution") is not None and task != "fit":
            issues.add(
                at("steps_per_execution"),
                "steps_per_execution",
                f"{label}: steps_per_execution is model.fit's (task: fit); the task is {task}",
            )
        if merged.get("distribute") is not None:
            for key, reason in case_problems(task, modes, has_model=function is None):
                issues.add(at(key), key, f"{label}: distribute: {reason}")

        for key in REFERENCE_KEYS:
            ref = merged.get(key)
            if ref is None:
                continue
            if key != "model" and is_saved_model_reference(ref):
                issues.add(
                    at(key),
                    key,
                    f"{label}: {key}: '{ref}' is a saved model's path; only 'model' takes one "
                    f"('{key}' takes a Python reference, path/to/file.py:attr)",
                )
                continue
            if ref not in checked_refs:
                checked_refs[ref] = check_reference(ref, base_dir)
            problem = checked_refs[ref]
            if problem:
                issues.add(at(key), key, f"{key}: {problem}")

        if isinstance(model, str) and is_saved_model_reference(model):
            if model.rstrip().endswith(("/", "\\")) and task != "infer":
                issues.add(
                    at("task"),
                    "task",
                    f"{label}: model: '{model}' is a SavedModel folder: only its serving "
                    f"signature is timed, so it needs task: infer (the task is {task})",
                )
            if merged.get("params"):
                issues.add(
                    at("params"),
                    "params",
                    f"{label}: params are a model factory's arguments; a saved model takes none",
                )
        if model is not None and not checked_refs.get(model) and isinstance(merged.get("params"), dict):
            problem = _zoo_params_problem(model, merged["params"])
            if problem:
                issues.add(at("params"), "params", f"{label}: {problem}")

        versions = merged.get("keras")
        if versions is not None:
            if function is not None:
                issues.add(
                    at("keras"),
                    "keras",
                    f"{label}: keras picks the Keras a model is built with; a 'function' case builds none",
                )
            if 2 in (versions if isinstance(versions, list) else [versions]) and not _has_tf_keras():
                issues.add(
                    at("keras"),
                    "keras",
                    f"{label}: keras: 2 needs Keras 2 (tf_keras), which is not "
                    'installed: pip install tf-keras (or pip install -e ".[models]")',
                )

        if not issues.items:
            spec = _case_spec(merged, base_dir, line_of(issues.lines, case_path))
            if isinstance(versions, list) and len(versions) > 1:
                # Side by side: one case per Keras, named for it (the tables' rows, compare's keys).
                out.extend(spec.replace(name=f"{spec.name}-keras{v}", keras=v) for v in versions)
            else:
                out.append(spec.replace(keras=versions[0] if isinstance(versions, list) else versions))
    return out


def _has_tf_keras() -> bool:
    """Whether tf_keras can be imported, asked without importing it (or TensorFlow)."""
    import importlib.util

    return importlib.util.find_spec("tf_keras") is not None


def _zoo_params_problem(model: str, params: dict) -> str | None:
    """A misspelled zoo parameter is caught here, with its line, not later as a TypeError in the worker."""
    ref = parse_reference(model)
    if ref.kind != "zoo":
        return None
    from tfperf.zoo import MODELS

    entry = MODELS.get(ref.target)
    unknown = sorted(set(params) - set(entry.params)) if entry else []
    if not unknown:
        return None
    hints = [f"'{u}'" + did_you_mean(u, tuple(entry.params)) for u in unknown]
    return (
        f"zoo:{entry.name} has no parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
        f"valid: {', '.join(entry.params)}"
    )


_FLOAT_KEYS = frozenset({"map_cost_ms", "file_open_ms", "element_read_ms"})


def _case_spec(m: dict, base_dir: Path, line: int) -> CaseSpec:
    inp = m.get("input")
    by_name = None
    if isinstance(inp, dict) and input_form(inp) == "by_name":
        by_name = {
            name: InputSpec(
                shape=tuple(one["shape"]),
                dtype=one.get("dtype"),  # None: the model's
                maxval=one.get("maxval"),
            )
            for name, one in inp.items()
        }
        inp = None
    pipeline = inp.get("pipeline") if inp else None
    labels = m.get("labels")
    batch = m.get("batch_size", CaseSpec.batch_sizes[0])

    def given(key: str) -> bool:
        return m.get(key) is not None

    return CaseSpec(
        name=m["name"],
        model=m.get("model"),
        function=m.get("function"),
        inputs=m.get("inputs"),
        dataset=m.get("dataset"),
        params=dict(m.get("params") or {}),
        input=None
        if inp is None
        else InputSpec(
            shape=tuple(inp.get("shape") or ()),
            dtype=inp.get("dtype") or "float32",
            maxval=inp.get("maxval"),
            pipeline=None
            if pipeline is None
            else PipelineSpec(
                **{k: float(v) if k in _FLOAT_KEYS else v for k, v in pipeline.items() if v is not None}
            ),
        ),
        input_by_name=by_name,
        labels=None
        if labels is None
        else LabelsSpec(
            classes=labels.get("classes"),
            shape=tuple(labels["shape"]) if labels.get("shape") is not None else None,
            dtype=labels.get("dtype") or ("float32" if labels.get("shape") is not None else None),
        ),
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
        steps_per_execution=m["steps_per_execution"]
        if given("steps_per_execution")
        else CaseSpec.steps_per_execution,
        distribute=dict(m["distribute"]) if m.get("distribute") is not None else None,
        tf_config=dict(m["tf_config"]) if m.get("tf_config") else None,
        base_dir=str(base_dir),
        line=line,
    )
