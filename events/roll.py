"""`python -m events.roll DATA SEGMENT`: roll one closed journal segment into
Parquet in a child process, so the daemon's event loop never stalls on
encoding and compression. Only the process holding DATA's lock starts it."""

from __future__ import annotations

import sys
from pathlib import Path

from events.store import EventStore


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m events.roll DATA SEGMENT", file=sys.stderr)
        return 2
    store = EventStore.attach_for_lock_holder(Path(argv[0]))
    store.roll_segment(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
