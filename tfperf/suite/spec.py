"""What a suite asks for, after validation: frozen case specs that expand into jobs.

These are plain data (no TensorFlow) so the CLI can validate a suite and plan a run without the 3 s import.
A CaseSpec travels to its worker process as JSON (`to_json` / `from_json`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tfperf.results.model import JobSpec

MODES: tuple[str, ...] = ("eager", "function", "xla")
# Deployment modes (task: infer only): exported artefacts timed like the other modes.
DEPLOY_MODES: tuple[str, ...] = ("savedmodel", "tflite", "tflite-dynamic", "tflite-int8")
ALL_MODES: tuple[str, ...] = MODES + DEPLOY_MODES
# fit: the model trained by Keras' own `model.fit` (tfperf/measure/fit.py), its loop's cost included.
TASKS: tuple[str, ...] = ("train", "infer", "fit")
AUTOTUNE = "autotune"

# The longest file or folder name, in bytes, that Linux (ext4, xfs, tmpfs), macOS (APFS) and Windows (NTFS)
# take.
PATH_COMPONENT_MAX_BYTES = 255
# A suite's and a case's names start file and folder names tfperf writes (reports/<suite>-tune/,
# workers/<case>.log, tensorboard/<case>-<mode>-bs<N>/ ...). The longest it adds to a case's name is a tuned
# configuration's (`+<id>`, ids of at most 32 bytes) distributed job's worker marker,
#   <case>+<id>-<mode>-bs<batch size>.worker<index>.result.json.joined,
# with a batch size below 10^9 and at most 9999 workers.
NAME_SUFFIX_BYTES = (
    len("+")
    + 32
    + len("-")
    + max(len(m) for m in ALL_MODES)
    + len("-bs")
    + 9
    + len(".worker")
    + 4
    + len(".result.json.joined")
)
# A longer name would pass every other check, then fail the run with "File name too long".
MAX_NAME_BYTES = PATH_COMPONENT_MAX_BYTES - NAME_SUFFIX_BYTES


@dataclass(frozen=True)
class PipelineSpec:
    """A synthetic tf.data pipeline: the case key `input.pipeline` (docs/input-pipelines.md)."""

    map_cost_ms: float = 0.0  # simulated per-element preprocessing
    num_parallel_calls: int | str = 1  # int or "autotune"
    prefetch: int | str = 0  # int or "autotune"; 0 = none
    cache: bool = False
    num_elements: int = 1024  # distinct elements before the source repeats
    # Simulated file-based source (the input-pipeline issue): elements read from num_files files.
    file_open_ms: float = 0.0  # cost of opening one file
    element_read_ms: float = 0.0  # cost of reading one element
    num_files: int = 1
    interleave: int | str = 0  # files read in parallel: int or "autotune"; 0 = none (one file after another)


@dataclass(frozen=True)
class InputSpec:
    """One example's features: shape without the batch dimension, dtype, optional pipeline."""

    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    maxval: int | None = None  # integer inputs (token ids, categories) are drawn from [0, maxval)
    pipeline: PipelineSpec | None = None


@dataclass(frozen=True)
class LabelsSpec:
    """Synthetic labels: integer classes, or a tensor of a shape and dtype (regression targets)."""

    classes: int | None = None
    shape: tuple[int, ...] | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class CaseSpec:
    name: str
    model: str | None = None  # zoo:NAME | package.module:attr | relative/path.py:attr
    function: str | None = None  # a plain Python function of TF ops
    inputs: str | None = None  # callable returning an iterable of (args, kwargs)
    dataset: str | None = None  # callable(batch_size) -> tf.data.Dataset of (x, y)
    params: dict = field(default_factory=dict)
    input: InputSpec | None = None
    # `input: {name: {shape, dtype, maxval}}`: overrides of a multi-input model's inputs by name (the model
    # says the rest: tfperf.measure.model_inputs).
    input_by_name: dict[str, InputSpec] | None = None
    labels: LabelsSpec | None = None
    modes: tuple[str, ...] = MODES
    device: str = "auto"  # auto | cpu | gpu | gpu:N
    task: str = "train"
    batch_sizes: tuple[int, ...] = (32,)
    warmup_steps: int = 3
    steps: int = 20
    repeats: int = 3
    # Worker processes that time each job, in rounds over the suite (asv's `processes`). Measured on a 2-core
    # VM: a ~1 ms step's median moved 20-40% (once 2x) from one process to the next while staying tight within
    # each, so one process cannot show how far the same code moves between runs. Three, not asv's two: over
    # 10 recorded processes, compare's rule flagged 7% of unchanged pairs with two processes a side, 1% with
    # three.
    processes: int = 3
    profile: bool = True
    timeout_s: float = 300.0
    max_traces: int | None = None
    what_if: bool = False
    distribute: dict | None = None
    steps_per_execution: int = 1  # task: fit: steps per call of Keras' compiled train function
    # 3 (keras) or 2 (tf_keras) for a zoo model or a factory with a `keras` parameter; None: the model's own.
    # `keras: [3, 2]` in a suite becomes two cases, <name>-keras3 and <name>-keras2.
    keras: int | None = None
    # Process-wide TF settings applied at worker start (tfperf.measure.tf_config).
    tf_config: dict | None = None
    # A variant of the case measured beside it (`tfperf tune`: the configuration's id, such as "threads-1");
    # the case's name stays its own. None: the case as the suite gives it.
    variant: str | None = None
    base_dir: str = "."  # the suite file's folder: relative references resolve against it
    line: int | None = None  # where the case starts in the suite file

    def jobs(self) -> list[JobSpec]:
        """Case × batch size × mode. Function cases have no batch size of their own (their inputs decide)."""
        sizes: tuple[int | None, ...] = self.batch_sizes if self.function is None else (None,)
        return [
            JobSpec(self.name, mode, self.device, self.task, bs, self.variant)
            for bs in sizes
            for mode in self.modes
        ]

    def replace(self, **changes: Any) -> "CaseSpec":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "CaseSpec":
        d = dict(d)
        if d.get("input") is not None:
            inp = dict(d["input"])
            if inp.get("pipeline") is not None:
                inp["pipeline"] = PipelineSpec(**inp["pipeline"])
            inp["shape"] = tuple(inp.get("shape") or ())
            d["input"] = InputSpec(**inp)
        if d.get("input_by_name") is not None:
            d["input_by_name"] = {
                name: InputSpec(**{**spec, "shape": tuple(spec.get("shape") or ()), "pipeline": None})
                for name, spec in d["input_by_name"].items()
            }
        if d.get("labels") is not None:
            lab = dict(d["labels"])
            if lab.get("shape") is not None:
                lab["shape"] = tuple(lab["shape"])
            d["labels"] = LabelsSpec(**lab)
        d["modes"] = tuple(d.get("modes") or MODES)
        d["batch_sizes"] = tuple(d.get("batch_sizes") or (32,))
        return cls(**d)


@dataclass(frozen=True)
class Suite:
    name: str
    path: str
    sha256: str
    text: str
    cases: tuple[CaseSpec, ...]

    def jobs(self) -> list[JobSpec]:
        return [job for case in self.cases for job in case.jobs()]

    @property
    def info(self) -> dict:
        """The `suite` block of results.json."""
        return {"name": self.name, "path": self.path, "sha256": self.sha256}
