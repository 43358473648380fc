"""tf.distribute: mirrored over 2 logical CPU devices and multi_worker over 2 local workers, through the real
CLI and real TensorFlow; a killed or hanging worker; and the arithmetic and checks that need no TensorFlow."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from conftest import run_tfperf

from tfperf.distributed.faults import KILL_ENV
from tfperf.distributed.measure import scaling_efficiency
from tfperf.distributed.setup import tf_config_task
from tfperf.distributed.trace import allreduce_share_of_op_stats
from tfperf.host import noise
from tfperf.host.processes import exit_description
from tfperf.measure.timing import WARMUP_MIN_S
from tfperf.results.model import JobSpec, Result
from tfperf.run.cluster import (
    Worker,
    _supervise,
    combine,
    free_ports,
    leftover_processes,
    losses_agree,
    run_local_cluster,
    worker_gpu_env,
)
from tfperf.run.process import Child
from tfperf.suite.distribute import DistributeError, DistributeSpec
from tfperf.suite.spec import CaseSpec

PER_REPLICA = 16
TINY = dict(warmup_steps=1, steps=3, repeats=2)

SUITE = f"""
name: dist-test
defaults:
  model: zoo:mlp
  params: {{hidden: 32, layers: 1}}
  batch_size: {PER_REPLICA}
  warmup_steps: {TINY["warmup_steps"]}
  steps: {TINY["steps"]}
  repeats: {TINY["repeats"]}
  timeout_s: 240
cases:
  - name: mirrored
    modes: [function, xla, eager]
    profile: false
    distribute: {{strategy: mirrored, devices: 2}}
  - name: multi
    modes: [function]
    profile: true
    distribute: {{strategy: multi_worker, workers: 2}}
