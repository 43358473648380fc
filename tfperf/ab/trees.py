"""The two trees of an A/B run: the working tree the suite is in, and the baseline, either a git ref checked
out in a temporary `git worktree` or a second checkout given by the user.

Everything is checked before anything is written (bad input: one line, exit 2, nothing left behind): the suite
must be inside a git repository for `--baseline REF`, REF must name a commit, and the suite must exist at the
same path in the baseline tree. The temporary worktree is removed when the run ends, however it ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tfperf.errors import TfperfError


@dataclass(frozen=True)
class Tree:
    """One side's checkout: its root, the suite file in it, and what it is (a ref and commit, or a folder)."""

    name: str  # base | current
    root: Path
    suite: Path
    ref: str | None = None
    commit: str | None = None

    def describe(self) -> dict:
        return {
            "side": self.name,
            "root": str(self.root),
            "suite": str(self.suite),
            "ref": self.ref,
            "commit": self.commit,
        }


def git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
    )


def repo_root(folder: Path) -> Path | None:
    """The top of the git working tree holding `folder`, or None when it is in none (or git is missing)."""
    try:
        out = git(["rev-parse", "--show-toplevel"], folder)
    except FileNotFoundError:
        return None
    return Path(out.stdout.strip()).resolve() if out.returncode == 0 and out.stdout.strip() else None


def current_tree(suite: Path) -> Tree:
    """The working tree's side: its git root, or the current folder when the suite is in no repository."""
    suite = suite.resolve()
    if not suite.is_file():
        raise TfperfError(f"{suite}: no such suite file")
    root = repo_root(suite.parent) or Path.cwd().resolve()
    commit = None
    if (root / ".git").exists():
        head = git(["rev-parse", "HEAD"], root)
        commit = head.stdout.strip() if head.returncode == 0 else None
    return Tree("current", root, suite, commit=commit)


def relative_suite(current: Tree) -> Path:
    try:
        return current.suite.relative_to(current.root)
    except ValueError:
        raise TfperfError(
            f"{current.suite}: the suite is not under {current.root}; with --baseline-dir, run "
            f"tfperf from the folder both trees are copies of"
        ) from None


def check_baseline_ref(current: Tree, ref: str) -> str:
    """The commit REF names in the suite's repository; the suite must exist there at the same path."""
    root = repo_root(current.suite.parent)
    if root is None:
        raise TfperfError(
            f"--baseline {ref}: {current.suite.parent} is not in a git repository (use "
            f"--baseline-dir for a second copy)"
        )
    out = git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root)
    if out.returncode != 0 or not out.stdout.strip():
        raise TfperfError(f"--baseline {ref}: not a commit, branch or tag of {root}")
    commit = out.stdout.strip()
    rel = relative_suite(current).as_posix()
    if git(["cat-file", "-e", f"{commit}:{rel}"], root).returncode != 0:
        raise TfperfError(f"--baseline {ref}: the suite {rel} does not exist at {ref} ({commit[:12]})")
    return commit


def check_baseline_dir(current: Tree, folder: Path) -> Tree:
    if not folder.is_dir():
        raise TfperfError(f"--baseline-dir {folder}: no such folder")
    rel = relative_suite(current)
    suite = folder.resolve() / rel
    if not suite.is_file():
        raise TfperfError(f"--baseline-dir {folder}: the suite {rel} does not exist there")
    return Tree("base", folder.resolve(), suite)


@contextmanager
def baseline_worktree(current: Tree, ref: str, commit: str) -> Iterator[Tree]:
    """Check `commit` out in a temporary detached worktree of the suite's repository; removed on exit."""
    root = repo_root(current.suite.parent)
    assert root is not None  # check_baseline_ref made sure
    holder = Path(tempfile.mkdtemp(prefix="tfperf-ab-"))
    path = holder / "baseline"
    out = git(["worktree", "add", "--detach", "--quiet", str(path), commit], root)
    if out.returncode != 0:
        shutil.rmtree(holder, ignore_errors=True)
        raise TfperfError(
            f"--baseline {ref}: git worktree add failed: {out.stderr.strip().splitlines()[-1:]}"
        )
    try:
        yield Tree("base", path, path / relative_suite(current), ref=ref, commit=commit)
    finally:
        git(["worktree", "remove", "--force", str(path)], root)
        shutil.rmtree(holder, ignore_errors=True)
        git(["worktree", "prune"], root)


def python_path(tree: Tree, tfperf_root: Path) -> dict[str, str]:
    """The worker environment of one side: its tree first on the import path, so the user's code (a module
    reference such as `mypkg.steps:step`) is imported from that tree. tfperf itself stays the one running,
    whichever tree is searched first (both sides are measured by the same tool)."""
    entries = [str(tree.root)]
    if (tree.root / "tfperf" / "__init__.py").exists():
        entries.insert(0, str(tfperf_root))
    existing = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join(entries + ([existing] if existing else []))}
