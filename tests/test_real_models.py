"""Models tfperf did not write, as a new user brings them (suites/real_models.py, suites/real_models.yaml): a
keras-hub BERT text classifier with dict inputs, a Keras 2 (tf_keras) model, a dict-of-features recommender,
and the guide's custom training step under `tfperf tune`. Real packages (`pip install -e ".[models]"`), tiny
configurations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tensorflow

tf = pytest.importorskip("tensorflow")
keras_hub = pytest.importorskip("keras_hub")
tf_keras = pytest.importorskip("tf_keras")

# The optional `models` extra: without it the module is skipped, so its own imports come after the check.
from tfperf.measure import harness  # noqa: E402 - after the importorskip checks above
from tfperf.suite.loader import load_suite  # noqa: E402 - after the importorskip checks above
from tfperf.suite.references import resolve_reference  # noqa: E402 - after the importorskip checks above
from tfperf.suite.spec import CaseSpec  # noqa: E402 - after the importorskip checks above

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "suites" / "real_models.yaml"
FAST = dict(steps=3, repeats=1, warmup_steps=1, processes=1)


def case(name: str, **changes):
    spec = next(c for c in load_suite(SUITE).cases if c.name == name)
    return spec.replace(**{**FAST, **changes})


def run(spec, out: Path | None = None) -> dict:
    ctx = harness.JobContext(out_dir=out, tf_device="/CPU:0")
    return {
        job.mode: harness.run_job(spec, job, ctx, lambda r: resolve_reference(r, spec.base_dir))
        for job in spec.jobs()
    }


def statuses(results: dict) -> dict:
    return {m: (r.status, r.error and r.error.message) for m, r in results.items()}


def test_keras_hub_bert_classifier_trains_from_its_dataset_in_every_mode():
    results = run(case("bert_dataset"))
    assert statuses(results) == dict.fromkeys(("eager", "function", "xla"), ("ok", None))
    inputs = results["eager"].setup.model_inputs
    assert inputs["source"] == "dataset" and inputs["kind"] == "dict"
    assert set(inputs["inputs"]) == {"token_ids", "segment_ids", "padding_mask"}
    assert all(r.setup.keras.startswith("keras 3") for r in results.values())


def test_keras_hub_bert_synthetic_inputs_come_from_the_model_and_the_suite_overrides_by_name():
    from tfperf.measure.model_inputs import inputs_from_model

    model = resolve_reference("real_models.py:bert_classifier", SUITE.parent)()
    read = {i.name: (i.spec.shape, i.spec.maxval, i.role) for i in inputs_from_model(model, "bert").inputs}
    # Vocabulary from the token embedding, segments from the segment embedding, length from the position
    # embedding.
    assert read == {
        "token_ids": ((16,), 100, "features"),
        "segment_ids": ((16,), 2, "features"),
        "padding_mask": ((16,), None, "mask"),
    }
    results = run(case("bert_synthetic", modes=("eager", "function"), task="infer"))
    assert statuses(results) == dict.fromkeys(("eager", "function"), ("ok", None))
    given = results["function"].setup.model_inputs["inputs"]
    assert given["token_ids"] == {"shape": [12], "dtype": "int32", "maxval": 50}
    assert given["segment_ids"]["maxval"] == 2 and given["padding_mask"]["role"] == "mask"


def test_a_keras2_model_trains_and_infers_in_every_mode_with_its_own_optimizer(tmp_path):
    trained = run(case("keras2_mlp"))
    served = run(case("keras2_mlp_infer"), tmp_path)
    assert statuses(trained) == dict.fromkeys(("eager", "function", "xla"), ("ok", None))
    assert statuses(served) == dict.fromkeys(
        ("eager", "function", "xla", "savedmodel", "tflite"), ("ok", None)
    )
    for r in [*trained.values(), *served.values()]:
        assert r.setup.keras == f"tf_keras {tf_keras.__version__}"
    assert served["savedmodel"].output_agreement.max_abs_error < 1e-5
    assert served["tflite"].output_agreement.max_rel_error < 1e-4


def test_a_dict_of_features_recommender_in_keras_3_and_keras_2():
    k3 = run(case("recommender-keras3"))
    k2 = run(case("recommender-keras2", modes=("function",)))  # the suite's `keras: [3, 2]`
    assert statuses(k3) == dict.fromkeys(("eager", "function", "xla"), ("ok", None))
    assert statuses(k2) == {"function": ("ok", None)}
    inputs = k3["eager"].setup.model_inputs["inputs"]
    assert {n: i["maxval"] for n, i in inputs.items()} == {
        "user_id": 1000,
        "item_id": 500,
        "category_id": 20,
        "dense_features": None,
    }
    assert k2["function"].setup.keras.startswith("tf_keras")


@pytest.mark.workers
def test_tune_recommends_on_the_guides_training_loop_instead_of_excluding_everything(tmp_path):
    suite = tmp_path / "loop.yaml"
    suite.write_text(
        "name: loop\n"
        "defaults: {steps: 8, repeats: 2, warmup_steps: 2, processes: 1, profile: false, timeout_s: 120}\n"
        "cases:\n"
        f"  - name: guide\n    function: {REPO}/suites/examples/training_loop.py:train_step\n"
        f"    inputs: {REPO}/suites/examples/training_loop.py:batches\n"
    )
    out = tmp_path / "tune"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfperf",
            "tune",
            str(suite),
            "--budget-s",
            "45",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    (tuned,) = json.loads((out / "tune.json").read_text())["cases"]
    ranked = [r for r in tuned["ranking"] if r["status"] == "ok"]
    # The baseline worker runs function, then XLA: the XLA job starts after the function job's steps trained
    # the module's model. Compared from the same state, its output agrees; so would every setting the budget
    # reached.
    xla = next(r for r in ranked if r["config"] == "baseline" and r["mode"] == "xla")
    assert xla["excluded"] is None and xla["output_difference"] <= 1e-3, xla
    # XLA, thread and Grappler settings only change speed: none is excluded for its outputs on a training
    # step.
    assert not [r for r in ranked if r["excluded"]], [(r["config"], r["excluded"]) for r in ranked]


# --- deployment modes for dict-input models -----------------------------------------------------------------

DEPLOY = ("savedmodel", "tflite", "tflite-dynamic", "tflite-int8")


def assert_deployed_by_name(results: dict, names: set[str], ids: set[str]) -> None:
    """Every deployment mode ran, fed by input name; float conversions agree with Keras on the same dict
    inputs, quantized ones are close; tflite-int8 quantizes the float inputs and leaves the integer ids as
    they are."""
    assert statuses(results) == dict.fromkeys(DEPLOY, ("ok", None))
    assert set(results["savedmodel"].deployment.input_name) == names
    assert set(results["tflite"].deployment.input_dtype) == names
    for mode, r in results.items():
        a = r.output_agreement
        assert a.samples == 256 and r.model_size_bytes > 0, (mode, a)
        if mode in ("savedmodel", "tflite"):
            assert a.max_rel_error <= 1e-4, (mode, a)
        else:
            # quantized: close on average (an untrained model's extreme rows may not be), never bit-identical
            scale = a.max_abs_error / a.max_rel_error
            assert 0 < a.mean_abs_error <= 0.05 * scale, (mode, a)
    int8 = results["tflite-int8"].deployment.input_dtype
    assert {n for n in ids if int8[n] == "int32"} == ids, int8
    assert set(results["tflite-int8"].deployment.input_quantization or {}) == names - ids - {"padding_mask"}


def test_dict_input_models_run_every_deployment_mode_fed_by_input_name(tmp_path):
    rec = run(case("recommender_infer", modes=DEPLOY), tmp_path)
    assert_deployed_by_name(
        rec, {"user_id", "item_id", "category_id", "dense_features"}, {"user_id", "item_id", "category_id"}
    )
    assert rec["tflite-int8"].deployment.input_dtype["dense_features"] == "int8"
    k2 = run(case("recommender-keras2", task="infer", modes=("savedmodel", "tflite")), tmp_path)
    assert statuses(k2) == dict.fromkeys(("savedmodel", "tflite"), ("ok", None))
    assert k2["tflite"].output_agreement.max_rel_error < 1e-4 and k2["tflite"].setup.keras.startswith(
        "tf_keras"
    )
    # keras-hub's BERT classifier converts, int8 included; its dataset calibrates and feeds the agreement
    # check.
    bert = run(case("bert_dataset_infer", modes=DEPLOY), tmp_path)
    assert_deployed_by_name(
        bert, {"token_ids", "segment_ids", "padding_mask"}, {"token_ids", "segment_ids", "padding_mask"}
    )
    assert "real_models.py:bert_dataset" in bert["tflite"].output_agreement.inputs


def test_a_keras_file_and_a_savedmodel_folder_of_a_dict_model_in_the_deployment_modes(tmp_path):
    model = resolve_reference("real_models.py:recommender", SUITE.parent)(users=50, items=40, categories=5)
    model.save(tmp_path / "rec.keras")
    model.export(str(tmp_path / "rec_sm"), format="tf_saved_model", verbose=False)
    names = {"user_id", "item_id", "category_id", "dense_features"}
    for ref in ("rec.keras", "rec_sm/"):
        spec = CaseSpec(
            name="rec",
            model=ref,
            task="infer",
            modes=DEPLOY,
            base_dir=str(tmp_path),
            batch_sizes=(4,),
            profile=False,
            **FAST,
        )
        ctx = harness.JobContext(out_dir=tmp_path / "out", tf_device="/CPU:0")
        results = {
            job.mode: harness.run_job(spec, job, ctx, lambda r: resolve_reference(r, tmp_path))
            for job in spec.jobs()
        }
        assert_deployed_by_name(results, names, {"user_id", "item_id", "category_id"})


DIGAMMA_DICT = """
import keras
import tensorflow as tf


