"""Inside the compiled step: HLO ops as XLA's top ops, mapped to TF ops and Keras layers; function vs XLA per
layer; the jit-compile-part suggestion; what tf.data AUTOTUNE chose. Real TensorFlow, tiny models."""

from __future__ import annotations

import pytest
from builders import result

from tfperf.profile import attribution, hlo_metadata, hlo_ops, layers, tfdata_autotune
from tfperf.results.model import Result, RunResult
from tfperf.results.records import Profile

pytestmark = pytest.mark.tensorflow

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _train_step(model, jit: bool):
    """The harness's own train step (forward / backward / optimizer name scopes), Adam, a sparse CE loss."""
    from tfperf.measure.model_step import train_step

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return tf.function(train_step(model, loss_fn, keras.optimizers.Adam()), jit_compile=jit)


def _profile(step, x, y, tmp_path, names, label):
    from tfperf.profile.profiler import profile_job

    step(x, y)  # trace and compile outside the profiled steps
    return profile_job(
        lambda i: step(x, y).numpy(), steps=3, trace_name="train", logdir=tmp_path / label, layer_names=names
    )


@pytest.fixture(scope="module")
def mlp():
    keras.utils.set_random_seed(0)
    inp = keras.Input((32,))
    h = keras.layers.Dense(64, activation="relu", name="dense_0")(inp)
    model = keras.Model(inp, keras.layers.Dense(10, name="dense_1")(h))
    x = tf.random.normal((128, 32))
    y = tf.random.uniform((128,), 0, 10, tf.int32)
    return model, x, y


def test_mlp_xla_top_ops_are_hlo_ops_mapped_to_dense_layers(mlp, tmp_path):
    model, x, y = mlp
    step = _train_step(model, jit=True)
    prof = _profile(step, x, y, tmp_path, [layer.name for layer in model.layers], "xla")
    top = prof["top_ops"]
    assert "readout_error" not in prof, prof.get("readout_error")
    assert not any(o["name"].startswith("__inference") for o in top), (
        "the cluster itself is no longer a top op"
    )
    categories = {o["hlo_category"] for o in top}
    assert "dot" in categories and "fusion" in categories, categories
    # Every HLO op's share is of the compiled step: together they never exceed it.
    hlo = [o for o in top if o.get("cluster")]
    assert hlo and sum(o["share"] for o in hlo) <= 1.0 + 1e-9
    assert all(0 < o["share"] <= 1 for o in hlo)
    steps = prof["compiled_step"]
    assert (
        len(steps) == 1
        and next(iter(steps.values()))["hlo_op_us"] <= next(iter(steps.values()))["compiled_step_us"]
    )
    # Mapped back to what the user wrote: the dots compute the dense layers' MatMuls.
    dots = [o for o in top if o["hlo_category"] == "dot"]
    assert any(o["layer"] in ("dense_0", "dense_1") for o in dots)
    assert all(any("MatMul" in s for s in o["source_ops"]) for o in dots)
    assert {o["phase"] for o in dots} <= {"forward", "backward"}
    fusion = next(o for o in prof["fusions"])
    assert fusion["fusion_kind"] and fusion["fused_ops"] >= 1 and fusion["source_ops"]
    # The per-layer split now reads the HLO ops too (it saw one unscoped cluster before).
    assert {e["layer"] for e in prof["layers"]} == {"dense_0", "dense_1"}
    assert prof["phases"]["backward"]["self_time_us"] > 0

    # The trace's HLO module is the one experimental_get_compiler_ir(stage="optimized_hlo") prints.
    from_ir = hlo_metadata.from_text(step.experimental_get_compiler_ir(x, y)(stage="optimized_hlo"))
    for o in dots:
        assert from_ir[o["name"]].op_name == o["tf_op"]
        assert from_ir[o["name"]].category == "dot"


def test_function_top_ops_keep_tf_ops(mlp, tmp_path):
    model, x, y = mlp
    prof = _profile(
        _train_step(model, jit=False), x, y, tmp_path, [layer.name for layer in model.layers], "fn"
    )
    assert prof["top_ops"] and all("hlo_category" not in o for o in prof["top_ops"])
    assert "fusions" not in prof


