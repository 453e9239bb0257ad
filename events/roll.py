"""`python -m events.roll DATA SEGMENT PARENT_PID`: roll one closed journal segment into
Parquet in a child process, so the daemon's event loop never stalls on encoding and
compression. Only the process holding DATA's lock (PARENT_PID) starts it, and the roller
works under that lock: it must never outlive its parent. A roller left running by a
`kill -9` of the daemon would write the store while the next daemon recovers it (the
same events read from a new part and from the journal: a start that fails)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Arm SIGKILL on the parent's death, then check the parent is still `parent`: a
    parent that died before the signal was armed has left us to init already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        sys.exit(3)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[2].isdigit():
        print("usage: python -m events.roll DATA SEGMENT PARENT_PID", file=sys.stderr)
        return 2
    die_with_parent(int(argv[2]))  # before the heavy imports: the window is short
    from events.faults import DataFault
    from events.store import EventStore

    store = EventStore.attach_for_lock_holder(Path(argv[0]))
    try:
        store.roll_segment(Path(argv[1]))
    except (DataFault, OSError) as exc:
        # a full disk, a damaged manifest: one line for the daemon's log (the segment
        # stays in the journal, the next start rolls it), not a traceback
        print(" ".join(f"roll of {argv[1]} failed: {exc}".split()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
