"""References from a suite to Python objects: `zoo:NAME`, `package.module:attr`, `relative/path.py:attr`.

Two halves with different rules:
- `check_reference` runs in the CLI while validating a suite. It must not import TensorFlow or run user code
  (a suite with a typo must fail in a fraction of a second, and validating must not have side effects), so it
  finds modules with import machinery that does not execute them and looks for the attribute in the source
  with `ast`.
- `resolve_reference` runs in the worker process and really imports the object.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Any, NamedTuple


class Reference(NamedTuple):
    kind: str  # zoo | module | file | saved
    target: str  # zoo name, dotted module name, or file path as written
    attr: str | None  # None for zoo and saved-model references


# A saved model given as a path: a Keras file, or a SavedModel folder (written with a trailing '/').
SAVED_MODEL_SUFFIXES = (".keras", ".h5")


class ModelPath(NamedTuple):
    """What a saved-model reference resolves to in the worker: the path, loaded by the harness (which knows
    Keras and TensorFlow; this module imports neither). `kind` is keras (a .keras / .h5 file) or saved_model
    (a folder)."""

    path: Path
    kind: str


def is_saved_model_reference(ref: str) -> bool:
    ref = ref.strip()
    return ":" not in ref.replace(":\\", "") and (
        ref.endswith(SAVED_MODEL_SUFFIXES) or ref.endswith(("/", "\\"))
    )


def parse_reference(ref: str) -> Reference:
    """Split a reference into its kind and parts; ValueError (with a one-line reason) when it is malformed."""
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(
            "a reference must be a non-empty string: zoo:NAME, package.module:attr or path/to/file.py:attr"
        )
    ref = ref.strip()
    if ref.startswith("zoo:"):
        name = ref[4:]
        if not name:
            raise ValueError(
                f"'{ref}': zoo reference without a model name (zoo:NAME; `tfperf list` shows them)"
            )
        return Reference("zoo", name, None)
    if is_saved_model_reference(ref):
        return Reference("saved", ref, None)
    if ":" not in ref:
        raise ValueError(
            f"'{ref}' is not a reference: expected zoo:NAME, package.module:attr or path/to/file.py:attr"
        )
    target, attr = ref.rsplit(":", 1)
    if not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise ValueError(f"'{ref}': '{attr}' after the ':' is not a Python name")
    if target.endswith(".py") or "/" in target or "\\" in target:
        return Reference("file", target, attr)
    if not target or not all(part.isidentifier() for part in target.split(".")):
        raise ValueError(f"'{ref}': '{target}' is neither a dotted module name nor a path to a .py file")
    return Reference("module", target, attr)


def check_reference(ref: str, base_dir: str | Path) -> str | None:
    """None when the reference can be resolved, else a one-line message saying which part is missing.

    Imports neither TensorFlow nor the user's code."""
    try:
        parsed = parse_reference(ref)
    except ValueError as exc:
        return str(exc)
    if parsed.kind == "zoo":
        return _check_zoo(parsed.target)
    if parsed.kind == "saved":
        return _check_saved(parsed.target, base_dir)
    if parsed.kind == "file":
        path = _file_path(parsed.target, base_dir)
        if not path.is_file():
            return f"file not found: {parsed.target} (looked for {path})"
        return _check_source_attr(path, parsed.attr, f"{parsed.target}")
    return _check_module(parsed.target, parsed.attr, base_dir)


def resolve_reference(ref: str, base_dir: str | Path) -> Any:
    """Import and return the referenced object (in the worker process: this runs user code)."""
    parsed = parse_reference(ref)
    if parsed.kind == "zoo":
        from tfperf.zoo import MODELS

        if parsed.target not in MODELS:
            raise LookupError(_check_zoo(parsed.target) or f"no built-in model '{parsed.target}'")
        return MODELS[parsed.target]
    if parsed.kind == "saved":
        path = _file_path(parsed.target, base_dir)
        return ModelPath(path, "saved_model" if path.is_dir() else "keras")
    if parsed.kind == "file":
        module = _load_file_module(_file_path(parsed.target, base_dir))
    else:
        # The suite's folder is searched last, so a module beside the suite is found without shadowing
        # packages.
        extra = str(Path(base_dir).resolve())
        added = extra not in sys.path
        if added:
            sys.path.append(extra)
        try:
            module = importlib.import_module(parsed.target)
        finally:
            if added and extra in sys.path:
                sys.path.remove(extra)
    obj: Any = module
    for part in parsed.attr.split("."):
        obj = getattr(obj, part)
    return obj


# --- checks -------------------------------------------------------------------------------------------------