def model():
    ids = keras.Input((), dtype="int32", name="ids")
    x = keras.Input((4,), name="x")
    odd = keras.layers.Lambda(lambda t: tf.math.digamma(tf.abs(t) + 1.0))(x)
    joined = keras.layers.Concatenate()([odd, keras.layers.Embedding(10, 4)(ids)])
    return keras.Model({"ids": ids, "x": x}, keras.layers.Dense(3)(joined))
"""


def test_a_dict_model_tflite_cannot_convert_fails_with_one_line_naming_the_op(tmp_path):
    (tmp_path / "odd.py").write_text(DIGAMMA_DICT)
    spec = CaseSpec(
        name="odd",
        model="odd.py:model",
        task="infer",
        modes=("tflite", "savedmodel"),
        base_dir=str(tmp_path),
        batch_sizes=(4,),
        profile=False,
        **FAST,
    )
    ctx = harness.JobContext(out_dir=tmp_path / "out", tf_device="/CPU:0")
    failed, ok = (
        harness.run_job(spec, job, ctx, lambda r: resolve_reference(r, tmp_path)) for job in spec.jobs()
    )
    assert failed.status == "failed" and failed.error.type == "UnsupportedOpError"
    assert failed.error.message == (
        "TF Lite conversion (tflite) failed: op Digamma: not supported by the TF Lite "
        "builtin ops (enable select TF ops, tf.lite.OpsSet.SELECT_TF_OPS, or replace "
        "the op)"
    )
    assert ok.status == "ok" and ok.output_agreement.max_abs_error < 1e-5  # the same dict inputs, by name
