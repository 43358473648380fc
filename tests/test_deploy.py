"""Deployment modes: a small trained classifier through SavedModel and the three TF Lite modes, and a model
with an op TF Lite lacks. Real TensorFlow, real converter, real ai-edge-litert interpreter.

Tolerances (the same ones docs/suggestions.md states for `quantize-tflite`):
- savedmodel and float tflite compute the same float32 graph: max error within 1e-4 of the largest logit, and
  identical top-1;
- dynamic-range and int8 quantization: max error within 10% of the largest logit, top-1 agreement >= 0.9 on
  256 examples of a classifier trained until its classes are separated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import result, run_of

from tfperf.analysis import advisor
from tfperf.deploy.modes import output_agreement
from tfperf.deploy.tflite import UnsupportedOpError, unsupported_ops
from tfperf.results.model import Result
from tfperf.suite.spec import CaseSpec

DATA = Path(__file__).resolve().parent / "data"

INPUT_SHAPE = (12, 12, 3)
CLASSES = 10
BATCH = 16


def test_output_agreement_counts_rows_and_argmax():
    ref = np.array([[1.0, 3.0, 2.0], [5.0, 0.0, 1.0], [0.0, 0.0, 4.0], [2.0, 1.0, 0.0]])
    got = ref.copy()
    got[1] = [0.0, 5.5, 1.0]  # argmax moves from class 0 to class 1
    got[3, 2] += 0.25
    a = output_agreement(ref, got)
    assert a.samples == 4
    assert a.top1_agreement == pytest.approx(0.75)
    assert a.max_abs_error == pytest.approx(5.5)
    assert a.mean_abs_error == pytest.approx((5.0 + 5.5 + 0.25) / 12)
    assert a.max_rel_error == pytest.approx(5.5 / 5.0)
    # A regression output (one column) has no top-1.
    assert output_agreement(ref[:, :1], got[:, :1]).top1_agreement is None
    with pytest.raises(ValueError, match="shapes differ"):
        output_agreement(ref, got[:2])


def test_agreement_on_outputs_that_ignore_the_input_is_not_meaningful():
    rng = np.random.default_rng(0)
    # An untrained MobileNetV2 with a softmax top: exactly 0.1 for each of ten classes, whatever the image.
    # Any conversion that outputs the same passes "top-1 100%, max error 0": the check must say it proves
    # nothing.
    uniform = np.full((256, 10), 0.1)
    a = output_agreement(uniform, uniform.copy())
    assert a.top1_agreement == 1.0 and a.max_abs_error == 0.0
    assert a.meaningful is False and "same for every input" in a.not_meaningful
    # Logits that vanished (1e-11, as the zoo's untrained MobileNetV2 gives): varied relative to their own
    # largest value, but their softmax is uniform to 1e-10, so top-1 is chance.
    tiny = rng.standard_normal((256, 10)) * 1e-11
    a = output_agreement(tiny, tiny * 1.01)
    assert a.meaningful is False and "near-uniform over the 10 classes" in a.not_meaningful
    # A regression output that hardly moves with the input: an error 4x its whole variation is within 5% of
    # 1000.
    offset = 1000 + rng.standard_normal((256, 1))
    assert output_agreement(offset, offset + 4).meaningful is False
    # Logits of a classifier that separates its classes, and a regression output that varies: meaningful.
    logits = rng.standard_normal((256, 10)) * 3
    a = output_agreement(logits, logits + 0.01, inputs="the case's user dataset d.py:ds")
    assert (a.meaningful, a.not_meaningful, a.inputs) == (
        True,
        None,
        "the case's user dataset d.py:ds",
    ) and a.details == {}
    assert output_agreement(offset - 1000, offset - 1000).meaningful is True
    # Kept through results.json: the record keeps the keys it does not know yet in `details`.
    r = Result.from_json(_res("tflite-int8", 1e-3, output_agreement(uniform, uniform).to_json()).to_json())
    assert r.output_agreement.meaningful is False


@pytest.mark.tensorflow
def test_untrained_zoo_mobilenet_agreement_is_not_meaningful():
    """The issue's own case, with real TensorFlow: the zoo's untrained MobileNetV2 (random weights) gives the
    same logits for any image, so even a comparison of the model with itself is flagged, not counted as a
    pass."""
    from tfperf.zoo import get_model

    model = get_model("mobilenet_v2").build({})
    x = np.random.default_rng(0).standard_normal((16, 32, 32, 3)).astype("float32")
    reference = np.asarray(model(x, training=False))
    a = output_agreement(reference, reference)
    assert a.max_abs_error == 0.0 and a.meaningful is False, a


def test_unsupported_ops_parses_the_converter_messages():
    text = (
        "error: loc(...): 'tf.Digamma' op is neither a custom op nor a flex op\n"
        "Some ops in the model are custom ops, See instructions ...\n"
        "Custom ops: Digamma\n"
        "TF Select ops: MatrixInverse, Erfinv\n"
    )
    assert unsupported_ops(text) == ["Digamma", "Erfinv", "MatrixInverse"]
    assert unsupported_ops("Could not translate MLIR to FlatBuffer.") == []
    assert unsupported_ops(
        "error: failed to legalize operation 'tf.TensorListReserve' that was explicitly marked illegal"
    ) == ["TensorListReserve"]


@pytest.fixture(scope="module")
def classifier():
    """A small CNN trained for a few epochs on synthetic data whose label is the argmax of a fixed projection,
    so its logits separate the classes the way a real classifier's do (an untrained model's logits are all
    near 0, where any rounding flips the argmax)."""
    import keras

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1024, *INPUT_SHAPE)).astype("float32")
    projection = rng.standard_normal((int(np.prod(INPUT_SHAPE)), CLASSES)).astype("float32")
    y = (x.reshape(len(x), -1) @ projection).argmax(axis=1)
    inp = keras.Input(INPUT_SHAPE)
    h = keras.layers.Conv2D(8, 3, activation="relu")(inp)  # a 3x3x3x8 kernel: few enough weights that
    h = keras.layers.Conv2D(8, 3, activation="relu")(h)  # dynamic-range quantization leaves them float
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    out = keras.layers.Dense(CLASSES)(h)
    model = keras.Model(inp, out)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=64, epochs=4, verbose=0)
    test_x = rng.standard_normal((256, *INPUT_SHAPE)).astype("float32")
    return model, x, test_x


def _outputs(predict, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([predict(x[i : i + batch]) for i in range(0, len(x), batch)])


@pytest.mark.tensorflow
def test_every_deployment_mode_agrees_and_quantization_shrinks(classifier, tmp_path, monkeypatch):
    from tfperf.deploy.modes import prepare_deploy
    from tfperf.deploy.tflite import load_tflite

    model, train_x, test_x = classifier
    reference = model(test_x, training=False).numpy()

    def representative():
        return (train_x[i : i + 32] for i in range(0, 256, 32))

    deployed = {}
    agreement = {}
    for mode in ("savedmodel", "tflite", "tflite-dynamic", "tflite-int8"):
        d = prepare_deploy(mode, model, test_x[:BATCH], representative, tmp_path / mode, num_threads=1)
        deployed[mode] = d
        agreement[mode] = output_agreement(reference, _outputs(d.predict, test_x, BATCH))
        assert d.path.exists() and d.model_size_bytes > 0 and d.load_time_s >= 0 and d.export_time_s > 0
        if (
            mode == "savedmodel"
        ):  # the serving signature takes any batch; TF Lite models are converted for BATCH
            assert d.predict(test_x[:3]).shape == (3, CLASSES)

    sizes = {m: d.model_size_bytes for m, d in deployed.items()}
    assert sizes["tflite"] > sizes["tflite-dynamic"] >= sizes["tflite-int8"], sizes
    # Weights dominate this model: int8 weights take about a quarter of float32's bytes.
    assert sizes["tflite-int8"] < 0.5 * sizes["tflite"], sizes

    scale = float(np.abs(reference).max())
    assert scale > 1.0  # trained logits, not an untrained model's near-zero ones
    for mode in ("savedmodel", "tflite"):
        assert agreement[mode].max_abs_error <= 1e-4 * scale, (mode, agreement[mode])
        assert agreement[mode].top1_agreement == 1.0, (mode, agreement[mode])
    for mode in ("tflite-dynamic", "tflite-int8"):
        a = agreement[mode]
        assert 0 < a.max_abs_error <= 0.1 * scale, (mode, a)  # quantized: close, but not bit-identical
        assert a.top1_agreement >= 0.9, (mode, a)
        assert a.samples == len(test_x)

    tfl = {m: deployed[m] for m in ("tflite", "tflite-dynamic", "tflite-int8")}
    for d in tfl.values():
        assert d.num_threads == 1 and d.interpreter.startswith("ai-edge-litert")
        assert d.convert_time_s > 0
    assert deployed["savedmodel"].convert_time_s is None and deployed["savedmodel"].path.is_dir()
    # Full-integer: int8 in and out, with the scale/zero-point predict applies.
    notes = deployed["tflite-int8"].notes
    assert notes["input_dtype"] == "int8" and notes["output_dtype"] == "int8"
    assert notes["input_quantization"]["scale"] > 0
    assert deployed["tflite-dynamic"].notes["input_dtype"] == "float32"

    # Without ai-edge-litert the deprecated tf.lite.Interpreter runs the same file, and the result says so.
    monkeypatch.setitem(__import__("sys").modules, "ai_edge_litert.interpreter", None)
    with pytest.warns(UserWarning, match="deprecated"):
        predict, _, _, name, _ = load_tflite(deployed["tflite-int8"].path, (BATCH, *INPUT_SHAPE), 1)
    assert name.startswith("tf.lite.Interpreter (deprecated")
    assert (
        output_agreement(
            _outputs(deployed["tflite-int8"].predict, test_x, BATCH), _outputs(predict, test_x, BATCH)
        ).max_abs_error
        < 1e-6
    )


@pytest.mark.tensorflow
def test_an_op_tflite_lacks_is_named_and_savedmodel_still_runs(tmp_path):
    import keras
    import tensorflow as tf

    from tfperf.deploy.modes import prepare_deploy

    inp = keras.Input((8,))
    # Digamma has no TF Lite builtin kernel (it needs select TF ops); checked with TF 2.21's converter.
    out = keras.layers.Dense(4)(keras.layers.Lambda(lambda t: tf.math.digamma(tf.abs(t) + 1.0))(inp))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).standard_normal((4, 8)).astype("float32")

    with pytest.raises(UnsupportedOpError, match="Digamma") as info:
        prepare_deploy("tflite", model, x, None, tmp_path / "tflite")
    assert info.value.ops == ["Digamma"]
    assert "SELECT_TF_OPS" in str(info.value)

    d = prepare_deploy("savedmodel", model, x, None, tmp_path / "savedmodel")
    assert output_agreement(model(x).numpy(), d.predict(x)).max_abs_error < 1e-5


# --- the harness path ---------------------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_harness_times_deployment_modes_and_names_the_missing_op(tmp_path):
    from tfperf.measure import harness
    from tfperf.suite.references import resolve_reference

    ctx = harness.JobContext(out_dir=tmp_path, tf_device="/CPU:0")
    common = dict(
        task="infer", batch_sizes=(8,), warmup_steps=1, steps=3, repeats=2, profile=False, base_dir=str(DATA)
    )

    def resolve(ref):
        return resolve_reference(ref, DATA)

    mlp = CaseSpec(
        name="mlp",
        model="zoo:mlp",
        params={"hidden": 32, "features": 20, "classes": 5},
        modes=("savedmodel", "tflite-int8"),
        **common,
    )
    by_mode = {job.mode: harness.run_job(mlp, job, ctx, resolve) for job in mlp.jobs()}
    for mode, r in by_mode.items():
        assert r.status == "ok", (mode, r.error)
        assert len(r.samples) == 6 and r.first_call_s is not None and r.load_time_s is not None
        assert r.output_agreement.samples == 256  # 32 batches of 8, drawn like the case's inputs
        assert r.tracing_count is None  # nothing is traced: the artefact is timed
    int8 = by_mode["tflite-int8"]
    artefact = Path(int8.deployment.artefact)
    assert artefact.is_file() and int8.model_size_bytes == artefact.stat().st_size
    assert int8.deployment.num_threads >= 1 and int8.deployment.input_dtype == "int8"
    assert int8.output_agreement.max_rel_error > 0
    assert by_mode["savedmodel"].output_agreement.max_abs_error < 1e-5
    assert by_mode["savedmodel"].model_size_bytes > int8.model_size_bytes

    odd = CaseSpec(
        name="odd", model="deploy_models.py:digamma_classifier", modes=("tflite", "savedmodel"), **common
    )
    failed, ok = (harness.run_job(odd, job, ctx, resolve) for job in odd.jobs())
    assert failed.status == "failed" and failed.error.type == "UnsupportedOpError"
    assert "Digamma" in failed.error.message and failed.error.phase == "build"
    assert ok.status == "ok" and ok.output_agreement.max_abs_error < 1e-5


DATASET_MODULE = """
import numpy as np
import tensorflow as tf


