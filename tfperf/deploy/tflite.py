"""TF Lite deployment: convert a SavedModel's serving signature to a flatbuffer (float32, dynamic-range or
full-integer quantization), and run it in an interpreter fed by input name, as a device app calls it.

Inputs are matched by name through the model's `serving_default` signature (its keyword arguments, the same
names the SavedModel takes), so a dict-input model (token_ids, segment_ids, padding_mask) is fed the same way
as a one-input one; the interpreter's positional input order is never relied on (it is not the model's).
TensorFlow is imported inside the functions that convert; the interpreter is ai-edge-litert's when importable.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from tfperf.deploy import feeds

TFLITE_MODES = ("tflite", "tflite-dynamic", "tflite-int8")
# The calibration set for tflite-int8: enough single examples for stable activation ranges on small models
# (the converter's own guide uses ~100), few enough that calibration stays a second or two.
REPRESENTATIVE_SAMPLES = 128
SIGNATURE = "serving_default"


class UnsupportedOpError(RuntimeError):
    """The TF Lite converter rejected the model because TF Lite lacks an op; the message names it."""

    def __init__(self, message: str, ops: list[str]):
        super().__init__(message)
        self.ops = ops


# --- conversion errors --------------------------------------------------------------------------------------


def unsupported_ops(text: str) -> list[str]:
    """The op names in a TF Lite converter error: "'tf.Digamma' op is neither a custom op nor a flex op",
    "Custom ops: Digamma", "TF Select ops: MatrixInverse", "failed to legalize operation
    'tf.TensorListReserve'"."""
    ops = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)
    ops += re.findall(r"failed to legalize operation 'tf\.(\w+)'", text)
    for line in re.findall(r"^(?:Custom|TF Select|Flex) ops: (.+)$", text, flags=re.MULTILINE):
        ops.extend(name.strip() for name in line.split(",") if name.strip())
    return sorted(set(ops))


# ConverterErrorData codes that mean "TF Lite has no kernel for this op" (ERROR_NEEDS_FLEX_OPS,
# ERROR_NEEDS_CUSTOM_OPS); other structured errors name ops that merely sit near the failure (tf.Const).
_MISSING_OP_CODES = (1, 2)


