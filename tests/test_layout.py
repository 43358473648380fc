"""The package's shape: no import circles, and no stage imports a later one.

Every `import` statement counts, including those inside functions: a lazy import that closes a circle is still
a circle, it only hides until the call. The stages, lowest first, are documented in docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "tfperf"

# A module may import modules of its own stage or of an earlier one.
STAGES: list[tuple[str, ...]] = [
    ("tfperf.version", "tfperf.errors", "tfperf.stats", "tfperf.units", "tfperf.host"),
    ("tfperf.results",),
    ("tfperf.figures", "tfperf.suite", "tfperf.zoo"),
    ("tfperf.profile", "tfperf.measure", "tfperf.deploy", "tfperf.distributed"),
    ("tfperf.run",),
    ("tfperf.analysis",),
    ("tfperf.report",),
    ("tfperf.tune", "tfperf.ab"),
    ("tfperf.cli", "tfperf.integrations", "tfperf.__main__", "tfperf"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int, list[str]]]:
    """(imported tfperf module, line, names imported from it) for every import statement in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, []) for a in node.names if a.name.split(".")[0] == "tfperf"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "tfperf":
                continue
            names = [a.name for a in node.names]
            # `from tfperf.report import charts` imports the module tfperf.report.charts
            submodules = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in known]
            if submodules:
                found += [(s, node.lineno, []) for s in submodules]
                rest = [n for n in names if f"{mod}.{n}" not in known]
                if rest:
                    found.append((mod, node.lineno, rest))
            else:
                found.append((mod, node.lineno, names))
    return found


def stage_of(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    if best is None:
        raise AssertionError(f"{module} belongs to no stage: add it to STAGES and docs/architecture.md")
    return best


def graph() -> tuple[dict[str, set[str]], list[str], list[str]]:
    modules = all_modules()
    known = set(modules)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    violations, private = [], []
    for name, path in modules.items():
        for target, line, names in imports_of(name, path, known):
            if target not in known:
                violations.append(f"{path.name}:{line}: imports {target}, which does not exist")
                continue
            if target != name:
                edges[name].add(target)
            if stage_of(target) > stage_of(name):
                violations.append(f"{name} (line {line}) imports {target}, a later stage")
            private += [
                f"{name} (line {line}) imports {n} from {target}"
                for n in names
                if n.startswith("_") and n != "__version__" and target != name
            ]
    return edges, violations, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


# A package's __init__ that re-exports its submodules is imported by them only through absolute imports of the
# package itself, which the checks below would see as a circle: forbid it rather than special-case it.
def test_no_import_circles():
    edges, _, _ = graph()
    assert cycles(edges) == []


def test_no_stage_imports_a_later_stage():
    _, violations, _ = graph()
    assert violations == []


def test_no_private_imports_across_modules():
    _, _, private = graph()
    assert private == []


def test_every_module_has_a_stage():
    for name in all_modules():
        stage_of(name)


@pytest.mark.parametrize("limit", [500])
def test_no_module_over_the_size_limit(limit):
    long = {
        name: n for name, path in all_modules().items() if (n := len(path.read_text().splitlines())) > limit
    }
    assert long == {}


def test_the_checks_can_fail():
    """The circle finder and the stage order catch what they are for (on a made-up graph)."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert stage_of("tfperf.stats.descriptive") < stage_of("tfperf.report.html")
    assert stage_of("tfperf.run.runner") < stage_of("tfperf.analysis.advisor")
