"""One writer per run folder: an exclusive lock on ``<out>/.lock`` held while a run writes there.

The lock is an OS record lock (``fcntl.lockf``), so the kernel releases it when the holder exits, however
it exits: a crash or SIGKILL leaves no stale lock, only a file whose recorded PID is ignored. Record
locks are per process, so this process also remembers the folders it holds (a second run started from
the same Python process is refused as well). The file holds the holder's PID and host for the message.
Where ``fcntl`` is missing (Windows), the PID in the file decides: a live holder refuses, a dead one is
stale and replaced. A run refused before it wrote anything (bad settings, missing data) leaves nothing
behind: the lock file goes, and the folder too when the lock created it.
"""
from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from ..errors import RunLockedError
from .files import make_run_folder, open_run_file

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_NAME", "RunLock"]

LOCK_NAME = ".lock"
_HELD: set[str] = set()  # folders this process holds


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class RunLock:
    """``with RunLock(folder):`` holds the folder's lock or raises :class:`RunLockedError` naming the holder."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._created_folder = False

    @staticmethod
    def _holder(fd: int) -> tuple[int | None, str]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            pid, _, host = os.read(fd, 4096).decode(errors="replace").strip().partition(" ")
            return int(pid), host
        except (OSError, ValueError):
            return None, ""

    def _refuse(self, pid: int | None, host: str) -> RunLockedError:
        who = f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "") if pid else "another process"
        return RunLockedError(
            f"run folder {self.folder} is in use by {who} (lock {self.path}); two runs writing one folder would mix "
            "their checkpoints and metrics. Fix: wait for that run to end (or stop it), or choose another --out.",
            pid=pid,
        )

    def acquire(self) -> RunLock:
        key = str(self.folder.resolve())
        if key in _HELD:
            raise self._refuse(os.getpid(), socket.gethostname())
        self._created_folder = not self.folder.exists()
        make_run_folder(self.folder)
        fd = open_run_file(self.path, os.O_RDWR | os.O_CREAT)  # never a link's target, never a FIFO
        if fcntl is None:  # pragma: no cover - Windows: the PID file decides
            pid, host = self._holder(fd)
            if pid is not None and pid != os.getpid() and _pid_alive(pid):
                os.close(fd)
                raise self._refuse(pid, host)
        else:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = self._holder(fd)
                os.close(fd)
                raise self._refuse(*holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        _HELD.add(key)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        _HELD.discard(str(self.folder.resolve()))
        try:
            os.ftruncate(self._fd, 0)  # no PID left behind: the next holder's message never names us
            if [p.name for p in self.folder.iterdir()] == [LOCK_NAME]:  # the run wrote nothing: leave no trace
                self.path.unlink()  # still held: a newcomer opens a new file, never this one
                if self._created_folder:
                    try:
                        self.folder.rmdir()
                    except OSError as err:  # a newcomer already wrote there: its folder now
                        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                            raise
        finally:
            os.close(self._fd)  # closing releases the record lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
