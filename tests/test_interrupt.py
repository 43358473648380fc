"""A run stopped by a kill (SIGTERM) or Ctrl-C keeps every finished result, writes its reports and leaves no
worker behind: from the command line and from the Python API alike."""

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import DATA, ROOT

pytestmark = pytest.mark.workers

SUITE = f"""
name: interrupted
defaults: {{warmup_steps: 1, steps: 3, repeats: 1, processes: 1, profile: false, timeout_s: 300}}
cases:
  - name: healthy
    modes: [eager]
    function: {DATA}/fault_steps.py:add_one
    inputs: {DATA}/fault_steps.py:square_inputs
  - name: half-done            # its eager job finishes; its function job hangs while tracing
    modes: [eager, function]
    function: {DATA}/fault_steps.py:sleep_when_traced
    inputs: {DATA}/fault_steps.py:square_inputs
"""


def _workers_of(out) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "tfperf.run.worker" in cmd and any(str(out) in part for part in cmd):
            found.append(proc)
    return found


def command_line(suite, out) -> str:
    return (
        f"sys.argv = ['tfperf', 'run', {str(suite)!r}, '--out', {str(out)!r}, '--quiet']; "
        "runpy.run_module('tfperf', run_name='__main__')"
    )


def python_api(suite, out) -> str:
    """A user's script: `tfperf.run_suite` raises RunInterrupted with the partial run, its reports written."""
    return (
        "import tfperf; from tfperf.run.runner import RunInterrupted\n"
        f"try: tfperf.run_suite(tfperf.load_suite({str(suite)!r}), {str(out)!r})\n"
        "except RunInterrupted as e: print('interrupted', file=sys.stderr); sys.exit(130)"
    )


@pytest.mark.parametrize(
    "sig, how",
    [(signal.SIGTERM, command_line), (signal.SIGINT, command_line), (signal.SIGINT, python_api)],
    ids=["cli-sigterm", "cli-sigint", "api-sigint"],
)
def test_a_stopped_run_keeps_finished_results_and_kills_its_worker(tmp_path, sig, how):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    out = tmp_path / "out"
    # A Python child restores the default SIGINT handler (a shell's background job would ignore it).
    code = "import signal, runpy, sys; signal.signal(signal.SIGINT, signal.default_int_handler)\n" + how(
        suite, out
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    events = out / "workers" / "half-done.events0.jsonl"
    while time.monotonic() < deadline:  # until the second case's eager job is done and its function job runs
        if events.exists() and '"index": 1' in events.read_text():
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the half-done case never reached its second job")
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    data = json.loads((out / "results.json").read_text())
    assert data["interrupted"] is True
    # The finished case, and the finished job of the case that was running when the run was stopped.
    assert [(r["case"], r["mode"], r["status"]) for r in data["results"]] == [
        ("healthy", "eager", "ok"),
        ("half-done", "eager", "ok"),
    ]
    # The reports of what finished, with the advisor's suggestions attached once, at the end.
    assert (out / "report.md").exists() and (out / "report.html").exists() and (out / "results.csv").exists()
    assert all("suggestions" in r for r in data["results"])
    time.sleep(0.5)
    assert _workers_of(out) == []
