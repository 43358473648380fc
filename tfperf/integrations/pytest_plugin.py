"""tfperf's pytest plugin (entry point `pytest11: tfperf`): TensorFlow-aware benchmarks on top of
pytest-benchmark.

- The `tf_benchmark` fixture wraps a step in a mode (eager | function | xla) the way the harness does, makes
  the first call (tracing + compilation, timed apart as `first_call_s`) and the warm-up steps outside the
  timed rounds, then times it with pytest-benchmark, forcing completion inside every timed call
  (`timing.sync_for`).
- `@pytest.mark.tf_modes("eager", "function", "xla")` parametrizes a test over modes (no arguments: all of
  `tfperf.MODES`); `tf_benchmark(step)` then runs in the test's mode.
- `pytest --tfperf-suite suite.yaml` turns each case × mode × batch size of a suite into a pytest-benchmark
  test, `suite.yaml::test_suite[<case>-<mode>-bs<N>]`, grouped by case, so `--benchmark-autosave`,
  `--benchmark-compare` and `--benchmark-compare-fail` work on suites unchanged.

This module loads in every pytest run of every project that installs tfperf (tfperf's own test suite
included), so it must stay cheap: TensorFlow, Keras and the harness are imported inside the functions that
measure.
"""

from __future__ import annotations

import time
import types
from pathlib import Path
from typing import Any, Callable

import pytest

from tfperf.suite.spec import ALL_MODES, MODES, CaseSpec

SUITE_TEST_NAME = "test_suite"
DEFAULT_MODE = "function"
DEFAULT_WARMUP_STEPS = 3
SUITE_KEY = pytest.StashKey[dict]()  # resolved suite path -> Suite, for the suites given with --tfperf-suite


# --------------------------------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tfperf", "tfperf: TensorFlow benchmarks")
    group.addoption(
        "--tfperf-suite",
        action="append",
        dest="tfperf_suites",
        default=[],
        metavar="SUITE.yaml",
        help="Run each case x mode x batch size of a tfperf suite as a pytest-benchmark test (repeatable). "
        "Without test paths on the command line only the suite's tests are collected.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tf_modes(*modes): run the test once per TensorFlow execution mode (default: all of "
        f"{', '.join(MODES)}); tf_benchmark(step) uses the test's mode.",
    )
    paths = config.getoption("tfperf_suites", default=None) or []
    if not paths:
        return
    from tfperf.errors import TfperfError
    from tfperf.suite.loader import load_suite

    suites: dict[Path, Any] = {}
    for raw in paths:
        try:
            suites[Path(raw).resolve()] = load_suite(raw)
        except TfperfError as exc:  # a bad suite is a usage error: one message naming file:line, nothing runs
            raise pytest.UsageError(f"--tfperf-suite {exc}") from None
    config.stash[SUITE_KEY] = suites
    _add_suites_to_args(config, list(suites))


def _add_suites_to_args(config: pytest.Config, suite_paths: list[Path]) -> None:
    """Collect the suite files. When the user named no test paths (pytest fell back to testpaths or the
    current folder) the suites are all that runs; otherwise they run beside the named paths."""
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    given = {Path(a.split("::")[0]).resolve() for a in config.args} if explicit else set()
    extra = [str(p) for p in suite_paths if p not in given]
    config.args = [*config.args, *extra] if explicit else [str(p) for p in suite_paths]


# --------------------------------------------------------------------------------------------------- mode
# marker


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = getattr(metafunc.function, "__tfperf_suite__", None)
    if module is not None:
        _parametrize_suite(metafunc, module)
        return
    marker = metafunc.definition.get_closest_marker("tf_modes")
    if marker is None:
        return
    modes = tuple(marker.args) or MODES
    unknown = [m for m in modes if m not in ALL_MODES]
    if unknown:
        # A collection error with this one line, no traceback.
        pytest.fail(
            f"{metafunc.definition.nodeid}: tf_modes: unknown mode(s) {', '.join(map(str, unknown))}; "
            f"choose from {', '.join(ALL_MODES)}",
            pytrace=False,
        )
    # A test that takes `mode` itself gets it; otherwise the mode reaches tf_benchmark through `tf_mode`.
    argname = "mode" if "mode" in metafunc.fixturenames else "tf_mode"
    metafunc.parametrize(argname, modes, ids=list(modes))


@pytest.fixture
def tf_mode(request: pytest.FixtureRequest) -> str | None:
    """The mode a `tf_modes`-marked test runs in (None when the test is not parametrized over modes)."""
    return getattr(request, "param", None)


