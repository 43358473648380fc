"""`tfperf ab`: a real git repository in a temp dir, a tiny `function:` case committed and changed in the
working tree, both trees measured in one interleaved run by real worker processes with real TensorFlow.

The runs are kept short for CI (15 timed steps x 2 repeats per process, a 75% interval so 3 pairs can decide,
a 25% threshold) and assert only what holds on a noisy shared machine: a 2x slowdown is a regression, the same
code is not. Bad input is checked in-process (no TensorFlow): one line, exit 2, nothing written, no worktree
left.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfperf.ab.interleave import share_groups
from tfperf.cli import main
from tfperf.run.process import Part, WorkerProcess, process_key
from tfperf.suite.loader import load_suite
from tfperf.suite.spec import CaseSpec, Suite

ROOT = Path(__file__).resolve().parents[1]

# A matmul chain with no sleep, a few ms (well above the call's own overhead): WORK = 2 in the working tree
# doubles the step.
STEPS = """import tensorflow as tf

WORK = 1


def step(x, w):
    for _ in range(4 * WORK):
        x = tf.tanh(tf.matmul(x, w))
    return tf.reduce_sum(x)


def inputs(size: int = 320):
    x = tf.random.stateless_normal((size, size), seed=[1, 2])
    w = tf.random.stateless_normal((size, size), seed=[3, 4]) * 0.05
    while True:
        yield (x, w), {}
"""

SUITE = """name: ab-test
defaults:
  modes: [function]
  warmup_steps: 2
  steps: 15
  repeats: 2
  profile: false
  timeout_s: 120
cases:
  - name: mm
    function: steps.py:step
    inputs: steps.py:inputs