def conversion_error(exc: BaseException, mode: str) -> Exception:
    """The converter's failure as one line: the ops TF Lite lacks (UnsupportedOpError), else its first error
    line."""
    text = str(exc)
    ops = unsupported_ops(text)
    for err in getattr(exc, "errors", []) or []:  # ConverterError carries structured data as well
        name = getattr(getattr(err, "operator", None), "name", "")
        if name and getattr(err, "error_code", 0) in _MISSING_OP_CODES:
            ops = sorted(set(ops) | {name.removeprefix("tf.")})
    if ops:
        plural = "s" if len(ops) > 1 else ""
        # The converter's own reason when it gives one (e.g. "'tf.TensorListReserve' op requires element_shape
        # to be static"), else the usual one: no builtin kernel.
        reason = re.search(r"'tf\.\w+' op (requires [^\n]{0,120})", text)
        why = reason.group(1).strip() if reason else "not supported by the TF Lite builtin ops"
        return UnsupportedOpError(
            f"TF Lite conversion ({mode}) failed: op{plural} {', '.join(ops)}: {why} (enable select TF ops, "
            f"tf.lite.OpsSet.SELECT_TF_OPS, or replace the op{plural})",
            ops,
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
    return RuntimeError(f"TF Lite conversion ({mode}) failed: {first[:800] or type(exc).__name__}")


# --- conversion ---------------------------------------------------------------------------------------------


def _representative(
    representative_batches: Callable[[], Iterable[Any]] | Iterable[Any], limit: int, batch: int
):
    """The converter wants a generator of one input batch each, shaped like the model's (static) input:
    regroup the given batches into batches of `batch` rows, about `limit` rows in all (at least one batch). A
    dict batch is yielded as a dict by input name (the signature's names), one array as [array]."""

    def gen():
        source = representative_batches() if callable(representative_batches) else representative_batches
        pending: list[feeds.Batch] = []
        held = sent = 0
        for item in source:
            pending.append(feeds.named(item, None) if isinstance(item, dict) else feeds.as_numpy(item))
            held += feeds.rows(pending[-1])
            while held >= batch:
                joined = feeds.concat(pending)
                out, rest = feeds.take(joined, 0, batch), feeds.take(joined, batch, held)
                yield out if isinstance(out, dict) else [out]
                pending, held, sent = ([rest] if held > batch else []), held - batch, sent + batch
                if sent >= limit:
                    return
        if sent == 0 and pending:  # fewer rows than one batch: repeat them to fill it
            out = feeds.resize_rows(feeds.concat(pending), batch)
            yield out if isinstance(out, dict) else [out]

    return gen


def convert_tflite(
    savedmodel: Path,
    mode: str,
    out: Path,
    input_dtype: Any,
    representative_batches: Callable[[], Iterable[Any]] | Iterable[Any] | None = None,
    batch: int = 1,
) -> float:
    """SavedModel -> .tflite in the mode's quantization. Raises UnsupportedOpError naming the op TF Lite
    lacks. `input_dtype`: the input's dtype, or a list of the inputs' dtypes; `batch` is the SavedModel's
    static batch size (calibration batches are shaped to it). Returns seconds."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=[SIGNATURE])
    if mode in ("tflite-dynamic", "tflite-int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "tflite-int8":
        if representative_batches is None:
            raise ValueError("tflite-int8 needs representative batches for calibration")
        converter.representative_dataset = _representative(
            representative_batches, REPRESENTATIVE_SAMPLES, batch
        )
        # Integer-only: an op without an int8 kernel fails conversion here instead of silently staying float.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        in_dtypes = input_dtype if isinstance(input_dtype, (list, tuple)) else [input_dtype]
        if any(np.issubdtype(np.dtype(d), np.floating) for d in in_dtypes):
            converter.inference_input_type = (
                tf.int8
            )  # float inputs; integer inputs (token ids) stay as they are
        converter.inference_output_type = tf.int8
    # The converter is native code that can crash the process (TF 2.21 does, calibrating a Keras LSTM for
    # int8): this line is then the last one in the worker's log, naming what it was doing.
    print(f"tfperf: TF Lite conversion ({mode}) of {savedmodel} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        blob = converter.convert()
    except Exception as exc:
        raise conversion_error(exc, mode) from exc
    elapsed = time.perf_counter() - t0
    out.write_bytes(blob)
    return elapsed


# --- the interpreter ----------------------------------------------------------------------------------------


def default_num_threads() -> int:
    """The cores this process may run on: the interpreter's default (-1) leaves the choice unrecorded."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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

        return (
            tf.lite.Interpreter,
            f"tf.lite.Interpreter (deprecated; ai-edge-litert not importable) TF {tf.__version__}",
        )


def _quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _io_details(interp: Any) -> tuple[dict[str, dict], dict[str, dict]]:
    """(inputs, outputs) by name: the serving signature's names when the model has signatures (a converted
    SavedModel does), else the tensors' own names."""
    signatures = interp.get_signature_list() if hasattr(interp, "get_signature_list") else {}
    if signatures:
        runner = interp.get_signature_runner(SIGNATURE if SIGNATURE in signatures else next(iter(signatures)))
        return dict(runner.get_input_details()), dict(runner.get_output_details())
    return (
        {d["name"]: d for d in interp.get_input_details()},
        {d["name"]: d for d in interp.get_output_details()},
    )


def _quantization(detail: dict) -> tuple[float, int, bool]:
    scale, zero = detail["quantization"]
    return scale, zero, scale != 0.0 and np.issubdtype(np.dtype(detail["dtype"]), np.integer)


def load_tflite(
    path: Path, batch_shape: Any, num_threads: int | None
) -> tuple[Callable[[Any], np.ndarray], float, dict, str, int]:
    """Create the interpreter, resize its (fixed-shape) inputs to the batch (`batch_shape`: one shape, or a
    dict of shapes by input name), allocate. Returns (predict, load seconds, notes, interpreter name, thread
    count). `predict` takes one array or a dict by input name and returns the first output by name,
    dequantized."""
    cls, name = interpreter_class()
    threads = num_threads or default_num_threads()
    t0 = time.perf_counter()
    interp = cls(model_path=str(path), num_threads=threads)
    inputs, outputs = _io_details(interp)
    shapes = batch_shape if isinstance(batch_shape, dict) else {next(iter(inputs)): tuple(batch_shape)}
    if set(shapes) != set(inputs):
        raise feeds.FeedError(
            f"{path.name} takes inputs {', '.join(sorted(inputs))}; the case feeds "
            f"{', '.join(sorted(shapes))}"
        )
    for key, shape in shapes.items():
        interp.resize_tensor_input(inputs[key]["index"], list(shape), strict=False)
    interp.allocate_tensors()
    load_s = time.perf_counter() - t0
    output_name = sorted(outputs)[0]
    out = outputs[output_name]
    out_scale, out_zero, quantized_out = _quantization(out)
    plan = [(key, d["index"], np.dtype(d["dtype"]), *_quantization(d)) for key, d in inputs.items()]
    single = next(iter(inputs)) if len(inputs) == 1 else None
    state = {"shapes": dict(shapes)}

    def predict(batch: Any) -> np.ndarray:
        feed = feeds.named(batch, None) if isinstance(batch, dict) else {single: feeds.as_numpy(batch)}
        got = {k: v.shape for k, v in feed.items()}
        if got != state["shapes"]:  # a batch of another size: fine for most models, not for baked-in shapes
            try:
                for key, index, *_ in plan:
                    interp.resize_tensor_input(index, list(feed[key].shape), strict=False)
                interp.allocate_tensors()
            except (RuntimeError, ValueError, KeyError) as exc:
                raise ValueError(
                    f"{path.name} was converted for input shape {_shape_text(state['shapes'])} and "
                    f"cannot take {_shape_text(got)}: {str(exc).splitlines()[0][:200]}"
                ) from exc
            state["shapes"] = got
        for key, index, dtype, scale, zero, quantized in plan:
            x = feed[key]
            if quantized:
                x = _quantize(x, scale, zero, dtype)
            elif x.dtype != dtype:
                x = x.astype(dtype)
            interp.set_tensor(index, x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if quantized_out:
            return (y.astype(np.float32) - out_zero) * np.float32(out_scale)
        return y

    predict.interpreter = interp
    notes = _notes(plan, single, out, output_name, outputs)
    return predict, load_s, notes, name, threads


def _shape_text(shapes: dict) -> str:
    return str(next(iter(shapes.values()))) if len(shapes) == 1 else str(shapes)


def _notes(plan: list, single: str | None, out: dict, output_name: str, outputs: dict) -> dict:
    """`Result.deployment`'s input/output dtypes and quantization; per input name for a multi-input model."""
    out_scale, out_zero, quantized_out = _quantization(out)
    notes: dict[str, Any] = {}
    if single is not None:
        _, _, dtype, scale, zero, quantized = plan[0]
        notes["input_dtype"] = dtype.name
        if quantized:
            notes["input_quantization"] = {"scale": float(scale), "zero_point": int(zero)}
    else:
        notes["input_dtype"] = {key: dtype.name for key, _, dtype, *_ in plan}
        quantized_in = {key: {"scale": float(s), "zero_point": int(z)} for key, _, _, s, z, q in plan if q}
        if quantized_in:
            notes["input_quantization"] = quantized_in
    notes["output_dtype"] = np.dtype(out["dtype"]).name
    if quantized_out:
        notes["output_quantization"] = {"scale": float(out_scale), "zero_point": int(out_zero)}
    if len(outputs) > 1:
        notes["output_name"] = output_name
        notes["outputs_ignored"] = sorted(outputs)[1:]
    return notes
