"""The markers that say what a test needs, and the checks in tests/conftest.py that keep `-m pure` fast: a
test not marked `tensorflow` that imports TensorFlow fails by name, and the fast command does not even import
a test file whose every test needs something it leaves out.

The checks are run on small made-up test files in a fresh pytest (pytester), with a stand-in module named
`tensorflow`: the checks look for the name in sys.modules, and the real import would cost seconds.
"""

from __future__ import annotations

import json

import pytest
import tomllib
from conftest import ROOT, could_select, gpu_device_present, module_markers

pytest_plugins = ["pytester"]

STAND_IN = '"""A stand-in for TensorFlow: the checks look for the name in sys.modules."""\n'
# The installed plugins the made-up tests do not use: each inner pytest starts in under a second without them,
# instead of about three.
NO_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:anyio", "-p", "no:benchmark", "-p", "no:tfperf")


@pytest.fixture
def project(pytester):
    """A pytest project with this repository's conftest and markers, and the stand-in TensorFlow."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    pytester.makepyprojecttoml(
        "[tool.pytest.ini_options]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items() if key != "testpaths")
    )
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(tensorflow=STAND_IN)
    return pytester


def test_a_test_not_marked_tensorflow_that_imports_it_fails_by_name_under_the_fast_command(project):
    project.makepyfile(
        test_runtime="""
            def test_imports_tensorflow_unmarked():
                import tensorflow

            def test_clean():
                pass
        """,
        test_heavy="""
            import pytest
            import tensorflow

            pytestmark = pytest.mark.tensorflow

            def test_heavy():
                pass
        """,
    )
    result = project.runpytest_subprocess("-m", "pure", *NO_PLUGINS)
    result.assert_outcomes(passed=2, errors=1)  # the failing test's call passed; its teardown is the error
    result.stdout.fnmatch_lines(
        [
            "*no test marked `tensorflow` ran, yet TensorFlow is imported*",
            "*ERROR at teardown of test_imports_tensorflow_unmarked*",
            "test_runtime.py::test_imports_tensorflow_unmarked is not marked `tensorflow`, but TensorFlow "
            "was imported while it ran*mark it `tensorflow`",
        ]
    )
    assert "test_heavy" not in result.stdout.str()  # not even imported: its module-level marker rules it out
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_test_file_that_imports_tensorflow_when_collected_fails_its_unmarked_tests(project):
    project.makepyfile(
        test_collects="""
            import tensorflow

            def test_unmarked():
                pass
        """,
        test_marked="""
            import pytest

            @pytest.mark.tensorflow
            def test_marked():
                import tensorflow
        """,
    )
    result = project.runpytest_subprocess(*NO_PLUGINS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_unmarked*",
            "test_collects.py::test_unmarked is not marked `tensorflow`, but its file imports TensorFlow "
            "when it is collected*",
        ]
    )


def test_a_marked_test_may_import_tensorflow_and_a_gpu_test_is_skipped_without_a_gpu(project):
    project.makepyfile(
        test_needs="""
            import pytest

            @pytest.mark.tensorflow
            def test_marked():
                import tensorflow

            @pytest.mark.gpu
            def test_on_a_gpu():
                pass

            def test_pure():
                pass
        """
    )
    result = project.runpytest_subprocess("-m", "tensorflow or gpu", "-rs", *NO_PLUGINS)
    if gpu_device_present():
        result.assert_outcomes(passed=2, deselected=1)
    else:
        result.assert_outcomes(passed=1, skipped=1, deselected=1)
        result.stdout.fnmatch_lines(["*needs a GPU: this machine has no NVIDIA device*"])
    assert result.ret == pytest.ExitCode.OK


def test_a_misspelt_marker_is_an_error(project):
    project.makepyfile(
        test_typo="""
            import pytest

            @pytest.mark.tensorflw
            def test_x():
                pass
        """
    )
    result = project.runpytest_subprocess("--collect-only", *NO_PLUGINS)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'tensorflw' not found in `markers` configuration option*"])


def test_module_markers_are_read_without_importing_the_file(tmp_path):
    one = tmp_path / "test_one.py"
    one.write_text("import tensorflow\nimport pytest\n\npytestmark = pytest.mark.workers\n")
    two = tmp_path / "test_two.py"
    two.write_text(
        "import pytest\n\npytestmark = [pytest.mark.tensorflow, pytest.mark.skipif(True, reason='')]\n"
    )
    none = tmp_path / "test_none.py"
    none.write_text("def test_x():\n    pytestmark = 1\n")
    assert module_markers(one) == {"workers"}
    assert module_markers(two) == {"tensorflow", "skipif"}
    assert module_markers(none) == set()


def test_a_file_is_left_uncollected_only_when_no_test_in_it_could_be_selected():
    assert not could_select("pure", {"tensorflow"})
    assert not could_select("pure", {"workers", "cli"})
    assert not could_select("tensorflow and not workers", {"workers"})
    assert could_select("pure or cli", {"cli"})
    assert could_select("pure or cli", {"workers"})  # one of its tests may be marked cli too
    assert could_select("not pure", {"tensorflow"})
    assert could_select("browser", {"workers"})  # one of its tests may be marked browser too
    assert could_select("not (tensorflow)", {"workers"})
    assert could_select("tf_modes(x=1)", {"workers"})  # marker arguments: pytest decides
