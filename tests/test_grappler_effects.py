"""What Grappler did to a traced step: its optimizers one by one, ops before and after each (real
TensorFlow)."""

from __future__ import annotations

import pytest

from tfperf.profile import grappler
from tfperf.profile.graph_stats import graph_stats, grappler_op_count, op_count

pytestmark = pytest.mark.tensorflow

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def traced_mlp_step():
    keras.utils.set_random_seed(0)
    inp = keras.Input((16,))
    model = keras.Model(inp, keras.layers.Dense(4)(keras.layers.Dense(32, activation="relu")(inp)))
    opt = keras.optimizers.SGD(0.01)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    x, y = tf.zeros((8, 16)), tf.zeros((8, 4))
    step(x, y)
    return step, x, y


def test_each_optimizer_in_order_with_ops_before_and_after(traced_mlp_step):
    step, x, y = traced_mlp_step
    concrete = step.get_concrete_function(x, y)
    passes = grappler.grappler_passes(concrete)
    assert [p.optimizer for p in passes] == list(grappler.PASSES)
    assert passes[0].ops_before == op_count(concrete)
    # A chain: each pass starts from the graph the previous one left.
    assert all(a.ops_after == b.ops_before for a, b in zip(passes, passes[1:]))
    assert any(p.changed and p.ops_after < p.ops_before for p in passes), [p.to_json() for p in passes]
    # Placed on the CPU, the remapper fuses each Dense layer's MatMul+BiasAdd(+Relu) as the runtime does.
    remap = next(p for p in passes if p.optimizer == "remap")
    assert remap.new_op_types.get("_FusedMatMul", 0) >= 1, remap
    # The chain explains the joint run's figure (graph.grappler_op_count) rather than replacing it.
    assert passes[-1].ops_after <= passes[0].ops_before
    assert grappler_op_count(concrete) <= passes[0].ops_before
    entry = passes[0].to_json()
    assert set(entry) >= {"optimizer", "ops_before", "ops_after", "changed", "removed", "new_op_types"}


def test_graph_stats_records_the_passes_for_function_results_only(traced_mlp_step):
    step, x, y = traced_mlp_step
    stats = graph_stats(step, (x, y), {}, jit=False)
    assert stats["grappler_passes"] and "errors" not in stats
    assert (
        sum(p["removed"] for p in stats["grappler_passes"])
        == stats["op_count"] - stats["grappler_passes"][-1]["ops_after"]
    )
    from tfperf.results.records import GraphStats

    record = GraphStats.from_json(stats)
    assert record.grappler_passes == stats["grappler_passes"] and not record.details.get("grappler_passes")
