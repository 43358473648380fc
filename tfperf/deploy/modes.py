"""Deployment modes (task: infer): export a Keras model as a SavedModel or a TF Lite flatbuffer, reload it the way
a server or a device would, and hand back the callable to time.

    savedmodel      keras `model.export(format="tf_saved_model")`, `tf.saved_model.load`, the `serving_default`
                    signature called on tensors (completion forced by fetching the result as numpy)
    tflite          TFLiteConverter from that SavedModel, float32
    tflite-dynamic  dynamic-range quantization (Optimize.DEFAULT, no representative data): int8 weights
    tflite-int8     full-integer quantization calibrated on a representative dataset drawn from the case's inputs,
                    int8 input and output (the caller's float batch is quantized and the output dequantized inside
                    `predict`, because a real int8 deployment has to do that too)

TF Lite models run in the `ai-edge-litert` interpreter (`tf.lite.Interpreter` is deprecated); when that package
cannot be imported the deprecated one is used and `Deployed.interpreter` says so.

`output_agreement` compares a deployed model's outputs with the eager Keras outputs on the same inputs; it is plain
numpy, usable without TensorFlow. It also says when that comparison cannot mean anything: eager outputs that do not
depend on the input, or a classifier's near-uniform ones (an untrained model), pass the tolerance whatever the
conversion did. TensorFlow is imported inside the functions that export or load.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from tfperf import units
from tfperf.figures.thresholds import QUANTIZE_MAX_REL_ERROR
from tfperf.measure.keras_compat import is_tf_keras
from tfperf.results.records import OutputAgreement
from tfperf.suite.spec import DEPLOY_MODES

TFLITE_MODES = ("tflite", "tflite-dynamic", "tflite-int8")
# The calibration set for tflite-int8: enough single examples for stable activation ranges on small models
# (the converter's own guide uses ~100), few enough that calibration stays a second or two.
REPRESENTATIVE_SAMPLES = 128


class UnsupportedOpError(RuntimeError):
    """The TF Lite converter rejected the model because TF Lite lacks an op; the message names it."""

    def __init__(self, message: str, ops: list[str]):
        super().__init__(message)
        self.ops = ops


@dataclass
class Deployed:
    """A model exported and reloaded in one deployment mode, ready to time."""

    mode: str
    predict: Callable[[Any], np.ndarray]  # the timed callable: one batch in, numpy outputs out (completion forced)
    path: Path  # the artefact: a SavedModel folder or a .tflite file
    model_size_bytes: int  # file size; a SavedModel folder's total
    load_time_s: float  # tf.saved_model.load, or interpreter creation + resize + allocate_tensors
    export_time_s: float  # model.export to a SavedModel
    convert_time_s: float | None = None  # the TF Lite conversion (None for savedmodel)
    num_threads: int | None = None  # the interpreter's thread count (None: TensorFlow's own thread pools)
    interpreter: str | None = None  # which TF Lite interpreter ran it, with its version
    notes: dict = field(default_factory=dict)  # input/output dtypes and quantization parameters

    def extra(self) -> dict:
        """What a Result's `extra` records about the deployment."""
        d = {"num_threads": self.num_threads, "export_time_s": self.export_time_s,
             "convert_time_s": self.convert_time_s, "artefact": str(self.path)}
        if self.interpreter:
            d["interpreter"] = self.interpreter
        d.update(self.notes)
        return d


def artefact_size(path: Path) -> int:
    """Bytes on disk: a file's size, or the total of a folder's files (a SavedModel is a folder)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def default_num_threads() -> int:
    """The cores this process may run on: the interpreter's default (-1) leaves the choice unrecorded."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# --- agreement -------------------------------------------------------------------------------------------------

