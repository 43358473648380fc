"""`tfperf doctor`: pre-flight checks that save a wasted run. Each check says what it saw and, when it fails,
how to fix it; the CLI exits 1 when any check fails.

Checks: TensorBoard and the profile plugin importable, and registered once (two copies make TensorBoard refuse
to start with "Duplicate plugins for name profile"); a trace of a tiny step actually written under
`plugins/profile/`; the step markers seen by the input-pipeline analyzer; on GPU machines, CUPTI found and
permitted (without it a GPU trace has no kernels).
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

PASS, FAIL, SKIP = "ok", "FAIL", "skip"


@dataclass
class Check:
    name: str
    status: str  # ok | FAIL | skip
    detail: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def check_tensorboard() -> Check:
    if importlib.util.find_spec("tensorboard") is None:
        return Check(
            "tensorboard",
            FAIL,
            "not importable",
            "pip install tensorboard  (pip install tensorflow does not bring it)",
        )
    return Check("tensorboard", PASS, f"tensorboard {_version('tensorboard') or '?'}")


def check_profile_plugin() -> Check:
    have = [m for m in ("xprof", "tensorboard_plugin_profile") if importlib.util.find_spec(m) is not None]
    if not have:
        return Check(
            "profile plugin",
            FAIL,
            "neither xprof nor tensorboard_plugin_profile is importable",
            "pip install tensorboard-plugin-profile",
        )
    try:
        # Importing is the check: the converters tfperf reads traces with must load, not merely be installed.
        importlib.import_module("xprof.convert.raw_to_tool_data")
    except Exception as exc:  # noqa: BLE001 - any import failure is the check's answer
        return Check(
            "profile plugin",
            FAIL,
            f"xprof converters do not import: {type(exc).__name__}: {exc}"[:300],
            "pip install --force-reinstall tensorboard-plugin-profile",
        )
    versions = ", ".join(f"{d} {_version(d)}" for d in ("tensorboard-plugin-profile", "xprof") if _version(d))
    return Check("profile plugin", PASS, versions or "importable")


def duplicate_plugins(entry_points: list[tuple[str, str, str | None]]) -> dict[str, list[str]]:
    """{plugin name: [providers]} for plugin names registered more than once. Each entry is (name, value,
    dist)."""
    seen: dict[str, list[str]] = {}
    for name, value, dist in entry_points:
        seen.setdefault(name, []).append(f"{dist or '?'} ({value})")
    return {name: providers for name, providers in seen.items() if len(providers) > 1}


def check_duplicate_plugins() -> Check:
    from importlib.metadata import entry_points

    eps = [
        (e.name, e.value, e.dist.name if e.dist else None) for e in entry_points(group="tensorboard_plugins")
    ]
    dups = duplicate_plugins(eps)
    if dups:
        text = "; ".join(f"{n}: {', '.join(p)}" for n, p in dups.items())
        return Check(
            "plugins installed once",
            FAIL,
            f"TensorBoard would fail with 'Duplicate plugins': {text}",
            "keep one: pip uninstall -y tbp-nightly tensorboard-plugin-profile xprof && "
            "pip install tensorboard-plugin-profile",
        )
    profile = [p for p in eps if p[0] == "profile"]
    if not profile:
        return Check(
            "plugins installed once",
            FAIL,
            "no 'profile' entry point in group tensorboard_plugins: "
            "TensorBoard will not show the Profile tab",
            "pip install --force-reinstall tensorboard-plugin-profile",
        )
    return Check("plugins installed once", PASS, f"profile from {profile[0][2]}")


def check_trace(steps: int = 3) -> list[Check]:
    """Profile a tiny tf.function step: a trace file must appear, and the analyzer must see the step
    markers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except Exception as exc:  # noqa: BLE001 - any import failure is the check's answer
        return [
            Check(
                "tensorflow",
                FAIL,
                f"not importable: {type(exc).__name__}: {exc}"[:300],
                "pip install tensorflow",
            )
        ]
    from tfperf.profile.profiler import ProfileError, profile_job

    w = tf.Variable(tf.random.normal((128, 128)))
    x = tf.random.normal((64, 128))

    @tf.function
    def step_fn(x):
        return tf.reduce_sum(tf.matmul(tf.nn.relu(tf.matmul(x, w)), w))

    step_fn(x).numpy()
    with tempfile.TemporaryDirectory(prefix="tfperf-doctor-") as tmp:
        try:
            profile = profile_job(
                lambda i: step_fn(x).numpy(), steps=steps, trace_name="train", logdir=Path(tmp) / "doctor"
            )
        except ProfileError as exc:
            return [
                Check(
                    "trace written",
                    FAIL,
                    str(exc),
                    "another profiler session may be running in this process, or the folder is not writable",
                )
            ]
        files = profile.get("xplane_files") or []
        checks = [
            Check(
                "trace written",
                PASS,
                f"{len(files)} xplane file(s) under plugins/profile/{profile.get('profile_run')}",
            )
        ]
        if profile.get("readout_error"):
            checks.append(
                Check(
                    "trace readable",
                    FAIL,
                    profile["readout_error"],
                    "pip install --force-reinstall tensorboard-plugin-profile (xprof reads the traces)",
                )
            )
        seen = profile.get("profiled_steps") or 0
        if seen >= steps:
            checks.append(
                Check("step markers", PASS, f"the input-pipeline analyzer sees {seen} of {steps} steps")
            )
        else:
            checks.append(
                Check(
                    "step markers",
                    FAIL,
                    f"the input-pipeline analyzer sees {seen} of {steps} steps",
                    "wrap each step in tf.profiler.experimental.Trace('train', step_num=i, _r=1); "
                    "check that tensorboard-plugin-profile matches the TensorFlow version",
                )
            )
        gpus = tf.config.list_physical_devices("GPU")
        checks.append(check_cupti(bool(gpus), profile))
    return checks


