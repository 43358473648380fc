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


# --- one owner of worker processes
# ---------------------------------------------------------------------------

WORKER_OWNER = "tfperf.run.process"
# Child processes that are not measuring workers, each with why it is started where it is.
OTHER_CHILDREN = {
    "tfperf.profile.tensorboard_server": "TensorBoard, a server the user browses (`tfperf tensorboard`)",
    "tfperf.host.environment": "`git rev-parse HEAD` for the environment record",
    "tfperf.ab.trees": "`git worktree` for the baseline tree",
}
# What starts a process: subprocess's functions, os.fork/spawn*/exec*/posix_spawn, multiprocessing, asyncio's.
STARTERS = {
    "subprocess": {"Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"},
    "os": {"fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen"}
    | {f"spawn{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
    | {f"exec{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")},
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
}
ENTRY_POINTS = ("tfperf.run.worker", "tfperf.distributed.job")


def process_starts(path: Path) -> list[str]:
    """`module.function` for every call in the file that starts a process, and every import of
    multiprocessing."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and node.func.attr in STARTERS.get(owner.id, ()):
                found.append(f"{owner.id}.{node.func.attr} (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.module in STARTERS:
            found += [
                f"from {node.module} import {a.name}" for a in node.names if a.name in STARTERS[node.module]
            ]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"import {n}" for n in names if n.split(".")[0] == "multiprocessing"]
    return found


def test_only_the_process_module_starts_worker_processes():
    """Every measuring process (a case worker, a local cluster's worker) is started by tfperf/run/process.py:
    no other module calls subprocess or os to start a process, except the few listed with their reason, and
    no other module names a worker's entry point."""
    starts, entries = {}, {}
    for name, path in all_modules().items():
        found = process_starts(path)
        if found and name != WORKER_OWNER and name not in OTHER_CHILDREN:
            starts[name] = found
        strings = [
            n.value
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Constant) and n.value in ENTRY_POINTS
        ]
        if strings and name != WORKER_OWNER:
            entries[name] = strings
    assert starts == {}
    assert entries == {}
    assert process_starts(all_modules()[WORKER_OWNER]), "the owner itself starts them"


def private_attributes(path: Path) -> list[str]:
    """`obj._name` where obj is not the class's own (self, cls, or an instance a classmethod made with
    `cls(...)`): another object's private part, on lines that do not say why (`noqa: SLF001 - reason`, for
    TensorFlow internals with no public way). `os._exit` is os's public way to end a process at once."""
    lines = path.read_text().splitlines()
    tree = ast.parse(path.read_text())
    own = {"self", "cls"} | {
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "cls"
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        owner = node.value.id if isinstance(node.value, ast.Name) else None
        if owner in own or (owner, node.attr) == ("os", "_exit"):
            continue
        if "noqa: SLF001 - " in lines[node.lineno - 1]:
            continue
        found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_no_module_reaches_into_another_objects_private_parts():
    """`tfperf ab` once rebuilt the runner's worker command line and called its private `_job`; a second
    command needing a protocol asks its owner through public names."""
    found = {name: f for name, path in all_modules().items() if (f := private_attributes(path))}
    assert found == {}
    ab_imports = [
        (target, names)
        for name, path in all_modules().items()
        if name.startswith("tfperf.ab")
        for target, _, names in imports_of(name, path, set(all_modules()))
        if target.startswith("tfperf.run")
    ]
    assert all(not n.startswith("_") for _, names in ab_imports for n in names), ab_imports


def test_the_process_checks_can_fail(tmp_path):
    """The checks above catch what they are for, on made-up modules."""
    starter = tmp_path / "m.py"
    starter.write_text("import subprocess, os\nsubprocess.Popen(['x'])\nos.fork()\nimport multiprocessing\n")
    assert sorted(process_starts(starter)) == [
        "import multiprocessing",
        "os.fork (line 3)",
        "subprocess.Popen (line 2)",
    ]
    reach = tmp_path / "r.py"
    reach.write_text("runner._job(1)\nself._x = 1\nt._ref()  # noqa: SLF001 - weakref's referent\n")
    assert private_attributes(reach) == ["line 1: ._job"]