def output_agreement(reference: Any, got: Any, inputs: str | None = None) -> OutputAgreement:
    """How far a deployed model's outputs are from the reference (eager Keras) outputs on the same inputs.

    max/mean absolute error over all elements; `max_rel_error` scales the max error by the reference's largest
    magnitude (logits of different models differ in scale); `top1_agreement`, for classifier outputs (2-D, more than
    one class), is the share of rows whose argmax matches; `samples` is the number of rows compared.

    `meaningful` is False, with the reason in `not_meaningful`, when the reference outputs are
    such that a deployed model ignoring its input would pass the tolerance too (see `not_meaningful`): the numbers
    are kept, but they prove nothing about the conversion. `inputs` says what the examples were.
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

    The check allows an error of `tolerance` of the largest output. It says nothing when an output that ignores the
    input would be within that tolerance too:
    - outputs (nearly) the same for every example: the mean output row is within the tolerance of every row (a
      model whose activations vanish, or a constant softmax: an untrained MobileNetV2 outputs 0.1 for each of ten
      classes whatever the image);
    - a classifier whose class probabilities all stay within `tolerance` (relative) of uniform: chance itself is
      within the tolerance, and top-1 is decided by differences the tolerance allows (logits of 1e-11 look varied
      relative to their own largest value, but their softmax is uniform).
    """
    ref = np.asarray(reference, dtype=np.float64)
    if not ref.size:
        return "no outputs to compare"
    rows = ref.reshape(ref.shape[0], -1) if ref.ndim > 1 else ref.reshape(-1, 1)
    n = rows.shape[0]
    scale = float(np.max(np.abs(rows)))
    hint = ("check on real inputs (give the case a dataset: of real examples) and a trained model before "
            "trusting a quantized one")
    if n >= 2:
        spread = float(np.max(np.abs(rows - rows.mean(axis=0))))
        if scale == 0.0 or spread <= tolerance * scale:
            moved = units.percent(spread / scale, 1) if scale else "0%"
            return (f"the eager outputs are the same for every input (they vary by {moved} of the largest output "
                    f"over {n} examples; the tolerance allows {units.percent(tolerance)}): a conversion that "
                    f"ignored its input would pass; {hint}")
    if ref.ndim == 2 and ref.shape[1] > 1:
        k = ref.shape[1]
        deviation = float(np.max(np.abs(_probabilities(rows) * k - 1.0)))
        if deviation <= tolerance:
            return (f"the eager outputs are near-uniform over the {k} classes (every class probability within "
                    f"{units.percent(deviation, 1)} of 1/{k}; the tolerance allows {units.percent(tolerance)}): "
                    f"top-1 and the error tolerance cannot tell the conversion from chance; {hint}")
    return None


# --- conversion errors ----------------------------------------------------------------------------------------

def unsupported_ops(text: str) -> list[str]:
    """The op names in a TF Lite converter error: "'tf.Digamma' op is neither a custom op nor a flex op",
    "Custom ops: Digamma", "TF Select ops: MatrixInverse", "failed to legalize operation 'tf.TensorListReserve'"."""
    ops = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)
    ops += re.findall(r"failed to legalize operation 'tf\.(\w+)'", text)
    for line in re.findall(r"^(?:Custom|TF Select|Flex) ops: (.+)$", text, flags=re.MULTILINE):
        ops.extend(name.strip() for name in line.split(",") if name.strip())
    return sorted(set(ops))


# ConverterErrorData codes that mean "TF Lite has no kernel for this op" (ERROR_NEEDS_FLEX_OPS,
# ERROR_NEEDS_CUSTOM_OPS); other structured errors name ops that merely sit near the failure (tf.Const).
_MISSING_OP_CODES = (1, 2)


def _conversion_error(exc: BaseException, mode: str) -> Exception:
    text = str(exc)
    ops = unsupported_ops(text)
    for err in getattr(exc, "errors", []) or []:  # ConverterError carries structured data as well
        name = getattr(getattr(err, "operator", None), "name", "")
        if name and getattr(err, "error_code", 0) in _MISSING_OP_CODES:
            ops = sorted(set(ops) | {name.removeprefix("tf.")})
    if ops:
        plural = "s" if len(ops) > 1 else ""
        # The converter's own reason when it gives one (e.g. "'tf.TensorListReserve' op requires element_shape to
        # be static"), else the usual one: no builtin kernel.
        reason = re.search(r"'tf\.\w+' op (requires [^\n]{0,120})", text)
        why = reason.group(1).strip() if reason else "not supported by the TF Lite builtin ops"
        return UnsupportedOpError(
            f"TF Lite conversion ({mode}) failed: op{plural} {', '.join(ops)}: {why} (enable select TF ops, "
            f"tf.lite.OpsSet.SELECT_TF_OPS, or replace the op{plural})", ops)
    first = next((line for line in text.splitlines() if "error" in line.lower()), text.splitlines()[0] if text else "")
    return RuntimeError(f"TF Lite conversion ({mode}) failed: {first.strip()[:800] or type(exc).__name__}")


# --- export and load -------------------------------------------------------------------------------------------

def _as_numpy(batch: Any) -> np.ndarray:
    return batch.numpy() if hasattr(batch, "numpy") else np.asarray(batch)


