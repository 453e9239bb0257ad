"""Faults of a data directory: the store cannot be used as it is, and a person must act.

A damaged Parquet part, a journal segment that cannot be trusted, an unreadable
manifest, a disk that refuses writes (full, read-only): restarting cannot cure any of
them, so the daemon stops with one line naming the file (the CLI maps a `DataFault` to
exit code 6, `daemon.errors.EXIT_DATA`) instead of crashing into a restart loop.

This module is imported by the one-shot CLI's error path, so it imports nothing heavy.
"""

from __future__ import annotations


class DataFault(Exception):
    """The data directory holds or meets something it cannot work with. The message
    names the file and is one line: whitespace (a library's multi-line message) is
    folded."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ManifestError(DataFault):
    """`store.json` cannot be read."""


class JournalWriteError(DataFault):
    """The journal could not write or fsync (a full or failing disk). The journal
    refuses every event from then on; what it wrote before is intact."""


class JournalDamaged(DataFault):
    """A journal segment is damaged before its end: valid frames holding events that
    were made durable follow a corrupt one, so truncating there (as for a torn tail)
    would lose them."""