def _node_mode(node: Any, tf_mode: str | None) -> str | None:
    if tf_mode is not None:
        return tf_mode
    callspec = getattr(node, "callspec", None)
    if callspec is not None and node.get_closest_marker("tf_modes") is not None:
        return callspec.params.get("mode")
    return None


# ---------------------------------------------------------------------------------------------------
# measuring


class TfBenchmark:
    """What the `tf_benchmark` fixture returns. Call it once per test (pytest-benchmark's rule)."""

    def __init__(self, benchmark: Any, request: pytest.FixtureRequest, default_mode: str | None):
        self.benchmark = benchmark
        self._request = request
        self.default_mode = default_mode or DEFAULT_MODE

    @property
    def extra_info(self) -> dict:
        return self.benchmark.extra_info

    def __call__(
        self,
        step: Callable[..., Any],
        *args: Any,
        mode: str | None = None,
        warmup_steps: int = DEFAULT_WARMUP_STEPS,
        rounds: int | None = None,
        iterations: int = 1,
        device: str = "auto",
        **kwargs: Any,
    ) -> Any:
        """Benchmark `step(*args, **kwargs)` in `mode`; returns the step's last output.

        `rounds` given: benchmark.pedantic(rounds, iterations); otherwise pytest-benchmark calibrates,
        honouring
        --benchmark-min-rounds / --benchmark-max-time. mode, warmup_steps, rounds, iterations and device are
        tfperf's; every other keyword argument goes to the step."""
        from tfperf.measure.harness import PreparedStep
        from tfperf.measure.inputs import InputSource
        from tfperf.measure.model_step import wrap_mode

        mode = mode or self.default_mode
        if mode not in MODES:
            raise ValueError(
                f"tf_benchmark: mode {mode!r}: a Python step runs in {', '.join(MODES)} "
                "(deployment modes need a model: tf_benchmark.model(...))"
            )
        call, traced = wrap_mode(step, mode)
        source = InputSource("fixed", lambda: (args, kwargs), "the arguments given to tf_benchmark")
        prepared = PreparedStep(_placed(call, device), source, traced)
        return _measure(
            self.benchmark,
            prepared,
            mode=mode,
            device=_resolve_device(device),
            task=None,
            batch_size=None,
            warmup_steps=warmup_steps,
            rounds=rounds,
            iterations=iterations,
        )

    def from_dataset(
        self,
        step: Callable[..., Any],
        dataset: Any,
        *,
        mode: str | None = None,
        warmup_steps: int = DEFAULT_WARMUP_STEPS,
        rounds: int | None = None,
        iterations: int = 1,
        device: str = "auto",
    ) -> Any:
        """Benchmark `step(*element)` fed from a tf.data.Dataset (repeated); the time spent in next(iterator)
        is part of each timed step and is reported as input_wait_fraction."""
        from tfperf.measure.harness import PreparedStep
        from tfperf.measure.inputs import dataset_source
        from tfperf.measure.model_step import wrap_mode

        mode = mode or self.default_mode
        call, traced = wrap_mode(step, mode)
        prepared = PreparedStep(
            _placed(call, device),
            dataset_source(dataset, "dataset", "tf.data.Dataset given to tf_benchmark"),
            traced,
        )
        return _measure(
            self.benchmark,
            prepared,
            mode=mode,
            device=_resolve_device(device),
            task=None,
            batch_size=None,
            warmup_steps=warmup_steps,
            rounds=rounds,
            iterations=iterations,
        )

    def model(
        self,
        model: str,
        *,
        mode: str | None = None,
        batch_size: int = 32,
        task: str = "train",
        params: dict | None = None,
        input: dict | None = None,
        labels: dict | None = None,
        dataset: str | None = None,
        device: str = "auto",
        warmup_steps: int = DEFAULT_WARMUP_STEPS,
        rounds: int | None = None,
        iterations: int = 1,
    ) -> Any:
        """Benchmark a model's train (forward + backward + optimizer) or infer step, built as `tfperf run`
        builds it. `model` is a suite reference (zoo:NAME, package.module:attr, path.py:attr relative to the
        test file); input / labels / dataset take the suite's keys ({shape: [...], dtype: ..., pipeline:
        {...}})."""
        mode = mode or self.default_mode
        case = CaseSpec.from_json(
            {
                "name": getattr(self._request.node, "name", "model"),
                "model": model,
                "params": dict(params or {}),
                "input": input,
                "labels": labels,
                "dataset": dataset,
                "modes": (mode,),
                "device": device,
                "task": task,
                "batch_sizes": (batch_size,),
                "warmup_steps": warmup_steps,
                "profile": False,
                "base_dir": str(Path(str(self._request.path)).parent),
            }
        )
        return _measure_case(self.benchmark, case, mode, batch_size, rounds=rounds, iterations=iterations)


