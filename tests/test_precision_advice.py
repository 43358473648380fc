"""Precision and judging in the advisor and `tfperf tune`: the CPU's bfloat16 features, the xprof 16-bit
share, the dtype policy from `tf_config`, tune's decision (compare's, with worker processes, and again when
confirmed), the significance of small-batch and threading what-ifs, and advice that fits the case (a
generator's inputs, a baseline that stays best).

No TensorFlow except the one real tune at the end (slow): the rules and the ranking are plain functions over
results, and the search's worker processes are replaced by constructed results where the search itself is
tested.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from builders import processes, result, run_of, tight
from conftest import run_tfperf

from tfperf.analysis import advisor
from tfperf.host.environment import (
    BF16_CPU_FEATURES,
    bf16_features,
    cpu_features,
    cpu_flags,
    host_cpu_features,
)
from tfperf.profile.xprof_tools import parse_overview
from tfperf.results.model import Result, RunResult
from tfperf.results.variants import TuneConfig
from tfperf.run.process import WorkerProcess
from tfperf.run.rounds import Rounds
from tfperf.suite.loader import load_suite
from tfperf.tune.candidates import Candidate, setting_candidates
from tfperf.tune.progress import SilentTuneProgress
from tfperf.tune.ranking import MIN_GAIN, CaseTuning, Row, TuneRun, evaluate
from tfperf.tune.render import NO_CHANGE, render_markdown, summary_lines
from tfperf.tune.search import CaseTuner

# /proc/cpuinfo "flags" lines, shortened: a Sapphire Rapids Xeon (AMX-BF16, AVX512-BF16) and this project's CI
# machine, an AMD EPYC without AVX-512.
XEON_CPUINFO = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile "
    "amx_int8\n\nprocessor\t: 1\nflags\t\t: fpu\n"
)
EPYC_CPUINFO = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B12\n"
    "flags\t\t: fpu sse2 avx avx2 fma bmi2 sha_ni\n"
)


def tuned(
    config: str, settings: dict, median: float, *, values=(1.0, -2.0, 0.5), device: str = "cpu"
) -> Result:
    return result(
        median=median,
        device=device,
        variant=config,
        tune=TuneConfig(settings=settings),
        output_check={"fingerprint": {"values": list(values)}},
    )


# --- the CPU's bfloat16 features -------------------------------------------------------------------------


def test_cpu_features_are_read_from_the_first_processors_flags():
    assert cpu_flags(XEON_CPUINFO)[:2] == ["fpu", "sse2"] and "amx_bf16" in cpu_flags(XEON_CPUINFO)
    assert cpu_features(cpu_flags(XEON_CPUINFO)) == [
        "avx2",
        "fma",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    ]
    assert bf16_features(cpu_features(cpu_flags(XEON_CPUINFO))) == list(BF16_CPU_FEATURES)
    assert cpu_features(cpu_flags(EPYC_CPUINFO)) == ["avx2", "fma"]
    assert bf16_features(cpu_features(cpu_flags(EPYC_CPUINFO))) == []
    assert bf16_features(None) == [] and cpu_flags("") == []


def test_this_machine_records_its_cpu_features():
    features = host_cpu_features()
    if not Path("/proc/cpuinfo").exists():
        assert features is None  # unknown, not "none"
        return
    flags = cpu_flags(Path("/proc/cpuinfo").read_text())
    assert features == cpu_features(flags) and bf16_features(features) == [
        f for f in BF16_CPU_FEATURES if f in flags
    ]


def _case(tmp_path: Path, extra: str = ""):
    src = tmp_path / "s.yaml"
    src.write_text("name: s\ncases:\n  - name: c\n    model: zoo:mlp\n    batch_size: [8]\n" + extra)
    return load_suite(src).cases[0]


def _ids(case, device: str, environment: dict) -> list[str]:
    base = Result(case="c", mode="function", device=device, task="train", batch_size=8, samples=[0.01] * 5)
    return [c.id for c in setting_candidates(case, device, base, environment)]


def test_tune_tries_mixed_bfloat16_on_a_cpu_with_bfloat16_hardware_only(tmp_path):
    case = _case(tmp_path)
    xeon = _ids(case, "cpu", {"cpu_count": 2, "cpu_features": ["avx2", "avx512_bf16", "amx_bf16"]})
    assert "mixed-bfloat16" in xeon
    # Early in the search, before the thread grid: it is the largest change where the hardware has it.
    assert xeon.index("mixed-bfloat16") < min(i for i, c in enumerate(xeon) if c.startswith("threads-"))
    assert "mixed-bfloat16" not in _ids(case, "cpu", {"cpu_count": 2, "cpu_features": ["avx2", "fma"]})
    assert "mixed-bfloat16" not in _ids(case, "cpu", {"cpu_count": 2, "cpu_features": None})
    assert "mixed-float16" not in xeon


def test_tune_sees_the_gpus_its_workers_reported(tmp_path):
    """The parent imports no TensorFlow, so its own environment lists no GPU: the search must use what the
    baseline worker's TensorFlow reported, or mixed_float16 is never offered."""
    case = _case(tmp_path)
    tuner = CaseTuner(case, tmp_path / "out", 60.0, {"cpu_count": 2}, SilentTuneProgress(), "python3")
    assert "mixed-float16" not in _ids(case, "gpu:0", tuner.search_environment())
    tuner.tensorflow_env = {"tensorflow": "2.21.0", "gpus": [{"name": "A100", "compute_capability": "8.0"}]}
    assert "mixed-float16" in _ids(case, "gpu:0", tuner.search_environment())


