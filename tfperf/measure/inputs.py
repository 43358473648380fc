"""Where each step's arguments come from: in-memory tensors, a synthetic tf.data pipeline, a user dataset, or
a user `inputs:` iterable. Every source exposes `next_args()`; the harness times that call as input wait.

Imports TensorFlow: used only inside worker processes.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import tensorflow as tf

from tfperf.measure.model_inputs import InputStructure
from tfperf.suite.spec import AUTOTUNE, CaseSpec, InputSpec, LabelsSpec, PipelineSpec

# Distinct in-memory batches cycled through, so a step never sees the very same tensor object twice in a row
# (caches keyed on identity would flatter it) while generating data stays out of the timed loop.
IN_MEMORY_BATCHES = 4


@dataclass
class InputSource:
    """Yields (args, kwargs) for the step. `kind` says what the input wait measures."""

    kind: str  # in_memory | pipeline | dataset | inputs
    next_args: Callable[[], tuple[tuple, dict]]
    description: str = ""
    options_note: str | None = None  # e.g. that tf.data's default optimizations were turned off
    iterator: Any = (
        None  # the live tf.data iterator, when the step reads one (what AUTOTUNE tuned: profile.autotune)
    )

    def example(self) -> tuple[tuple, dict]:
        return self.next_args()


def _tf_dtype(name: str) -> tf.DType:
    return tf.as_dtype(name)


def synthetic_features(spec: InputSpec | InputStructure, batch_size: int, rng: np.random.Generator) -> Any:
    """One batch of random features: an array for one input, the model's structure (dict / list) of arrays for
    several. Integer inputs are drawn below `maxval`; a padding mask is all ones."""
    if isinstance(spec, InputStructure):
        return spec.pack(
            [
                np.ones((batch_size, *i.spec.shape), np.dtype(_tf_dtype(i.spec.dtype).as_numpy_dtype))
                if i.role == "mask"
                else synthetic_features(i.spec, batch_size, rng)
                for i in spec.inputs
            ]
        )
    shape = (batch_size, *spec.shape)
    dtype = np.dtype(_tf_dtype(spec.dtype).as_numpy_dtype)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, spec.maxval or 2, size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.standard_normal(size=shape).astype(dtype)


def synthetic_labels(spec: LabelsSpec, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    if spec.classes is not None:  # with a shape: class ids per position (a language model's targets)
        return rng.integers(0, spec.classes, size=(batch_size, *(spec.shape or ()))).astype(np.int32)
    shape = (batch_size, *(spec.shape or ()))
    dtype = np.dtype(_tf_dtype(spec.dtype or "float32").as_numpy_dtype)
    return rng.standard_normal(size=shape).astype(dtype)


def in_memory_source(
    inp: InputSpec | InputStructure, labels: LabelsSpec, batch_size: int, device: str, seed: int = 0
) -> InputSource:
    rng = np.random.default_rng(seed)
    batches = []
    with tf.device(device):
        for _ in range(IN_MEMORY_BATCHES):
            x = tf.nest.map_structure(tf.constant, synthetic_features(inp, batch_size, rng))
            y = tf.constant(synthetic_labels(labels, batch_size, rng))
            # identity() places the copies on the device now, not inside the first timed step.
            batches.append(((tf.nest.map_structure(tf.identity, x), tf.identity(y)), {}))
    cycle = itertools.cycle(batches)
    return InputSource("in_memory", lambda: next(cycle), f"{IN_MEMORY_BATCHES} synthetic batches on {device}")


def _parallelism(value: int | str) -> int:
    return tf.data.AUTOTUNE if value == AUTOTUNE else int(value)


def naive_options() -> tf.data.Options:
    """tf.data is not naive by default: its default optimizations inject a prefetch and fuse map into batch,
    which hide the slow stage a naive pipeline is there to show.
    A pipeline that asks for no parallelism and no prefetch gets exactly that."""
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.experimental_optimization.inject_prefetch = False
    options.experimental_optimization.map_and_batch_fusion = False
    options.autotune.enabled = False
    return options


def no_prefetch_options(autotune: bool) -> tf.data.Options:
    """`prefetch: 0` means none: without this tf.data injects one after the last stage, and a what-if
    that parallelizes the map alone would measure prefetch as well. Autotune stays on when a stage asks for
    it."""
    options = naive_options()
    options.autotune.enabled = autotune
    return options


def is_file_source(p: PipelineSpec) -> bool:
    """Does the pipeline read simulated files (the guide's artificial dataset) rather than an in-memory
    range?"""
    return p.num_files > 1 or p.file_open_ms > 0 or p.element_read_ms > 0 or p.interleave not in (0, "0")


def elements_per_file(p: PipelineSpec, n: int) -> int:
    """Elements in one simulated file when n elements are spread over num_files files (the last may be
    short)."""
    return -(-n // max(1, p.num_files))


def file_source(p: PipelineSpec, n: int) -> tf.data.Dataset:
    """num_files simulated files of element indices: opening one costs file_open_ms, reading each element
    element_read_ms (the guide's ArtificialDataset: a generator that sleeps). Files are read one after another
    (flat_map) or `interleave`d, in parallel when interleave is a number or autotune."""
    per_file = elements_per_file(p, n)
    open_s, read_s = p.file_open_ms / 1000.0, p.element_read_ms / 1000.0

    def read_file(file_index):
        # A generator per file, like the guide's: sleeping releases the GIL, so files read in parallel
        # overlap.
        first = int(file_index) * per_file
        if open_s > 0:
            time.sleep(open_s)
        for j in range(per_file):
            if read_s > 0:
                time.sleep(read_s)
            yield first + j

    def open_file(file_index):
        return tf.data.Dataset.from_generator(
            read_file, args=(file_index,), output_signature=tf.TensorSpec((), tf.int64)
        )

    files = tf.data.Dataset.range(max(1, p.num_files))
    if p.interleave in (0, "0"):
        ds = files.flat_map(open_file)
    else:
        # cycle_length: files open at once; autotune leaves it to tf.data (the number of cores).
        cycle = None if p.interleave == AUTOTUNE else int(p.interleave)
        ds = files.interleave(open_file, cycle_length=cycle, num_parallel_calls=_parallelism(p.interleave))
    # The last file is short when n does not divide evenly: its indices past n do not exist.
    return ds.filter(lambda i: i < n)


def pipeline_elements(p: PipelineSpec, batch_size: int) -> int:
    """Distinct elements per pass over the source (a file source reads whole files)."""
    return max(p.num_elements, batch_size)


def synthetic_pipeline(
    inp: InputSpec | InputStructure, labels: LabelsSpec, batch_size: int, seed: int = 0
) -> tuple[tf.data.Dataset, str | None]:
    """source -> map(simulated cost) -> [cache] -> batch -> repeat -> [prefetch], the guide's artificial
    dataset.

    The source is an in-memory range, or simulated files (file_open_ms, element_read_ms, num_files) read one
    after another or interleaved."""
    p: PipelineSpec = inp.pipeline or PipelineSpec()
    rng = np.random.default_rng(seed)
    n = pipeline_elements(p, batch_size)
    features = synthetic_features(inp, n, rng)
    targets = synthetic_labels(labels, n, rng)
    cost_s = p.map_cost_ms / 1000.0

    def _slow(i):  # a sleep releases the GIL, so parallel calls really overlap, like I/O or decoding would
        if cost_s > 0:
            time.sleep(cost_s)
        return i

    def _element(i):
        if cost_s > 0:
            i = tf.py_function(_slow, [i], tf.int64)
            i.set_shape(())
        return tf.nest.map_structure(lambda f: tf.gather(f, i), features), tf.gather(targets, i)

    ds = file_source(p, n) if is_file_source(p) else tf.data.Dataset.range(n)
    ds = ds.map(
        _element, num_parallel_calls=_parallelism(p.num_parallel_calls) if p.num_parallel_calls != 1 else None
    )
    if p.cache:
        ds = ds.cache()
    ds = ds.batch(batch_size, drop_remainder=True).repeat()
    if p.prefetch not in (0, "0"):
        ds = ds.prefetch(_parallelism(p.prefetch))
    note = None
    sequential_source = p.interleave in (0, "0")
    if p.num_parallel_calls == 1 and p.prefetch in (0, "0") and sequential_source:
        ds = ds.with_options(naive_options())
        note = (
            "naive baseline: tf.data default optimizations, injected prefetch, map-batch fusion and "
            "autotune off"
        )
    elif p.prefetch in (0, "0"):
        autotune = AUTOTUNE in (p.num_parallel_calls, p.interleave)
        ds = ds.with_options(no_prefetch_options(autotune))
        note = "prefetch: 0: tf.data's injected prefetch, map-batch fusion and default optimizations off" + (
            "" if autotune else ", autotune off"
        )
    return ds, note


def dataset_source(ds: tf.data.Dataset, kind: str, description: str, note: str | None = None) -> InputSource:
    iterator: Iterator = iter(ds.repeat())

    def next_args():
        element = next(iterator)
        if isinstance(element, (tuple, list)):
            return tuple(element), {}
        if isinstance(element, dict):
            return (), dict(element)
        return (element,), {}

    return InputSource(kind, next_args, description, note, iterator=iterator)


class EmptyInputsError(ValueError):
    """An `inputs:` callable whose iterable has no item at all: there is no step to time."""


_NONE_LEFT = object()


def user_inputs_source(factory: Callable[[], Any], name: str = "inputs") -> InputSource:
    """`inputs:` is a callable returning an iterable of (args, kwargs); it is called again when exhausted.
    `name` is the suite's reference, for the message when the iterable is empty."""
    state: dict[str, Any] = {"it": iter(factory()), "items": 0}

    def next_args():
        try:
            item = next(state["it"])
        except StopIteration:
            state["it"] = iter(factory())
            # A fresh iterable that is empty too would escape as a bare StopIteration, with no word of why.
            item = next(state["it"], _NONE_LEFT)
            if item is _NONE_LEFT:
                if state["items"]:
                    raise EmptyInputsError(
                        f"inputs: {name} ran out after {state['items']} item(s) and, called again, gave "
                        "none: "
                        "return a new iterable on every call (not one shared, already used generator)"
                    ) from None
                raise EmptyInputsError(
                    f"inputs: {name} gave no (args, kwargs) at all: its iterable must yield at least one "
                    "item, "
                    "e.g. `yield (x,), {}` (a generator that returns before its first yield, or an empty "
                    "list, "
                    "gives nothing to time)"
                ) from None
        state["items"] += 1
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict)):
            raise TypeError(
                "inputs: each item must be (args, kwargs), e.g. ((x,), {}); got " + type(item).__name__
            )
        return tuple(item[0]), dict(item[1])

    return InputSource("inputs", next_args, "user inputs iterable")


def make_source(
    case: CaseSpec,
    inp: InputSpec | InputStructure | None,
    labels: LabelsSpec | None,
    batch_size: int | None,
    device: str,
    resolve: Callable[[str], Any],
) -> InputSource:
    """Pick the input source a case asks for. `resolve` turns a reference into the object it names."""
    if case.function is not None:
        return user_inputs_source(resolve(case.inputs), case.inputs or "inputs")
    assert batch_size is not None and inp is not None and labels is not None
    if case.dataset is not None:
        ds = resolve(case.dataset)(batch_size)
        if not isinstance(ds, tf.data.Dataset):
            raise TypeError(f"dataset: {case.dataset} returned {type(ds).__name__}, not a tf.data.Dataset")
        return dataset_source(ds, "dataset", f"user dataset {case.dataset}")
    if inp.pipeline is not None:
        ds, note = synthetic_pipeline(inp, labels, batch_size)
        return dataset_source(ds, "pipeline", "synthetic tf.data pipeline", note)
    return in_memory_source(inp, labels, batch_size, device)