def export_savedmodel(model: Any, example_batch: np.ndarray, path: Path, static_batch: bool = False) -> float:
    """Keras 3's export path (`tf.saved_model.save` on a Keras 3 model is not the documented route); the input
    signature is given explicitly, so subclassed models export as well. The batch dimension is free (a server takes
    any batch) unless `static_batch`: then it is the example's, as a TF Lite model's input is. Returns seconds."""
    import tensorflow as tf

    if path.exists():
        shutil.rmtree(path)
    batch = example_batch.shape[0] if static_batch else None
    spec = tf.TensorSpec((batch, *example_batch.shape[1:]), tf.as_dtype(example_batch.dtype), name="inputs")
    t0 = time.perf_counter()
    if hasattr(model, "signature_name") and hasattr(model, "path"):
        # The case's model is a SavedModel folder (tfperf.measure.saved_models): it is its own artefact, copied.
        shutil.copytree(model.path, path)
    elif is_tf_keras(model):
        # Keras 2's `export` takes no signature: save a serving function of the same spec, as TF Serving calls it.
        serve = tf.function(lambda inputs: model(inputs, training=False), input_signature=[spec])
        tf.saved_model.save(model, str(path), signatures={"serving_default": serve.get_concrete_function()})
    else:
        model.export(str(path), format="tf_saved_model", verbose=False, input_signature=[spec])
    return time.perf_counter() - t0


def load_savedmodel(path: Path, signature: str = "serving_default") -> tuple[Callable[[Any], np.ndarray], float, dict]:
    """Reload the SavedModel and return (predict, load seconds, notes). `predict` calls the serving signature, as
    TF Serving does, and fetches the output so the step is complete when it returns."""
    import tensorflow as tf

    t0 = time.perf_counter()
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures[signature]
    load_s = time.perf_counter() - t0
    input_specs = fn.structured_input_signature[1]
    if len(input_specs) != 1:
        raise ValueError(f"{path}: signature {signature!r} takes {len(input_specs)} inputs; tfperf feeds one")
    (input_name, input_spec), = input_specs.items()
    output_names = sorted(fn.structured_outputs)
    output_name = output_names[0]

    def predict(batch: Any) -> np.ndarray:
        x = batch if isinstance(batch, tf.Tensor) else tf.convert_to_tensor(batch, dtype=input_spec.dtype)
        return fn(**{input_name: x})[output_name].numpy()

    predict.loaded = loaded  # keeps the restored variables alive as long as the callable
    notes = {"signature": signature, "input_name": input_name, "output_name": output_name}
    if len(output_names) > 1:
        notes["outputs_ignored"] = output_names[1:]
    return predict, load_s, notes


def _representative(representative_batches: Callable[[], Iterable[Any]] | Iterable[Any], limit: int, batch: int):
    """The converter wants a generator of [one input batch] shaped like the model's (static) input: regroup the
    given batches into batches of `batch` rows, about `limit` rows in all (at least one batch)."""
    def gen():
        source = representative_batches() if callable(representative_batches) else representative_batches
        rows: list[np.ndarray] = []
        sent = 0
        for item in source:
            rows.extend(_as_numpy(item))
            while len(rows) >= batch:
                yield [np.stack(rows[:batch])]
                rows = rows[batch:]
                sent += batch
                if sent >= limit:
                    return
        if sent == 0 and rows:  # fewer rows than one batch: repeat them to fill it
            yield [np.resize(np.stack(rows), (batch, *rows[0].shape))]
    return gen


def convert_tflite(savedmodel: Path, mode: str, out: Path, input_dtype: np.dtype,
                   representative_batches: Callable[[], Iterable[Any]] | Iterable[Any] | None = None,
                   batch: int = 1) -> float:
    """SavedModel -> .tflite in the mode's quantization. Raises UnsupportedOpError naming the op TF Lite lacks.
    `batch` is the SavedModel's static batch size (calibration batches are shaped to it)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=["serving_default"])
    if mode in ("tflite-dynamic", "tflite-int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "tflite-int8":
        if representative_batches is None:
            raise ValueError("tflite-int8 needs representative batches for calibration")
        converter.representative_dataset = _representative(representative_batches, REPRESENTATIVE_SAMPLES, batch)
        # Integer-only: an op without an int8 kernel fails conversion here instead of silently staying float.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if np.issubdtype(input_dtype, np.floating):
            converter.inference_input_type = tf.int8  # integer inputs (token ids) stay as they are
        converter.inference_output_type = tf.int8
    # The converter is native code that can crash the process (TF 2.21 does, calibrating a Keras LSTM for int8):
    # this line is then the last one in the worker's log, naming what it was doing.
    print(f"tfperf: TF Lite conversion ({mode}) of {savedmodel} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        blob = converter.convert()
    except Exception as exc:  # noqa: BLE001 - ConverterError and the MLIR errors the converter lets through
        raise _conversion_error(exc, mode) from exc
    elapsed = time.perf_counter() - t0
    out.write_bytes(blob)
    return elapsed


def interpreter_class() -> tuple[type, str]:
    """ai-edge-litert's interpreter, or the deprecated tf.lite.Interpreter when that package is missing."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        try:
            from importlib.metadata import version
            name = f"ai-edge-litert {version('ai-edge-litert')}"
        except Exception:  # noqa: BLE001 - the version is information only
            name = "ai-edge-litert"
        return Interpreter, name
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter, f"tf.lite.Interpreter (deprecated; ai-edge-litert not importable) TF {tf.__version__}"