"""

FAST = ["--confidence", "75%", "--threshold", "25%", "--seed", "1"]


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "steps.py").write_text(STEPS)
    (repo / "suite.yaml").write_text(SUITE)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    return repo


def tfperf_ab(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "tfperf", "ab", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.mark.workers
def test_ab_flags_a_2x_slowdown_and_passes_the_same_code(repo: Path, tmp_path: Path):
    (repo / "steps.py").write_text(STEPS.replace("WORK = 1", "WORK = 2"))
    slow = tfperf_ab(
        str(repo / "suite.yaml"),
        "--baseline",
        "HEAD",
        "--out",
        str(tmp_path / "slow"),
        "--max-pairs",
        "5",
        "--format",
        "json",
        *FAST,
    )
    assert slow.returncode == 1, slow.stderr[-3000:]
    cmp = json.loads(slow.stdout)
    row = cmp["rows"][0]
    assert row["verdict"] == "regression" and row["ci_low"] > 1.25 and row["pairs"] >= 3
    assert len(row["pair_ratios"]) == row["pairs"] and cmp["stop_reason"] in ("decided", "max_pairs")
    assert "pair 1/5" in slow.stderr  # progress shows the pairs
    # Each side's results.json: the first process and the later ones, each with its noise record.
    for side in ("base", "current"):
        run = json.loads((tmp_path / "slow" / side / "results.json").read_text())
        timing = run["results"][0]["timing"]
        assert len(timing["by_process"]) == row["pairs"]
        assert all(p["noise"]["schedulable_cpus"] >= 1 for p in timing["by_process"])
    base_run = json.loads((tmp_path / "slow" / "base" / "results.json").read_text())
    assert base_run["environment"]["ab"]["ref"] == "HEAD"
    assert (tmp_path / "slow" / "ab.md").read_text().startswith("### tfperf ab:")
    assert git(repo, "worktree", "list").count("\n") == 1  # the temporary worktree is gone

    (repo / "steps.py").write_text(STEPS)
    same = tfperf_ab(
        str(repo / "suite.yaml"),
        "--baseline",
        "HEAD",
        "--out",
        str(tmp_path / "same"),
        "--max-pairs",
        "3",
        *FAST,
    )
    assert same.returncode == 0, same.stdout + same.stderr[-3000:]
    assert "REGRESSION" not in same.stdout and "A/B run:" in same.stdout


def bad(capsys, *args: str) -> str:
    rc = main(["ab", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_bad_input_is_one_line_exit_2_and_nothing_written(repo: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    suite = str(repo / "suite.yaml")
    assert "not a commit" in bad(capsys, suite, "--baseline", "no-such-ref", "--out", str(out))
    (repo / "new.yaml").write_text(SUITE)  # not committed: no such suite at HEAD
    assert "does not exist at HEAD" in bad(
        capsys, str(repo / "new.yaml"), "--baseline", "HEAD", "--out", str(out)
    )
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "suite.yaml").write_text(SUITE)
    assert "not in a git repository" in bad(
        capsys, str(plain / "suite.yaml"), "--baseline", "HEAD", "--out", str(out)
    )
    assert "no such folder" in bad(capsys, suite, "--baseline-dir", str(plain / "nowhere"), "--out", str(out))
    (tmp_path / "empty").mkdir()
    assert "does not exist there" in bad(
        capsys, suite, "--baseline-dir", str(tmp_path / "empty"), "--out", str(out)
    )
    assert "one of them" in bad(capsys, suite, "--out", str(out))
    assert "--confidence" in bad(
        capsys, suite, "--baseline", "HEAD", "--confidence", "100%", "--out", str(out)
    )
    # A suite that is broken in the baseline tree only: refused after the worktree was made, which is removed.
    (repo / "suite.yaml").write_text(SUITE.replace("steps.py:step", "steps.py:missing"))
    git(repo, "commit", "-qam", "broken")
    (repo / "suite.yaml").write_text(SUITE)
    assert "the baseline's suite" in bad(capsys, suite, "--baseline", "HEAD", "--out", str(out))
    assert not out.exists()
    assert git(repo, "worktree", "list").count("\n") == 1


def built_sides(tmp_path: Path, ratios: list[float], base_status: str = "ok") -> dict:
    """Two sides as interleave leaves them, built by hand: per-round process medians and noise records."""
    from tfperf.ab.interleave import Side
    from tfperf.ab.trees import Tree
    from tfperf.results.model import Result, RunResult
    from tfperf.suite.spec import Suite

    sides = {}
    for name in ("base", "current"):
        results = [
            Result(
                case="mm",
                mode="function",
                device="cpu",
                task="train",
                batch_size=None,
                samples=[0.004] * 10,
                repeat_sizes=[5, 5],
                repeat_process=[0, 1],
            ),
            Result(
                case="other",
                mode="function",
                device="cpu",
                task="train",
                batch_size=None,
                samples=[0.002] * 10,
                repeat_sizes=[5, 5],
                repeat_process=[0, 1],
            ),
        ]
        if name == "base" and base_status != "ok":
            results[1].status = base_status
        run = RunResult(suite={"name": "s"}, environment={"cpu_count": 2}, results=results)
        side = Side(
            Tree(name, tmp_path, tmp_path / "suite.yaml"),
            Suite("s", "suite.yaml", "", "", ()),
            tmp_path / name,
            {},
            run,
        )
        quiet = {
            "timed_s": 1.0,
            "involuntary_context_switches": 30,
            "voluntary_context_switches": 100,
            "load_average": [1.0, 1.0, 1.0],
            "schedulable_cpus": 2,
            "warnings": [],
        }
        for rnd, ratio in enumerate(ratios):
            fastest = 0.004 * (ratio if name == "current" else 1.0)
            # The process's steps: its fastest is the figure by default, a burst of slow steps does not move
            # it.
            side.samples.setdefault(("mm", "function", None, "train"), {})[rnd] = [
                fastest,
                fastest * 1.01,
                fastest * 3.0,
            ]
            busy = name == "current" and ratio > 1.5
            side.noise.setdefault(("mm", "function", None, "train"), {})[rnd] = (
                {**quiet, "involuntary_context_switches": 900, "load_average": [3.6, 2, 1]} if busy else quiet
            )
        sides[name] = side
    return sides


def test_verdict_comes_from_the_pairs_and_renders_in_every_format(tmp_path: Path):
    from tfperf.ab.render import render
    from tfperf.ab.verdict import compare_sides

    ratios = [1.10, 1.09, 1.11, 1.10, 1.12, 1.09, 2.4, 1.10]  # one pair hit by a burst on the current side
    cmp = compare_sides(built_sides(tmp_path, ratios), 0.05, 0.99, stop_reason="decided", max_pairs=20)
    mm = next(r for r in cmp.rows if r.case == "mm")
    assert mm.verdict == "regression" and mm.pairs == 8 and mm.ci_low > 1.05
    assert mm.ratio == pytest.approx(1.10, abs=0.01)  # the stray pair does not drag the estimate
    assert any(n.startswith("pair 7: 2.400") and "preempted 900/s vs 30/s" in n for n in mm.noise_notes)
    other = next(r for r in cmp.rows if r.case == "other")
    assert other.pairs == 0  # no pairs: compare's own verdict on the pooled samples
    assert cmp.min_pairs == 8 and not any("different times" in w for w in cmp.warnings)
    table = render(cmp, "table")
    assert "[99% CI]" in table and "A/B run:" in table and "pair 7: 2.400" in table
    assert "preempted 30–900/s" in table  # the current side's range over its pairs
    assert json.loads(render(cmp, "json"))["rows"][0]["pair_ratios"]
    assert render(cmp, "markdown").startswith("### tfperf ab: ❌")
    page = render(cmp, "html")
    assert "<h1>tfperf ab:" in page and page.index("A/B run</h2>") < page.index("</main>")

    few = compare_sides(built_sides(tmp_path, ratios[:5]), 0.05, 0.99)
    assert next(r for r in few.rows if r.case == "mm").verdict == "inconclusive"
    assert "cannot reach 99% (needs 8)" in next(r for r in few.rows if r.case == "mm").reason


def test_a_row_failed_on_the_base_side_fails_the_gate(tmp_path: Path):
    from tfperf.ab.verdict import compare_sides
    from tfperf.analysis.compare import EXIT_GATE_FAILED, exit_code

    cmp = compare_sides(built_sides(tmp_path, [1.0] * 8, base_status="failed"), 0.05, 0.99)
    assert exit_code(cmp) == EXIT_GATE_FAILED
    assert any(g.kind == "failed" and "on the base side" in g.message for g in cmp.gate_failures)


SHARED_STEPS = (
    STEPS
    + """