def _check_zoo(name: str) -> str | None:
    try:
        from tfperf.zoo import MODELS
    except ImportError as exc:  # the zoo module itself is broken: say so rather than blaming the suite
        return f"zoo:{name}: the built-in model zoo cannot be imported ({exc})"
    if name in MODELS:
        return None
    close = difflib.get_close_matches(name, list(MODELS), n=1)
    hint = f" (did you mean 'zoo:{close[0]}'?)" if close else ""
    return f"zoo:{name}: no built-in model '{name}'{hint}; built-in: {', '.join(sorted(MODELS))}"


def _check_saved(target: str, base_dir: str | Path) -> str | None:
    path = _file_path(target, base_dir)
    if target.rstrip().endswith(SAVED_MODEL_SUFFIXES):
        return None if path.is_file() else f"file not found: {target} (looked for {path})"
    if not path.is_dir():
        return f"SavedModel folder not found: {target} (looked for {path})"
    if not (path / "saved_model.pb").is_file():
        return (
            f"{target} is a folder without saved_model.pb: not a SavedModel (tf.saved_model.save writes one)"
        )
    return None


def _file_path(target: str, base_dir: str | Path) -> Path:
    path = Path(target).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def _check_module(module: str, attr: str, base_dir: str | Path) -> str | None:
    parts = module.split(".")
    try:
        # Top-level lookup never executes the package; the suite's folder is searched after sys.path.
        spec = importlib.util.find_spec(parts[0]) or importlib.machinery.PathFinder.find_spec(
            parts[0], [str(Path(base_dir).resolve())]
        )
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return f"module not found: '{parts[0]}'" + (f" (of {module})" if len(parts) > 1 else "")
    # Walk down the packages with PathFinder: importlib.util.find_spec("a.b") would import (run) package a.
    for i in range(1, len(parts)):
        name = ".".join(parts[: i + 1])
        locations = spec.submodule_search_locations
        if locations is None:
            return f"module not found: '{name}' ('{'.'.join(parts[:i])}' is a module, not a package)"
        spec = importlib.machinery.PathFinder.find_spec(name, list(locations))
        if spec is None:
            if name in sys.modules:  # provided at runtime by its parent (e.g. an alias module): trust it
                return None
            return f"module not found: '{name}'"
    first = attr.split(".")[0]
    if (
        spec.submodule_search_locations is not None
        and importlib.machinery.PathFinder.find_spec(
            f"{module}.{first}", list(spec.submodule_search_locations)
        )
        is not None
    ):
        return None  # the attribute is a submodule of the package
    origin = spec.origin
    if origin and origin.endswith(".py") and Path(origin).is_file():
        return _check_source_attr(Path(origin), attr, f"module {module}")
    return None  # compiled or namespace module: no source to read; the worker will find out


def _check_source_attr(path: Path, attr: str, label: str) -> str | None:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        return f"{label}: cannot parse: line {exc.lineno}: {exc.msg}"
    except OSError as exc:
        return f"{label}: cannot read: {exc.strerror or exc}"
    names, open_ended = top_level_names(tree)
    first = attr.split(".")[0]
    if first in names or open_ended:
        return None
    close = difflib.get_close_matches(first, sorted(names), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{label} has no top-level name '{first}'{hint}"


def top_level_names(tree: ast.Module) -> tuple[set[str], bool]:
    """Names a module defines at import time, and whether it may define others we cannot see
    (`from x import *`, a module-level `__getattr__`, writes to `globals()`)."""
    names: set[str] = set()
    open_ended = False

    def targets(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                targets(elt)
        elif isinstance(node, ast.Starred):
            targets(node.value)

    def visit(body: list[ast.stmt]) -> None:
        nonlocal open_ended
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    targets(target)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets(node.target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        open_ended = True
                    else:
                        names.add(alias.asname or alias.name)
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                targets(node.target)
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        targets(item.optional_vars)
                visit(node.body)
            elif isinstance(node, (ast.If, ast.While)):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
                visit(node.body)
                for handler in node.handlers:
                    if handler.name:
                        names.add(handler.name)
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Expr) and "globals()" in ast.unparse(node):
                open_ended = True
            elif isinstance(node, ast.Match):
                for case in node.cases:
                    visit(case.body)
            # Walrus assignments at top level are rare enough to ignore.
        if "__getattr__" in names:
            open_ended = True

    visit(tree.body)
    return names, open_ended


# --- loading ------------------------------------------------------------------------------------------------


def _load_file_module(path: Path) -> Any:
    """Import a .py file under a name unique to its absolute path, once per process: the `function:` and
    `inputs:` of a case that point into the same file share one module (and its state)."""
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"tfperf_user_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    # The file may import its neighbours (helpers beside it): its folder is importable while it loads.
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return module
