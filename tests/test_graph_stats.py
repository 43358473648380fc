"""Graph statistics: HLO counting on known text, and real XLA HLO of a small MLP train step."""

import pytest
import tensorflow as tf

from tfperf.measure.model_step import train_step
from tfperf.profile.graph_stats import count_hlo, example_call_args, graph_stats

pytestmark = pytest.mark.tensorflow

# Optimized-HLO shape of a module: a reducer, a fused computation, a while loop, and the entry.
HLO = """HloModule m, is_scheduled=true, entry_computation_layout={(f32[3,16]{1,0})->f32[]}

%Sum-reduction.1 (x.1: f32[], y.1: f32[]) -> f32[] {
  %x.1 = f32[] parameter(0)
  %y.1 = f32[] parameter(1)
  ROOT %add.3 = f32[] add(%x.1, %y.1)
}

%fused_computation (param_0.4: f32[3,16]) -> f32[] {
  %param_0.4 = f32[3,16]{1,0} parameter(0)
  %c = f32[] constant(0)
  %m = f32[3,16]{1,0} broadcast(%c), dimensions={}
  %r = f32[3,16]{1,0} maximum(%param_0.4, %m)
  ROOT %Sum.0 = f32[] reduce(%r, %c), dimensions={0,1}, to_apply=%Sum-reduction.1
}

%body (p: (s32[], f32[])) -> (s32[], f32[]) {
  %p = (s32[], f32[]) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  ROOT %t = (s32[], f32[]) tuple(%i, %i)
}

%cond (p.1: (s32[], f32[])) -> pred[] {
  %p.1 = (s32[], f32[]) parameter(0)
  ROOT %lt = pred[] constant(false)
}

ENTRY %main (arg0.1: f32[3,16]) -> f32[] {
  %arg0.1 = f32[3,16]{1,0} parameter(0), metadata={op_name="XLA_Args"}
  %init = (s32[], f32[]) tuple(%arg0.1, %arg0.1)
  %loop = (s32[], f32[]) while(%init), condition=%cond, body=%body
  ROOT %fusion = f32[] fusion(%arg0.1), kind=kLoop, calls=%fused_computation
}
"""


def test_count_hlo_counts_what_runs_and_what_was_fused():
    counts = count_hlo(HLO)
    # entry (4) + while body (3) + condition (2); the fused computation and the reducer run inside their
    # caller.
    assert counts["instructions"] == 9
    assert counts["fusions"] == 1
    assert counts["fused_instructions"] == 5
    assert counts["computations"] == 5


def test_count_hlo_of_nothing_is_zero():
    assert count_hlo("")["instructions"] == 0


@pytest.fixture(scope="module")
def mlp_train_step():
    import keras

    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(4)]
    )
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    return train_step(model, loss_fn, optimizer), (tf.random.normal((8, 16)), tf.constant([0, 1, 2, 3] * 2))


def test_xla_mlp_hlo_is_fused_and_optimized_is_not_larger(mlp_train_step):
    step, args = mlp_train_step
    fn = tf.function(step, jit_compile=True)
    fn(*args)
    stats = graph_stats(fn, args, {}, jit=True)
    assert "errors" not in stats, stats
    assert stats["op_count"] > 0 and stats["hlo_instructions"] > 0
    assert stats["fusions"] > 0 and stats["fused_instructions"] > 0
    assert 0 < stats["optimized_hlo_instructions"] <= stats["hlo_instructions"]
    assert fn.experimental_get_tracing_count() == 1  # reading the IR did not trace again


def test_function_mode_has_op_count_only_and_example_args_reuse_the_trace(mlp_train_step):
    step, args = mlp_train_step
    fn = tf.function(step)
    fn(*args)
    example = example_call_args(fn)
    assert example is not None
    stats = graph_stats(fn, *example, jit=False)
    assert stats["op_count"] > 0 and "hlo_instructions" not in stats
    # Grappler folds and prunes but keeps every variable update: fewer ops on the CPU, never none.
    assert 0 < stats["grappler_op_count"] <= stats["op_count"]
    assert fn.experimental_get_tracing_count() == 1


def test_graph_stats_reports_errors_instead_of_raising():
    fn = tf.function(lambda x: x + 1.0)  # not jit-compiled: there is no HLO to read
    fn(tf.ones(2))
    stats = graph_stats(fn, (tf.ones(2),), {}, jit=True)
    assert stats["op_count"] > 0 and "hlo" in stats["errors"]
