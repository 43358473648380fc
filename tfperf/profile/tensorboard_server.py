"""Start and stop a TensorBoard server on 127.0.0.1 and a free port, for `tfperf tensorboard` and the tests.

TensorBoard runs as a child process (`python -m tensorboard.main`): it owns its own threads and logging, and
stopping it is one signal. Loopback only: a trace names hosts, paths and op names a user may not want served.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tfperf.errors import TfperfError
from tfperf.host.processes import die_with_parent

HOST = "127.0.0.1"


class TensorBoardError(TfperfError):
    """TensorBoard (or its profile plugin) is missing, or the server did not come up."""


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (the OS picks it; the tiny race before TensorBoard binds is
    accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_installed() -> None:
    """TensorBoard and the profile plugin must both be importable; say which pip package brings the missing
    one."""
    if importlib.util.find_spec("tensorboard") is None:
        raise TensorBoardError(
            "TensorBoard is not installed: pip install tensorboard "
            "(`pip install tensorflow` does not bring it)"
        )
    if (
        importlib.util.find_spec("tensorboard_plugin_profile") is None
        and importlib.util.find_spec("xprof") is None
    ):
        raise TensorBoardError(
            "the TensorBoard profile plugin is not installed: pip install tensorboard-plugin-profile"
        )


@dataclass
class TensorBoardServer:
    """A running TensorBoard child process; use as a context manager, or call stop()."""

    logdir: Path
    port: int
    process: subprocess.Popen
    log_path: Path
    host: str = HOST
    _log_file: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def get(self, path: str, timeout: float = 30.0) -> bytes:
        """GET a path of this server (e.g. "/data/plugin/profile/runs") and return the body."""
        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=timeout) as resp:
            body = resp.read()
            # TensorBoard gzips larger answers whatever the request asked for.
            return gzip.decompress(body) if resp.headers.get("Content-Encoding") == "gzip" else body

    def get_json(self, path: str, timeout: float = 30.0):
        return json.loads(self.get(path, timeout).decode("utf-8"))

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (TensorBoard's own clean exit), then SIGTERM, then SIGKILL. Returns the exit code."""
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    self.process.send_signal(sig)
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.process.returncode

    def __enter__(self) -> "TensorBoardServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_tensorboard(
    logdir: str | Path,
    port: int | None = None,
    host: str = HOST,
    timeout_s: float = 60.0,
    require_profile_plugin: bool = True,
    log_path: Path | None = None,
) -> TensorBoardServer:
    """Start TensorBoard on `logdir`, wait until it answers, and check the profile plugin is loaded."""
    logdir = Path(logdir)
    if not logdir.is_dir():
        raise TensorBoardError(
            f"{logdir}: no such folder (a tfperf run with profile: true writes <out>/tensorboard)"
        )
    check_installed()
    if port is None:
        port = free_port(host)
    else:
        check_port(port, host)
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="tfperf-tensorboard-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log_file = open(log_path, "w")
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        host,
        "--port",
        str(port),
        # Read the logdir once at start and then every 5 s, so a finished run shows up quickly.
        "--reload_interval",
        "5",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # SIGTERM when the parent dies, so a killed `tfperf tensorboard` (or test) never leaves a server on its
    # port.
    process = subprocess.Popen(
        cmd,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        preexec_fn=(lambda: die_with_parent(signal.SIGTERM)) if sys.platform.startswith("linux") else None,
    )
    server = TensorBoardServer(logdir, port, process, log_path, host, log_file)
    deadline = time.monotonic() + timeout_s
    listing = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise TensorBoardError(
                f"TensorBoard exited with code {process.returncode} before serving:\n{server.log_tail()}"
            )
        try:
            listing = server.get_json("/data/plugins_listing", timeout=5)
            break
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            time.sleep(0.3)
    if listing is None:
        server.stop()
        raise TensorBoardError(
            f"TensorBoard did not answer on {server.url} within {timeout_s:.0f} s:\n{server.log_tail()}"
        )
    if require_profile_plugin and "profile" not in listing:
        server.stop()
        hint = (
            "TensorBoard reports duplicate plugins: uninstall one copy "
            "(pip uninstall tensorboard-plugin-profile; pip install tensorboard-plugin-profile)"
            if "Duplicate plugins" in server.log_tail(20000)
            else "pip install tensorboard-plugin-profile"
        )
        raise TensorBoardError(f"TensorBoard started without the profile plugin: {hint}")
    return server


def profile_runs(server: TensorBoardServer) -> list[str]:
    """The profile runs TensorBoard lists ("<tb-run>/<timestamp>")."""
    return list(server.get_json("/data/plugin/profile/runs"))


def latest_run_dir(root: Path = Path("reports")) -> Path | None:
    """The newest run folder under reports/: a `latest` link first, else the newest folder with a
    results.json."""
    if not root.is_dir():
        return None
    candidates = []
    for results in root.glob("*/*/results.json"):
        candidates.append((results.stat().st_mtime, results.parent))
    links = [p for p in root.glob("*/latest") if p.exists()]
    for link in links:
        candidates.append(
            (
                (link.resolve() / "results.json").stat().st_mtime
                if (link.resolve() / "results.json").exists()
                else 0,
                link.resolve(),
            )
        )
    return max(candidates)[1] if candidates else None


def tensorboard_logdir(out: Path | None) -> Path:
    """OUT/tensorboard for `tfperf tensorboard [OUT]` (OUT may also be the tensorboard folder itself)."""
    if out is None:
        out = latest_run_dir()
        if out is None:
            raise TensorBoardError(
                "no run under reports/: run `tfperf run SUITE` first, or pass the run folder"
            )
    given = out = Path(out)
    if not out.exists():
        raise TensorBoardError(f"{given}: no such folder (give a run folder, e.g. reports/<suite>/latest)")
    if out.is_file():
        if out.name != "results.json":
            raise TensorBoardError(
                f"{given}: a file, not a run folder (give the folder a run wrote, or its results.json)"
            )
        out = out.parent
    if (out / "tensorboard").is_dir():
        return out / "tensorboard"
    if (out / "plugins").is_dir() or any(out.glob("*/plugins/profile")):
        return out
    if not (out / "results.json").is_file():
        raise TensorBoardError(f"{given}: not a tfperf run folder (no results.json, no tensorboard/ folder)")
    raise TensorBoardError(f"{given}: the run wrote no tensorboard/ folder (was it made with --no-profile?)")


def check_port(port: int, host: str = HOST) -> None:
    """Refuse a port TensorBoard could not serve on, before starting it (its own message is a traceback)."""
    if not 1 <= port <= 65535:
        raise TensorBoardError(f"--port {port}: not a TCP port (1-65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise TensorBoardError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "leave --port out to take a free one"
            ) from None