"""


def _no_descendants() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    """One real `tfperf run` of a two-case distributed suite (the two cases share the ~25 s of start-up)."""
    tmp = tmp_path_factory.mktemp("dist")
    suite = tmp / "dist.yaml"
    suite.write_text(SUITE)
    proc = run_tfperf("run", str(suite), "--out", str(tmp / "out"), timeout=400)
    results = json.loads((tmp / "out" / "results.json").read_text())
    by_key = {(r["case"], r["mode"]): r for r in results["results"]}
    return SimpleNamespace(proc=proc, results=by_key, out=tmp / "out")


def _assert_scaled(r: dict) -> None:
    assert r["status"] == "ok", r["error"]
    assert r["replicas"] == 2
    assert r["batch_size"] == PER_REPLICA
    assert r["global_batch_size"] == 2 * PER_REPLICA
    # Throughput counts the global batch: samples/s = global batch / median step.
    assert r["throughput"]["samples_per_s"] == pytest.approx(2 * PER_REPLICA / r["step_time_s"]["median"])
    base = r["distributed"]["baseline"]
    assert base["replicas"] == 1 and base["global_batch_size"] == PER_REPLICA
    expected = r["throughput"]["samples_per_s"] / (2 * base["samples_per_s"])
    assert r["scaling_efficiency"] == pytest.approx(expected)
    # The baseline's figures are its own samples' (median, then global batch over it), so the efficiency is
    # one-replica step time over two-replica step time, halved: two replicas sharing two cores stay below 2.
    assert base["median_s"] == pytest.approx(statistics.median(base["samples"]))
    assert base["samples_per_s"] == pytest.approx(PER_REPLICA / base["median_s"])
    assert r["scaling_efficiency"] == pytest.approx(base["median_s"] / r["step_time_s"]["median"])
    assert 0 < r["scaling_efficiency"] < 2
    assert len(r["samples"]) == TINY["steps"] * TINY["repeats"]
    assert r["tracing_count"] == 1  # optimizer built before the first call: one trace, no retrace
    assert 0 <= r["input_wait_fraction"] < 1


@pytest.mark.workers
def test_mirrored_two_logical_cpu_devices(suite_run):
    r = suite_run.results[("mirrored", "function")]
    _assert_scaled(r)
    assert r["distributed"]["strategy"] == "mirrored"
    assert [d.rsplit("/", 1)[-1] for d in r["distributed"]["replica_devices"]] == [
        "device:CPU:0",
        "device:CPU:1",
    ]
    # Each timed step waited for both replicas' own losses, not only the reduced one.
    assert r["timing"]["sync"] == "fetch every replica's loss" and r["distributed"]["synced_replicas"] == 2
    # Both replicas' copies of the weights give the same loss on a fixed batch after the same steps.
    probe = r["distributed"]["probe_losses"]
    assert len(probe) == 2 and math.isfinite(probe[0]) and probe[0] == probe[1]


@pytest.mark.workers
@pytest.mark.parametrize("case", ["mirrored", "multi"])
def test_a_distributed_result_is_timed_and_carries_its_process_noise_like_a_harness_result(suite_run, case):
    r = suite_run.results[(case, "function")]
    t = r["timing"]
    # The timing core's loop: per step, the harness's warm-up rule (warmup_steps 1 is not WARMUP_MIN_S, so it
    # went on), the replica sync's measured cost, the collector off, the samples' repeats.
    assert (t["method"], t["block_size"]) == ("per_step", 1) and t["gc_disabled_while_timing"]
    assert t["warmup_steps_run"] > TINY["warmup_steps"] and t["warmup_s"] >= WARMUP_MIN_S
    assert t["sync_cost_s"] > 0 and r["repeat_sizes"] == [TINY["steps"]] * TINY["repeats"]
    # The process's noise record (worker 0's with several workers), the one a harness result carries, over
    # both passes' timed steps: the distributed pass's warm-up and samples and the baseline's samples.
    record = t["noise"]
    assert set(record) == set(noise.finish(noise.start(), 0, 0))
    timed = t["warmup_s"] + sum(r["samples"]) + sum(r["distributed"]["baseline"]["samples"])
    assert timed - 1e-6 <= record["timed_s"] <= r["wall_s"]


@pytest.mark.workers
def test_eager_after_function_under_the_same_mirrored_devices(suite_run):
    """Jobs of one case share the worker process. A second MirroredStrategy over the same devices would number
    its collective instances from the start again and collide with the first's ("Shape mismatch in the
    collective instance 100"); the eager job after function and xla must run."""
    r = suite_run.results[("mirrored", "eager")]
    assert r["status"] == "ok", r["error"]
    assert r["replicas"] == 2 and r["global_batch_size"] == 2 * PER_REPLICA
    assert (
        len(r["samples"]) == TINY["steps"] * TINY["repeats"] and r["tracing_count"] is None
    )  # eager: no trace
    assert r["scaling_efficiency"] > 0


@pytest.mark.workers
def test_xla_under_mirrored_is_a_clear_failure(suite_run):
    r = suite_run.results[("mirrored", "xla")]
    assert r["status"] == "failed"
    assert "XLA" in r["error"]["message"] and "mirrored" in r["error"]["message"]
    assert "function" in r["error"]["hint"]
    assert r["replicas"] == 2 and r["global_batch_size"] == 2 * PER_REPLICA
    assert (
        r["distributed"]["baseline"]["samples_per_s"] > 0
    )  # XLA on one device worked; only the mirrored step failed
    assert suite_run.proc.returncode == 1  # a failed result fails the run


@pytest.mark.workers
def test_multi_worker_two_local_workers(suite_run):
    r = suite_run.results[("multi", "function")]
    _assert_scaled(r)
    workers = r["distributed"]["per_worker"]
    assert [w["index"] for w in workers] == [0, 1]
    assert len({w["pid"] for w in workers}) == 2 and len({w["address"] for w in workers}) == 2
    # Identical loss on both workers after the same steps: the reduced training loss and the loss of a fixed
    # batch on each worker's own copy of the weights.
    assert workers[0]["final_loss"] == workers[1]["final_loss"]
    assert workers[0]["probe_losses"] == workers[1]["probe_losses"]
    assert r["distributed"]["losses_identical"] is True
    # Worker 0's trace of the distributed steps (only worker 0's: the note says why), with the read-out and
    # the all-reduce share; the gradient all-reduce is part of every step.
    prof = r["profile"]
    assert prof["capture"] == "worker0" and prof["workers_traced"] == [0] and "worker 0" in prof["note"]
    traces = sorted(Path(prof["logdir"]).glob("plugins/profile/*/*.xplane.pb"))
    assert len(traces) == 1 and not prof.get("readout_error"), prof.get("readout_error")
    assert prof["top_ops"], prof
    assert 0 < prof["allreduce_share"] <= 1, prof.get("allreduce_by_host")
    assert leftover_processes([w["pid"] for w in workers]) == []
    assert "global batch" in suite_run.proc.stdout and "scaling" in suite_run.proc.stdout


