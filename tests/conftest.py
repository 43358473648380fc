import ast
import os
import re
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_tfperf(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "tfperf", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def tfperf_cli():
    return run_tfperf


# --- what a test needs: the markers (registered in pyproject.toml) ------------------------------------------
#
# A test that needs none of NEEDS is `pure`: no TensorFlow in the test process, no worker process, browser,
# server or fresh interpreter running the command line, so `python -m pytest -m pure` runs all of them in well
# under a minute. TensorFlow's import alone costs 5-15 s of CPU on this kind of machine: a test not marked
# `tensorflow` that imports it would make every run that selects it slow, so the checks below fail such a test
# by name.

NEEDS = ("tensorflow", "workers", "browser", "services", "gpu", "cli")
TF_BEFORE = pytest.StashKey[bool]()
TF_AT_COLLECTION = pytest.StashKey[set]()


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by -m, so that `-m pure` sees the marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(name) for name in NEEDS):
            item.add_marker(pytest.mark.pure)


def module_markers(path: Path) -> set[str]:
    """The marker names of a test file's module-level `pytestmark`, read without importing the file."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            names = set()
            for value in values:
                value = value.func if isinstance(value, ast.Call) else value
                # pytest.mark.NAME
                if isinstance(value, ast.Attribute) and ast.unparse(value.value) == "pytest.mark":
                    names.add(value.attr)
            return names
    return set()


_EXPRESSION_WORDS = {"and", "or", "not"}


def could_select(markexpr: str, markers: set[str]) -> bool:
    """Whether `-m markexpr` could select a test that carries `markers` (and never `pure`, which no test with
    one of NEEDS gets), whatever other markers the test has. True when the expression is not a plain boolean
    of marker names."""
    tokens = re.findall(r"\(|\)|[^\s()]+", markexpr)
    if any(not re.fullmatch(r"[\w.:+\-\[\]\\/]+|\(|\)", t) for t in tokens):
        return True  # marker arguments or anything else unusual: let pytest decide
    unknown = sorted({t for t in tokens if t not in "()" and t not in _EXPRESSION_WORDS} - markers - {"pure"})
    for values in product((False, True), repeat=len(unknown)):
        known = {**{n: True for n in markers}, "pure": False, **dict(zip(unknown, values))}
        python = " ".join(t if t in _EXPRESSION_WORDS or t in "()" else str(known[t]) for t in tokens)
        try:
            # Safe to evaluate: the text holds only True, False, and, or, not and parentheses.
            if eval(python, {"__builtins__": {}}):
                return True
        except SyntaxError:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config):
    """Under `-m`, a test file whose module-level markers rule out every one of its tests is not imported:
    the fast command must not pay for a test file that imports TensorFlow when it is collected."""
    markexpr = config.getoption("markexpr")
    if not markexpr or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    markers = module_markers(collection_path)
    if markers & set(NEEDS) and not could_select(markexpr, markers):
        return True
    return None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    before = "tensorflow" in sys.modules
    report = yield
    if isinstance(collector, pytest.Module) and not before and "tensorflow" in sys.modules:
        collector.config.stash.setdefault(TF_AT_COLLECTION, set()).add(collector.path)
    return report


def gpu_device_present() -> bool:
    """An NVIDIA device node: the cheap sign of a GPU, looked at without importing TensorFlow."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def not_marked_tensorflow(item) -> str:
    return f"{item.nodeid} is not marked `tensorflow`"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[TF_BEFORE] = "tensorflow" in sys.modules
    if item.get_closest_marker("gpu") and not gpu_device_present():
        pytest.skip("needs a GPU: this machine has no NVIDIA device (/dev/nvidia*)")
    if not item.get_closest_marker("tensorflow") and item.path in item.config.stash.get(TF_AT_COLLECTION, ()):
        pytest.fail(
            f"{not_marked_tensorflow(item)}, but its file imports TensorFlow when it is collected: give the "
            f"file `pytestmark = pytest.mark.tensorflow`, or import TensorFlow inside the tests that need it",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    # Only a test that ran while TensorFlow was not yet imported can be caught: under `-m pure` (or any `-m`
    # that leaves out `tensorflow`), every test.
    if (
        not item.get_closest_marker("tensorflow")
        and not item.stash.get(TF_BEFORE, True)
        and "tensorflow" in sys.modules
    ):
        pytest.fail(
            f"{not_marked_tensorflow(item)}, but TensorFlow was imported while it ran (by the test or one of "
            f"its fixtures): mark it `tensorflow`",
            pytrace=False,
        )
    return result


def pytest_sessionfinish(session, exitstatus):
    """A session in which no test marked `tensorflow` ran, and no test file imported it when collected, ends
    without TensorFlow: an import outside every test (a conftest, a plugin) would make each test pay for it,
    unseen by the checks above."""
    ran = [item for item in getattr(session, "items", []) if item.stash.get(TF_BEFORE, None) is not None]
    if (
        ran
        and not any(item.get_closest_marker("tensorflow") for item in ran)
        and not session.config.stash.get(TF_AT_COLLECTION, None)
        and "tensorflow" in sys.modules
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                "tfperf: no test marked `tensorflow` ran, yet TensorFlow is imported: by a test (failed "
                "above) or outside every test (a conftest, a plugin), and every test after it paid for it",
                red=True,
            )
