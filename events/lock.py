"""The single-writer lock on a data directory.

An advisory `flock` on `DATA/LOCK`, held for the life of the writing process
and released by the kernel when it dies (even by SIGKILL), so a crash never
leaves a stale lock behind. The holder's pid is written into the file so the
refusal can name it.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


class StoreLocked(Exception):
    """Another process is writing this data directory."""


class DirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "LOCK"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            finally:
                os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"pid {holder}" if holder else "another process"
                raise StoreLocked(
                    f"data directory {self.path.parent} is in use by {who} "
                    "(only one tapeloop process may write it)"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