# --- the advisor's mixed-precision rule ------------------------------------------------------------------


def test_the_profilers_16_bit_share_is_read_out_of_xprofs_overview():
    overview = [
        {
            "cols": [],
            "rows": [],
            "p": {
                "host_op_time_eager_percent": "0.0%",
                "device_compute_16bit_percent": "62.5%",
                "device_compute_32bit_percent": "37.5%",
            },
        }
    ]
    got = parse_overview(overview)["overview"]
    assert got["device_compute_16bit_percent"] == 62.5 and got["device_compute_32bit_percent"] == 37.5
    gpu = {"gpus": [{"name": "A100", "compute_capability": "8.0"}]}
    r = result(median=0.010, device="gpu:0", profile={"overview": got})
    assert advisor.rule_mixed_precision(run_of(r, environment=gpu)) == []


@pytest.mark.parametrize(
    "setup",
    [
        {"tf_config": {"mixed_precision": "mixed_float16"}},  # the case's tf_config asked for it
        {"tf_config_applied": {"mixed_precision": "mixed_bfloat16"}},  # the worker applied it
        {"model_compute_dtype": "float16"},  # the worker read the model's compute dtype
    ],
)
def test_the_rule_sees_the_policy_the_case_ran_under(setup):
    gpu = {"gpus": [{"name": "A100", "compute_capability": "8.0"}]}
    assert (
        advisor.rule_mixed_precision(
            run_of(result(median=0.010, device="gpu:0", setup=setup), environment=gpu)
        )
        == []
    )
    # ...and a float32 policy, applied, is no reason to be silent.
    f32 = {"tf_config_applied": {"mixed_precision": "float32"}, "model_compute_dtype": "float32"}
    assert (
        len(
            advisor.rule_mixed_precision(
                run_of(result(median=0.010, device="gpu:0", setup=f32), environment=gpu)
            )
        )
        == 1
    )


XEON_ENV = {"cpu_features": ["avx512_bf16", "amx_bf16"], "cpu_count": 2}


def test_measured_bfloat16_on_a_cpu_is_suggested_with_its_output_difference():
    base = tuned("baseline", {}, 0.010)
    bf16 = tuned("mixed-bfloat16", {"mixed_precision": "mixed_bfloat16"}, 0.0064, values=(1.0, -2.01, 0.5))
    ((r, s),) = advisor.rule_mixed_precision(run_of(base, bf16, environment=XEON_ENV))
    assert r is base and s.code == "mixed-precision"
    assert 'set_global_policy("mixed_bfloat16")' in s.fix
    assert "a CPU with amx_bf16, avx512_bf16" in s.evidence and "6.4 ms/step vs 10 ms/step" in s.evidence
    assert s.evidence_data["speedup"] == pytest.approx(1.5625, rel=1e-3)
    assert s.evidence_data["output_difference"] == pytest.approx(0.005) and "0.005" in s.evidence