def _quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def load_tflite(path: Path, batch_shape: tuple[int, ...], num_threads: int | None) -> tuple[Callable[[Any], np.ndarray], float, dict, str, int]:
    """Create the interpreter, resize its (fixed-shape) input to the batch, allocate. Returns
    (predict, load seconds, notes, interpreter name, thread count)."""
    cls, name = interpreter_class()
    threads = num_threads or default_num_threads()
    t0 = time.perf_counter()
    interp = cls(model_path=str(path), num_threads=threads)
    inp = interp.get_input_details()
    if len(inp) != 1:
        raise ValueError(f"{path}: the TF Lite model has {len(inp)} inputs; tfperf feeds one")
    inp = inp[0]
    in_index = inp["index"]
    interp.resize_tensor_input(in_index, list(batch_shape), strict=False)
    interp.allocate_tensors()
    load_s = time.perf_counter() - t0
    out = interp.get_output_details()[0]
    out_index = out["index"]
    in_dtype, out_dtype = np.dtype(inp["dtype"]), np.dtype(out["dtype"])
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    quantized_in = in_scale != 0.0 and np.issubdtype(in_dtype, np.integer)
    quantized_out = out_scale != 0.0 and np.issubdtype(out_dtype, np.integer)
    state = {"shape": tuple(batch_shape)}

    def predict(batch: Any) -> np.ndarray:
        x = _as_numpy(batch)
        if x.shape != state["shape"]:  # a batch of another size: fine for most models, not for baked-in shapes
            try:
                interp.resize_tensor_input(in_index, list(x.shape), strict=False)
                interp.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise ValueError(f"{path.name} was converted for input shape {state['shape']} and cannot take "
                                 f"{x.shape}: {str(exc).splitlines()[0][:200]}") from exc
            state["shape"] = x.shape
        if quantized_in:
            x = _quantize(x, in_scale, in_zero, in_dtype)
        elif x.dtype != in_dtype:
            x = x.astype(in_dtype)
        interp.set_tensor(in_index, x)
        interp.invoke()
        y = interp.get_tensor(out_index)
        if quantized_out:
            return (y.astype(np.float32) - out_zero) * np.float32(out_scale)
        return y

    predict.interpreter = interp
    notes = {"input_dtype": in_dtype.name, "output_dtype": out_dtype.name}
    if quantized_in:
        notes["input_quantization"] = {"scale": float(in_scale), "zero_point": int(in_zero)}
    if quantized_out:
        notes["output_quantization"] = {"scale": float(out_scale), "zero_point": int(out_zero)}
    return predict, load_s, notes, name, threads


def prepare_deploy(mode: str, model: Any, example_batch: Any,
                   representative_batches: Callable[[], Iterable[Any]] | Iterable[Any] | None,
                   workdir: Path, num_threads: int | None = None) -> Deployed:
    """Export `model` in `mode`, reload it, and return the callable to time with its size and load time.

    `example_batch` fixes the input signature (its batch size becomes the interpreter's input size);
    `representative_batches` (a callable returning an iterable of batches, or an iterable) calibrates tflite-int8.
    Raises UnsupportedOpError naming the op when TF Lite lacks one.
    """
    if mode not in DEPLOY_MODES:
        raise ValueError(f"mode {mode!r} is not a deployment mode ({', '.join(DEPLOY_MODES)})")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    example = _as_numpy(example_batch)
    saved = workdir / "savedmodel"
    # TF Lite runs fixed shapes; exporting them static also lets more models convert (a Keras LSTM's TensorList
    # ops need a static element shape, which a free batch dimension denies).
    export_s = export_savedmodel(model, example, saved, static_batch=mode in TFLITE_MODES)
    if mode == "savedmodel":
        predict, load_s, notes = load_savedmodel(saved)
        return Deployed(mode, predict, saved, artefact_size(saved), load_s, export_s, notes=notes)
    tflite_path = workdir / f"model-{mode}.tflite"
    convert_s = convert_tflite(saved, mode, tflite_path, example.dtype, representative_batches, len(example))
    predict, load_s, notes, interpreter, threads = load_tflite(tflite_path, example.shape, num_threads)
    return Deployed(mode, predict, tflite_path, artefact_size(tflite_path), load_s, export_s, convert_s,
                    threads, interpreter, notes)