def _multi_case(**kw) -> tuple[CaseSpec, JobSpec]:
    case = CaseSpec(
        name="mw",
        model="zoo:mlp",
        params={"hidden": 32, "layers": 1},
        modes=("function",),
        batch_sizes=(PER_REPLICA,),
        profile=False,
        distribute={"strategy": "multi_worker", "workers": 2},
        **{**TINY, **kw},
    )
    return case, JobSpec("mw", "function", "cpu", "train", PER_REPLICA)


@pytest.mark.workers
def test_killed_worker_fails_naming_it_and_leaves_no_process(tmp_path):
    case, job = _multi_case(timeout_s=180, steps=50)
    env = {**os.environ, KILL_ENV: "1:2"}  # worker 1 SIGKILLs itself after 2 timed steps
    r = run_local_cluster(case, job, 2, work_dir=tmp_path, env=env)
    assert r.status == "failed"
    assert r.error.worker == 1 and r.error.returncode == -9
    assert "worker 1" in r.error.message and "SIGKILL" in r.error.message
    assert len(r.distributed.worker_pids) == 2
    assert leftover_processes(r.distributed.worker_pids) == []
    assert _no_descendants() == []


def test_dead_worker_is_blamed_over_the_peer_that_lost_it(tmp_path):
    """The race CI hit: worker 1 is SIGKILLed, worker 0 reports UnavailableError from its all-reduce, and both
    have ended by the time the supervisor polls. The dead worker is the cause; worker 0 is listed as a
    consequence."""
    case, job = _multi_case()
    peer = Result.not_run(
        job, "failed", "UnavailableError", "Graph execution error: Collective ops is aborted"
    )
    (tmp_path / "w0.json").write_text(json.dumps(peer.to_json()))
    # Workers are Child processes, as the supervisor starts them; timeit runs a statement with no script.
    reporter = Child("timeit", ["-n", "1", "pass"], tmp_path / "w0.log", sys.executable)
    victim = Child(
        "timeit", ["-n", "1", "-s", "import time", "time.sleep(60)"], tmp_path / "w1.log", sys.executable
    )
    victim.kill()
    reporter.proc.wait(), victim.proc.wait()
    procs = [
        Worker(0, "127.0.0.1:1", reporter, tmp_path / "w0.json", tmp_path / "w0.log"),
        Worker(1, "127.0.0.1:2", victim, tmp_path / "w1.json", tmp_path / "w1.log"),
    ]
    r = _supervise(case, job, procs, time.monotonic(), timeout_s=30)
    assert r.status == "failed" and r.error.type == "WorkerCrash"
    assert r.error.worker == 1 and r.error.returncode == -9 and "SIGKILL" in r.error.message
    assert r.distributed.also_failed_workers == [0]


@pytest.mark.workers
def test_hanging_worker_times_out_naming_it_and_leaves_no_process(tmp_path):
    case, job = _multi_case()
    env = {
        **os.environ,
        KILL_ENV: "1:hang",
    }  # worker 1 never joins; worker 0 waits for it in the cluster start-up
    started = time.monotonic()
    r = run_local_cluster(case, job, 2, work_dir=tmp_path, env=env, timeout_s=6)
    assert time.monotonic() - started < 60
    assert r.status == "timeout"
    assert 1 in r.error.workers and "worker 1" in r.error.message
    assert leftover_processes(r.distributed.worker_pids) == []
    assert _no_descendants() == []


