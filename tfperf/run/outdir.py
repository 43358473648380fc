"""Where a run writes: a new reports/<suite>/<timestamp>/ by default, never over an earlier run.

Every path a command will write to is checked here before anything is measured or written (a folder under a
regular file, a missing folder, a place this process cannot write, a name longer than a file name may be), so
a refusal is one line and exit code 2 and leaves nothing behind, not an OSError after the work is done.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from tfperf.errors import TfperfError
from tfperf.suite.spec import PATH_COMPONENT_MAX_BYTES

DEFAULT_ROOT = Path("reports")
# What a run adds to in its folder rather than replacing: with --force over an earlier run, TensorBoard would
# list the earlier run's traces beside this run's, each reused run folder would get a second HParams event
# file, and the worker logs are appended to. These go before the new run starts; every other file is rewritten
# whole.
EARLIER_RUN_FOLDERS = ("tensorboard", "workers")


def choose_out_dir(suite_name: str, out: str | Path | None, force: bool, root: Path = DEFAULT_ROOT) -> Path:
    """Pick the folder without creating it (a bad suite must leave nothing behind), after checking it can be
    written. With `force`, a non-empty folder is accepted and the folders an earlier run left there that a new
    run would add to (EARLIER_RUN_FOLDERS) are removed."""
    if out is not None:
        path = Path(out)
        check_names(path, "--out")  # first: asking whether a too-long name exists raises
        if path.exists() and not path.is_dir():
            raise TfperfError(f"--out {path}: exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise TfperfError(
                f"--out {path}: folder is not empty; an earlier run is never overwritten "
                "(pick a new folder, or pass --force)"
            )
        check_out_folder(path, "--out")
        if force and path.is_dir():
            clear_earlier_run(path)
        return path
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / suite_name
    path = base / stamp
    n = 1
    while path.exists():  # two runs in the same second
        n += 1
        path = base / f"{stamp}-{n}"
    check_out_folder(path, "output folder")
    return path


def clear_earlier_run(out_dir: Path) -> list[Path]:
    """Remove the folders an earlier run left in `out_dir` that a new run would add to; returns those
    removed."""
    removed = []
    for name in EARLIER_RUN_FOLDERS:
        folder = out_dir / name
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def check_out_folder(path: str | Path, option: str) -> None:
    """Refuse a folder that cannot be created or written (it is created later, parents included)."""
    path = Path(path)
    check_names(path, option)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise TfperfError(f"{option} {path}: {existing} is a file, not a folder")
    if not _can_write_in(existing):
        raise TfperfError(
            f"{option} {path}: cannot write in {existing} (permission denied or a read-only place)"
        )


def check_output_file(path: str | Path, option: str = "-o") -> None:
    """Refuse an output file that cannot be written: a folder, under a regular file, in a missing folder (not
    created: a typo in it would otherwise make a new tree), or in a folder this process cannot write."""
    path = Path(path)
    check_names(path, option)
    if path.is_dir():
        raise TfperfError(f"{option} {path}: is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        existing = _nearest_existing(parent)
        if not existing.is_dir():
            raise TfperfError(f"{option} {path}: {existing} is a file, not a folder")
        raise TfperfError(f"{option} {path}: folder {parent} does not exist")
    if not _can_write_in(parent):
        raise TfperfError(
            f"{option} {path}: cannot write in {parent} (permission denied or a read-only place)"
        )


def check_names(path: Path, option: str) -> None:
    for part in path.parts:
        if len(os.fsencode(part)) > PATH_COMPONENT_MAX_BYTES:
            raise TfperfError(
                f"{option} {path}: the name '{part[:40]}...' is {len(os.fsencode(part))} bytes; a file "
                f"or folder name holds at most {PATH_COMPONENT_MAX_BYTES}"
            )


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (a relative path ends at the working folder)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _can_write_in(folder: Path) -> bool:
    """Tried for real, with a folder made and removed at once: os.access answers yes to root even in /proc or
    on a read-only mount."""
    try:
        probe = tempfile.mkdtemp(prefix=".tfperf-probe-", dir=folder)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def update_latest(out_dir: Path, root: Path = DEFAULT_ROOT) -> Path | None:
    """Point reports/<suite>/latest at the newest run (only for runs under the default root)."""
    out_dir = Path(out_dir)
    try:
        out_dir.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    link = out_dir.parent / "latest"
    tmp = out_dir.parent / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(out_dir.name)
    os.replace(tmp, link)  # atomic: readers see the old or the new target, never none
    return link