def test_measured_bfloat16_is_not_suggested_when_slower_tied_or_changing_the_outputs():
    base = tuned("baseline", {}, 0.010)
    for bf16 in (
        tuned("mixed-bfloat16", {"mixed_precision": "mixed_bfloat16"}, 0.018),  # emulated: slower
        tuned("mixed-bfloat16", {"mixed_precision": "mixed_bfloat16"}, 0.0098),  # within 5%
        tuned("mixed-bfloat16", {"mixed_precision": "mixed_bfloat16"}, 0.006, values=(1.0, -2.2, 0.5)),
    ):
        assert advisor.rule_mixed_precision(run_of(base, bf16, environment=XEON_ENV)) == [], bf16.median_s
    # Faster, but inside the spread the baseline showed between its own worker processes.
    spread_base = processes(
        0.010,
        0.0135,
        0.0085,
        variant="baseline",
        tune=TuneConfig(),
        output_check={"fingerprint": {"values": [1.0, -2.0, 0.5]}},
    )
    bf16 = tuned("mixed-bfloat16", {"mixed_precision": "mixed_bfloat16"}, 0.0085)
    assert advisor.rule_mixed_precision(run_of(spread_base, bf16, environment=XEON_ENV)) == []


def test_a_measured_float16_loss_on_a_tensor_core_gpu_silences_the_unmeasured_advice():
    gpu = {"gpus": [{"name": "A100", "compute_capability": "8.0"}]}
    base = tuned("baseline", {}, 0.010, device="gpu:0")
    assert (
        len(advisor.rule_mixed_precision(run_of(base, environment=gpu))) == 1
    )  # not measured: the GPU says so
    slower = tuned("mixed-float16", {"mixed_precision": "mixed_float16"}, 0.011, device="gpu:0")
    assert advisor.rule_mixed_precision(run_of(base, slower, environment=gpu)) == []


# --- small-batch and threading what-ifs: significance and spread ------------------------------------------


def test_small_batch_needs_a_significant_gain_beyond_the_processes_spread():
    # 15% more samples/s at batch 128, but the batch-128 job's own processes were 40% apart.
    prev = result(median=0.010, batch_size=64)
    m = 128 / (6400 * 1.15)
    spread = processes(m, m * 1.4, m * 0.98, batch_size=128)
    assert advisor.rule_small_batch(run_of(prev, spread)) == []
    ((_, s),) = advisor.rule_small_batch(run_of(prev, result(median=m, batch_size=128)))
    assert s.evidence_data["p_value"] is not None and "p<" in s.evidence
    # Interleaved samples: the medians differ by 15% but the U test cannot tell them apart.
    wide = Result(
        case="c", mode="function", device="cpu", task="train", batch_size=128, samples=tight(m, spread=1.5)
    )
    assert (
        advisor.rule_small_batch(
            run_of(
                Result(
                    case="c",
                    mode="function",
                    device="cpu",
                    task="train",
                    batch_size=64,
                    samples=tight(0.010, spread=1.5),
                ),
                wide,
            )
        )
        == []
    )


def test_a_threading_what_if_needs_help_significance_and_more_than_the_jobs_spread():
    w = {
        "change": "intra_op threads=1",
        "median_s": 0.008,
        "baseline_median_s": 0.010,
        "speedup": 1.25,
        "settings": {"intra_op_threads": 1},
    }
    assert len(advisor.rule_threading(run_of(result(median=0.010, what_if=[w])))) == 1
    # The re-run's own verdict said it did not help, or its test was not significant:
    assert advisor.rule_threading(run_of(result(median=0.010, what_if=[{**w, "helped": False}]))) == []
    assert advisor.rule_threading(run_of(result(median=0.010, what_if=[{**w, "p_value": 0.3}]))) == []
    # 1.25x, but the job itself moved 40% between its worker processes.
    assert advisor.rule_threading(run_of(processes(0.010, 0.014, 0.0101, what_if=[w]))) == []


# --- advice that fits ------------------------------------------------------------------------------------


def test_an_input_bound_generator_gets_generator_advice_not_a_dataset_map():
    # A `function:` case: no batch size, its inputs a Python iterable (`setup.input_source: inputs`).
    for setup in ({"input_source": "inputs"}, None):
        gen = result(median=0.010, batch_size=None, input_wait_fraction=0.6, setup=setup)
        ((_, s),) = advisor.rule_input_bound(run_of(gen))
        assert "from_generator" in s.fix and "dataset.map" not in s.fix, s.fix
        assert "Python iterable" in s.evidence and s.evidence_data["python_inputs"] is True
    pipeline = result(median=0.010, input_wait_fraction=0.6, setup={"input_source": "pipeline"})
    ((_, s),) = advisor.rule_input_bound(run_of(pipeline))
    assert "dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)" in s.fix and "from_generator" not in s.fix


BASE = Candidate("baseline", "baseline", modes=("function", "xla"))


def _tuning(*rows: Row) -> CaseTuning:
    t = CaseTuning("c", 60.0, rows=list(rows), baseline=rows[0])
    evaluate(t)
    return t


