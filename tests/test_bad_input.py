"""Bad input outside the suite file, tried as a new user would: a mistyped command or option, a command
without its arguments, an output path that cannot be written, a case name too long for a file name, keys a
`function:` case would ignore, a --format or --port that is no such thing. Each is refused by the real command
line with a clear message and exit code 2, without a traceback, and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DATA, ROOT, run_tfperf

from tfperf.suite.spec import MAX_NAME_BYTES

pytestmark = pytest.mark.cli

RESULTS = DATA / "results_v1_before_layout.json"  # a finished run: report and export read it, nothing runs
SUITE = ROOT / "suites" / "smoke.yaml"  # a valid suite: the output checks come after validation
LONG_NAME = "a" * 300


@dataclass(frozen=True)
class Bad:
    """One refusal: the command line ({tmp} is the test's folder), a piece of the message, the exit code."""

    id: str
    args: tuple[str, ...]
    says: str | tuple[str, ...]
    code: int = 2


def suite_text(name: str, extra: str = "") -> str:
    return (
        f"name: bad\ncases:\n  - name: {name}\n    function: {ROOT}/suites/examples/steps.py:matmul_chain\n"
        f"    inputs: {ROOT}/suites/examples/steps.py:matmul_inputs\n{extra}"
    )


# The commands that write one file with -o, and what each reads.
OUTPUT_COMMANDS = {
    "report": (str(RESULTS),),
    "export": (str(RESULTS),),
    "compare": (str(RESULTS), "{tmp}/a-run/results.json"),
}
COMMANDS_WITH_ARGUMENTS = ("run", "report", "compare", "export", "tune", "capture", "schema", "serve-bench")

BAD = [
    # a mistyped command or option (typer 0.29 raises its vendored click's exceptions)
    Bad("unknown-command", ("bench", "x.yaml"), "No such command 'bench'"),
    Bad("unknown-option", ("run", str(SUITE), "--bogus"), "No such option: --bogus"),
    Bad("bare-tfperf", (), "Usage: tfperf"),
    *(Bad(f"{command}-without-arguments", (command,), "Missing ") for command in COMMANDS_WITH_ARGUMENTS),
    # a case name that passes the name check but not the file system's
    Bad(
        "case-name-too-long",
        ("run", "{tmp}/long-name.yaml", "--out", "{tmp}/out"),
        f"at most {MAX_NAME_BYTES}",
    ),
    # keys a function: case would silently ignore, each named on its own line
    Bad(
        "function-case-model-keys",
        ("run", "{tmp}/function-keys.yaml", "--out", "{tmp}/out"),
        (
            "function-keys.yaml:6: case 'fn': 'params' holds keyword arguments",
            ":7: case 'fn': 'batch_size' sets",
            ":8: case 'fn': 'input' shapes",
        ),
    ),
    # --out that cannot be made
    Bad(
        "out-under-a-file", ("run", str(SUITE), "--out", "{tmp}/a-file/out"), "a-file is a file, not a folder"
    ),
    Bad("out-unwritable", ("run", str(SUITE), "--out", "/proc/tfperf-out"), "cannot write in /proc"),
    Bad("out-name-too-long", ("run", str(SUITE), "--out", "{tmp}/" + "x" * 300), "at most 255"),
    Bad(
        "tune-out-under-a-file", ("tune", str(SUITE), "--out", "{tmp}/a-file/out"), "is a file, not a folder"
    ),
    Bad(
        "capture-out-under-a-file",
        ("capture", "127.0.0.1:1", "--out", "{tmp}/a-file/c"),
        "is a file, not a folder",
    ),
    # -o that cannot be written
    *(
        b
        for command, inputs in OUTPUT_COMMANDS.items()
        for b in (
            Bad(
                f"{command}-o-missing-folder",
                (command, *inputs, "-o", "{tmp}/missing/out.txt"),
                "missing does not exist",
            ),
            Bad(f"{command}-o-onto-a-folder", (command, *inputs, "-o", "{tmp}/a-folder"), "is a folder"),
            Bad(
                f"{command}-o-under-a-file",
                (command, *inputs, "-o", "{tmp}/a-file/out.txt"),
                "a-file is a file, not a folder",
            ),
        )
    ),
    # a --format that is no such thing
    Bad("list-format", ("list", "--format", "xml"), "--format xml: choose one of table, json"),
    Bad("env-format", ("env", "--format", "xml"), "--format xml: choose one of table, json"),
    # tensorboard: the path named as given, the port checked before TensorBoard starts
    Bad("tensorboard-on-a-file", ("tensorboard", "{tmp}/a-file"), "a-file: a file, not a run folder"),
    Bad("tensorboard-missing-folder", ("tensorboard", "{tmp}/missing"), "missing: no such folder"),
    Bad("tensorboard-not-a-run", ("tensorboard", "{tmp}/a-folder"), "not a tfperf run folder"),
    Bad("tensorboard-port-negative", ("tensorboard", "{tmp}/a-run", "--port", "-1"), "--port"),
    Bad("tensorboard-port-too-big", ("tensorboard", "{tmp}/a-run", "--port", "70000"), "--port"),
]


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """The test's folder: a regular file, an empty folder, a run folder with traces, and two bad suites."""
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-run" / "tensorboard").mkdir(parents=True)
    shutil.copy(RESULTS, tmp_path / "a-run" / "results.json")
    (tmp_path / "long-name.yaml").write_text(suite_text(LONG_NAME))
    (tmp_path / "function-keys.yaml").write_text(
        suite_text("fn", "    params: {size: 4}\n    batch_size: 8\n    input: {shape: [3]}\n")
    )
    return tmp_path


def tree(folder: Path) -> dict[str, int]:
    """Every path under `folder` with its size: what a refusal must leave as it was."""
    return {str(p.relative_to(folder)): p.stat().st_size if p.is_file() else -1 for p in folder.rglob("*")}


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_input_is_refused_in_one_message_and_leaves_nothing(place: Path, bad: Bad):
    if bad.id == "out-unwritable" and not Path("/proc").is_dir():
        pytest.skip("needs /proc, a folder nobody may create entries in")
    before = tree(place)
    proc = run_tfperf(*(a.replace("{tmp}", str(place)) for a in bad.args), cwd=place, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == bad.code, output
    assert "Traceback" not in output, output
    for says in (bad.says,) if isinstance(bad.says, str) else bad.says:
        assert says in output, output
    assert tree(place) == before  # nothing written, not even an empty folder or a default reports/
    assert not Path("/proc/tfperf-out").exists()


def test_the_installed_executable_prints_usage_errors(tmp_path: Path):
    """The console script itself, as installed, with this checkout first on the path."""
    exe = shutil.which("tfperf")
    if exe is None:
        pytest.skip("tfperf is not installed as a command")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for args, says in (
        (["bench", "x.yaml"], "Error: No such command 'bench'"),
        (["run", "--bogus"], "Error: No such option: --bogus"),
    ):
        proc = subprocess.run(
            [exe, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert says in proc.stderr and "Usage: tfperf" in proc.stderr


def test_tensorboard_port_in_use_is_refused_before_tensorboard_starts(place: Path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_tfperf("tensorboard", str(place / "a-run"), "--port", str(port), cwd=place, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"--port {port}: cannot listen" in proc.stderr


@pytest.mark.tensorflow
@pytest.mark.workers
def test_a_failed_capture_leaves_no_folder(tmp_path: Path):
    pytest.importorskip("tensorflow")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_tfperf(
        "capture",
        f"grpc://127.0.0.1:{port}",
        "--duration-ms",
        "10",
        "--out",
        str(tmp_path / "c" / "d"),
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "capture from" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# --- a report of an interrupted run, in every format; --format json in numbers ------------------------------


@pytest.fixture
def interrupted(tmp_path: Path) -> Path:
    data = json.loads(RESULTS.read_text())
    data["interrupted"] = True
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "fmt,says",
    [
        ("table", "INTERRUPTED"),
        ("markdown", "(interrupted)"),
        ("json", '"interrupted": true'),
        ("html", "interrupted"),
    ],
)
def test_report_of_an_interrupted_run_says_so_in_every_format(interrupted: Path, fmt: str, says: str):
    proc = run_tfperf("report", str(interrupted), "--format", fmt, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert says in proc.stdout
    if fmt in ("table", "json"):  # the two that did not say it
        finished = run_tfperf("report", str(RESULTS), "--format", fmt, timeout=120)
        assert says not in finished.stdout  # said because the run was interrupted, not always


def test_report_json_gives_numbers_not_display_strings():
    proc = run_tfperf("report", str(RESULTS), "--format", "json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["interrupted"] is False and document["suite"] == "smoke"
    stored = {(r["case"], r["mode"], r["batch_size"]): r for r in json.loads(RESULTS.read_text())["results"]}
    assert len(document["rows"]) == len(stored)
    for row in document["rows"]:
        r = stored[(row["case"], row["mode"], row["batch_size"])]
        if r["status"] == "ok":
            per_s = "throughput.samples_per_s" if r["batch_size"] else "throughput.steps_per_s"
            assert isinstance(row[per_s], float) and row[per_s] > 0  # not "19,308"
            assert row["step_time_s.median"] == r["step_time_s"]["median"]  # the stored figure, not "2.92"
            assert isinstance(row["first_call_s"], float)


# --- one tiny real run: --force over an earlier run, and an empty inputs: generator -------------------------

EMPTY_INPUTS = """
def nothing():
    return iter(())
"""


@pytest.fixture(scope="module")
def forced_run(tmp_path_factory):
    """A run with --force into a folder an earlier run left: its traces, its worker logs, a stale event file
    in the very TensorBoard run folder this run writes again. One case runs; one has an empty inputs:
    iterable."""
    pytest.importorskip("tensorflow")
    base = tmp_path_factory.mktemp("forced")
    (base / "empty.py").write_text(EMPTY_INPUTS)
    (base / "suite.yaml").write_text(
        "name: forced\ndefaults:\n  modes: [function]\n  warmup_steps: 1\n  steps: 2\n  repeats: 1\n"
        "  processes: 1\n  profile: true\n  timeout_s: 240\ncases:\n"
        f"  - name: tiny\n    function: {ROOT}/suites/examples/steps.py:matmul_chain\n"
        f"    inputs: {ROOT}/suites/examples/steps.py:matmul_inputs\n"
        "  - name: empty\n    function: empty.py:nothing\n    inputs: empty.py:nothing\n    profile: false\n"
    )
    out = base / "out"
    (out / "tensorboard" / "old-case-eager").mkdir(parents=True)
    (out / "tensorboard" / "old-case-eager" / "events.out.tfevents.1.host.1.tfperf").write_text("old")
    (out / "tensorboard" / "tiny-function").mkdir()
    (out / "tensorboard" / "tiny-function" / "events.out.tfevents.1.host.1.tfperf").write_text("old")
    (out / "workers").mkdir()
    (out / "workers" / "tiny.log").write_text("EARLIER RUN\n")
    (out / "notes.txt").write_text("the user's own file\n")
    proc = run_tfperf(
        "run", str(base / "suite.yaml"), "--out", str(out), "--force", "--quiet", cwd=base, timeout=600
    )
    return proc, out, json.loads((out / "results.json").read_text())


@pytest.mark.tensorflow
@pytest.mark.workers
def test_force_over_an_earlier_run_keeps_none_of_its_traces_or_logs(forced_run):
    proc, out, data = forced_run
    assert proc.returncode == 1, proc.stderr  # the empty case failed; the run says so
    assert "Traceback" not in proc.stdout + proc.stderr
    assert {r["case"]: r["status"] for r in data["results"]} == {"tiny": "ok", "empty": "failed"}
    assert not (out / "tensorboard" / "old-case-eager").exists()
    events = list((out / "tensorboard" / "tiny-function").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].read_text(errors="replace") != "old"
    assert "EARLIER RUN" not in (out / "workers" / "tiny.log").read_text()
    assert (out / "notes.txt").read_text() == "the user's own file\n"  # only tfperf's own folders are cleared


@pytest.mark.tensorflow
@pytest.mark.workers
def test_an_empty_inputs_iterable_fails_with_a_hint_not_a_bare_stop_iteration(forced_run):
    _, _, data = forced_run
    error = next(r for r in data["results"] if r["case"] == "empty")["error"]
    assert error["type"] == "EmptyInputsError"
    assert "empty.py:nothing gave no (args, kwargs) at all" in error["message"]
    assert "yield (x,), {}" in error["message"]
