"""The column cache: decoded record batches of Parquet parts, kept for the next replay.

A sweep worker replays the same days again and again with other parameters; reading
a part decodes (and checks) all its pages each time. With the cache enabled
(`enable(max_bytes)`, once per worker process) the first read of a part keeps its
decoded, checked batches, and later reads in the process take them from memory.
Plain `tapeloop replay` leaves it off: one replay reads each part once.

Entries are keyed so a changed file is never served stale: the part's path, size and
mtime (ns) as `stat` gives them when it is opened, and everything that shapes the
batches (the columns read, the batch size, the columns decoded as dictionaries, the
schema they are adapted to). Row filters (symbols, time range) are applied to the
cached batches afterwards, so they are not part of the key.

Memory is bounded: an entry is admitted only whole, once its part has been read to
the end without an error (a damaged part is never cached), the least recently used
entries are evicted to make room, and a part bigger than the whole budget is not
kept at all. Sizes are Arrow's buffer sizes, counting shared buffers once per batch,
so the figure is an upper bound of the memory held.

Process-wide and thread-safe: the reader's read-ahead thread fills it, and a worker
may run jobs on several threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import pyarrow as pa

__all__ = ["CacheStats", "ColumnCache", "active", "disable", "enable", "stats"]


@dataclass(slots=True)
class CacheStats:
    """Counters of the cache (a snapshot)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    rejected: int = 0  # parts larger than the whole budget
    entries: int = 0
    bytes: int = 0
    max_bytes: int = 0


def batches_nbytes(batches: list[pa.RecordBatch]) -> int:
    return sum(b.get_total_buffer_size() for b in batches)


class ColumnCache:
    """A byte-bounded LRU of decoded batches (see the module docstring)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[list[pa.RecordBatch], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._stats = CacheStats(max_bytes=max_bytes)

    def get(self, key: Hashable) -> list[pa.RecordBatch] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self._stats.hits += 1
            return entry[0]

    def put(self, key: Hashable, batches: list[pa.RecordBatch], nbytes: int | None = None
            ) -> bool:
        """Keep `batches` under `key`, evicting the least recently used entries to
        make room; False (nothing kept) when they alone exceed the budget."""
        size = batches_nbytes(batches) if nbytes is None else nbytes
        with self._lock:
            if size > self.max_bytes:
                self._stats.rejected += 1
                return False
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            while self._entries and self._bytes + size > self.max_bytes:
                _, (_, freed) = self._entries.popitem(last=False)
                self._bytes -= freed
                self._stats.evictions += 1
            self._entries[key] = (batches, size)
            self._bytes += size
            return True

    def reject(self) -> None:
        """Count a part not kept because it alone outgrew the budget."""
        with self._lock:
            self._stats.rejected += 1

    def stats(self) -> CacheStats:
        with self._lock:
            s = self._stats
            return CacheStats(hits=s.hits, misses=s.misses, evictions=s.evictions,
                              rejected=s.rejected, entries=len(self._entries), bytes=self._bytes,
                              max_bytes=self.max_bytes)


_active: ColumnCache | None = None


def enable(max_bytes: int) -> ColumnCache:
    """Turn the process-wide cache on with a budget of `max_bytes` (a new, empty
    cache if it was on with another budget) and return it."""
    global _active
    if _active is None or _active.max_bytes != max_bytes:
        _active = ColumnCache(max_bytes)
    return _active


def disable() -> None:
    """Turn the cache off and let its batches go."""
    global _active
    _active = None


def active() -> ColumnCache | None:
    """The cache the reader uses, or None when it is off."""
    return _active


def stats() -> CacheStats:
    """The active cache's counters (all zero when it is off)."""
    return _active.stats() if _active is not None else CacheStats()