def _tune_result(median: float, **kw) -> Result:
    kw.setdefault("output_check", {"fingerprint": {"values": [1.0, -2.0, 0.5]}})
    return result(median=median, batch_size=kw.pop("batch_size", 4), **kw)


def test_when_the_baseline_stays_best_tune_prints_no_change():
    base = Row(BASE, _tune_result(0.010))
    same = Row(
        Candidate("grappler-off", "grappler", {"grappler": {"disable_meta_optimizer": True}}),
        _tune_result(0.0101),
    )
    t = _tuning(base, same)
    assert t.best is None and t.recommended is base
    lines = summary_lines(t)
    assert NO_CHANGE in lines and not any("dataset.batch(4)" in line for line in lines), lines
    assert t.to_json()["recommended_code"] == []
    md = render_markdown(TuneRun(RunResult(suite={"name": "s"}, environment={}), [t], Path(".")))
    assert "```python" not in md and NO_CHANGE in md


def test_a_winner_at_the_baselines_batch_size_prints_only_what_changes():
    base = Row(BASE, _tune_result(0.010))
    threads = Row(
        Candidate("threads-1x1", "threads", {"intra_op_threads": 1, "inter_op_threads": 1}),
        _tune_result(0.008),
    )
    t = _tuning(base, threads)
    assert t.best is threads
    code = t.recommended_code()
    assert "tf.config.threading.set_intra_op_parallelism_threads(1)" in code
    assert not any("dataset.batch(" in line or line == "step = tf.function(step)" for line in code), code
    bigger = Row(BASE, _tune_result(0.012, batch_size=8))  # 1.67x per sample, in the baseline's own worker
    t = _tuning(Row(BASE, _tune_result(0.010)), bigger)
    assert t.best is bigger and t.recommended_code() == ["dataset = dataset.batch(8)"]


# --- tune judges as compare does -------------------------------------------------------------------------


def test_a_configuration_inside_the_baselines_process_spread_is_not_a_winner():
    # 12% faster and significant on pooled samples, but one of the baseline's own processes was 30% slower
    # than the others (its pooled samples are not noisy: three of four processes agree).
    fp = {"fingerprint": {"values": [1.0]}}
    base = Row(BASE, processes(0.010, 0.010, 0.0101, 0.013, batch_size=4, output_check=fp))
    config = Row(
        Candidate("threads-1x1", "threads", {"intra_op_threads": 1}),
        processes(0.0089, 0.0088, 0.0090, batch_size=4, output_check=fp),
    )
    t = _tuning(base, config)
    assert config.p_value is not None and config.p_value < 0.01 and config.speedup > 1 + MIN_GAIN
    assert config.verdict == "inconclusive" and "spread" in config.reason and t.best is None


class ConstructedTuner(CaseTuner):
    """The search, confirmation and rounds of `CaseTuner`, with each worker process's results constructed from
    a table of medians instead of run: what is under test is how tune judges and schedules, not TensorFlow."""

    def __init__(
        self, *args, medians: dict[str, float], tensorflow_env: dict | None = None, device: str = "cpu"
    ):
        super().__init__(*args)
        self.medians, self.device, self.calls = medians, device, []
        self.reported_env = tensorflow_env or {}

    def rounds(self) -> Rounds:
        return ConstructedRounds(self)


class ConstructedRounds(Rounds):
    """Tune's real rounds (round 0, later processes, merging), with each process's results constructed."""

    def __init__(self, tuner: ConstructedTuner):
        super().__init__(tuner.python)
        self.tuner = tuner

    def execute(self, proc: WorkerProcess) -> None:
        tuner, process_no = self.tuner, proc.process_no
        proc.tensorflow = tuner.reported_env
        for part in proc.parts:
            config = part.case.variant
            tuner.calls.append((config, process_no))
            for i in part.indices:
                job = part.job(i)
                median = tuner.medians.get(config, tuner.medians["baseline"]) * (1 + 0.01 * process_no)
                if job.mode == "xla":
                    median *= 1.02
                part.finished[i] = Result.for_job(
                    dataclasses.replace(job, device=tuner.device),
                    samples=tight(median * job.batch_size / 8, n=8),
                    repeat_sizes=[8],
                    repeat_process=[process_no],
                    wall_s=0.01,
                    output_check={"fingerprint": {"values": [1.0, -2.0, 0.5]}} if process_no == 0 else None,
                )
        proc.wall_s = 0.02


