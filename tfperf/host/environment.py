"""What the measurements ran on: the host (no TensorFlow needed) and what TensorFlow sees (worker side)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Iterable

# Environment variables that change TensorFlow's performance; recorded so two runs can be told apart.
RELEVANT_ENV = (
    "TF_XLA_FLAGS",
    "XLA_FLAGS",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_GPU_ALLOCATOR",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_DETERMINISTIC_OPS",
    "OPENBLAS_CORETYPE",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# x86 CPU flags (as /proc/cpuinfo names them) that change which TensorFlow settings are worth measuring; only
# these are recorded (`environment.cpu_features`), so two runs' machines can be told apart without the whole
# flag list.
RECORDED_CPU_FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# bfloat16 arithmetic in hardware: oneDNN runs `mixed_bfloat16` matmuls and convolutions natively with
# AVX512-BF16 or AMX-BF16. Without them bfloat16 is converted in software and is slower than float32, so tune
# does not try it.
BF16_CPU_FEATURES = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str) -> list[str]:
    """The feature flags of the first processor in /proc/cpuinfo's text ("flags" on x86, "Features" on
    ARM)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return value.split()
    return []


def cpu_features(flags: Iterable[str]) -> list[str]:
    """The recorded features among a CPU's flags, in `RECORDED_CPU_FEATURES` order."""
    have = set(flags)
    return [f for f in RECORDED_CPU_FEATURES if f in have]


def bf16_features(features: Iterable[str] | None) -> list[str]:
    """The bfloat16 hardware features among a CPU's features; empty when it has none (or they are unknown)."""
    have = set(features or ())
    return [f for f in BF16_CPU_FEATURES if f in have]


def host_cpu_features() -> list[str] | None:
    """This machine's recorded CPU features from /proc/cpuinfo; None where there is no /proc/cpuinfo (not
    Linux), so "unknown" is not read as "none"."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return cpu_features(cpu_flags(text))


def git_commit(cwd: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def host_environment(suite_dir: str | Path | None = None) -> dict:
    """Everything that needs no TensorFlow import."""
    return {
        "python": sys.version.split()[0],
        # What pytest-benchmark's machine_info holds (`tfperf export`): recorded here, where the run happened.
        "python_implementation": platform.python_implementation(),
        "python_implementation_version": ".".join(str(v) for v in sys.implementation.version[:3]),
        "python_compiler": platform.python_compiler(),
        "hostname": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "processor": platform.processor(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_features": host_cpu_features(),
        "env": {k: os.environ[k] for k in RELEVANT_ENV if k in os.environ},
        "git_commit": git_commit(suite_dir),
    }


def tensorflow_environment() -> dict:
    """What TensorFlow sees. Imports TensorFlow: call it in a worker or in `tfperf env`."""
    import tensorflow as tf

    try:
        import keras

        keras_version = keras.__version__
    except ImportError:
        keras_version = None
    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        cc = details.get("compute_capability")
        gpus.append(
            {
                "name": details.get("device_name", dev.name),
                "device": dev.name,
                "compute_capability": ".".join(map(str, cc)) if cc else None,
            }
        )
    build = tf.sysconfig.get_build_info()
    return {
        "tensorflow": tf.__version__,
        "keras": keras_version,
        "gpus": gpus,
        "cuda": build.get("cuda_version"),
        "cudnn": build.get("cudnn_version"),
        "xla_available": _xla_available(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 CPUs)"),
    }


def _xla_available() -> bool:
    import tensorflow as tf

    try:
        tf.function(lambda x: x + 1.0, jit_compile=True)(tf.constant(1.0)).numpy()
        return True
    except Exception:  # noqa: BLE001 - any failure means XLA is not usable here
        return False


def gpu_memory(gpus: list[dict]) -> list[dict]:
    """Memory limits per GPU where TensorFlow reports them (after the device is initialised)."""
    import tensorflow as tf

    out = []
    for i, g in enumerate(gpus):
        try:
            info = tf.config.experimental.get_memory_info(f"GPU:{i}")
            out.append({**g, "memory_in_use_bytes": info.get("current")})
        except Exception:  # noqa: BLE001 - memory info is optional: the GPU is listed without it
            out.append(g)
    return out


def compute_capability(environment: dict, device: str) -> float | None:
    """The compute capability of the GPU a device string names ("gpu", "gpu:1"), from a recorded environment's
    `gpus` list; None for a CPU, an unknown index or an unreadable value. "8.6" and [8, 6] both read as
    8.6."""
    if not device.startswith("gpu"):
        return None
    gpus = environment.get("gpus") or []
    try:
        index = int(device.partition(":")[2] or 0)
        cc = gpus[index].get("compute_capability")
    except (IndexError, ValueError, AttributeError):
        return None
    if isinstance(cc, (list, tuple)):
        cc = ".".join(str(c) for c in cc)
    try:
        return float(cc)
    except (TypeError, ValueError):
        return None