def test_small_cnn_layer_table_has_both_modes_for_its_conv_layers(tmp_path):
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv_0")(inp)
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv_1")(h)
    out = keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D(name="pool")(h))
    model = keras.Model(inp, out)
    x = tf.random.normal((16, 16, 16, 3))
    y = tf.random.uniform((16,), 0, 4, tf.int32)
    names = [layer.name for layer in model.layers]
    fn = _profile(_train_step(model, jit=False), x, y, tmp_path, names, "fn")
    xla = _profile(_train_step(model, jit=True), x, y, tmp_path, names, "xla")
    split = layers.compare(Profile.from_json(fn), Profile.from_json(xla))
    assert split is not None
    by = {lt.layer: lt for lt in split.layers}
    for conv in ("conv_0", "conv_1"):
        assert by[conv].function_us and by[conv].xla_us, by.get(conv)
        assert by[conv].ratio is not None and by[conv].xla_top_op
        assert by[conv].function_backward_us is not None and by[conv].xla_backward_us is not None
    assert split.phases["forward"]["function_us"] and split.phases["forward"]["xla_us"]
    assert "under XLA vs" in layers.describe(by["conv_1"])


def test_autotune_table_lists_the_map_stage_with_its_parallelism():
    ds = (
        tf.data.Dataset.range(10_000)
        .map(
            lambda i: tf.reduce_sum(tf.sin(tf.cast(tf.range(500), tf.float32) + tf.cast(i, tf.float32))),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .batch(8)
        .prefetch(tf.data.AUTOTUNE)
    )
    it = iter(ds)
    for _ in range(30):
        next(it)
    report = tfdata_autotune.read(it)
    stage = report.stage("Map")  # ParallelMapV2, or MapAndBatch when tf.data fused the map into its batch
    assert stage is not None, [s.name for s in report.stages]
    assert stage.chosen("parallelism") >= 1 and stage.num_elements > 0 and stage.time_per_element_us > 0
    assert report.stage("Prefetch").chosen("buffer_size") >= 1
    assert report.cpu_budget >= 1 and report.ram_budget_bytes > 0
    # Autotune off: the model does not exist, and reading it says so (a measuring tool fails loud).
    opts = tf.data.Options()
    opts.autotune.enabled = False
    off = iter(tf.data.Dataset.range(10).map(lambda i: i + 1).with_options(opts))
    next(off)
    with pytest.raises(Exception, match="autotune"):
        tfdata_autotune.read(off)
    assert "autotune" in tfdata_autotune.record(off)["error"]  # profile.autotune says why there is no table
    assert tfdata_autotune.record(None) is None  # no tf.data input: nothing to say
    assert report.to_json()["stages"][0]["name"] == "Root"


# ---- pure: parsing, categories, cluster expansion, the advisor over built results --------------------------

HLO_TEXT = """HloModule m, entry_computation_layout={()->f32[4]}

%fused_computation (param_0: f32[4], param_1: f32[4]) -> f32[4] {
  %param_0 = f32[4]{0} parameter(0)
  %param_1 = f32[4]{0} parameter(1)
  %add.1 = f32[4]{0} add(%param_0, %param_1), metadata={op_type="BiasAdd" op_name="forward/d/BiasAdd"}
  ROOT %max.1 = f32[4]{0} maximum(%add.1, %add.1), metadata={op_type="Relu" op_name="forward/d/Relu"}
}

%wrapped_reduce_computation (p: f32[4]) -> f32[] {
  %p = f32[4]{0} parameter(0)
  %c = f32[] constant(0)
  ROOT %r = f32[] reduce(%p, %c), dimensions={0}, to_apply=%add_f32
}

ENTRY %main (a: f32[4,4], b: f32[4]) -> f32[4] {
  %a = f32[4,4]{1,0} parameter(0)
  %b = f32[4]{0} parameter(1)
  %MatMul.2 = f32[4]{0} dot(%a, %b), lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_type="MatMul" op_name="forward/d/MatMul"}
  %wrapped_reduce = f32[] fusion(%MatMul.2), kind=kLoop, calls=%wrapped_reduce_computation
  %copy.1 = f32[4]{0} copy(%b)
  ROOT %add_max_fusion = f32[4]{0} fusion(%MatMul.2, %copy.1), kind=kLoop, calls=%fused_computation, metadata={op_type="Relu" op_name="forward/d/Relu"}
}
"""  # noqa: E501 - HLO text as XLA prints it: one instruction per line


def test_hlo_text_gives_categories_sources_and_fusion_sizes():
    ins = hlo_metadata.from_text(HLO_TEXT)
    assert ins["MatMul.2"].category == "dot" and ins["MatMul.2"].op_type == "MatMul"
    fusion = ins["add_max_fusion"]
    assert fusion.category == "fusion" and fusion.fusion_kind == "kLoop" and fusion.fused_ops == 2
    assert fusion.source_ops == ("forward/d/Relu", "forward/d/BiasAdd")
    assert ins["wrapped_reduce"].category == "reduce"  # a fusion wrapping one reduce is a reduce
    # XLA kept no metadata on these: the copy feeds only the Relu fusion, so it is part of it; the reduce
    # feeds nothing named, so it stays unattributed rather than guessed.
    assert (ins["copy.1"].op_name, ins["copy.1"].metadata_from) == ("forward/d/Relu", "consumer")
    assert (ins["wrapped_reduce"].op_name, ins["wrapped_reduce"].metadata_from) == ("", "")
    assert hlo_metadata.category("convolution") == "convolution" and hlo_metadata.category("copy") == "copy"


def test_expand_clusters_replaces_the_cluster_and_keeps_its_remainder():
    module = "a_inference_step_12__XlaMustCompile_true_config_proto_1_executor_type_2_.7"
    assert hlo_ops.module_function(module) == "__inference_step_12"
    trace = hlo_ops.HloTrace(
        ops=[
            hlo_ops.HloOpTime(module, "MatMul.2", 600.0, 3),
            hlo_ops.HloOpTime(module, "add_max_fusion", 150.0, 3),
        ],
        instructions={module: hlo_metadata.from_text(HLO_TEXT)},
    )
    rows = [
        attribution.OpRow("__inference_step_12", "__inference_step_12", 1000.0, 3),
        attribution.OpRow("IteratorGetNext", "IteratorGetNext", 50.0, 3),
    ]
    out, details = hlo_ops.expand_clusters(rows, trace)
    names = {r.name: r for r in out}
    assert set(names) == {
        "MatMul.2",
        "add_max_fusion",
        "__inference_step_12 (outside HLO ops)",
        "IteratorGetNext",
    }
    assert sum(r.self_time_us for r in out) == pytest.approx(1050.0)  # nothing counted twice, nothing lost
    assert details["MatMul.2"]["hlo_category"] == "dot" and names["MatMul.2"].type == "MatMul"
    top = hlo_ops.annotate_top_ops(
        [{"name": "MatMul.2", "type": "MatMul", "self_time_us": 600.0, "share": 0.57}], details, ["d"]
    )
    assert top[0]["layer"] == "d" and top[0]["share"] == pytest.approx(0.6) and top[0]["phase"] == "forward"
    scoped = hlo_ops.scoped_rows(out, details)
    assert attribution.layer_split(scoped, ["d"])[0]["self_time_us"] == pytest.approx(750.0)


def _result(mode: str, median_s: float, layer_us: dict[str, float], slowed: float = 1.0) -> Result:
    """A result whose 5 profiled steps spent `layer_us` per step in each layer and the rest of its timed step
    in no layer ("other"), everything `slowed` times slower under the profiler."""
    samples = [median_s * (1 + 0.002 * (i % 5 - 2)) for i in range(30)]
    rest = max(median_s * 1e6 - sum(layer_us.values()), 0.0)
    prof = Profile(
        layers=[
            {
                "layer": k,
                "self_time_us": v * 5 * slowed,
                "forward_us": v * 2.5 * slowed,
                "backward_us": v * 2.5 * slowed,
                "top_op": {"name": f"{k}/op", "type": "Conv2D"},
            }
            for k, v in layer_us.items()
        ],
        phases={
            "forward": {"self_time_us": sum(layer_us.values()) * 5 * slowed},
            "other": {"self_time_us": rest * 5 * slowed},
        },
        details={"steps": 5},
    )
    return result(
        mode, case="cnn", samples=samples, repeat_sizes=[10, 10, 10], repeat_process=[0, 1, 2], profile=prof
    )


def test_avoid_xla_names_the_layers_and_jit_compile_part_proposes_the_split():
    from tfperf.analysis import advisor

    fn = _result("function", 0.010, {"conv_0": 3100.0, "conv_1": 3100.0, "dense": 2000.0})
    xla = _result("xla", 0.016, {"conv_0": 9800.0, "conv_1": 3000.0, "dense": 600.0})
    advisor.attach_suggestions(RunResult(suite={}, environment={}, results=[fn, xla]))
    by_code = {s.code: s for s in xla.suggestions}
    avoid = by_code["avoid-xla"]
    assert "conv_0 (mostly Conv2D) takes 9.80 ms under XLA vs 3.10 ms in the graph" in avoid.evidence
    assert avoid.evidence_data["layers"]
    part = by_code["jit-compile-part"]
    assert part.evidence_data["faster_layers"] == ["dense"] and part.evidence_data["slower_layers"] == [
        "conv_0"
    ]
    assert "jit_compile=True" in part.fix and "dense" in part.fix


def test_each_modes_layers_split_its_timed_step_whatever_the_profiler_cost():
    """The profiler slowed a CNN's tf.function steps 3.2x and its XLA steps 1.02x (measured): raw profiled
    times would show tf.function's layers 3x too slow beside XLA's. Split by shares of each mode's timed step,
    the layers add up to that step, and a layer whose real time did not change is not called faster."""
    fn = _result("function", 0.010, {"conv_0": 3000.0, "dense": 6000.0}, slowed=3.2)
    xla = _result("xla", 0.016, {"conv_0": 3000.0, "dense": 12000.0}, slowed=1.02)
    split = layers.split_of(fn, xla)
    by = {lt.layer: lt for lt in split.layers}
    assert split.basis == layers.TIMED
    assert by["conv_0"].function_us == pytest.approx(3000.0) and by["conv_0"].xla_us == pytest.approx(3000.0)
    assert by["conv_0"].change == "same" and by["dense"].change == "slower"
    total = sum(v["function_us"] for v in split.phases.values())
    assert total == pytest.approx(fn.median_s * 1e6)
    raw = layers.compare(fn.profile, xla.profile)  # no timed steps: per profiled step, and it says so
    assert raw.basis == layers.PROFILED and raw.layers[0].function_us == pytest.approx(3000.0 * 3.2)
    from tfperf.analysis.advisor.modes import _layer_sentence

    assert "Per layer (timed step split by profiled op time)" in _layer_sentence(fn, xla, faster=False)


def test_jit_compile_part_stays_silent_without_a_clear_split():
    from tfperf.analysis import advisor

    fn = _result("function", 0.010, {"conv_0": 3100.0, "dense": 2000.0})
    xla = _result("xla", 0.016, {"conv_0": 9800.0, "dense": 1900.0})  # dense: within the noise of a profile
    advisor.attach_suggestions(RunResult(suite={}, environment={}, results=[fn, xla]))
    assert "avoid-xla" in {s.code for s in xla.suggestions}
    assert "jit-compile-part" not in {s.code for s in xla.suggestions}
    # A clear-looking split over a profile that attributes too little of its op time is no evidence.
    fn = _result("function", 0.010, {"conv_0": 3100.0, "dense": 2000.0})
    xla = _result("xla", 0.016, {"conv_0": 9800.0, "dense": 600.0})
    xla.profile.phases = {"forward": {"self_time_us": 100.0}, "other": {"self_time_us": 100.0}}
    advisor.attach_suggestions(RunResult(suite={}, environment={}, results=[fn, xla]))
    assert "jit-compile-part" not in {s.code for s in xla.suggestions}
    no_profile = [_result("function", 0.010, {}), _result("xla", 0.016, {})]
    advisor.attach_suggestions(RunResult(suite={}, environment={}, results=no_profile))
    assert "Per layer" not in next(s for s in no_profile[1].suggestions if s.code == "avoid-xla").evidence


def test_html_shows_the_layer_chart_fusions_grappler_and_autotune_tables():
    from tfperf.report.html import render_html
    from tfperf.results.records import GraphStats

    fn = _result("function", 0.010, {"conv_0": 3100.0, "dense": 2000.0})
    xla = _result("xla", 0.016, {"conv_0": 9800.0, "dense": 600.0})
    xla.profile.fusions = [
        {
            "name": "broadcast_maximum_fusion",
            "fusion_kind": "kLoop",
            "fused_ops": 4,
            "hlo_category": "fusion",
            "self_time_us": 120.0,
            "share": 0.08,
            "source_ops": ["forward/m/conv_0/Relu", "forward/m/conv_0/BiasAdd"],
            "layer": "conv_0",
        }
    ]
    fn.graph = GraphStats(
        op_count=214,
        grappler_passes=[
            {
                "optimizer": "pruning",
                "ops_before": 214,
                "ops_after": 202,
                "changed": True,
                "new_op_types": {},
            },
            {
                "optimizer": "remap",
                "ops_before": 202,
                "ops_after": 199,
                "changed": True,
                "new_op_types": {"_FusedMatMul": 2},
            },
        ],
    )
    fn.profile.autotune = {
        "stages": [
            {
                "name": "ParallelMapV2",
                "chosen": {"parallelism": 2},
                "num_elements": 96,
                "time_per_element_us": 812.5,
                "buffered_elements": 2,
            }
        ],
        "cpu_budget": 2,
        "ram_budget_bytes": 8 << 30,
    }
    from tfperf.results.records import WhatIf

    fn.what_if = [
        WhatIf(
            change="prefetch(AUTOTUNE)",
            median_s=0.009,
            baseline_median_s=0.010,
            speedup=1.11,
            details={
                "autotune": {
                    "stages": [{"name": "Prefetch", "chosen": {"buffer_size": 3}}],
                    "cpu_budget": 2,
                    "ram_budget_bytes": 1 << 30,
                }
            },
        ),
        WhatIf(change="cache()", details={"autotune": {"error": "NotFoundError: no analytical model"}}),
    ]
    html = render_html(RunResult(suite={"name": "s"}, environment={}, results=[fn, xla]))
    section = html[html.index('data-inside-step="cnn"') :]
    assert "Per layer · function (batch 32) vs xla" in section and "<svg" in section
    assert 'data-layer="conv_0"' in section and "XLA slower" in section and "XLA faster" in section
    assert "broadcast_maximum_fusion" in section and "kLoop" in section
    assert 'data-grappler-changed="remap"' in section and "_FusedMatMul ×2" in section
    assert "ParallelMapV2" in section and "parallelism 2" in section and "8.0 GiB" in section
    # Every what-if variant says what AUTOTUNE picked there, or why there was nothing to read.
    assert "what-if prefetch(AUTOTUNE)" in section and "buffer_size 3" in section
    assert "what-if cache()" in section and "No autotuner model to read: NotFoundError" in section


def test_a_profiled_pipeline_job_records_what_autotune_chose_and_the_page_shows_it(tmp_path):
    """End to end through the harness: the input-pipeline suite's `parallel-map` case (num_parallel_calls:
    autotune), profiled, records the map stage's chosen parallelism in `profile.autotune`, and the HTML's
    AUTOTUNE table shows that stage. The naive case, whose baseline turns autotune off, says why it has
    none."""
    from pathlib import Path

    from tfperf.measure import harness
    from tfperf.report.html import render_html
    from tfperf.suite.loader import load_suite
    from tfperf.suite.references import resolve_reference

    suite = load_suite(Path(__file__).resolve().parent.parent / "suites" / "input_pipeline.yaml")
    results = []
    for name in ("parallel-map", "naive"):
        spec = next(c for c in suite.cases if c.name == name)
        spec = spec.replace(
            params={**spec.params, "step_ms": 5}, steps=4, repeats=1, warmup_steps=8, what_if=False
        )
        ctx = harness.JobContext(out_dir=tmp_path / name, tf_device="/CPU:0")
        job = spec.jobs()[0]
        results.append(harness.run_job(spec, job, ctx, lambda r, s=spec: resolve_reference(r, s.base_dir)))
    parallel, naive = results
    assert parallel.ok and parallel.profile is not None, parallel.error
    at = parallel.profile.autotune
    stage = next((s for s in at["stages"] if "Map" in s["name"]), None)
    assert stage is not None, at
    assert stage["chosen"]["parallelism"] >= 1 and at["cpu_budget"] >= 1
    assert "autotune" in naive.profile.autotune["error"].lower()
    html = render_html(RunResult(suite={"name": "input_pipeline"}, environment={}, results=results))
    row = html[html.index(f">{stage['name']}<") :]
    assert f"parallelism {stage['chosen']['parallelism']}" in row[:2000]