def _tuner(tmp_path: Path, medians: dict[str, float], environment: dict, **kw) -> ConstructedTuner:
    case = _case(tmp_path, "    processes: 3\n")
    return ConstructedTuner(
        case, tmp_path / "out", 600.0, environment, SilentTuneProgress(), "python3", medians=medians, **kw
    )


def test_tune_times_every_configuration_in_the_cases_processes_and_confirms_in_alternation(tmp_path):
    tuner = _tuner(
        tmp_path,
        {"baseline": 0.010, "mixed-bfloat16": 0.0064, "mixed-bfloat16-confirm": 0.0064},
        {"cpu_count": 2, "cpu_features": ["avx512_bf16", "amx_bf16"]},
    )
    t = tuner.run()
    assert t.best is not None and t.best.candidate.id == "mixed-bfloat16"
    assert t.confirmation["status"] == "confirmed" and t.confirmation["verdict"] == "improvement"
    # Three processes per configuration, each result's samples from all three.
    assert {r.process_count for r in tuner.results} == {3}
    for config in {c for c, _ in tuner.calls}:
        assert sorted(p for c, p in tuner.calls if c == config) == [0, 1, 2], config
    # The confirmation alternates baseline and winner, round by round.
    confirm = [c for c in tuner.calls if c[0].endswith("-confirm")]
    assert confirm == [
        ("baseline-confirm", 0),
        ("mixed-bfloat16-confirm", 0),
        ("baseline-confirm", 1),
        ("mixed-bfloat16-confirm", 1),
        ("baseline-confirm", 2),
        ("mixed-bfloat16-confirm", 2),
    ]


def test_a_winner_must_clear_the_threshold_again_when_re_measured(tmp_path):
    # 1.56x in the search; only 2% faster (significantly) when re-measured: not confirmed, the baseline stays.
    tuner = _tuner(
        tmp_path,
        {"baseline": 0.010, "mixed-bfloat16": 0.0064, "mixed-bfloat16-confirm": 0.0098},
        {"cpu_count": 2, "cpu_features": ["amx_bf16"]},
    )
    t = tuner.run()
    assert t.confirmation["status"] == "not confirmed" and t.confirmation["p_value"] < 0.01
    assert t.best is None and t.unconfirmed.candidate.id == "mixed-bfloat16"
    assert NO_CHANGE in summary_lines(t)


def test_tune_offers_mixed_float16_on_a_tensor_core_gpu_its_worker_reported(tmp_path):
    tuner = _tuner(
        tmp_path,
        {"baseline": 0.010, "mixed-float16": 0.006, "mixed-float16-confirm": 0.006},
        {"cpu_count": 2},
        tensorflow_env={"gpus": [{"name": "A100", "compute_capability": "8.0"}]},
        device="gpu:0",
    )
    t = tuner.run()
    assert "mixed-float16" in {c for c, _ in tuner.calls}
    assert t.best is not None and t.best.candidate.settings == {"mixed_precision": "mixed_float16"}
    assert 'keras.mixed_precision.set_global_policy("mixed_float16")' in t.recommended_code()


# --- one real tune: processes ----------------------------------------------------------------------------


@pytest.mark.workers
def test_a_real_tune_times_each_configuration_in_the_cases_processes(tmp_path):
    suite = tmp_path / "small.yaml"
    suite.write_text(
        "name: small\n"
        "defaults: {steps: 8, repeats: 2, warmup_steps: 2, profile: false, timeout_s: 120, processes: 2}\n"
        "cases:\n"
        "  - name: mlp\n"
        "    model: zoo:mlp\n"
        "    params: {hidden: 32}\n"
        "    batch_size: [8]\n"
    )
    out = tmp_path / "tune"
    # On a loaded 2-core machine a worker takes ~25 s: the budget pays for the baseline's two processes.
    proc = run_tfperf("tune", str(suite), "--budget-s", "80", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (case,) = json.loads((out / "tune.json").read_text())["cases"]
    baseline = next(r for r in case["ranking"] if r["config"] == "baseline" and r["mode"] == "function")
    assert baseline["processes"] == 2, baseline
    from tfperf.results.model import load_results

    first = next(
        r for r in load_results(out).results if (r.case, r.variant, r.mode) == ("mlp", "baseline", "function")
    )
    assert first.process_count == 2 and set(first.repeat_process) == {0, 1}
    assert len(first.samples) == 2 * 2 * 8  # two processes of two repeats of eight steps
    if case["best"] is None:
        assert case["recommended_code"] == [] and NO_CHANGE in (out / "tune.md").read_text()