# ---- no TensorFlow below -----------------------------------------------------------------------------------


def test_distribute_spec_defaults_and_errors():
    assert DistributeSpec.from_dict({"strategy": "mirrored"}) == DistributeSpec("mirrored", 2, 1)
    assert DistributeSpec.from_dict({"strategy": "multi_worker", "workers": 3, "devices": None}).workers == 3
    for bad, needle in [
        ({"strategy": "parameter_server"}, "strategy"),
        ({"strategy": "mirrored", "workers": 2}, "multi_worker"),
        ({"strategy": "mirrored", "devices": 0}, "devices"),
        ({"strategy": "one_device", "devices": 2}, "one_device"),
        ({"strategy": "mirrored", "gpus": 2}, "gpus"),
    ]:
        with pytest.raises(DistributeError, match=needle):
            DistributeSpec.from_dict(bad)


def test_scaling_efficiency_arithmetic():
    assert scaling_efficiency(2000.0, 1000.0, 2) == pytest.approx(1.0)
    assert scaling_efficiency(1500.0, 1000.0, 2) == pytest.approx(0.75)
    assert scaling_efficiency(1500.0, 0.0, 2) is None


def test_tf_config_task(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert tf_config_task() is None
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps({"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 2}}),
    )
    assert tf_config_task() == (2, 3)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(DistributeError, match="TF_CONFIG"):
        tf_config_task()


def test_losses_agree_and_combine_flags_divergence():
    same = [{"final_loss": 0.5, "probe_losses": [1.25]}, {"final_loss": 0.5, "probe_losses": [1.25]}]
    assert losses_agree(same) == (True, "")
    ok, why = losses_agree([same[0], {"final_loss": 0.5, "probe_losses": [1.3]}])
    assert not ok and "probe_losses" in why
    assert not losses_agree([same[0], {"final_loss": None, "probe_losses": [1.25]}])[0]

    job = JobSpec("c", "function", "cpu", "train", 8)
    results = [
        Result(
            "c",
            "function",
            "cpu",
            "train",
            8,
            samples=[0.01, 0.02],
            distributed={"final_loss": 0.5, "probe_losses": [p]},
        )
        for p in (1.25, 1.5)
    ]
    procs = [
        SimpleNamespace(index=i, proc=SimpleNamespace(pid=100 + i), address=f"127.0.0.1:{i}")
        for i in range(2)
    ]
    r = combine(job, results, procs, 1.0)
    assert r.status == "failed" and r.error.type == "WorkersDiverged"


def test_exit_description_and_ports():
    assert exit_description(-9) == "killed by SIGKILL"
    assert exit_description(3) == "exited with code 3"
    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(1024 <= p < 65536 for p in ports)


def test_allreduce_share_counts_collective_self_time_of_the_op_table():
    """framework_op_stats as xprof writes it: the op table including IDLE, then the same without IDLE
    (ignored). The share is of host and device op self time, IDLE excluded."""
    cols = ["rank", "host_or_device", "type", "operation", "occurrences", "total_self_time"]

    def table(rows):
        return {
            "cols": [{"id": c, "label": c, "type": "string"} for c in cols],
            "rows": [{"c": [{"v": v} for v in r]} for r in rows],
        }

    with_idle = table(
        [
            [1, "Host", "IDLE", "IDLE", 1, 5000.0],
            [2, "Host", "CollectiveReduceV2", "optimizer/CollectiveReduceV2", 4, 300.0],
            [3, "Device", "NcclAllReduce", "optimizer/NcclAllReduce", 4, 100.0],
            [4, "Host", "_MklMatMul", "forward/dense/MatMul", 4, 600.0],
            [5, "Other", "CollectiveReduceV2", "elsewhere", 1, 9999.0],
        ]
    )
    without_idle = table([[1, "Host", "_MklMatMul", "forward/dense/MatMul", 4, 1.0]])
    out = allreduce_share_of_op_stats([with_idle, without_idle])
    assert out == {"share": pytest.approx(0.4), "collective_us": 400.0, "total_us": 1000.0}
    assert allreduce_share_of_op_stats(table([[1, "Host", "IDLE", "IDLE", 1, 10.0]]))["share"] is None
    with pytest.raises(ValueError, match="op table"):
        allreduce_share_of_op_stats([{"cols": [{"id": "rank"}], "rows": []}])


def test_distributed_modules_do_not_import_tensorflow():
    code = (
        "import sys, tfperf.run.cluster, tfperf.distributed.job, tfperf.distributed.measure, "
        "tfperf.distributed.trace; print('tensorflow' in sys.modules)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


JOIN_SUITE = f"""
name: join-test
cases:
  - name: joined
    model: zoo:mlp
    params: {{hidden: 32, layers: 1}}
    batch_size: {PER_REPLICA}
    modes: [function]
    warmup_steps: {TINY["warmup_steps"]}
    steps: {TINY["steps"]}
    repeats: {TINY["repeats"]}
    profile: false
    timeout_s: 180
    distribute: {{strategy: multi_worker, workers: 2}}
"""


@pytest.mark.workers
def test_tf_config_set_joins_that_cluster_instead_of_launching(tmp_path):
    """What a user runs on a real cluster: the same `tfperf run` on every machine, each with its TF_CONFIG."""
    import subprocess

    suite = tmp_path / "join.yaml"
    suite.write_text(JOIN_SUITE)
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    try:
        for i in range(2):
            tf_config = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}})
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tfperf", "run", str(suite), "--out", str(tmp_path / f"out{i}")],
                    env={**os.environ, "TF_CONFIG": tf_config},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
            )
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = [
        json.loads((tmp_path / f"out{i}" / "results.json").read_text())["results"][0] for i in range(2)
    ]
    for i, r in enumerate(results):
        assert r["status"] == "ok", (r["error"], outputs[i][-2000:])
        assert r["replicas"] == 2 and r["global_batch_size"] == 2 * PER_REPLICA
        assert (
            r["distributed"]["worker_index"] == i and r["distributed"]["per_worker"] is None
        )  # joined: nothing launched
    assert results[0]["distributed"]["final_loss"] == results[1]["distributed"]["final_loss"]
    assert results[0]["distributed"]["probe_losses"] == results[1]["distributed"]["probe_losses"]
    assert results[0]["scaling_efficiency"] > 0  # worker 0 measured the baseline; the others waited for it
    assert results[1]["scaling_efficiency"] is None