def examples(batch_size):
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, (512, 20)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int32"))).batch(batch_size)
"""


@pytest.mark.tensorflow
def test_deployment_first_call_is_the_first_predict_and_the_suite_dataset_feeds_the_check(
    tmp_path, monkeypatch
):
    """first_call_s is the reloaded artefact's first predict, timed before the agreement check's predicts (up
    to 128 of them, which made the harness's "first call" a warm one); the check runs on the case's own
    dataset."""
    from tfperf.deploy import modes
    from tfperf.measure import harness
    from tfperf.suite.references import resolve_reference

    (tmp_path / "data.py").write_text(DATASET_MODULE)
    calls: list[
        str
    ] = []  # every predict of the deployed artefact, in order: "first" is the one first_predict_s made
    timed: list[float] = []
    in_first = [False]
    real_prepare, real_first = modes.prepare_deploy, getattr(modes, "first_predict_s", None)

    def logging_prepare(*args, **kwargs):
        deployed = real_prepare(*args, **kwargs)
        predict = deployed.predict

        def logged(batch):
            calls.append("first" if in_first[0] else "other")
            return predict(batch)

        deployed.predict = logged
        return deployed

    def recording_first(predict, batch):
        in_first[0] = True
        timed.append(real_first(predict, batch))
        in_first[0] = False
        return timed[-1]

    monkeypatch.setattr(modes, "prepare_deploy", logging_prepare)
    monkeypatch.setattr(modes, "first_predict_s", recording_first, raising=False)
    case = CaseSpec(
        name="mlp",
        model="zoo:mlp",
        params={"hidden": 32, "features": 20, "classes": 5},
        dataset="data.py:examples",
        modes=("tflite",),
        task="infer",
        batch_sizes=(8,),
        warmup_steps=1,
        steps=2,
        repeats=1,
        profile=False,
        base_dir=str(tmp_path),
    )
    (job,) = case.jobs()
    r = harness.run_job(
        case,
        job,
        harness.JobContext(out_dir=tmp_path / "out", tf_device="/CPU:0"),
        lambda ref: resolve_reference(ref, tmp_path),
    )
    assert r.status == "ok", r.error
    assert (
        calls[0] == "first" and calls.count("first") == 1 and len(calls) > 32
    )  # then the check's 32 batches
    assert (
        r.first_call_s == timed[0] > 0
    )  # the recorded first call is that predict, not the harness's warm one
    assert "data.py:examples" in r.output_agreement.inputs
    assert r.output_agreement.samples == 256 and r.output_agreement.meaningful is True


# --- the advisor rule (no TensorFlow) -----------------------------------------------------------------------


def _res(mode: str, median_s: float, agreement: dict | None = None, size: int | None = None) -> Result:
    spread = [0.98, 0.99, 1.0, 1.01, 1.02, 0.995, 1.005, 1.0]
    return result(
        mode,
        case="clf",
        task="infer",
        samples=[median_s * f for f in spread],
        output_agreement=agreement,
        model_size_bytes=size,
    )


def _agree(top1: float | None, rel: float) -> dict:
    return {
        "max_abs_error": rel * 4.0,
        "mean_abs_error": rel,
        "max_rel_error": rel,
        "top1_agreement": top1,
        "samples": 256,
    }


def _quantize_findings(*results: Result):
    return [(r, s) for r, s in advisor.advise(run_of(*results)) if s.code == "quantize-tflite"]


def test_quantize_tflite_fires_when_faster_and_within_tolerance():
    exact = _agree(1.0, 1e-7)
    findings = _quantize_findings(
        _res("function", 4e-3),
        _res("tflite", 1e-3, exact, 400_000),
        _res("tflite-dynamic", 0.5e-3, _agree(0.996, 0.012), 110_000),
        _res("tflite-int8", 0.4e-3, _agree(0.97, 0.15), 100_000),
    )  # fastest, but outside the tolerance
    assert len(findings) == 1
    r, s = findings[0]
    assert r.mode == "tflite-dynamic"
    assert "2.00× faster than tflite" in s.title
    assert "top-1 agreement 99.6%" in s.evidence and "0.40 MB float" in s.evidence
    assert "tf.lite.Optimize.DEFAULT" in s.fix
    assert s.evidence_data["tflite_median_s"] == pytest.approx(1e-3)


def test_quantize_tflite_is_silent_just_outside_each_threshold():
    base = [_res("function", 4e-3), _res("tflite", 1e-3, _agree(1.0, 0.0))]
    # Top-1 agreement just below 99%.
    assert not _quantize_findings(*base, _res("tflite-int8", 0.5e-3, _agree(0.989, 0.01)))
    # Max error just above 5% of the largest output (a regression output: no top-1).
    assert not _quantize_findings(*base, _res("tflite-int8", 0.5e-3, _agree(None, 0.051)))
    # Saves only 9% of the float tflite step.
    assert not _quantize_findings(*base, _res("tflite-int8", 0.91e-3, _agree(1.0, 0.01)))
    # No agreement measured: no claim about accuracy, no suggestion.
    assert not _quantize_findings(*base, _res("tflite-int8", 0.5e-3, None))
    # Agreement over too few examples for a 99% top-1 to mean anything.
    few = {**_agree(1.0, 0.01), "samples": 99}
    assert not _quantize_findings(*base, _res("tflite-int8", 0.5e-3, few))
    # Within every threshold: fires.
    assert _quantize_findings(*base, _res("tflite-int8", 0.85e-3, _agree(0.99, 0.05)))


def test_quantize_tflite_is_silent_when_the_agreement_check_is_not_meaningful():
    base = [_res("function", 4e-3), _res("tflite", 1e-3, _agree(1.0, 0.0))]
    hollow = {
        **_agree(1.0, 0.0),
        "meaningful": False,
        "not_meaningful": "the eager outputs are the same for every input",
    }
    assert not _quantize_findings(*base, _res("tflite-int8", 0.5e-3, hollow))
    assert _quantize_findings(*base, _res("tflite-int8", 0.5e-3, {**_agree(1.0, 0.0), "meaningful": True}))
