"""Run-folder and export-folder entries used only as themselves: never through a symbolic link, never a FIFO,
socket or device.

A run writes its lock, recipe, metrics, checkpoint and ``model/`` by name inside ``--out``; a link planted there
(or left by a copy) would aim those writes elsewhere, and a FIFO would block or fail without naming the file.
Every writer of those files checks (:func:`check_entry`) or opens (:func:`open_run_file`) them here.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import RunFolderError

__all__ = ["check_entry", "make_run_folder", "open_run_file", "path_in_the_way", "write_run_file"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO is opened without waiting for a reader, then refused
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a file"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_entry(path: str | os.PathLike, *, folder: bool = False) -> bool:
    """Whether ``path`` exists; a symbolic link (dangling or not) or anything but a regular file (a folder with
    ``folder=True``) raises :class:`RunFolderError` naming it, before anything is written through it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise RunFolderError(
            f"{path} is a symbolic link (to {os.readlink(path)}); run and export files are never written through "
            "links, which could aim them outside their folder. Fix: remove the link (copy the real file there if "
            "you need it), or choose another output folder."
        )
    if not (stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)):
        raise RunFolderError(
            f"{path} is {_kind(st.st_mode)}, not a regular {'folder' if folder else 'file'}; it cannot be used as a "
            "run or export file. Fix: remove it, or choose another output folder."
        )
    return True


def path_in_the_way(path: str | os.PathLike) -> Path:
    """The deepest of ``path`` and its parents that exists: what stops a folder being made at ``path``."""
    path = Path(path)
    return next((p for p in (path, *path.parents) if os.path.lexists(p)), path)


def make_run_folder(folder: str | os.PathLike) -> None:
    """Create ``folder`` and its parents (a link to a folder is the user's choice and is followed); a file in the
    way, or a parent that cannot be written, raises :class:`RunFolderError` naming it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise RunFolderError(f"{folder} cannot be a run folder: {path_in_the_way(folder)} exists and is not a folder. "
                             "Fix: choose "
                             "another --out, or move that file away.") from err
    except PermissionError as err:
        raise RunFolderError(f"cannot create the run folder {folder}: permission denied on {err.filename}. Fix: "
                             "choose an --out you can write to.") from err


def open_run_file(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """``os.open(path, flags)`` without following a link and refusing anything but a regular file
    (:class:`RunFolderError` naming ``path``); returns a blocking file descriptor."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC, mode)
    except OSError as err:
        check_entry(path)  # a link or a FIFO without a reader: named by what it is
        raise RunFolderError(f"cannot open {path}: {err.strerror or err}. Fix: check its permissions, or choose "
                             "another output folder.") from err
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        check_entry(path)
        raise RunFolderError(f"{path} changed while it was opened; choose another output folder")  # pragma: no cover
    os.set_blocking(fd, True)
    return fd


def write_run_file(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` (created or emptied) as :func:`open_run_file` allows it."""
    with os.fdopen(open_run_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "w") as f:
        f.write(text)
    return Path(path)