# --- the harness's deployment path ------------------------------------------------------------------------------

# The output agreement is measured on about this many examples, in whole batches of the job's size (TF Lite models
# are converted for it); at batch 1 that is 128 calls, enough for a top-1 agreement of 99% to mean one miss in 100.
AGREEMENT_SAMPLES = 256
MAX_AGREEMENT_BATCHES = 128


def agreement_inputs(source: Any, inp: Any) -> str:
    """What the calibration and agreement examples are: the suite's own (its `dataset:`, representative of real
    use) or synthetic ones drawn from the input spec (random: fine for timing, weak evidence of accuracy)."""
    if source.kind == "dataset" or inp is None:
        return f"the case's {source.description}" if getattr(source, "description", None) else "the case's dataset"
    return "synthetic examples from the case's input spec"


def _agreement_batches(source: Any, inp: Any, batch_size: int, seed: int) -> list[np.ndarray]:
    """Inputs for calibration or the agreement check, drawn like the case's own: the next batches of the case's
    `dataset:` (the suite's representative inputs), or fresh synthetic examples from its input spec (the in-memory
    source only cycles 4 batches, which would make calibration and evaluation the same data)."""
    n = max(1, min(MAX_AGREEMENT_BATCHES, -(-AGREEMENT_SAMPLES // batch_size)))
    if source.kind == "dataset" or inp is None:
        return [_as_numpy(source.next_args()[0][0]) for _ in range(n)]
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
    """TensorFlow's intra-op thread setting when one was made (tune's thread sweep, TF_NUM_INTRAOP_THREADS), so
    the interpreter gets the same budget; else None (all the cores this process may use)."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads() or None


def deployment_step(mode: str, model: Any, inp: Any, source: Any, batch_size: int,
                    workdir: Path) -> tuple[Callable[..., Any], dict, dict]:
    """What the harness times in a deployment mode: (call(x, y) -> numpy outputs, notes for `extra`, Result fields
    model_size_bytes / load_time_s / first_call_s / output_agreement).

    `first_call_s` is the first predict of the reloaded artefact, made here right after loading, before anything
    else calls it: the agreement check runs up to MAX_AGREEMENT_BATCHES predicts, after which the harness's own
    "first call" would be a warm one (interpreter buffers allocated, SavedModel functions traced). The harness sets
    the Result fields after its own first call, so this value is the one recorded.
    The agreement is against the eager Keras outputs on the same inputs, computed here (untimed) before any step.
    """
    x0 = source.next_args()[0]
    if not x0 or isinstance(x0[0], (dict, list, tuple)):
        raise TypeError(f"mode {mode}: the case's input must be a single tensor (got {type(x0[0]).__name__ if x0 else 'nothing'})")
    example = _as_numpy(x0[0])
    calibration = _agreement_batches(source, inp, batch_size, seed=11) if mode == "tflite-int8" else None
    deployed = prepare_deploy(mode, model, example, calibration, workdir, deployment_threads())
    first_call_s = first_predict_s(deployed.predict, example)
    if mode != "savedmodel":
        shutil.rmtree(workdir / "savedmodel", ignore_errors=True)  # the intermediate export; the .tflite stays

    check = _agreement_batches(source, inp, batch_size, seed=12)
    reference = np.concatenate([np.asarray(model(b, training=False)) for b in check])
    got = np.concatenate([deployed.predict(b) for b in check])
    fields = {"model_size_bytes": deployed.model_size_bytes, "load_time_s": deployed.load_time_s,
              "first_call_s": first_call_s,
              "output_agreement": output_agreement(reference, got, agreement_inputs(source, inp))}
    notes = deployed.extra()
    if mode in TFLITE_MODES:
        notes["runs_on"] = "cpu (TF Lite interpreter, XNNPACK)"
    predict = deployed.predict

    def call(x: Any, *_: Any, **__: Any) -> np.ndarray:
        return predict(x)

    call.deployed = deployed  # keeps the interpreter / loaded SavedModel alive with the callable
    return call, notes, fields
