"""A misspelled zoo parameter is a suite error with its line, not a TypeError inside the worker."""
import pytest

from tfperf.errors import SuiteError
from tfperf.suite import load_suite


def test_unknown_zoo_param_is_reported_at_its_line(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ncases:\n  - name: m\n    model: zoo:mlp\n    params: {hiden: 8}\n")
    with pytest.raises(SuiteError) as err:
        load_suite(suite)
    text = str(err.value)
    assert "s.yaml:5:" in text and "'hiden'" in text and "did you mean 'hidden'" in text


def test_known_zoo_params_load(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ncases:\n  - name: m\n    model: zoo:mlp\n    params: {hidden: 8, layers: 1}\n")
    assert load_suite(suite).cases[0].params == {"hidden": 8, "layers": 1}
