"""The fix for a retrace and the retrace budget, on hand-written retrace entries (what explain_retraces and
signature_info write into a Result; test_retracing.py derives them from real tf.functions)."""

from builders import result

from tfperf.measure.retrace_fixes import check_trace_budget, effective_traces, fix_for, tensor_spec_code
from tfperf.results.records import Retrace

SCALE_RETRACE = {
    "call": 1,
    "changed": "scale: 3.0 -> 4.0 (python float)",
    "argument": "scale",
    "kind": "python_value",
    "before": 3.0,
    "after": 4.0,
    "dims": [],
}


def test_trace_budget_fails_with_reasons_and_fix():
    r = result(
        tracing_count=3,
        retraces=[
            SCALE_RETRACE,
            dict(SCALE_RETRACE, call=2, before=4.0, after=5.0, changed="scale: 4.0 -> 5.0 (python float)"),
        ],
    )
    check_trace_budget(r, 1)
    assert r.status == "failed" and r.error.type == "RetraceBudgetExceeded"
    assert "traced 3 times" in r.error.message and "scale: 3.0 -> 4.0 (python float)" in r.error.message
    assert "scale=tf.constant(" in r.error.hint
    within = result(tracing_count=3, retraces=[SCALE_RETRACE])
    check_trace_budget(within, 3)
    assert within.status == "ok" and within.error is None
    eager = result(mode="eager", tracing_count=None)
    check_trace_budget(eager, 1)
    assert eager.status == "ok"
    first_use = result(tracing_count=2, tracing={"first_use_traces": 1})
    check_trace_budget(first_use, 1)
    assert first_use.status == "ok"  # the variable-creating first call's second trace is not a retrace


def test_fix_for_without_signature_and_from_a_result():
    shape = {
        "call": 1,
        "changed": "x: shape (8, 16) -> (9, 16) (dim 0)",
        "argument": "x",
        "kind": "shape",
        "before": [8, 16],
        "after": [9, 16],
        "dims": [0],
        "dtype": "float32",
    }
    fix = fix_for([Retrace.from_json(shape)])
    assert "reduce_retracing=True" in fix and "tf.TensorSpec([None, 16], tf.float32)" in fix
    signature = {
        "function": "train",
        "parameters": [
            {"name": "x", "kind": "tensor", "shape": [None, 16], "dtype": "float32"},
            {"name": "y", "kind": "tensor", "shape": [None], "dtype": "int32"},
        ],
    }
    r = result(tracing_count=2, retraces=[shape], tracing={"signature": signature})
    assert fix_for(r).startswith(
        "@tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32), tf.TensorSpec([None], "
        "tf.int32)])"
    )
    assert fix_for([]) == ""


def test_effective_traces_do_not_count_the_first_use_retrace():
    assert effective_traces(result(tracing_count=2, tracing={"first_use_traces": 1})) == 1
    assert effective_traces(result(tracing_count=3)) == 3


def test_tensor_spec_code():
    assert tensor_spec_code([None, 16], "int32") == "tf.TensorSpec([None, 16], tf.int32)"
    assert tensor_spec_code(None, None) == "tf.TensorSpec(None, tf.float32)"
