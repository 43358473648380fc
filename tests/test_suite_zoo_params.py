"""A misspelled zoo parameter is a suite error with its line, not a TypeError inside the worker."""

import pytest

from tfperf.errors import SuiteError
from tfperf.suite.loader import load_suite


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


def test_function_case_cannot_ask_for_a_deployment_mode(tmp_path):
    (tmp_path / "steps.py").write_text("def step(x):\n    return x\n\ndef inputs():\n    return []\n")
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ncases:\n  - name: f\n    task: infer\n    modes: [function, tflite]\n"
        "    function: steps.py:step\n    inputs: steps.py:inputs\n"
    )
    with pytest.raises(SuiteError) as err:
        load_suite(suite)
    assert "s.yaml:5:" in str(err.value) and "tflite" in str(err.value) and "'model'" in str(err.value)