@pytest.fixture
def tf_benchmark(benchmark: Any, request: pytest.FixtureRequest, tf_mode: str | None) -> TfBenchmark:
    """pytest-benchmark's `benchmark`, TensorFlow-aware: tf_benchmark(step, *args, mode="xla") or
    tf_benchmark.model("zoo:mlp", mode="function", batch_size=32, task="train")."""
    return TfBenchmark(benchmark, request, _node_mode(request.node, tf_mode))


def _placed(call: Callable[..., Any], device: str) -> Callable[..., Any]:
    """A step pinned to an explicitly requested device; with "auto" its tensors decide, as in plain
    TensorFlow."""
    if device == "auto":
        return call
    from tfperf.measure.harness import pinned, tf_device_name

    return pinned(call, tf_device_name(_resolve_device(device)))


def _resolve_device(device: str) -> str:
    from tfperf.measure.harness import resolve_device

    return resolve_device(device)


def _measure_case(
    benchmark: Any,
    case: CaseSpec,
    mode: str,
    batch_size: int | None,
    *,
    rounds: int | None,
    iterations: int | None,
) -> Any:
    """Build a case's step as the harness does (harness.prepare) and benchmark it."""
    from tfperf.measure import harness
    from tfperf.results.model import JobSpec
    from tfperf.suite.references import resolve_reference

    device = harness.resolve_device(case.device)
    job = JobSpec(case.name, mode, device, case.task, batch_size)
    ctx = harness.JobContext(
        out_dir=None, tf_device=harness.tf_device_name(device), multiple_batch_sizes=len(case.batch_sizes) > 1
    )
    prepared = harness.prepare(case, job, ctx, lambda ref: resolve_reference(ref, case.base_dir))
    return _measure(
        benchmark,
        prepared,
        mode=mode,
        device=device,
        task=case.task if case.function is None else None,
        batch_size=batch_size,
        warmup_steps=case.warmup_steps,
        rounds=rounds,
        iterations=iterations,
        model=case.model or case.function,
    )


def _measure(
    benchmark: Any,
    prepared: Any,
    *,
    mode: str,
    device: str,
    task: str | None,
    batch_size: int | None,
    warmup_steps: int,
    rounds: int | None,
    iterations: int | None,
    model: str | None = None,
) -> Any:
    """First call (timed apart), warm-up, then pytest-benchmark's timed rounds; fills benchmark.extra_info.

    `iterations=None` picks the timing core's block size: steps under timing.BLOCKED_BELOW_S run several times
    per round so the clock reads are a small share of a round (each call still forces completion)."""
    from tfperf.measure import harness, timing

    sync, sync_name = timing.sync_for(device)
    timer = timing.StepTimer(prepared, sync)
    info = benchmark.extra_info
    info.update(
        {
            "tool": "tfperf",
            "mode": mode,
            "device": device,
            "task": task,
            "batch_size": batch_size,
            "model": model,
            "input_source": prepared.source.kind,
            "sync": sync_name,
        }
    )

    args, kwargs = prepared.source.next_args()
    t0 = time.perf_counter()
    try:
        out = prepared.call(*args, **kwargs)
        sync(out)
    except Exception as exc:
        if mode == "xla":  # name the op XLA cannot compile instead of a page of C++ context
            message, hint = harness.xla_hint(exc)
            if hint:
                pytest.fail(f"{message}; {hint}", pytrace=False)
        raise
    info["first_call_s"] = time.perf_counter() - t0
    timer.after_call()
    # Warm-up outside the timed rounds: autotuned tf.data, lazily built kernels, caches.
    warm = [timer.one_step()[0] for _ in range(warmup_steps)]
    info["warmup_steps"] = warmup_steps
    if iterations is None:
        estimate = min(warm) if warm else timer.one_step()[0]
        iterations = 1
        if estimate < timing.BLOCKED_BELOW_S:
            iterations = timing.block_size_for(estimate)

    next_args, call = prepared.source.next_args, prepared.call
    wait = {"s": 0.0, "calls": 0}

    def timed_step():
        # Getting the next batch is part of the step (as in the harness); its share is input_wait_fraction.
        a = time.perf_counter()
        step_args, step_kwargs = next_args()
        wait["s"] += time.perf_counter() - a
        wait["calls"] += 1
        result = call(*step_args, **step_kwargs)
        sync(result)  # force completion inside the timed call: GPU kernels, async CPU ops
        return result

    if rounds is None:
        out = benchmark(timed_step)
    else:
        out = benchmark.pedantic(timed_step, rounds=rounds, iterations=iterations, warmup_rounds=0)

    traced = prepared.traced
    info["tracing_count"] = traced.experimental_get_tracing_count() if traced is not None else None
    info["traces_after_first_call"] = (
        len(timer.trace_calls) - (1 if timer.trace_calls[:1] == [0] else 0) if traced is not None else None
    )
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    mean = getattr(stats, "mean", None) if stats else None
    info["input_wait_fraction"] = (wait["s"] / wait["calls"]) / mean if mean and wait["calls"] else None
    if batch_size and mean:
        info["samples_per_s"] = batch_size / getattr(stats, "median", mean)
    # What the step ran with (a job's `setup`, and a deployment mode's `deployment`), as far as it is known.
    for record in (prepared.setup, prepared.result_fields.get("deployment")):
        if record is not None:
            info.update({k: v for k, v in record.to_json().items() if v is not None})
    return out


