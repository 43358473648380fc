"""Suite loading and validation: every class of bad input names its file, line and key; good suites merge
defaults and expand sweeps; references are checked without importing TensorFlow or running user code."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from tfperf.errors import SuiteError, TfperfError
from tfperf.suite.distribute import DistributeError, DistributeSpec
from tfperf.suite.loader import load_suite
from tfperf.suite.references import check_reference, parse_reference, resolve_reference
from tfperf.suite.spec import MODES, CaseSpec, PipelineSpec

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).resolve().parent / "data" / "bad_suites"

# file → every expected issue as (line, key, a fragment of the message). Lines are those of the files in
# tests/data/bad_suites; the test also checks that no other issue is reported.
BAD_SUITES: dict[str, list[tuple[int, str | None, str]]] = {
    "yaml_syntax.yaml": [(4, None, "YAML syntax error: expected ',' or ']'")],
    "top_not_mapping.yaml": [(1, None, "the top level must be a mapping")],
    "unknown_key_top.yaml": [
        (2, "descripton", "unknown key 'descripton' at the top level (did you mean 'description'?)")
    ],
    "unknown_key_defaults.yaml": [(4, "stpes", "unknown key 'stpes' under defaults (did you mean 'steps'?)")],
    "unknown_key_case.yaml": [
        (5, "batchsize", "unknown key 'batchsize' under case 'a' (did you mean 'batch_size'?)")
    ],
    "unknown_key_nested.yaml": [
        (7, "dtpye", "unknown key 'dtpye' under case 'a' input (did you mean 'dtype'?)"),
        (9, "map_cost", "unknown key 'map_cost' under case 'a' input.pipeline (did you mean 'map_cost_ms'?)"),
        (10, "clases", "unknown key 'clases' under case 'a' labels (did you mean 'classes'?)"),
        (13, "device", "unknown key 'device' under case 'a' distribute (did you mean 'devices'?)"),
    ],
    "wrong_types.yaml": [
        (3, "steps", "defaults.steps: expected an integer, got 'ten'"),
        (4, "profile", "defaults.profile: expected true or false, got 'yes'"),
        (8, "params", "case 'a': params: expected a mapping"),
        (9, "shape", "case 'a': input.shape: expected a list of integers"),
        (10, "timeout_s", "case 'a': timeout_s: expected a number, got 'soon'"),
    ],
    "out_of_range.yaml": [
        (3, "steps", "defaults.steps: must be >= 1, got 0"),
        (4, "repeats", "defaults.repeats: must be >= 1, got 0"),
        (5, "warmup_steps", "defaults.warmup_steps: must be >= 0, got -1"),
        (9, "batch_size", "case 'a': batch_size: must be >= 1, got 0"),
        (10, "timeout_s", "case 'a': timeout_s: must be > 0, got 0"),
        (11, "max_traces", "case 'a': max_traces: must be >= 1, got 0"),
        (14, "map_cost_ms", "input.pipeline.map_cost_ms: must be >= 0, got -1"),
        (14, "num_parallel_calls", "input.pipeline.num_parallel_calls: must be >= 1, got 0"),
    ],
    "unknown_mode.yaml": [(5, "modes", "unknown mode 'jit'; choose from eager, function, xla")],
    "bad_device.yaml": [(5, "device", "bad device 'gpu0': expected auto, cpu, gpu or gpu:N")],
    "unknown_task.yaml": [(5, "task", "unknown task 'predict'; choose from train, infer")],
    "duplicate_case.yaml": [(7, "name", "duplicate case name 'a' (first at line 3)")],
    "neither_model_nor_function.yaml": [(5, "model", "case 'empty' has neither 'model' nor 'function'")],
    "both_model_and_function.yaml": [(4, "model", "case 'a' has both 'model' and 'function'")],
    "function_without_inputs.yaml": [(4, "function", "case 'f': 'function' needs 'inputs'")],
    "dataset_and_pipeline.yaml": [
        (5, "dataset", "'dataset' and 'input.pipeline' both say how to feed the model")
    ],
    "deploy_mode_train.yaml": [(7, "modes", "deployment mode tflite needs task: infer (the task is train)")],
    "empty_cases.yaml": [(4, "cases", "cases is empty")],
    "bad_name.yaml": [(1, "name", "bad name 'my suite/1'")],
    "missing_name.yaml": [(1, "name", "missing required key 'name'")],
    "missing_file.yaml": [(4, "function", "function: file not found: no_such_file.py")],
    "missing_attr_file.yaml": [
        (4, "function", "refs.py has no top-level name 'stpe' (did you mean 'step'?)")
    ],
    "missing_module.yaml": [(4, "model", "module not found: 'no_such_package_tfperf'")],
    "missing_attr_module.yaml": [(4, "model", "module json has no top-level name 'no_such_factory'")],
    "unknown_zoo.yaml": [(4, "model", "zoo:mpl: no built-in model 'mpl' (did you mean 'zoo:mlp'?)")],
    # distribute: rules the worker would otherwise enforce at run time, after the other jobs had run.
    "distribute_mirrored_workers.yaml": [
        (
            7,
            "workers",
            "case 'a': distribute.workers: mirrored runs in one worker; use strategy: multi_worker",
        )
    ],
    "distribute_one_device_default.yaml": [  # once, at the default's line, not once per case
        (3, "devices", "defaults.distribute.devices: one_device runs on one device of one worker")
    ],
    "distribute_task_and_modes.yaml": [
        (
            3,
            "task",
            "case 'a': distribute: only task: train is measured under a strategy (the task is infer)",
        ),
        (7, "modes", "case 'a': distribute: mode savedmodel cannot run under a strategy"),
    ],
}


def test_every_bad_suite_file_is_covered():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(BAD_SUITES)


@pytest.mark.parametrize("name", sorted(BAD_SUITES))
def test_bad_suite_names_line_and_key(name):
    path = BAD / name
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    err = info.value
    assert isinstance(err, TfperfError) and err.exit_code == 2
    got = [(i.line, i.key, i.message) for i in err.issues]
    expected = BAD_SUITES[name]
    assert len(got) == len(expected), got
    for (line, key, fragment), (gline, gkey, gmsg) in zip(expected, got):
        assert (gline, gkey) == (line, key), (gline, gkey, gmsg)
        assert fragment in gmsg
        assert all(i.file == str(path) for i in err.issues)
    # The one-line form the CLI prints: file:line: message, one issue per line.
    lines = str(err).splitlines()
    assert len(lines) == len(expected)
    for text, (line, _, fragment) in zip(lines, expected):
        assert text.startswith(f"{path}:{line}: ") and fragment in text


def test_issue_format_matches_the_documented_example(tmp_path):
    path = tmp_path / "smoke.yaml"
    path.write_text((BAD / "unknown_key_defaults.yaml").read_text())
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    assert str(info.value) == f"{path}:4: unknown key 'stpes' under defaults (did you mean 'steps'?)"


def test_missing_and_unreadable_suite_files(tmp_path):
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")
    with pytest.raises(SuiteError, match="is a folder"):
        load_suite(tmp_path)
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(SuiteError, match="top level must be a mapping.*empty"):
        load_suite(tmp_path / "empty.yaml")
    (tmp_path / "dupkey.yaml").write_text("name: a\nname: b\ncases: []\n")
    with pytest.raises(SuiteError) as info:
        load_suite(tmp_path / "dupkey.yaml")
    assert info.value.issues[0].line == 2 and "duplicate key" in info.value.issues[0].message


def _write(tmp: Path, text: str, name: str = "suite.yaml") -> Path:
    (tmp / "models.py").write_text(
        "def build(**kw):\n    return kw\n\n\ndef step(x):\n    return x\n\n\n"
        "def inputs():\n    return [((1.0,), {})]\n"
    )
    path = tmp / name
    path.write_text(text)
    return path


GOOD = """\
# a comment before the name
name: good.suite-1
description: defaults merged, a sweep expanded
defaults:
  modes: [eager, function]
  task: infer
  steps: 5
  repeats: 2
  warmup_steps: 1
  params: {hidden: 8}
  input: {shape: [4], dtype: float32}
  labels: {classes: 3}
  profile: false
  timeout_s: 30
