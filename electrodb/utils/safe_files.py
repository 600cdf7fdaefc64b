"""Writing user-named output files atomically and only where asked.

:func:`atomic_output` checks the target first (an existing symlink, device, FIFO or directory is refused; a
missing or unwritable folder is an error that names it), writes to a temporary file in the target's own folder
and renames it over the target only when the writer finished without error, so an interrupted or failed write
leaves the old file (or nothing) behind, never a half-written file or a stray ``.part``.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["OutputPathError", "atomic_output", "check_output_path"]


class OutputPathError(ValueError):
    """The requested output path cannot (or must not) be written."""


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path if a regular file may be written there, else raise :class:`OutputPathError`."""
    path = Path(path)
    if path.is_symlink():
        raise OutputPathError(f"{path} is a symbolic link; ElectroDB writes only regular files: give the real path")
    if path.exists():
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise OutputPathError(f"{path} is a directory; give a file name inside it")
        if not stat.S_ISREG(mode):
            raise OutputPathError(f"{path} is not a regular file (a device or pipe); give a file path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputPathError(f"folder {folder} does not exist; create it first (mkdir -p {folder})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"folder {folder} is not writable; choose another --out")
    return path


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    The caller writes the temporary file (by path, e.g. ``fig.savefig(tmp)``); ``mode`` is unused by the
    manager and kept for symmetry with ``open``.
    """
    del mode
    target = check_output_path(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent or ".")
    except OSError as exc:
        raise OutputPathError(f"cannot write in {target.parent}: {exc.strerror}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if target.exists():  # keep the permissions of the file being replaced
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
