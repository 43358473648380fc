"""Process set-up for a distributed case, which must happen before TensorFlow initializes its devices, and the
strategy a job runs under."""

from __future__ import annotations

import json
import os
from typing import Any

from tfperf.suite.distribute import DistributeError, DistributeSpec

# On a real cluster (TF_CONFIG set by you): start a profiler server on this port, so `tfperf capture` can
# trace the worker while it runs. tfperf's own profiled pass does not use it (worker 0 traces itself, see
# trace.trace_worker0).
PROFILER_PORT_ENV = "TFPERF_PROFILER_PORT"

_process_strategy: Any = None  # the MultiWorkerMirroredStrategy of a joined cluster: one per process
_mirrored_strategies: dict[tuple[str, ...], Any] = {}  # see make_strategy


def tf_config_task() -> tuple[int, int] | None:
    """(this worker's index, cluster size) from TF_CONFIG, or None when TF_CONFIG is not set."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
        workers = list(cfg["cluster"].get("worker", [])) + list(cfg["cluster"].get("chief", []))
        task = cfg.get("task", {})
        index = int(task.get("index", 0)) + (
            0 if task.get("type", "worker") == "chief" else len(cfg["cluster"].get("chief", []))
        )
        return index, len(workers)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DistributeError(
            f"TF_CONFIG is set but not valid ({exc}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
        ) from None


def configure_process(distribute: dict | DistributeSpec | None) -> dict:
    """Set the process up for a distributed case, before TensorFlow touches a device. Returns what it did.

    mirrored without GPUs: split the CPU into `devices` logical devices (TensorFlow refuses once devices
    exist). multi_worker with TF_CONFIG set: create the MultiWorkerMirroredStrategy now (it configures
    collective ops, which TensorFlow only allows before the eager context starts) and keep it for every job of
    the process.
    """
    spec = distribute if isinstance(distribute, DistributeSpec) else DistributeSpec.from_dict(distribute)
    import tensorflow as tf

    done: dict = {"strategy": spec.strategy}
    if spec.strategy == "mirrored" and not tf.config.list_physical_devices("GPU") and spec.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * spec.devices
            )
        except RuntimeError as exc:  # devices already initialized: a programming error in the caller
            raise DistributeError(
                f"distribute: cannot create {spec.devices} logical CPU devices after TensorFlow "
                f"initialized its devices ({exc})"
            ) from None
        done["logical_cpu_devices"] = spec.devices
    if spec.strategy == "multi_worker" and tf_config_task() is None:
        # The case worker that launches a local cluster: should anything here initialize the GPUs, it must not
        # take the memory its workers need (TensorFlow maps nearly all of every visible GPU by default).
        gpus = tf.config.list_physical_devices("GPU")
        try:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:
            raise DistributeError(
                f"distribute: cannot enable GPU memory growth after TensorFlow initialized its "
                f"devices ({exc})"
            ) from None
        if gpus:
            done["gpu_memory_growth"] = True
    if spec.strategy == "multi_worker" and tf_config_task() is not None:
        global _process_strategy
        if _process_strategy is None:
            _process_strategy = tf.distribute.MultiWorkerMirroredStrategy()
            port = os.environ.get(PROFILER_PORT_ENV)
            if port:  # so `tfperf capture grpc://host:port,...` can trace this worker
                tf.profiler.experimental.server.start(int(port))
                done["profiler_port"] = int(port)
        done["joined_cluster"] = True
    return done


def visible_gpus() -> list[str]:
    """The CUDA ids of the GPUs this process sees, for a local cluster to share out one per worker: the ids in
    CUDA_VISIBLE_DEVICES when it is set (in the order TensorFlow numbers them), else 0..n-1."""
    import tensorflow as tf

    n = len(tf.config.list_physical_devices("GPU"))
    listed = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return listed[:n]
    return [str(i) for i in range(n)]


def make_strategy(spec: DistributeSpec, device: str = "cpu") -> Any:
    import tensorflow as tf

    if spec.strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(tf_device(device))
    if spec.strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        kind = "GPU" if gpus and not device.startswith("cpu") else "CPU"
        devices = [d.name for d in tf.config.list_logical_devices(kind)]
        if len(devices) < spec.devices:
            raise DistributeError(
                f"distribute: mirrored over {spec.devices} devices, but TensorFlow sees "
                f"{len(devices)} {kind} device(s) (was configure_process called at process start?)"
            )
        chosen = tuple(devices[: spec.devices])
        # One MirroredStrategy per device set and process. A new strategy numbers its collective instances
        # from the start again while the runtime still holds the earlier strategy's instances under those
        # keys, so a second job (eager after function) died with "Shape mismatch in the collective instance
        # 100".
        if chosen not in _mirrored_strategies:
            _mirrored_strategies[chosen] = tf.distribute.MirroredStrategy(list(chosen))
        return _mirrored_strategies[chosen]
    if _process_strategy is None:
        raise DistributeError(
            "distribute: multi_worker needs TF_CONFIG and configure_process() at process start"
        )
    return _process_strategy


def tf_device(device: str) -> str:
    kind, _, index = device.partition(":")
    return f"/{kind.upper()}:{index or 0}"


def local_device(strategy: Any) -> str:
    """The first device this process drives under a strategy: where its one-replica baseline runs."""
    return strategy.extended.worker_devices[0]
