"""Deployment modes (task: infer): export a Keras model as a SavedModel or a TF Lite flatbuffer, reload it the
way a server or a device would, and hand back the callable to time.

    savedmodel      keras `model.export(format="tf_saved_model")`, `tf.saved_model.load`, the
                    `serving_default` signature called on tensors (completion forced by fetching the result as
                    numpy)
    tflite          TFLiteConverter from that SavedModel, float32
    tflite-dynamic  dynamic-range quantization (Optimize.DEFAULT, no representative data): int8 weights
    tflite-int8     full-integer quantization calibrated on a representative dataset drawn from the case's
                    inputs, int8 input and output (the caller's float batch is quantized and the output
                    dequantized inside `predict`, because a real int8 deployment has to do that too)

TF Lite models run in the `ai-edge-litert` interpreter (`tf.lite.Interpreter` is deprecated); when that
package cannot be imported the deprecated one is used and `Deployed.interpreter` says so
(tfperf/deploy/tflite.py).

A model of several inputs (a dict by name, or a list) is exported with one named spec per input, so its
serving signature takes keyword arguments by input name, as TF Serving and a TF Lite signature runner call it;
its batches are fed by those names (tfperf/deploy/feeds.py) in every mode, and the agreement check calls the
Keras model on the same batches in its own structure.

`output_agreement` compares a deployed model's outputs with the eager Keras outputs on the same inputs; it is
plain numpy, usable without TensorFlow. It also says when that comparison cannot mean anything: eager outputs
that do not depend on the input, or a classifier's near-uniform ones (an untrained model), pass the tolerance
whatever the conversion did. TensorFlow is imported inside the functions that export or load.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from tfperf import units
from tfperf.deploy import feeds
from tfperf.deploy.tflite import (
    TFLITE_MODES,
    convert_tflite,
    load_tflite,
)
from tfperf.figures.thresholds import QUANTIZE_MAX_REL_ERROR
from tfperf.measure.keras_compat import is_tf_keras
from tfperf.results.job_records import Deployment
from tfperf.results.records import OutputAgreement
from tfperf.suite.spec import DEPLOY_MODES


@dataclass
class Deployed:
    """A model exported and reloaded in one deployment mode, ready to time."""

    mode: str
    predict: Callable[
        [Any], np.ndarray
    ]  # the timed callable: one batch in, numpy outputs out (completion forced)
    path: Path  # the artefact: a SavedModel folder or a .tflite file
    model_size_bytes: int  # file size; a SavedModel folder's total
    load_time_s: float  # tf.saved_model.load, or interpreter creation + resize + allocate_tensors
    export_time_s: float  # model.export to a SavedModel
    convert_time_s: float | None = None  # the TF Lite conversion (None for savedmodel)
    num_threads: int | None = None  # the interpreter's thread count (None: TensorFlow's own thread pools)
    interpreter: str | None = None  # which TF Lite interpreter ran it, with its version
    notes: dict = field(
        default_factory=dict
    )  # signature, input/output names, dtypes, quantization (Deployment)

    def record(self) -> Deployment:
        """What a Result's `deployment` records about the artefact and how it was fed."""
        return Deployment.from_json(
            {
                **self.notes,
                "num_threads": self.num_threads,
                "export_time_s": self.export_time_s,
                "convert_time_s": self.convert_time_s,
                "artefact": str(self.path),
                "interpreter": self.interpreter,
            }
        )


def artefact_size(path: Path) -> int:
    """Bytes on disk: a file's size, or the total of a folder's files (a SavedModel is a folder)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- agreement ----------------------------------------------------------------------------------------------


def output_agreement(reference: Any, got: Any, inputs: str | None = None) -> OutputAgreement:
    """How far a deployed model's outputs are from the reference (eager Keras) outputs on the same inputs.

    max/mean absolute error over all elements; `max_rel_error` scales the max error by the reference's largest
    magnitude (logits of different models differ in scale); `top1_agreement`, for classifier outputs (2-D,
    more than one class), is the share of rows whose argmax matches; `samples` is the number of rows compared.

    `meaningful` is False, with the reason in `not_meaningful`, when the reference outputs are
    such that a deployed model ignoring its input would pass the tolerance too (see `not_meaningful`): the
    numbers are kept, but they prove nothing about the conversion. `inputs` says what the examples were.
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(got, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"output shapes differ: reference {ref.shape}, deployed {out.shape}")
    diff = np.abs(ref - out)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    classifier = ref.ndim == 2 and ref.shape[1] > 1
    reason = not_meaningful(ref)
    details: dict[str, Any] = {"meaningful": reason is None}
    if reason:
        details["not_meaningful"] = reason
    if inputs:
        details["inputs"] = inputs
    return OutputAgreement(
        max_abs_error=float(diff.max()) if diff.size else 0.0,
        mean_abs_error=float(diff.mean()) if diff.size else 0.0,
        max_rel_error=float(diff.max() / scale) if diff.size and scale > 0 else None,
        top1_agreement=float(np.mean(ref.argmax(axis=1) == out.argmax(axis=1))) if classifier else None,
        samples=int(ref.shape[0]) if ref.ndim else 1,
        **details,
    )


