"""Atomic outputs and one-line file-system errors, shared by every command that writes files.

`staged_output(root)` gives a temporary staging folder; the command writes its files there, and only when the
block completes are they moved into `root` (a new `root` is one rename; an existing one gets each file by
`os.replace`, so a reader never sees a half-written file). A failure removes the staging folder and leaves
`root` as it was, so a retry starts clean. A staging folder left by a killed process (its name carries the
process id) is removed by the next output written beside it. `os_error_message` turns an `OSError` into the one line that
`eyemotion.cli.main` prints (the path, what went wrong, the fix).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eyemotion import UserError

STAGING_PREFIX = ".eyemotion-partial-"

FIXES = {
    errno.ENOSPC: "no space left on the device; free space or write to another disk",
    errno.EDQUOT: "disk quota exceeded; free space or write to another disk",
    errno.EROFS: "read-only file system; choose a writable output folder",
    errno.EACCES: "permission denied; choose a folder you may write to or fix its permissions",
    errno.EPERM: "operation not permitted; choose a folder you may write to or fix its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder; remove that file or choose another path",
    errno.EEXIST: "exists already; remove it or choose another path",
    errno.EISDIR: "is a folder, not a file; give a file path",
    errno.ENOENT: "does not exist; check the path",
}


class OutputError(UserError):
    """An output that cannot be written (full disk, read-only, permissions, a file in the way)."""


def os_error_message(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """One line: the path (`path` if given, else the error's own), the problem and the fix."""
    where = path if path is not None else exc.filename
    what = FIXES.get(exc.errno or 0, f"{exc.strerror or exc}; check the path")
    return f"{where}: {what}" if where is not None else what


def check_output_folder(root: str | os.PathLike) -> Path:
    """`root` must be a folder or not exist yet (its nearest existing parent must be a folder)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root} is a file, not a folder; give a folder path (or remove the file)")
    parent = root.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{parent} is a file, not a folder; choose another output path")
    return root


@contextmanager
def staged_output(root: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder whose files become `root`'s files once the block completes.

    The staging folder sits beside `root` when `root` does not exist yet (then it is renamed into place), and
    inside `root` otherwise (same file system, so each move is an atomic `os.replace`).
    """
    root = check_output_folder(root)
    fresh = not root.exists()
    host = root.parent if fresh else root
    try:
        host.mkdir(parents=True, exist_ok=True)
        remove_stale_stages(host)
        stage = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=host))
        stage.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; the output gets the usual mode
    except OSError as exc:
        raise OutputError(os_error_message(exc, host)) from None
    try:
        yield stage
        if fresh:
            os.replace(stage, root)
        else:
            _move_into(stage, root)
    except OSError as exc:
        raise OutputError(os_error_message(exc, root)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def remove_stale_stages(host: Path) -> list[Path]:
    """Remove the staging folders in `host` whose process has ended (killed before it could clean up)."""
    removed = []
    for stage in host.glob(STAGING_PREFIX + "*"):
        pid = stage.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if stage.is_dir() and (not pid.isdigit() or not _process_alive(int(pid))):
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _move_into(stage: Path, root: Path) -> None:
    """Move every file under `stage` to the same place under `root` (folders created, files replaced)."""
    for folder, _, files in os.walk(stage):
        target = root / Path(folder).relative_to(stage)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            os.replace(Path(folder) / name, target / name)
