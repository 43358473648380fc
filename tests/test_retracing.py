"""Retracing explained: real tf.function objects driven like the harness drives them (count read after every
call), the demonstrators of suites/retracing.yaml, the fixes written for them, and the retrace budget end to
end. The fix and the budget on hand-written entries are in test_retrace_fixes.py."""

import gc
import importlib.util
import itertools
import json
import re
import types

import pytest
import tensorflow as tf
from conftest import ROOT, run_tfperf

from tfperf.measure.model_step import train_step
from tfperf.measure.retrace_fixes import fix_for
from tfperf.measure.retracing import explain_retraces, first_use_traces, note_trace, signature_info

pytestmark = pytest.mark.tensorflow

SUITE = ROOT / "suites" / "retracing.yaml"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location(
        "retracing_demo", ROOT / "suites" / "examples" / "retracing_demo.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drive(fn, inputs, calls: int, note: bool = True) -> list[int]:
    """Call fn like the harness: read the tracing count after each call, note the calls that traced."""
    trace_calls, last = [], fn.experimental_get_tracing_count()
    for i, (args, kwargs) in enumerate(itertools.islice(inputs, calls)):
        fn(*args, **kwargs)
        count = fn.experimental_get_tracing_count()
        if count != last:
            trace_calls.append(i)
            last = count
            if note:
                note_trace(fn, i)
    return trace_calls


def test_python_float_names_the_argument_and_its_values(demo):
    fn = tf.function(demo.scaled)
    calls = drive(fn, demo.python_scale_inputs(), 6)  # 3.0, 4.0, 5.0, 3.0, 4.0, 5.0
    assert fn.experimental_get_tracing_count() == 3 and calls == [0, 1, 2]
    retraces = explain_retraces(fn, calls)
    assert [r.call for r in retraces] == [1, 2]
    first = retraces[0]
    assert first.argument == "scale" and first.kind == "python_value"
    assert (first.before, first.after) == (3.0, 4.0)
    assert "scale: 3.0 -> 4.0 (python float)" in first.changed
    assert json.dumps([r.to_json() for r in retraces])  # results.json-ready
    fix = fix_for(retraces, "scaled")
    assert "scale=tf.constant(" in fix and fix.startswith("scaled(")


def test_varying_shape_names_the_dimension(demo):
    fn = tf.function(demo.encode)
    calls = drive(fn, demo.varying_length_inputs(), 4)
    retraces = explain_retraces(fn, calls)
    assert len(retraces) == 3
    first = retraces[0]
    assert first.argument == "tokens" and first.kind == "shape" and first.dims == [1]
    assert "tokens: shape (4, 8) -> (4, 12) (dim 1)" in first.changed
    assert all(r.dims == [1] for r in retraces)


def test_nearest_earlier_trace_is_the_one_with_fewest_differences():
    fn = tf.function(lambda x, scale: x * scale)
    a, b = tf.ones((8, 16)), tf.ones((9, 16))
    inputs = [((a,), {"scale": 3.0}), ((b,), {"scale": 3.0}), ((b,), {"scale": 4.0})]
    calls = drive(fn, iter(inputs), 3)
    last = explain_retraces(fn, calls)[-1]
    # Against the first trace both x and scale differ; against the second only scale: that one is reported.
    assert last.nearest_call == 1 and last.argument == "scale" and "shape" not in last.changed


def test_two_arguments_changed_at_once_are_both_listed():
    fn = tf.function(lambda x, scale: x * scale)
    inputs = [((tf.ones((8, 16)),), {"scale": 3.0}), ((tf.ones((9, 16)),), {"scale": 4.0})]
    (r,) = explain_retraces(fn, drive(fn, iter(inputs), 2))
    assert [c["argument"] for c in r.changes] == ["x", "scale"]
    assert "x: shape (8, 16) -> (9, 16) (dim 0)" in r.changed and "scale: 3.0 -> 4.0" in r.changed
    fix = fix_for([r], "f")
    assert "scale=tf.constant(4.0)" in fix and "reduce_retracing=True" in fix


def test_new_python_object_names_its_class(demo):
    fn = tf.function(demo.apply_scale)
    calls = drive(fn, demo.new_object_inputs(), 3)
    gc.collect()  # the objects are gone: their class is known from note_trace
    retraces = explain_retraces(fn, calls)
    assert len(retraces) == 2 and all(r.kind == "new_object" and r.argument == "config" for r in retraces)
    assert "a new Python object (a new instance of class Scale" in retraces[0].changed
    assert "class Scale(tf.experimental.ExtensionType)" in fix_for(retraces)
    # Without note_trace the kind and the argument are still read from the cache.
    fn2 = tf.function(demo.apply_scale)
    bare = explain_retraces(fn2, drive(fn2, demo.new_object_inputs(), 3, note=False))
    assert [r.kind for r in bare] == ["new_object", "new_object"] and bare[0].argument == "config"


def test_fixed_variants_trace_once(demo):
    from tfperf.measure.model_step import wrap_mode

    fixed = tf.function(demo.scaled)
    drive(fixed, demo.tensor_scale_inputs(), 6)
    assert fixed.experimental_get_tracing_count() == 1

    ext = tf.function(demo.apply_scale)
    drive(ext, demo.extension_type_inputs(), 4)
    assert ext.experimental_get_tracing_count() == 1

    # The harness keeps a step's own input_signature (re-wrapped per mode).
    signed, traced = wrap_mode(demo.encode_with_signature, "function")
    calls = drive(signed, demo.varying_length_inputs(), 8)
    assert traced.experimental_get_tracing_count() == 1 and explain_retraces(traced, calls) == []

    # reduce_retracing: the second length generalises to (4, None); then no more traces however many lengths.
    relaxed, _ = wrap_mode(demo.encode_reduce_retracing, "function")
    calls = drive(relaxed, demo.varying_length_inputs(), 8)
    assert relaxed.experimental_get_tracing_count() == 2
    (only,) = explain_retraces(relaxed, calls)
    assert only.after == [4, None] and only.dims == [1]


def test_applying_the_suggested_input_signature_removes_the_retraces(demo):
    fn = tf.function(demo.encode)
    calls = drive(fn, demo.varying_length_inputs(), 4)
    retraces = explain_retraces(fn, calls)
    fix = fix_for(retraces, "encode", signature_info(fn, "encode"))
    match = re.search(r"@tf\.function\(input_signature=(\[.*?\])\)", fix)
    assert match, fix
    assert match.group(1) == "[tf.TensorSpec([4, None], tf.int32)]"
    fixed = tf.function(demo.encode, input_signature=eval(match.group(1), {"tf": tf}))
    fixed_calls = drive(fixed, demo.varying_length_inputs(), 8)
    assert fixed.experimental_get_tracing_count() == 1 and explain_retraces(fixed, fixed_calls) == []


def test_dtype_and_structure_changes():
    fn = tf.function(lambda x, d=None: x)
    inputs = [
        ((tf.ones(3),), {}),
        ((tf.ones(3, tf.float64),), {}),
        ((tf.ones(3),), {"d": {"a": tf.ones(2)}}),
        ((tf.ones(3),), {"d": {"a": tf.ones(2), "b": 1}}),
    ]
    retraces = explain_retraces(fn, drive(fn, iter(inputs), 4))
    assert [(r.argument, r.kind) for r in retraces] == [
        ("x", "dtype"),
        ("d", "structure"),
        ("d", "structure"),
    ]
    assert "x: dtype float32 -> float64" in retraces[0].changed
    assert "['a', 'b']" in retraces[2].changed


def test_keras_train_step_with_built_optimizer_traces_once():
    import keras

    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def make_step(optimizer):
        return tf.function(train_step(model, loss_fn, optimizer))

    batches = [((tf.random.normal((4, 8)), tf.constant([0, 1, 2, 0])), {})] * 3
    built = keras.optimizers.Adam()
    built.build(model.trainable_variables)
    fn = make_step(built)
    calls = drive(fn, iter(batches), 3)
    assert fn.experimental_get_tracing_count() == 1 and explain_retraces(fn, calls) == []
    # Unbuilt, the optimizer creates its variables in the first call: two traces, neither a retrace.
    lazy = make_step(keras.optimizers.Adam())
    calls = drive(lazy, iter(batches), 3)
    assert lazy.experimental_get_tracing_count() == 2
    assert explain_retraces(lazy, calls) == [] and first_use_traces(lazy) == 1


def _run_in_process(namespace, function, inputs, mode, **case_keys):
    """The harness's run_job on a demonstrator, in this process (no worker): the wiring, not the CLI."""
    from tfperf.measure.harness import JobContext, run_job
    from tfperf.suite.spec import CaseSpec

    case = CaseSpec(
        name="demo",
        function=f"demo:{function}",
        inputs=f"demo:{inputs}",
        modes=(mode,),
        device="cpu",
        warmup_steps=1,
        steps=2,
        repeats=1,
        profile=False,
        **case_keys,
    )
    (job,) = case.jobs()
    objects = {"demo:" + name: getattr(namespace, name) for name in (function, inputs)}
    return run_job(case, job, JobContext(out_dir=None, tf_device="/CPU:0"), objects.__getitem__)


def test_harness_explains_budgets_and_reads_the_graph(demo):
    bad = _run_in_process(demo, "scaled", "python_scale_inputs", "xla", max_traces=1)
    assert bad.status == "failed" and bad.error.type == "RetraceBudgetExceeded", bad.error
    assert bad.tracing_count == 3 and [r.call for r in bad.retraces] == [1, 2]
    assert "scale: 3.0 -> 4.0 (python float)" in bad.error.message
    assert bad.error.hint.startswith("scaled(..., scale=tf.constant(")
    assert bad.graph.fusions > 0 and bad.graph.hlo_instructions >= bad.graph.optimized_hlo_instructions

    good = _run_in_process(demo, "encode_with_signature", "varying_length_inputs", "function", max_traces=1)
    assert good.status == "ok" and good.tracing_count == 1 and good.retraces == []
    assert good.graph.op_count > 0 and good.graph.fusions is None


def lazy_dense(x):
    # Creates its variable in the first call: tf.function traces that call twice (no retrace).
    if not hasattr(lazy_dense, "w"):
        lazy_dense.w = tf.Variable(tf.ones((x.shape[-1], 2)))
    return tf.matmul(x, lazy_dense.w)


def test_first_call_that_creates_variables_is_within_a_budget_of_one():
    steps = types.SimpleNamespace(
        lazy_dense=lazy_dense, lazy_inputs=lambda: itertools.repeat(((tf.ones((2, 3)),), {}))
    )
    r = _run_in_process(steps, "lazy_dense", "lazy_inputs", "function", max_traces=1)
    assert r.tracing_count == 2 and r.tracing.first_use_traces == 1
    assert r.retraces == [] and r.status == "ok", r.error


@pytest.mark.workers
def test_fail_on_retrace_end_to_end(tmp_path):
    # One case (one worker process) keeps this cheap; the fixed variants are checked above without a worker.
    out = tmp_path / "out"
    proc = run_tfperf(
        "run",
        str(SUITE),
        "--out",
        str(out),
        "--quiet",
        "--fail-on-retrace",
        "--modes",
        "function",
        "--case",
        "python-scalar",
        "--steps",
        "2",
        "--repeats",
        "1",
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (bad,) = json.loads((out / "results.json").read_text())["results"]
    assert bad["status"] == "failed" and bad["error"]["type"] == "RetraceBudgetExceeded"
    assert "scale: 3.0 -> 4.0 (python float)" in bad["error"]["message"]
    assert "scaled(..., scale=tf.constant(" in bad["error"]["hint"]
    assert bad["retraces"][0]["argument"] == "scale" and bad["tracing_count"] == 3
    assert bad["samples"] and bad["graph"]["op_count"] > 0  # the measurement is kept beside the failure
    assert "retracing" in [s["code"] for s in bad["suggestions"]]
