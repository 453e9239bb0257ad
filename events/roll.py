"""`python -m events.roll DATA SEGMENT`: roll one closed journal segment into
Parquet in a child process, so the daemon's event loop never stalls on
encoding and compression. Only the process holding DATA's lock starts it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

from events.store import EventStore

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """The roller works under its parent's lock: if the daemon dies (kill -9),
    so does the roller, before the next daemon undoes the half-done roll and
    redoes it. Linux only; elsewhere the parent check below still helps."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        sys.exit(3)  # the parent died before the death signal was armed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m events.roll DATA SEGMENT", file=sys.stderr)
        return 2
    die_with_parent()
    store = EventStore.attach_for_lock_holder(Path(argv[0]))
    store.roll_segment(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