def _probabilities(rows: np.ndarray) -> np.ndarray:
    """A classifier's rows as class probabilities: as given when they already are (softmax outputs), else the
    softmax of the logits."""
    if np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
        return rows
    z = np.exp(rows - rows.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def not_meaningful(reference: Any, tolerance: float = QUANTIZE_MAX_REL_ERROR) -> str | None:
    """Why an agreement check against these reference outputs proves nothing, or None when it can.

    The check allows an error of `tolerance` of the largest output. It says nothing when an output that
    ignores the input would be within that tolerance too:
    - outputs (nearly) the same for every example: the mean output row is within the tolerance of every row (a
      model whose activations vanish, or a constant softmax: an untrained MobileNetV2 outputs 0.1 for each of
      ten classes whatever the image);
    - a classifier whose class probabilities all stay within `tolerance` (relative) of uniform: chance itself
      is within the tolerance, and top-1 is decided by differences the tolerance allows (logits of 1e-11 look
      varied relative to their own largest value, but their softmax is uniform).
    """
    ref = np.asarray(reference, dtype=np.float64)
    if not ref.size:
        return "no outputs to compare"
    rows = ref.reshape(ref.shape[0], -1) if ref.ndim > 1 else ref.reshape(-1, 1)
    n = rows.shape[0]
    scale = float(np.max(np.abs(rows)))
    hint = (
        "check on real inputs (give the case a dataset: of real examples) and a trained model before "
        "trusting a quantized one"
    )
    if n >= 2:
        spread = float(np.max(np.abs(rows - rows.mean(axis=0))))
        if scale == 0.0 or spread <= tolerance * scale:
            moved = units.percent(spread / scale, 1) if scale else "0%"
            return (
                f"the eager outputs are the same for every input (they vary by {moved} of the largest output "
                f"over {n} examples; the tolerance allows {units.percent(tolerance)}): a conversion that "
                f"ignored its input would pass; {hint}"
            )
    if ref.ndim == 2 and ref.shape[1] > 1:
        k = ref.shape[1]
        deviation = float(np.max(np.abs(_probabilities(rows) * k - 1.0)))
        if deviation <= tolerance:
            return (
                f"the eager outputs are near-uniform over the {k} classes (every class probability within "
                f"{units.percent(deviation, 1)} of 1/{k}; the tolerance allows {units.percent(tolerance)}): "
                f"top-1 and the error tolerance cannot tell the conversion from chance; {hint}"
            )
    return None


# --- export and load ----------------------------------------------------------------------------------------


def export_savedmodel(
    model: Any, example_batch: Any, path: Path, static_batch: bool = False, names: list[str] | None = None
) -> float:
    """Keras 3's export path (`tf.saved_model.save` on a Keras 3 model is not the documented route); the input
    signature is given explicitly, in the example's structure with one named spec per input
    (feeds.tensor_spec: `names` names a list's inputs), so subclassed and multi-input models export as well.
    The batch dimension is free (a server takes any batch) unless `static_batch`: then it is the example's, as
    a TF Lite model's input is. Returns seconds."""
    import tensorflow as tf

    if path.exists():
        shutil.rmtree(path)
    spec = feeds.tensor_spec(feeds.to_numpy(example_batch), static_batch, names)
    t0 = time.perf_counter()
    if hasattr(model, "signature_name") and hasattr(model, "path"):
        # The case's model is a SavedModel folder (tfperf.measure.saved_models): it is its own artefact,
        # copied.
        shutil.copytree(model.path, path)
    elif is_tf_keras(model):
        # Keras 2's `export` takes no signature: save a serving function of the same spec, as TF Serving calls
        # it.
        serve = tf.function(lambda inputs: model(inputs, training=False), input_signature=[spec])
        tf.saved_model.save(model, str(path), signatures={"serving_default": serve.get_concrete_function()})
    else:
        model.export(str(path), format="tf_saved_model", verbose=False, input_signature=[spec])
    return time.perf_counter() - t0


def load_savedmodel(
    path: Path, signature: str = "serving_default"
) -> tuple[Callable[[Any], np.ndarray], float, dict]:
    """Reload the SavedModel and return (predict, load seconds, notes). `predict` calls the serving signature
    by input name, as TF Serving does (one array for a one-input signature, else a dict by name), and fetches
    the first output by name so the step is complete when it returns."""
    import tensorflow as tf

    t0 = time.perf_counter()
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures[signature]
    load_s = time.perf_counter() - t0
    input_specs = dict(fn.structured_input_signature[1])
    output_names = sorted(fn.structured_outputs)
    output_name = output_names[0]
    single = next(iter(input_specs)) if len(input_specs) == 1 else None

    def tensor(name: str, value: Any) -> Any:
        return (
            value
            if isinstance(value, tf.Tensor)
            else tf.convert_to_tensor(value, dtype=input_specs[name].dtype)
        )

    def predict(batch: Any) -> np.ndarray:
        if isinstance(batch, dict):
            if set(batch) != set(input_specs):
                raise feeds.FeedError(
                    f"{path}: signature {signature!r} takes {', '.join(sorted(input_specs))}; "
                    f"got {', '.join(sorted(batch))}"
                )
            return fn(**{k: tensor(k, v) for k, v in batch.items()})[output_name].numpy()
        if single is None:
            raise feeds.FeedError(
                f"{path}: signature {signature!r} takes {len(input_specs)} inputs by name "
                f"({', '.join(sorted(input_specs))}); got one tensor"
            )
        return fn(**{single: tensor(single, batch)})[output_name].numpy()

    predict.loaded = loaded  # keeps the restored variables alive as long as the callable
    notes = {"signature": signature, "input_name": single or sorted(input_specs), "output_name": output_name}
    if len(output_names) > 1:
        notes["outputs_ignored"] = output_names[1:]
    return predict, load_s, notes


def prepare_deploy(
    mode: str,
    model: Any,
    example_batch: Any,
    representative_batches: Callable[[], Iterable[Any]] | Iterable[Any] | None,
    workdir: Path,
    num_threads: int | None = None,
    names: list[str] | None = None,
) -> Deployed:
    """Export `model` in `mode`, reload it, and return the callable to time with its size and load time.

    `example_batch` fixes the input signature (its batch size becomes the interpreter's input size): one
    array, a dict by input name, or a list (named by `names`); `representative_batches` (a callable returning
    an iterable of batches, or an iterable) calibrates tflite-int8. The returned `predict` takes one array or
    a dict by input name. Raises UnsupportedOpError naming the op when TF Lite lacks one.
    """
    if mode not in DEPLOY_MODES:
        raise ValueError(f"mode {mode!r} is not a deployment mode ({', '.join(DEPLOY_MODES)})")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    raw = feeds.to_numpy(example_batch)
    example = feeds.named(raw, names)
    saved = workdir / "savedmodel"
    # TF Lite runs fixed shapes; exporting them static also lets more models convert (a Keras LSTM's
    # TensorList ops need a static element shape, which a free batch dimension denies).
    export_s = export_savedmodel(model, raw, saved, static_batch=mode in TFLITE_MODES, names=names)
    if mode == "savedmodel":
        predict, load_s, notes = load_savedmodel(saved)
        return Deployed(mode, predict, saved, artefact_size(saved), load_s, export_s, notes=notes)
    tflite_path = workdir / f"model-{mode}.tflite"
    calibration = representative_batches
    if names and representative_batches is not None:  # list batches are fed by name, like every other
        source = representative_batches

        def calibration():
            return (feeds.named(feeds.to_numpy(b), names) for b in (source() if callable(source) else source))

    convert_s = convert_tflite(
        saved, mode, tflite_path, feeds.dtypes(example), calibration, feeds.rows(example)
    )
    predict, load_s, notes, interpreter, threads = load_tflite(
        tflite_path, feeds.shapes(example), num_threads
    )
    return Deployed(
        mode,
        predict,
        tflite_path,
        artefact_size(tflite_path),
        load_s,
        export_s,
        convert_s,
        threads,
        interpreter,
        notes,
    )


# --- the harness's deployment path --------------------------------------------------------------------------

# The output agreement is measured on about this many examples, in whole batches of the job's size (TF Lite
# models are converted for it); at batch 1 that is 128 calls, enough for a top-1 agreement of 99% to mean one
# miss in 100.
AGREEMENT_SAMPLES = 256
MAX_AGREEMENT_BATCHES = 128


def agreement_inputs(source: Any, inp: Any) -> str:
    """What the calibration and agreement examples are: the suite's own (its `dataset:`, representative of
    real use) or synthetic ones drawn from the input spec (random: fine for timing, weak evidence of
    accuracy)."""
    if source.kind == "dataset" or inp is None:
        return (
            f"the case's {source.description}"
            if getattr(source, "description", None)
            else "the case's dataset"
        )
    return "synthetic examples from the case's input spec"


def _agreement_batches(source: Any, inp: Any, batch_size: int, seed: int) -> list[Any]:
    """Inputs for calibration or the agreement check, drawn like the case's own: the next batches of the
    case's `dataset:` (the suite's representative inputs), or fresh synthetic examples from its input spec
    (the in-memory source only cycles 4 batches, which would make calibration and evaluation the same data).
    Each batch is numpy in the model's own structure (an array, a dict or a list)."""
    n = max(1, min(MAX_AGREEMENT_BATCHES, -(-AGREEMENT_SAMPLES // batch_size)))
    if source.kind == "dataset" or inp is None:
        return [feeds.to_numpy(source.next_args()[0][0]) for _ in range(n)]
    from tfperf.measure.inputs import synthetic_features

    rng = np.random.default_rng(seed)
    return [synthetic_features(inp, batch_size, rng) for _ in range(n)]


def first_predict_s(predict: Callable[[Any], np.ndarray], batch: np.ndarray) -> float:
    """Seconds of one predict on `batch`: called on a freshly loaded artefact, its cold first call (`predict`
    returns numpy, so the work is complete when it returns)."""
    t0 = time.perf_counter()
    predict(batch)
    return time.perf_counter() - t0


def deployment_threads() -> int | None:
    """TensorFlow's intra-op thread setting when one was made (tune's thread sweep, TF_NUM_INTRAOP_THREADS),
    so the interpreter gets the same budget; else None (all the cores this process may use)."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads() or None


def deployment_step(
    mode: str, model: Any, inp: Any, source: Any, batch_size: int, workdir: Path
) -> tuple[Callable[..., Any], dict]:
    """What the harness times in a deployment mode: (call(x, y) -> numpy outputs, Result fields
    model_size_bytes / load_time_s / first_call_s / output_agreement / deployment).

    `first_call_s` is the first predict of the reloaded artefact, made here right after loading, before
    anything else calls it: the agreement check runs up to MAX_AGREEMENT_BATCHES predicts, after which the
    harness's own "first call" would be a warm one (interpreter buffers allocated, SavedModel functions
    traced). The harness sets the Result fields after its own first call, so this value is the one recorded.
    The agreement is against the eager Keras outputs on the same inputs, computed here (untimed) before any
    step.
    """
    x0 = source.next_args()[0]
    if not x0:
        raise TypeError(f"mode {mode}: the case's input gave nothing to feed")
    raw = feeds.to_numpy(x0[0])  # raises FeedError for a nested structure
    # A list-input model's inputs are fed by the names its export gives them (the model's own input names).
    names = list(getattr(inp, "names", None) or []) if isinstance(raw, list) else None
    example = feeds.named(raw, names)
    calibration = _agreement_batches(source, inp, batch_size, seed=11) if mode == "tflite-int8" else None
    deployed = prepare_deploy(mode, model, raw, calibration, workdir, deployment_threads(), names=names)
    first_call_s = first_predict_s(deployed.predict, example)
    if mode != "savedmodel":
        shutil.rmtree(
            workdir / "savedmodel", ignore_errors=True
        )  # the intermediate export; the .tflite stays

    # The Keras model is called on each batch in its own structure, the artefact on the same batch by input
    # name.
    check = _agreement_batches(source, inp, batch_size, seed=12)
    reference = np.concatenate([np.asarray(feeds.primary_output(model(b, training=False))) for b in check])
    got = np.concatenate([deployed.predict(feeds.named(b, names)) for b in check])
    fields = {
        "model_size_bytes": deployed.model_size_bytes,
        "load_time_s": deployed.load_time_s,
        "first_call_s": first_call_s,
        "output_agreement": output_agreement(reference, got, agreement_inputs(source, inp)),
        "deployment": deployed.record(),
    }
    if mode in TFLITE_MODES:
        fields["deployment"].runs_on = "cpu (TF Lite interpreter, XNNPACK)"
    predict = deployed.predict

    def call(x: Any, *_: Any, **__: Any) -> np.ndarray:
        return predict(feeds.named(x, names) if names else x)

    call.deployed = deployed  # keeps the interpreter / loaded SavedModel alive with the callable
    return call, fields
