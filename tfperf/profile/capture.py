"""Remote capture: a trace of a TensorFlow process tfperf did not start, then the same read-out as a profiled
pass.

The target process calls `tf.profiler.experimental.server.start(PORT)`; `tfperf capture grpc://HOST:PORT
--duration-ms N` asks it (`tf.profiler.experimental.client.trace`) for N ms of trace. Several comma-separated
addresses capture several workers at once, into one run folder with one xplane file per host.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path

from tfperf.errors import TfperfError
from tfperf.profile.profiler import newest_run_dir
from tfperf.profile.readout import read_profile


class CaptureError(TfperfError):
    """The capture produced no trace (bad address, nothing listening, or the target ran no TensorFlow ops)."""


def parse_addresses(spec: str) -> list[str]:
    """ "grpc://h:1,grpc://h:2" or "h:1" -> ["grpc://h:1", "grpc://h:2"]; a missing port is an error."""
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        address = item if "://" in item else f"grpc://{item}"
        scheme, _, rest = address.partition("://")
        host, _, port = rest.rpartition(":")
        if scheme != "grpc" or not host or not port.isdigit():
            raise CaptureError(
                f"{item!r}: expected grpc://HOST:PORT (the port the target passed to "
                "tf.profiler.experimental.server.start)"
            )
        out.append(address)
    if not out:
        raise CaptureError("no address given: expected grpc://HOST:PORT[,grpc://HOST:PORT...]")
    return out


def default_out_dir(root: Path = Path("reports") / "capture") -> Path:
    return root / datetime.now().strftime("%Y%m%d-%H%M%S")


def first_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (what mkdir(parents=True) will create), if
    any."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def remove_if_empty(created: Path | None) -> None:
    """A failed capture leaves nothing behind: remove the folders it created, unless something wrote a file in
    them (a partial trace is kept for a look)."""
    if created is None or not created.is_dir():
        return
    if any(p.is_file() for p in created.rglob("*")):
        return
    shutil.rmtree(created, ignore_errors=True)


def capture(
    addresses: str | list[str], duration_ms: int, out: str | Path | None = None, attempts: int = 3
) -> dict:
    """Capture `duration_ms` of trace from each address into
    `<out>/tensorboard/capture/plugins/profile/<ts>/`, then read it out. Returns the profile dict (as in
    results.json) with `addresses`."""
    import tensorflow as tf

    if isinstance(addresses, str):
        addresses = parse_addresses(addresses)
    if duration_ms <= 0:
        raise CaptureError(f"--duration-ms {duration_ms}: must be positive")
    out = Path(out) if out is not None else default_out_dir()
    logdir = out / "tensorboard" / "capture"
    created = first_missing(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    t0 = time.perf_counter()
    try:
        tf.profiler.experimental.client.trace(
            ",".join(addresses), str(logdir), int(duration_ms), num_tracing_attempts=attempts
        )
    except Exception as exc:  # noqa: BLE001 - UnavailableError, DeadlineExceeded, ...: one line for the user
        remove_if_empty(created)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise CaptureError(
            f"capture from {','.join(addresses)} failed: {type(exc).__name__}: {first} "
            "(is the target running and did it call tf.profiler.experimental.server.start(PORT)?)"
        ) from None
    wall = time.perf_counter() - t0
    run_dir = newest_run_dir(logdir, since=started - 2)
    if run_dir is None:
        remove_if_empty(created)
        raise CaptureError(
            f"capture from {','.join(addresses)} wrote no trace under {logdir}/plugins/profile/ "
            "(did the target run TensorFlow ops during the capture window?)"
        )
    profile = read_profile(run_dir)
    profile.update(
        {
            "logdir": str(logdir),
            "tb_run": logdir.name,
            "run": f"{logdir.name}/{run_dir.name}",
            "addresses": addresses,
            "duration_ms": int(duration_ms),
            "capture_wall_s": round(wall, 3),
            "capture": "remote",
        }
    )
    return profile