@pytest.mark.workers
def test_workers_die_with_a_killed_supervisor(tmp_path):
    """The runner SIGKILLs a case worker past its timeout: the cluster workers it launched must not outlive
    it."""
    import signal
    import subprocess

    script = (
        "import sys; from tfperf.run.cluster import run_local_cluster; from tfperf.suite.spec import "
        "CaseSpec; "
        "from tfperf.results.model import JobSpec; "
        "case = CaseSpec(name='mw', model='zoo:mlp', distribute={'strategy': 'multi_worker', 'workers': 2}, "
        "batch_sizes=(8,), steps=1000, repeats=100, profile=False); "
        "run_local_cluster(case, JobSpec('mw', 'function', 'cpu', 'train', 8), 2, "
        f"work_dir={str(tmp_path)!r})"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = [
                p
                for p in psutil.Process(supervisor.pid).children()
                if "tfperf.distributed.job" in " ".join(p.cmdline())
            ]
        assert len(workers) == 2
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(timeout=10)
        gone, alive = psutil.wait_procs(workers, timeout=15)
        assert alive == []
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


@pytest.mark.workers
def test_a_worker_dying_in_start_up_restarts_the_cluster_once(tmp_path):
    case, job = _multi_case(timeout_s=180)
    env = {
        **os.environ,
        KILL_ENV: f"1:abort-once:{tmp_path / 'aborted'}",
    }  # worker 1 aborts before joining, once
    r = run_local_cluster(case, job, 2, work_dir=tmp_path, env=env)
    assert (tmp_path / "aborted").exists()
    assert r.status == "ok", r.error
    restarts = r.distributed.cluster_restarts
    assert len(restarts) == 1 and "worker 1" in restarts[0].message and "SIGABRT" in restarts[0].message
    assert leftover_processes([w.pid for w in r.distributed.per_worker]) == []
    assert _no_descendants() == []


# Runs in a fresh interpreter: the two logical CPU devices must exist before TensorFlow initializes its
# devices.
MIRRORED_FLOAT16 = r"""
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
from tfperf.distributed.setup import configure_process
configure_process({"strategy": "mirrored", "devices": 2})
from tfperf.distributed.measure import measure_distributed
from tfperf.measure.tf_config import apply_tf_config
from tfperf.results.model import JobSpec
from tfperf.suite.spec import CaseSpec

settings = {"mixed_precision": "mixed_float16"}
apply_tf_config(settings)  # as a worker does at start; each pass's build clears the Keras session after this
case = CaseSpec(name="m16", model="zoo:mlp", params={"hidden": 16, "layers": 1}, batch_sizes=(8,),
                warmup_steps=1, steps=3, repeats=1, profile=False,
                distribute={"strategy": "mirrored", "devices": 2}, tf_config=settings)
r = measure_distributed(case, JobSpec("m16", "function", "cpu", "train", 8))
print("RESULT " + json.dumps(r.to_json(), default=str))
"""


@pytest.mark.workers
def test_mirrored_float16_is_loss_scaled_and_syncs_every_replica():
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_FLOAT16],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    r = json.loads(lines[-1].removeprefix("RESULT "))
    assert r["status"] == "ok", r["error"]
    setup, dist = r["setup"], r["distributed"]
    assert setup["model_compute_dtype"] == "float16" and setup["loss_scale_optimizer"] is True
    assert setup["tf_config_applied"]["mixed_precision"] == "mixed_float16"
    assert r["replicas"] == 2 and dist["synced_replicas"] == 2
    assert r["timing"]["sync"] == "fetch every replica's loss"
    # Loss-scaled updates stay synchronous: both replicas' weights give the same finite loss.
    assert math.isfinite(dist["probe_losses"][0]) and dist["probe_losses"][0] == dist["probe_losses"][1]


