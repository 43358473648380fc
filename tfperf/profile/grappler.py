"""What Grappler did to a traced step: each of its optimizers, the ops before and after it.

`tune` can measure "Grappler off was 1.6x slower"; this says which optimizers made the difference. Grappler's
meta optimizer runs its passes in a fixed order (pruning, function inlining, common subexpressions, constant
folding, shapes, arithmetic, layout, remapper (fusing ops such as MatMul+BiasAdd+Relu into one kernel), loops,
dependencies, memory); when its config lists optimizers by name it runs only those. So tfperf runs them one at
a time, in that order, each on the graph the previous one left, through the same `tf_optimizer.OptimizeGraph`
entry point graph_stats.grappler_op_count uses, and counts ops (graph nodes plus the nodes of its function
library) before and after each. The chain is an estimate of the joint run (the meta optimizer also iterates),
so `graph.grappler_op_count` stays the figure for the whole; the passes explain it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# The meta optimizer's default order (TensorFlow's grappler meta_optimizer.cc, default-on passes), by the
# names RewriterConfig.optimizers accepts.
PASSES = (
    "pruning",
    "function",
    "common_subgraph_elimination",
    "constfold",
    "shape",
    "arithmetic",
    "layout",
    "remap",
    "loop",
    "dependency",
    "memory",
)


@dataclass(frozen=True)
class GrapplerPass:
    """One optimizer's effect: ops (graph + function library) before and after it."""

    optimizer: str
    ops_before: int
    ops_after: int
    # Op types the pass made more of ({"_FusedMatMul": 2}): a rewrite that keeps the count (the remapper's
    # MatMul+BiasAdd -> _FusedMatMul pairs) still shows.
    new_op_types: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.ops_before != self.ops_after or bool(self.new_op_types)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed, "removed": self.ops_before - self.ops_after}


def node_count(graph_def: Any) -> int:
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


def op_types(graph_def: Any) -> Counter[str]:
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return Counter(n.op for n in nodes)


# Where an unplaced node runs. The remapper (and layout) rewrite only placed nodes: unplaced, a Dense layer's
# MatMul+BiasAdd stayed two ops; placed on the CPU they became one _FusedMatMul, as in the runtime's graph.
DEFAULT_DEVICE = "/job:localhost/replica:0/task:0/device:CPU:0"


def _place(graph_def: Any, device: str) -> None:
    for node in list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]:
        if not node.device:
            node.device = device


def grappler_passes(
    concrete_fn: Any, passes: tuple[str, ...] = PASSES, device: str = DEFAULT_DEVICE
) -> list[GrapplerPass]:
    """Run Grappler's optimizers one at a time over a concrete function's graph, its unplaced nodes on
    `device`; what each changed."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = concrete_fn.graph
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(add_shapes=True), graph=graph)
    # The outputs and the stateful ops (variable updates) are fetches: nothing that matters may be pruned.
    fetches = [t.op.name for t in tf.nest.flatten(concrete_fn.outputs)]
    fetches += [op.name for op in getattr(graph, "control_outputs", [])]
    meta.collection_def["train_op"].node_list.value.extend(dict.fromkeys(fetches))
    _place(meta.graph_def, device)
    out = []
    for name in passes:
        config = config_pb2.ConfigProto()
        rewriter = config.graph_options.rewrite_options
        rewriter.optimizers.append(name)
        rewriter.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
        before, types = node_count(meta.graph_def), op_types(meta.graph_def)
        optimized = tf_optimizer.OptimizeGraph(config, meta)
        grown = op_types(optimized) - types
        out.append(
            GrapplerPass(
                optimizer=name,
                ops_before=before,
                ops_after=node_count(optimized),
                new_op_types=dict(sorted(grown.items())),
            )
        )
        meta.graph_def.CopyFrom(optimized)
    return out