def boom(x, w):
    import os
    os._exit(3)  # the worker dies in its step, as a segfaulting op would
"""
)


@pytest.mark.workers
def test_timing_rounds_share_a_process_and_a_crash_fails_the_job_it_died_in(tmp_path: Path):
    """After round 0, the cases with the same process-wide settings are timed in one worker process per side;
    when it dies, what it finished is kept and the job it died in fails with that crash, not re-run (a crash
    that would not repeat alone must not vanish)."""
    (tmp_path / "steps.py").write_text(SHARED_STEPS)
    (tmp_path / "suite.yaml").write_text(
        SUITE + "  - name: boom\n    function: steps.py:boom\n    inputs: steps.py:inputs\n"
    )
    suite = load_suite(tmp_path / "suite.yaml")
    mm, crash = suite.cases
    out = tmp_path / "out"
    workers = out / "workers"
    workers.mkdir(parents=True)

    def part(case: CaseSpec, block_sizes: dict[int, int]) -> Part:
        path = workers / f"{case.name}.p1.case.json"
        path.write_text(json.dumps(case.to_json()))
        return Part(case, path, [0], block_sizes)

    proc = WorkerProcess(
        [part(mm, {0: 1}), part(crash, {})],
        out,
        1,
        "mm+boom.p1",
        python=sys.executable,
        env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])},
    )
    proc.run()
    ok, failed = (p.finished[0] for p in proc.parts)
    assert ok.ok and ok.samples and ok.timing.noise and ok.timing.block_size == 1
    assert failed.status == "failed" and failed.error.type == "WorkerCrash" and failed.error.returncode == 3
    assert "shared with mm" in failed.error.message and "mm+boom.p1.log" in failed.error.hint
    plan = json.loads((workers / "mm+boom.p1.plan0.json").read_text())
    assert [p["case_file"].rsplit("/", 1)[1] for p in plan["parts"]] == [
        "mm.p1.case.json",
        "boom.p1.case.json",
    ]
    assert proc.log_path == workers / "mm+boom.p1.log"  # where the shared process's output went
    assert proc.launches == 1  # the crashed job is not run again


def test_cases_share_a_process_only_with_the_same_process_wide_settings():
    def case(name: str, **kw) -> CaseSpec:
        return CaseSpec(name=name, function="steps.py:step", **kw)

    one = {"intra_op_threads": 1}
    base = Suite(
        name="s",
        path="s.yaml",
        sha256="",
        text="",
        cases=(
            case("a"),
            case("b"),
            case("c", tf_config=one),
            case("d", distribute={"x": 1}),
            case("e", tf_config=one),
        ),
    )
    current = dataclasses.replace(
        base, cases=base.cases[:4] + (case("e"),)
    )  # e's threads changed in the tree
    assert share_groups([base, current], ["a", "b", "c", "d", "e"]) == [["a", "b"], ["c"], ["d"], ["e"]]
    assert share_groups([base, base], ["a", "b", "c", "d", "e"]) == [["a", "b"], ["c", "e"], ["d"]]
    assert process_key(None) is None and process_key(case("d", distribute={"x": 1})) is None