# --------------------------------------------------------------------------------------------------- suites


def job_id(case: str, mode: str, batch_size: int | None) -> str:
    """The test id of one job: <case>-<mode>[-bs<N>] (function cases have no batch size of their own).

    Not JobSpec.label ("case [mode bs=N]"): a pytest id is typed on the command line (-k, ::test_suite[...])
    and keyed on by pytest-benchmark's saved runs, so it has no spaces or brackets and must not change."""
    return f"{case}-{mode}" + (f"-bs{batch_size}" if batch_size is not None else "")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    suites = parent.config.stash.get(SUITE_KEY, None)
    if not suites:
        return None
    suite = suites.get(Path(file_path).resolve())
    if suite is None:
        return None
    return SuiteModule.from_parent(parent, path=Path(file_path), tfperf_suite=suite)


class SuiteModule(pytest.Module):
    """A suite file collected as a test module holding one parametrized test, `test_suite`."""

    def __init__(self, *args: Any, tfperf_suite: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tfperf_suite = tfperf_suite

    def _getobj(self) -> types.ModuleType:
        # A module made here instead of imported: the YAML file is not Python.
        module = types.ModuleType(f"tfperf_suite_{self.tfperf_suite.name}")
        module.__file__ = str(self.path)

        def test_suite(benchmark, case, mode, batch_size):
            _run_suite_job(benchmark, self.tfperf_suite, case, mode, batch_size)

        test_suite.__tfperf_suite__ = module
        module.tfperf_suite = self.tfperf_suite
        module.test_suite = test_suite
        return module

    def funcnamefilter(self, name: str) -> bool:
        return name == SUITE_TEST_NAME  # whatever python_functions says


def _parametrize_suite(metafunc: pytest.Metafunc, module: types.ModuleType) -> None:
    suite = module.tfperf_suite
    values, ids = [], []
    for case in suite.cases:
        for job in case.jobs():
            values.append((job.case, job.mode, job.batch_size))
            ids.append(job_id(job.case, job.mode, job.batch_size))
    metafunc.parametrize(("case", "mode", "batch_size"), values, ids=ids)


def _run_suite_job(benchmark: Any, suite: Any, case_name: str, mode: str, batch_size: int | None) -> None:
    case = next(c for c in suite.cases if c.name == case_name)
    # In-process (see docs/ci.md): settings that must be made before TensorFlow starts, or need several
    # processes, belong to `tfperf run`'s worker processes.
    if case.distribute:
        pytest.skip(f"{case.name}: distribute: needs its own worker process(es); use tfperf run")
    if case.tf_config:
        pytest.skip(f"{case.name}: tf_config changes process-wide TensorFlow settings; use tfperf run")
    benchmark.group = case.name
    # One step per round: every call forces completion anyway, so a block would amortize nothing but two clock
    # reads, and on a loaded machine a long block is more likely to be preempted than a single step.
    rounds = case.steps * case.repeats
    _measure_case(benchmark, case, mode, batch_size, rounds=rounds, iterations=1)
    benchmark.extra_info.update({"case": case.name, "suite": suite.name})