def check_cupti(has_gpu: bool, profile: dict | None = None) -> Check:
    if not has_gpu:
        return Check("CUPTI (GPU tracing)", SKIP, "no GPU visible to TensorFlow")
    lib = ctypes.util.find_library("cupti")
    if lib is None:
        for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") + [
            "/usr/local/cuda/extras/CUPTI/lib64",
            "/usr/local/cuda/lib64",
        ]:
            if d and any(Path(d).glob("libcupti.so*")):
                lib = str(d)
                break
    if lib is None:
        return Check(
            "CUPTI (GPU tracing)",
            FAIL,
            "libcupti not found: GPU kernels will be missing from traces",
            "add CUDA's extras/CUPTI/lib64 to LD_LIBRARY_PATH (or pip install nvidia-cuda-cupti-cu12)",
        )
    # A permitted CUPTI puts device ops into the trace's op stats; without permission they are missing.
    devices = [op for op in (profile or {}).get("top_ops") or [] if op.get("host_or_device") == "Device"]
    overview = (profile or {}).get("overview") or {}
    if profile is not None and not devices and not overview.get("device_tf_op_percent"):
        return Check(
            "CUPTI (GPU tracing)",
            FAIL,
            f"CUPTI found ({lib}) but the trace holds no GPU kernels "
            "(CUPTI_ERROR_INSUFFICIENT_PRIVILEGES is the usual cause)",
            "allow profiling for non-admin users: options nvidia NVreg_RestrictProfilingToAdminUsers=0 "
            "(then reboot), or run the container with --cap-add SYS_ADMIN",
        )
    return Check("CUPTI (GPU tracing)", PASS, f"found ({lib})")


def run_checks(trace: bool = True) -> list[Check]:
    checks = [check_tensorboard(), check_profile_plugin(), check_duplicate_plugins()]
    if trace:
        checks.extend(check_trace())
    return checks


def render(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"[{c.status:>4}] {c.name}: {c.detail}")
        if c.failed and c.fix:
            lines.append(f"       fix: {c.fix}")
    failed = sum(c.failed for c in checks)
    lines.append(f"{failed} check(s) failed" if failed else "all checks passed")
    return "\n".join(lines)