cases:
  - name: sweep
    model: models.py:build
    batch_size: [8, 16, 32]
  - name: own-values
    model: zoo:mlp
    modes: [xla, tflite]
    steps: 7
    params: {hidden: 4}
    input:
      shape: [2, 3]
      dtype: int32
      maxval: 100
      pipeline: {map_cost_ms: 1.5, num_parallel_calls: autotune, prefetch: 2, cache: true,
                 file_open_ms: 3, element_read_ms: 0.5, num_files: 4, interleave: autotune}
    labels: {shape: [1], dtype: float32}
    max_traces: 1
    what_if: true
    device: gpu:1
  - name: fn
    function: models.py:step
    inputs: models.py:inputs
    model: null
    input: null
  - name: dist
    model: zoo:mlp
    task: train
    distribute: {strategy: mirrored, devices: 2}
"""


def test_good_suite_merges_defaults_and_expands_the_sweep(tmp_path):
    path = _write(tmp_path, GOOD)
    suite = load_suite(str(path))
    assert suite.name == "good.suite-1"
    assert suite.path == str(path)
    assert suite.text == GOOD
    assert suite.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()
    sweep, own, fn, dist = suite.cases
    # Defaults fill what the case does not say.
    assert sweep.modes == ("eager", "function") and sweep.task == "infer"
    assert (sweep.steps, sweep.repeats, sweep.warmup_steps, sweep.profile, sweep.timeout_s) == (
        5,
        2,
        1,
        False,
        30.0,
    )
    assert sweep.params == {"hidden": 8} and sweep.input.shape == (4,) and sweep.labels.classes == 3
    assert sweep.batch_sizes == (8, 16, 32) and sweep.device == "auto"
    assert sweep.base_dir == str(tmp_path.resolve()) and sweep.line == 16
    # Case values win, and params/input/labels replace the defaults' whole.
    assert own.modes == ("xla", "tflite") and own.steps == 7 and own.repeats == 2
    assert own.params == {"hidden": 4}
    assert own.input.shape == (2, 3) and own.input.dtype == "int32" and own.input.maxval == 100
    assert own.input.pipeline == PipelineSpec(
        map_cost_ms=1.5,
        num_parallel_calls="autotune",
        prefetch=2,
        cache=True,
        num_elements=1024,
        file_open_ms=3.0,
        element_read_ms=0.5,
        num_files=4,
        interleave="autotune",
    )
    assert isinstance(own.input.pipeline.file_open_ms, float)  # YAML's 3 becomes the spec's float
    assert own.labels.classes is None and own.labels.shape == (1,) and own.labels.dtype == "float32"
    assert own.distribute is None and dist.distribute == {"strategy": "mirrored", "devices": 2}
    assert (own.max_traces, own.what_if, own.device, own.batch_sizes, own.line) == (
        1,
        True,
        "gpu:1",
        (32,),
        19,
    )
    # null in a case drops a default.
    assert fn.model is None and fn.input is None and fn.function == "models.py:step" and fn.line == 34
    # Jobs: case × batch size × mode; a function case has no batch size of its own.
    jobs = [(j.case, j.mode, j.batch_size) for j in suite.jobs()]
    assert jobs == [("sweep", m, b) for b in (8, 16, 32) for m in ("eager", "function")] + [
        ("own-values", "xla", 32),
        ("own-values", "tflite", 32),
        ("fn", "eager", None),
        ("fn", "function", None),
        ("dist", "eager", 32),
        ("dist", "function", 32),
    ]
    # A CaseSpec survives the trip to its worker.
    for case in suite.cases:
        assert CaseSpec.from_json(json.loads(json.dumps(case.to_json()))) == case


def test_every_issue_is_reported_at_once(tmp_path):
    path = _write(
        tmp_path,
        "name: many\ndefaults:\n  stpes: 1\ncases:\n  - name: a\n    model: zoo:mlp\n"
        "    device: tpu\n  - name: b\n    model: models.py:nope\n",
    )
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    # Structural problems come first; reference checks need a structurally valid suite.
    assert [(i.line, i.key) for i in info.value.issues] == [(3, "stpes"), (7, "device")]


def test_distribute_needs_a_model(tmp_path):
    path = _write(
        tmp_path,
        "name: d\ncases:\n  - name: f\n    function: models.py:step\n"
        "    inputs: models.py:inputs\n    distribute: {strategy: mirrored, devices: 2}\n",
    )
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert [(i.line, i.key) for i in info.value.issues] == [(4, "function")]
    assert "a 'distribute' case trains a Keras model" in info.value.issues[0].message


def test_distribute_rules_match_the_workers(tmp_path):
    """The loader and the worker apply one rule set: what loads, DistributeSpec.from_dict accepts."""
    for block in (
        "{}",
        "{strategy: mirrored}",
        "{strategy: mirrored, devices: 3, workers: 1}",
        "{strategy: multi_worker, workers: 3}",
        "{strategy: one_device, devices: 1}",
    ):
        suite = load_suite(
            _write(tmp_path, f"name: d\ncases:\n  - name: a\n    model: zoo:mlp\n    distribute: {block}\n")
        )
        DistributeSpec.from_dict(suite.cases[0].distribute)
    for block in ("{workers: 2}", "{strategy: mirrored, workers: 3}", "{strategy: one_device, devices: 2}"):
        with pytest.raises(DistributeError):
            DistributeSpec.from_dict(YAML(typ="safe").load(block))
        with pytest.raises(SuiteError) as info:
            load_suite(
                _write(
                    tmp_path, f"name: d\ncases:\n  - name: a\n    model: zoo:mlp\n    distribute: {block}\n"
                )
            )
        assert info.value.exit_code == 2 and info.value.issues[0].line == 5, block


def test_run_refuses_a_distribute_block_that_cannot_run(tmp_path, capsys):
    """Before, `strategy: mirrored, workers: 2` passed validation and failed in the worker, after the other
    cases had run. Now: exit 2, the file:line, nothing written."""
    from tfperf.cli import main

    path = BAD / "distribute_mirrored_workers.yaml"
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert f"{path}:7: case 'a': distribute.workers: mirrored runs in one worker" in capsys.readouterr().err
    assert not out.exists()


def test_bad_default_is_reported_once_at_its_own_line(tmp_path):
    path = _write(
        tmp_path,
        "name: d\ndefaults:\n  function: models.py:missing\n  inputs: models.py:inputs\n"
        "cases:\n  - name: a\n  - name: b\n  - name: c\n",
    )
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert [(i.line, i.key) for i in info.value.issues] == [(3, "function")]


# --- references ---------------------------------------------------------------------------------------------


def test_parse_reference_kinds():
    assert parse_reference("zoo:mlp") == ("zoo", "mlp", None)
    assert parse_reference("pkg.mod:make") == ("module", "pkg.mod", "make")
    assert parse_reference("sub/file.py:make") == ("file", "sub/file.py", "make")
    assert parse_reference("file.py:Cls.build") == ("file", "file.py", "Cls.build")
    for bad in ("zoo:", "nocolon", "pkg.mod:", "pkg mod:f", "file.py:1x", ""):
        with pytest.raises(ValueError):
            parse_reference(bad)


def test_check_reference_finds_names_without_running_code(tmp_path):
    (tmp_path / "side_effect.py").write_text(
        "raise SystemExit('must not run')\n"
        "import os.path as osp\nfrom json import dumps as d\nA, (B, *C) = 1, (2, 3)\nX: int = 1\n"
        "try:\n    import tomllib as T\nexcept ImportError:\n    T = None\n"
        "if True:\n    def f(): pass\nclass K: pass\n"
    )
    for attr in ("osp", "d", "A", "B", "C", "X", "T", "f", "K", "K.method"):
        assert check_reference(f"side_effect.py:{attr}", tmp_path) is None, attr
    assert "no top-level name 'g'" in check_reference("side_effect.py:g", tmp_path)
    (tmp_path / "star.py").write_text("from json import *\n")
    assert check_reference("star.py:anything", tmp_path) is None  # cannot know: the worker will tell
    (tmp_path / "broken.py").write_text("def f(:\n")
    assert "cannot parse: line 1" in check_reference("broken.py:f", tmp_path)
    # A package whose __init__ would fail: finding pkg.mod must not import pkg.
    pkg = tmp_path / "tfperf_test_pkg_x"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('must not run')\n")
    (pkg / "mod.py").write_text("def make(): pass\n")
    assert check_reference("tfperf_test_pkg_x.mod:make", tmp_path) is None
    assert "no top-level name 'other'" in check_reference("tfperf_test_pkg_x.mod:other", tmp_path)
    assert check_reference("tfperf_test_pkg_x:mod", tmp_path) is None  # a submodule counts as an attribute
    assert "module not found: 'tfperf_test_pkg_x.nope'" in check_reference(
        "tfperf_test_pkg_x.nope:f", tmp_path
    )
    assert "tfperf_test_pkg_x" not in sys.modules
    assert "'json.decoder' is a module, not a package" in check_reference("json.decoder.x:y", tmp_path)
    assert check_reference("xml.etree.ElementTree:parse", tmp_path) is None


def test_resolve_reference_imports_files_once_with_their_folder_on_the_path(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "helper_tfperf_x.py").write_text("VALUE = 41\n")
    (sub / "user.py").write_text(
        "import helper_tfperf_x\nCOUNT = [0]\nCOUNT[0] += 1\n"
        "def value():\n    return helper_tfperf_x.VALUE + 1\n"
    )
    value = resolve_reference("sub/user.py:value", tmp_path)
    assert value() == 42
    count = resolve_reference("sub/user.py:COUNT", tmp_path)
    assert count == [1]  # loaded once: function and inputs of a case share the module
    assert str(sub) not in sys.path
    assert resolve_reference("json:dumps", tmp_path) is json.dumps
    from tfperf.zoo import MODELS

    assert resolve_reference("zoo:mlp", tmp_path) is MODELS["mlp"]


def test_zoo_references_check_against_the_zoo(tmp_path):
    assert check_reference("zoo:mlp", tmp_path) is None
    assert check_reference("zoo:small_cnn", tmp_path) is None
    assert "no built-in model 'nope'" in check_reference("zoo:nope", tmp_path)


def test_loading_imports_no_tensorflow():
    """The CLI validates a suite before any worker starts: no TensorFlow (3-6 s) in the parent process."""
    code = (
        "import sys, glob\n"
        "from tfperf.suite.loader import load_suite\n"
        "from tfperf.errors import SuiteError\n"
        "shipped = glob.glob('suites/*.yaml')\n"
        "assert 'suites/smoke.yaml' in shipped, shipped\n"
        "for p in shipped + ['tests/data/faults.yaml', 'tests/data/pipelines.yaml']:\n"
        "    load_suite(p)  # every shipped suite is valid\n"
        f"for p in glob.glob({str(BAD)!r} + '/*.yaml'):\n"
        "    try:\n        load_suite(p)\n    except SuiteError:\n        pass\n"
        "    else:\n        raise SystemExit('bad suite loaded: ' + p)\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# --- property-based -----------------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,11}", fullmatch=True)
KNOBS = {
    "modes": st.lists(st.sampled_from(MODES), min_size=1, max_size=3, unique=True),
    "device": st.sampled_from(["auto", "cpu", "gpu", "gpu:0", "gpu:3"]),
    "task": st.sampled_from(["train", "infer"]),
    "batch_size": st.integers(1, 512) | st.lists(st.integers(1, 512), min_size=1, max_size=4, unique=True),
    "warmup_steps": st.integers(0, 10),
    "steps": st.integers(1, 100),
    "repeats": st.integers(1, 10),
    "profile": st.booleans(),
    "timeout_s": st.integers(1, 600) | st.floats(0.5, 600, allow_nan=False),
    "max_traces": st.none() | st.integers(1, 5),
    "what_if": st.booleans(),
}
PIPELINE = st.fixed_dictionaries(
    {},
    optional={
        "map_cost_ms": st.floats(0, 50, allow_nan=False),
        "num_parallel_calls": st.integers(1, 8) | st.just("autotune"),
        "prefetch": st.integers(0, 8) | st.just("autotune"),
        "cache": st.booleans(),
        "num_elements": st.integers(1, 4096),
        "file_open_ms": st.floats(0, 10, allow_nan=False),
        "element_read_ms": st.floats(0, 10, allow_nan=False),
        "num_files": st.integers(1, 16),
        "interleave": st.integers(0, 8) | st.just("autotune"),
    },
)
INPUT = st.fixed_dictionaries(
    {"shape": st.lists(st.integers(1, 64), max_size=3)},
    optional={
        "dtype": st.sampled_from(["float32", "float16", "int32", "int64"]),
        "maxval": st.integers(1, 1000),
        "pipeline": PIPELINE,
    },
)
# The combinations that can run: one_device on one device of one worker, mirrored in one worker.
DISTRIBUTE = st.one_of(
    st.fixed_dictionaries(
        {"strategy": st.just("one_device")}, optional={"devices": st.just(1), "workers": st.just(1)}
    ),
    st.fixed_dictionaries(
        {"strategy": st.just("mirrored")}, optional={"devices": st.integers(1, 4), "workers": st.just(1)}
    ),
    st.fixed_dictionaries(
        {"strategy": st.just("multi_worker")},
        optional={"devices": st.integers(1, 4), "workers": st.integers(1, 4)},
    ),
)
CASE_EXTRA = st.fixed_dictionaries(
    {},
    optional={
        # zoo:mlp's own parameters: an unknown zoo parameter is (rightly) a suite error.
        **KNOBS,
        "params": st.dictionaries(
            st.sampled_from(["hidden", "layers", "features", "classes"]), st.integers(1, 9), max_size=3
        ),
        "input": INPUT,
        "labels": st.fixed_dictionaries({"classes": st.integers(1, 100)}),
        "distribute": DISTRIBUTE,
    },
)


@st.composite
def suites(draw):
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    cases = [
        {"name": n, "model": draw(st.sampled_from(["zoo:mlp", "models.py:build"])), **draw(CASE_EXTRA)}
        for n in names
    ]
    for case in cases:
        if "distribute" in case:
            case["task"] = "train"  # only a training step runs under a strategy (defaults may say infer)
    doc = {"name": draw(NAMES), "cases": cases}
    defaults = draw(st.fixed_dictionaries({}, optional=KNOBS))
    if defaults:
        doc["defaults"] = defaults
    return doc


def _dump(doc: dict) -> str:
    yaml = YAML()
    yaml.default_flow_style = False  # block style: one key per line
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(suites())
def test_any_valid_suite_loads_and_keeps_its_values(doc):
    with tempfile.TemporaryDirectory() as tmp:
        suite = load_suite(_write(Path(tmp), _dump(doc)))
    assert suite.name == doc["name"]
    defaults = doc.get("defaults", {})
    for raw, case in zip(doc["cases"], suite.cases):
        merged = {**defaults, **raw}
        assert case.name == raw["name"] and case.model == raw["model"]
        for key in ("device", "task", "warmup_steps", "steps", "repeats", "profile", "max_traces", "what_if"):
            assert getattr(case, key) == merged.get(key, getattr(CaseSpec, key)), key
        assert case.modes == tuple(merged.get("modes", MODES))
        assert case.timeout_s == merged.get("timeout_s", 300.0)
        bs = merged.get("batch_size", 32)
        assert case.batch_sizes == (tuple(bs) if isinstance(bs, list) else (bs,))
        assert case.params == raw.get("params", {})
        assert case.distribute == raw.get("distribute")
        if "input" in raw:
            assert case.input.shape == tuple(raw["input"]["shape"])
            assert case.input.dtype == raw["input"].get("dtype", "float32")
            pipe = raw["input"].get("pipeline")
            assert case.input.pipeline == (None if pipe is None else PipelineSpec(**pipe))
        else:
            assert case.input is None
        assert len(case.jobs()) == len(case.batch_sizes) * len(case.modes)


LEVELS = ["top", "defaults", "case", "input", "pipeline", "labels", "distribute"]


@SETTINGS
@given(suites(), st.sampled_from(LEVELS), st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), st.data())
def test_any_unknown_key_is_reported_at_its_line(doc, level, word, data):
    key = f"zz_{word}"  # never a real key, never elsewhere in the file
    case = doc["cases"][data.draw(st.integers(0, len(doc["cases"]) - 1))]
    case.setdefault("input", {"shape": [4]}).setdefault("pipeline", {})
    case.setdefault("labels", {"classes": 2})
    case.setdefault("distribute", {"strategy": "mirrored"})
    doc.setdefault("defaults", {})
    target = {
        "top": doc,
        "defaults": doc["defaults"],
        "case": case,
        "input": case["input"],
        "pipeline": case["input"]["pipeline"],
        "labels": case["labels"],
        "distribute": case["distribute"],
    }[level]
    items = list(target.items())
    items.insert(data.draw(st.integers(0, len(items))), (key, data.draw(st.integers(0, 9) | st.booleans())))
    target.clear()
    target.update(items)
    text = _dump(doc)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if re.match(rf"\s*(- )?{key}:", t))
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(SuiteError) as info:
            load_suite(_write(Path(tmp), text))
    assert [(i.line, i.key) for i in info.value.issues] == [(line, key)]
    assert f"unknown key '{key}'" in info.value.issues[0].message


# --- the command line ---------------------------------------------------------------------------------------


@pytest.mark.cli
@pytest.mark.parametrize("name", ["unknown_key_defaults.yaml", "yaml_syntax.yaml", "missing_file.yaml"])
def test_cli_refuses_a_bad_suite_with_exit_2_and_writes_nothing(tmp_path, name):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "tfperf", "run", str(BAD / name), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    line, key, fragment = BAD_SUITES[name][0]
    assert f"{BAD / name}:{line}: " in proc.stderr and fragment in proc.stderr
    assert key is None or key in proc.stderr
    assert not out.exists()


LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-3, 5)
    | st.floats(allow_nan=True)
    | st.sampled_from(
        ["zoo:mlp", "models.py:build", "json:dumps", "eager", "autotune", "", "gpu:1", "x y", "zoo:"]
    )
)
KEYS = sorted(
    {
        *KNOBS,
        "name",
        "description",
        "defaults",
        "cases",
        "model",
        "function",
        "inputs",
        "dataset",
        "params",
        "input",
        "labels",
        "shape",
        "dtype",
        "pipeline",
        "classes",
        "distribute",
        "strategy",
        "prefetch",
        "zz",
    }
)
TREE = st.recursive(
    LEAF,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.integers(0, 2), inner, max_size=4)
    ),
    max_leaves=20,
)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={"name": LEAF | st.just("ok"), "defaults": TREE, "cases": st.lists(TREE, max_size=3) | TREE},
    )
    | TREE
)
def test_any_document_loads_or_fails_with_located_issues(doc):
    """Whatever the file holds, the loader answers with a Suite or a SuiteError (never a traceback), and every
    issue points at a line of the file."""
    text = _dump(doc)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            load_suite(_write(Path(tmp), text))
        except SuiteError as exc:
            assert exc.issues
            n_lines = max(1, len(text.splitlines()))
            assert all(i.line is not None and 1 <= i.line <= n_lines for i in exc.issues), exc.issues