def test_local_workers_get_one_gpu_each_round_robin_with_memory_growth():
    gpus = ["0", "1"]
    envs = [worker_gpu_env(i, gpus, "gpu:0") for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]  # the third worker shares GPU 0
    assert all(e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for e in envs)
    # The ids of the GPUs the case worker sees (its own CUDA_VISIBLE_DEVICES), not 0..n-1.
    assert worker_gpu_env(1, ["3", "5"], "gpu:0")["CUDA_VISIBLE_DEVICES"] == "5"
    # A CPU job hides the GPUs, so it runs where its result says; no GPUs: nothing is set.
    assert worker_gpu_env(0, gpus, "cpu") == {"CUDA_VISIBLE_DEVICES": "-1"}
    assert worker_gpu_env(0, [], "gpu:0") == {} and worker_gpu_env(0, None, "cpu") == {}


@pytest.mark.gpu
@pytest.mark.tensorflow
@pytest.mark.workers
def test_local_workers_on_a_gpu_machine_each_see_their_own_gpu(tmp_path):
    from tfperf.distributed.setup import visible_gpus

    gpus = visible_gpus()
    if not gpus:
        pytest.skip(
            "needs a GPU: checks that each local worker sees one GPU (CUDA_VISIBLE_DEVICES) and that "
            "each step syncs the replica's device (sync_devices); TensorFlow sees no GPU here"
        )
    case, job = _multi_case(timeout_s=240)
    job = JobSpec(job.case, job.mode, "gpu:0", job.task, job.batch_size)
    r = run_local_cluster(case, job, 2, work_dir=tmp_path, gpus=gpus)
    assert r.status == "ok", r.error
    seen = [w.cuda_visible_devices for w in r.distributed.per_worker]
    assert seen == [gpus[0], gpus[1 % len(gpus)]]
    assert r.timing.sync == "sync_devices"
    assert all("GPU" in d.upper() for d in r.distributed.replica_devices)
