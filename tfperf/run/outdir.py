"""Where a run writes: a new reports/<suite>/<timestamp>/ by default, never over an earlier run."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from tfperf.errors import TfperfError

DEFAULT_ROOT = Path("reports")


def choose_out_dir(suite_name: str, out: str | Path | None, force: bool, root: Path = DEFAULT_ROOT) -> Path:
    """Pick the folder without creating it (a bad suite must leave nothing behind)."""
    if out is not None:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise TfperfError(f"--out {path}: exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not force:
            raise TfperfError(f"--out {path}: folder is not empty; an earlier run is never overwritten "
                              "(pick a new folder, or pass --force)")
        return path
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / suite_name
    path = base / stamp
    n = 1
    while path.exists():  # two runs in the same second
        n += 1
        path = base / f"{stamp}-{n}"
    return path


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
