"""Models tfperf did not write, as a new user brings them (suites/real_models.py, suites/real_models.yaml): a keras-hub
BERT text classifier with dict inputs, a Keras 2 (tf_keras) model, a dict-of-features recommender, and the guide's
custom training step under `tfperf tune`. Real packages (`pip install -e ".[models]"`), tiny configurations."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

tf = pytest.importorskip("tensorflow")
keras_hub = pytest.importorskip("keras_hub")
tf_keras = pytest.importorskip("tf_keras")

from tfperf.measure import harness  # noqa: E402
from tfperf.suite.loader import load_suite  # noqa: E402
from tfperf.suite.references import resolve_reference  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "suites" / "real_models.yaml"
FAST = dict(steps=3, repeats=1, warmup_steps=1, processes=1)


def case(name: str, **changes):
    spec = next(c for c in load_suite(SUITE).cases if c.name == name)
    return spec.replace(**{**FAST, **changes})


def run(spec, out: Path | None = None) -> dict:
    ctx = harness.JobContext(out_dir=out, tf_device="/CPU:0")
    return {job.mode: harness.run_job(spec, job, ctx, lambda r: resolve_reference(r, spec.base_dir))
            for job in spec.jobs()}


def statuses(results: dict) -> dict:
    return {m: (r.status, r.error and r.error.message) for m, r in results.items()}


def test_keras_hub_bert_classifier_trains_from_its_dataset_in_every_mode():
    results = run(case("bert_dataset"))
    assert statuses(results) == dict.fromkeys(("eager", "function", "xla"), ("ok", None))
    inputs = results["eager"].extra["model_inputs"]
    assert inputs["source"] == "dataset" and inputs["kind"] == "dict"
    assert set(inputs["inputs"]) == {"token_ids", "segment_ids", "padding_mask"}
    assert all(r.extra["keras"].startswith("keras 3") for r in results.values())


def test_keras_hub_bert_synthetic_inputs_come_from_the_model_and_the_suite_overrides_by_name():
    from tfperf.measure.model_inputs import inputs_from_model

    model = resolve_reference("real_models.py:bert_classifier", SUITE.parent)()
    read = {i.name: (i.spec.shape, i.spec.maxval, i.role) for i in inputs_from_model(model, "bert").inputs}
    # Vocabulary from the token embedding, segments from the segment embedding, length from the position embedding.
    assert read == {"token_ids": ((16,), 100, "features"), "segment_ids": ((16,), 2, "features"),
                    "padding_mask": ((16,), None, "mask")}
    results = run(case("bert_synthetic", modes=("eager", "function"), task="infer"))
    assert statuses(results) == dict.fromkeys(("eager", "function"), ("ok", None))
    given = results["function"].extra["model_inputs"]["inputs"]
    assert given["token_ids"] == {"shape": [12], "dtype": "int32", "maxval": 50}
    assert given["segment_ids"]["maxval"] == 2 and given["padding_mask"]["role"] == "mask"


def test_a_keras2_model_trains_and_infers_in_every_mode_with_its_own_optimizer(tmp_path):
    trained = run(case("keras2_mlp"))
    served = run(case("keras2_mlp_infer"), tmp_path)
    assert statuses(trained) == dict.fromkeys(("eager", "function", "xla"), ("ok", None))
    assert statuses(served) == dict.fromkeys(("eager", "function", "xla", "savedmodel"), ("ok", None))
    for r in [*trained.values(), *served.values()]:
        assert r.extra["keras"] == f"tf_keras {tf_keras.__version__}"
    assert served["savedmodel"].output_agreement.max_abs_error < 1e-5


def test_a_dict_of_features_recommender_in_keras_3_and_keras_2():
    k3 = run(case("recommender-keras3"))
    k2 = run(case("recommender-keras2", modes=("function",)))  # the suite's `keras: [3, 2]`
    assert statuses(k3) == dict.fromkeys(("eager", "function", "xla"), ("ok", None))
    assert statuses(k2) == {"function": ("ok", None)}
    inputs = k3["eager"].extra["model_inputs"]["inputs"]
    assert {n: i["maxval"] for n, i in inputs.items()} == {"user_id": 1000, "item_id": 500, "category_id": 20,
                                                           "dense_features": None}
    assert k2["function"].extra["keras"].startswith("tf_keras")


@pytest.mark.slow
def test_tune_recommends_on_the_guides_training_loop_instead_of_excluding_everything(tmp_path):
    suite = tmp_path / "loop.yaml"
    suite.write_text(
        "name: loop\n"
        "defaults: {steps: 8, repeats: 2, warmup_steps: 2, processes: 1, profile: false, timeout_s: 120}\n"
        "cases:\n"
        f"  - name: guide\n    function: {REPO}/suites/examples/training_loop.py:train_step\n"
        f"    inputs: {REPO}/suites/examples/training_loop.py:batches\n")
    out = tmp_path / "tune"
    proc = subprocess.run([sys.executable, "-m", "tfperf", "tune", str(suite), "--budget-s", "45", "--out", str(out),
                           "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    (tuned,) = json.loads((out / "tune.json").read_text())["cases"]
    ranked = [r for r in tuned["ranking"] if r["status"] == "ok"]
    # The baseline worker runs function, then XLA: the XLA job starts after the function job's steps trained the
    # module's model. Compared from the same state, its output agrees; so would every setting the budget reached.
    xla = next(r for r in ranked if r["config"] == "baseline" and r["mode"] == "xla")
    assert xla["excluded"] is None and xla["output_difference"] <= 1e-3, xla
    # XLA, thread and Grappler settings only change speed: none is excluded for its outputs on a training step.
    assert not [r for r in ranked if r["excluded"]], [(r["config"], r["excluded"]) for r in ranked]
