"""The append-only journal: length-prefixed, checksummed msgpack frames.

The segments' format, their readers and recovery are events.segments (re-exported
here).

Durability policy (`fsync`):
- "critical" (default): order, fill, state and system events are written and
  fsynced before `append` returns, so nothing acts on an order event that a
  crash could lose. Market data is buffered and written within
  `flush_interval_ms` (and fsynced within `fsync_interval_ms`).
- "always": every event is written and fsynced before `append` returns.
- "never": written within the flush window, never fsynced (replay runs).

Group commit: `stage(event)` frames an event and says whether it must be durable
before anyone acts on it; `commit()` writes and fsyncs everything staged, so the
events one handler run publishes share one fdatasync. The bus (events.bus) commits
before it dispatches the first such event: `append` is `stage` then `commit`. The
daemon's bus writes there instead (`flush`) and leaves the fdatasync to just before
a request leaves on the event's account, or the dispatch's end (`Bus.durable`).

Preallocation: a durable journal (fsync critical/always) creates each segment at
its full size (`segment_max_bytes`, `posix_fallocate`) and fsyncs it with its
directory once, so an append's fdatasync writes the data and not a new file size.
A segment that outgrows it just grows; where the filesystem refuses, segments grow
as they are written. A clean rotate or close truncates the segment to its frames.
A segment a crash left preallocated ends in zeros, which readers and recovery
take for the end of its frames (events.segments).

Off the order path (events.segment_prep, one worker thread): a durable journal keeps
the blocks ahead of its write position written with zeros (a reserved block's first
write is a metadata change the appending fdatasync would otherwise commit), and
`rotate` has the next segment made there, so the first append after a roll does not
create a file. A segment made for that and never written (a crash, or a close right
after a rotate) is magic then zeros: recovery deletes it, and `close` does too.

Opening a journal recovers it (`recover`: torn tails cut with a warning, damage
refused) and writing resumes at the next seq.

A write or fsync that fails (a full or failing disk) is a `JournalWriteError`: the
segment is cut back to the frames written whole before it (so a later start finds no
torn frame), the buffer is dropped, and the journal refuses every event from then on,
the same way each time, while `written_seq`/`synced_seq` keep saying what is on disk.
Nothing may act on an event the journal refused; the owner stops and a later start
recovers everything written.
"""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from events.base import Event
from events.codec import encode
from events.disk_sync import DiskSync
from events.faults import JournalWriteError
from events.registry import CRITICAL_TYPES
from events.segment_prep import ZERO_AHEAD, Job, SegmentPrep, ZeroJob, create_segment
from events.segments import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_FRAME,
    SEGMENT_SUFFIX,
    ScanResult,
    content_end,
    frames_after,
    list_segments,
    read_journal,
    read_segment,
    recover,
    scan_segment,
    segment_name,
    zeros_from,
)

__all__ = ["HEADER", "HEADER_SIZE", "MAGIC", "MAX_FRAME", "MAX_PREALLOCATE", "SEGMENT_SUFFIX",
           "Journal", "JournalError", "JournalPolicy", "ScanResult", "content_end",
           "frames_after", "list_segments", "read_journal", "read_segment", "recover",
           "scan_segment", "segment_name", "zeros_from"]

_pack_header = HEADER.pack
_crc32 = zlib.crc32  # (bound once: `append` and `stage` run for every event)
# A 1 TiB segment limit (a backtest's "never roll") must not reserve a terabyte.
MAX_PREALLOCATE = 1 << 30


class JournalError(Exception):
    """The journal cannot accept an event (a bug of the caller, e.g. a seq gap)."""


@dataclass(frozen=True, slots=True)
class JournalPolicy:
    fsync: str = "critical"  # critical | always | never
    flush_interval_ms: float = 200.0
    fsync_interval_ms: float = 1000.0
    buffer_bytes: int = 1 << 20
    segment_max_bytes: int = 256 << 20
    roll_interval_s: float = 300.0
    preallocate: bool = True  # durable policies only: "never" has no fdatasync to spare
    # how a commit waits for its fdatasync: "block" (the plain call) or "spin" (on a
    # thread of its own, the CPU kept busy: see events.disk_sync)
    sync_wait: str = "block"

    def __post_init__(self) -> None:
        if self.fsync not in ("critical", "always", "never"):
            raise ValueError(f"journal fsync must be critical|always|never, not {self.fsync!r}")
        if self.sync_wait not in ("spin", "block"):
            raise ValueError(f"journal sync_wait must be spin|block, not {self.sync_wait!r}")


# The appended bytes and what reading them back needs (the file's size), not its
# times: fdatasync skips the inode's timestamps, a disk write fsync would add to
# every order. The segment's creation is fsynced in full, with its directory.
_datasync = getattr(os, "fdatasync", os.fsync)


def _datasync_now(fd: int) -> None:
    """`_datasync` as it is when called (tests and the bench instrument it)."""
    _datasync(fd)


_NEVER = 1 << 62  # an offset no segment reaches: "no zeroing due / no write to wait for"
_BLOCK = 4096  # the filesystem block a conversion covers (a multiple of it is as good)


class Journal:
    """The writer. Owned by one process (the caller holds the directory lock).

    Subscribe `append` to the bus as its first catch-all handler: it refuses an
    event whose seq is not the next one, so the journal is gap-free by
    construction.
    """

    def __init__(self, journal_dir: Path, *, next_seq: int = 1,
                 policy: JournalPolicy | None = None, monotonic=time.monotonic,
                 durable: bool = True) -> None:
        self.dir = Path(journal_dir)
        self.policy = policy or JournalPolicy()
        # False for a replay's run (a non-durable EventStore): its one segment is
        # rolled into Parquet and deleted as the run ends, so a segment this writer
        # creates itself and the segment's close are not fsynced (three fsyncs of a
        # throwaway file, 10-20 ms a replay). The policy's fsyncs are unchanged.
        self.durable = durable
        self._buffer_bytes = self.policy.buffer_bytes  # read per event
        self._disk_sync = DiskSync(_datasync_now) \
            if self.policy.sync_wait == "spin" and self.policy.fsync != "never" else None
        self._monotonic = monotonic
        self._buf = bytearray()
        self._fd = -1
        self._segment: Path | None = None
        self._segment_bytes = 0
        self._synced_bytes = 0  # of the open segment, made durable by an fsync
        self._preallocated = 0  # bytes the open segment was created with (0: grows)
        self._segment_opened = 0.0
        # Zeros ahead of the write position (events.segment_prep): blocks below
        # `_zeroed` are written; a job zeroing from `_write_limit` on is running, and
        # a write reaching past that waits for it; one is due past `_zero_due`.
        self._prep: SegmentPrep | None = None
        self._zeroed = 0
        self._zero_job: ZeroJob | None = None
        self._zero_job_end = 0
        self._write_limit = _NEVER
        self._zero_due = _NEVER
        self._spare: tuple[Path, Job] | None = None  # the next segment, being made
        self.failed: JournalWriteError | None = None  # set by a failed write, for good
        self.next_seq = next_seq
        self.written_seq = next_seq - 1  # handed to the OS: survives a process kill
        self.synced_seq = next_seq - 1  # fsynced: survives a power cut
        self._pending_seq = next_seq - 1  # last seq in the buffer
        self._last_flush = monotonic()
        self._last_fsync = self._last_flush
        self.flushes = 0
        self.fsyncs = 0
        self.flush_seconds_total = 0.0
        fsync = self.policy.fsync
        self._critical = (
            frozenset() if fsync == "never" else None if fsync == "always" else CRITICAL_TYPES
        )

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, journal_dir: Path, *, min_next_seq: int = 1,
             policy: JournalPolicy | None = None) -> tuple[Journal, list[ScanResult]]:
        """Recover the journal directory and open a writer after its last frame.

        Returns the writer and the scan of every existing segment (callers roll
        those into Parquet). A new segment is started for this writer.
        """
        journal_dir = Path(journal_dir)
        journal_dir.mkdir(parents=True, exist_ok=True)
        scans = recover(journal_dir)
        last = max([s.last_seq for s in scans], default=0)
        journal = cls(journal_dir, next_seq=max(last + 1, min_next_seq), policy=policy)
        return journal, scans

    def _open_segment(self) -> None:
        # named after its first frame: the oldest event still in the buffer
        path = self.dir / segment_name(self.written_seq + 1)
        zeroed = len(MAGIC)
        spare, self._spare = self._spare, None
        if spare is not None and spare[0] == path:
            fd, preallocated = spare[1].wait()  # made at rotate time; raises its OSError
            zeroed = ZERO_AHEAD
        else:
            if spare is not None:  # cannot happen (nothing is written between): made anew
                self._drop_spare(spare)
            p = self.policy
            size = min(p.segment_max_bytes, MAX_PREALLOCATE)
            fd, preallocated = create_segment(
                path, size if p.preallocate and p.fsync != "never" else 0,
                durable=self.durable)
        self._fd = fd
        self._segment = path
        self._segment_bytes = self._synced_bytes = len(MAGIC)
        self._preallocated = preallocated
        self._segment_opened = self._monotonic()
        self._zeroed = min(zeroed, preallocated)
        # the next job is due once the writes are half way into the zeros (at once
        # for a segment made here); none without a preallocation
        self._zero_due = max(0, self._zeroed - ZERO_AHEAD // 2) if preallocated else _NEVER

    def _zero_ahead(self) -> None:
        """The write position passed `_zero_due`: note a finished job, and start the
        next one (from the write position, `ZERO_AHEAD` bytes, within the
        preallocation) unless one is still running. Off the hot path's common case."""
        job = self._zero_job
        if job is not None:
            if not job.done.is_set():
                return  # still running: looked at again with the next write
            self._zero_finished()
            if self._zero_due == _NEVER:
                return
        lo = max(self._zeroed, self._segment_bytes)
        # ending on a block boundary: the next job starts there, sharing no block
        # (whose conversion an append's fdatasync would then commit) with the appends
        hi = min((lo + ZERO_AHEAD) & ~(_BLOCK - 1), self._preallocated)
        if hi <= lo:
            self._zero_due = _NEVER  # the preallocation is all written or zeroed
            return
        if self._prep is None:
            self._prep = SegmentPrep()
        assert self._segment is not None
        self._zero_job = self._prep.zero(self._segment, lo, hi)
        self._zero_job_end = hi
        self._write_limit = lo
        self._zero_due = hi - ZERO_AHEAD // 2

    def _zero_finished(self) -> None:
        """The running zero job is done (the caller saw or waited for it)."""
        job = self._zero_job
        assert job is not None
        self._zero_job = None
        self._write_limit = _NEVER
        if job.error is None:
            self._zeroed = self._zero_job_end
        else:
            self._zero_due = _NEVER  # an optimisation only: the appends report the disk

    def wait_zeroing(self) -> None:
        """Wait for the zeros being written ahead, fdatasynced (tests use it)."""
        if self._zero_job is not None:
            self._zero_job.done.wait()
            self._zero_finished()

    def _wait_zeros_written(self) -> None:
        """A write reaches the running job's range: wait until its zeros are written
        (not synced: ordered before the frames in the page cache is what matters)."""
        assert self._zero_job is not None
        self._zero_job.written.wait()
        self._write_limit = _NEVER

    def _stop_zeroing(self) -> None:
        """Before the segment is cut or closed: no zeros may land after it."""
        job, self._zero_job = self._zero_job, None
        if job is not None:
            job.cancel()
        self._write_limit = self._zero_due = _NEVER

    def _drop_spare(self, spare: tuple[Path, Job]) -> None:
        """Close and delete a segment made ahead and never written."""
        path, job = spare
        job.done.wait()
        if job.error is None:
            with contextlib.suppress(OSError):
                os.close(job.result[0])
            with contextlib.suppress(OSError):
                path.unlink()

    # -- appending ---------------------------------------------------------------

    def append(self, event: Event) -> None:
        """Frame `event` into the buffer; write (and fsync) it now when the
        policy calls it critical. (`stage` then `commit`, written out: it is the
        hot path of every direct caller.)"""
        if self.failed is not None:
            raise JournalWriteError(str(self.failed))
        seq = event.seq
        if seq != self.next_seq:
            raise JournalError(f"journal expects seq {self.next_seq}, got {seq}")
        # Encoding to bytes and checksumming those is ~40% cheaper than
        # encoding in place and checksumming a memoryview of the buffer.
        payload = encode(event)
        buf = self._buf
        buf += _pack_header(len(payload), _crc32(payload))
        buf += payload
        self.next_seq = seq + 1
        self._pending_seq = seq
        critical = self._critical
        if critical is None or type(event) in critical:
            self.flush(sync=True)
        elif len(buf) >= self._buffer_bytes:
            self.flush(sync=False)

    def stage(self, event: Event) -> bool:
        """Frame `event` into the buffer, like `append`, but leave the write and
        fsync of a critical event to `commit()`: returns True when `event` must be
        committed before anything acts on it. Several staged events then share one
        fdatasync (group commit); the bus calls `commit` before it dispatches the
        first of them (see `Bus(commit=...)`)."""
        if self.failed is not None:
            raise JournalWriteError(str(self.failed))
        seq = event.seq
        if seq != self.next_seq:
            raise JournalError(f"journal expects seq {self.next_seq}, got {seq}")
        payload = encode(event)
        buf = self._buf
        buf += _pack_header(len(payload), _crc32(payload))
        buf += payload
        self.next_seq = seq + 1
        self._pending_seq = seq
        critical = self._critical
        if critical is None or type(event) in critical:
            return True
        if len(buf) >= self._buffer_bytes:
            self.flush(sync=False)
        return False

    def commit(self) -> None:
        """Write everything staged and fsync it (one fdatasync for all of it).
        Raises JournalWriteError when the disk refuses."""
        self.flush(sync=True)

    def flush(self, *, sync: bool = False) -> None:
        """Write the buffer to the segment (and fsync when `sync`). Raises
        JournalWriteError when the disk refuses (see the module doc)."""
        if self.failed is not None:
            raise JournalWriteError(str(self.failed))
        if self._buf:
            t0 = time.perf_counter()
            try:
                if self._fd < 0:
                    self._open_segment()
                if self._segment_bytes + len(self._buf) > self._write_limit:
                    self._wait_zeros_written()  # zeros must never land on frames
                data = memoryview(self._buf)
                try:
                    while data:
                        n = os.write(self._fd, data)
                        data = data[n:]
                finally:
                    # a view left alive (held by the exception's frame) would make
                    # every later append to the buffer raise BufferError
                    data.release()
            except OSError as exc:
                self._fail(exc, keep=self._segment_bytes)
            self._segment_bytes += len(self._buf)
            self._buf.clear()
            self.written_seq = self._pending_seq
            if self._segment_bytes > self._zero_due:
                self._zero_ahead()
            self.flushes += 1
            self.flush_seconds_total += time.perf_counter() - t0
            self._last_flush = self._monotonic()
        if sync and self.policy.fsync != "never" and self.synced_seq < self.written_seq:
            try:
                if self._disk_sync is not None:
                    self._disk_sync(self._fd)
                else:
                    _datasync(self._fd)
            except OSError as exc:
                # what the page cache held since the last good fsync may be lost
                self._fail(exc, keep=self._synced_bytes)
            self.synced_seq = self.written_seq
            self._synced_bytes = self._segment_bytes
            self.fsyncs += 1
            self._last_fsync = self._monotonic()

    def _fail(self, exc: OSError, *, keep: int) -> NoReturn:
        """A write or fsync failed: cut the segment back to `keep` bytes (whole frames
        only), drop the buffer, refuse from now on, and raise JournalWriteError."""
        where = self._segment if self._segment is not None else self.dir
        self._stop_zeroing()  # no zeros may land past the cut below
        # a new buffer: the failed write's view of the old one cannot block it
        self._buf = bytearray()
        if self._fd >= 0:
            with contextlib.suppress(OSError):  # shrinking needs no space
                os.ftruncate(self._fd, keep)
            if keep < self._segment_bytes:  # cut back to the last fsync
                self.written_seq = self.synced_seq
            self._segment_bytes = keep
        self._pending_seq = self.written_seq
        self.failed = JournalWriteError(
            f"the journal cannot write {where}: {exc.strerror or repr(exc)} "
            f"(every event up to seq {self.written_seq} is recorded, none after it)")
        raise JournalWriteError(str(self.failed)) from None

    def tick(self) -> bool:
        """Apply the time-based policy; call it every few ms from the loop.

        Returns True when the segment should be rotated (size or age)."""
        if self.failed is not None:
            return False
        now = self._monotonic()
        p = self.policy
        if self._buf and (now - self._last_flush) * 1000.0 >= p.flush_interval_ms:
            self.flush(sync=False)
        if (self.synced_seq < self.written_seq and p.fsync != "never"
                and (now - self._last_fsync) * 1000.0 >= p.fsync_interval_ms):
            self.flush(sync=True)
        if self._fd < 0:
            return False
        return (self._segment_bytes >= p.segment_max_bytes
                or now - self._segment_opened >= p.roll_interval_s)

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def rotate(self) -> Path | None:
        """Close the current segment (flushed and fsynced) and return it; the
        next append starts a new one. None when nothing was written, and after a
        failed write (the segment stays where it is, for the next start).

        A durable journal leaves the rest to its worker (events.segment_prep): it
        makes the next segment, then cuts the closed one to its frames and fsyncs
        it (freeing a preallocation's extents took 1-12 ms here, fsync included:
        an event loop stall once per roll). Its frames are on disk before this
        returns; until the cut, a reader finds the zeros it takes for their end."""
        if self.policy.fsync == "never":
            return self._close_segment()
        if self.failed is None:
            self.flush(sync=True)  # first: the cut below is to what this leaves
        fd, size, preallocated = self._fd, self._segment_bytes, self._preallocated
        closed = self._close_segment(cut=False)
        if closed is None:
            return None
        if self._prep is None:
            self._prep = SegmentPrep()
        if self._spare is None:
            p = self.policy
            # named as `_open_segment` will want it: nothing is written until then
            path = self.dir / segment_name(self.written_seq + 1)
            made = min(p.segment_max_bytes, MAX_PREALLOCATE) if p.preallocate else 0
            self._spare = (path, self._prep.create(path, made))
        self._prep.cut(fd, size if preallocated > size else -1)
        return closed

    def _close_segment(self, *, cut: bool = True) -> Path | None:
        """Flush and fsync the segment and let it go; with `cut`, cut its unwritten
        preallocation, fsync and close it here, else the caller hands its fd on."""
        if self.failed is not None:
            self._drop_fd()
            return None
        self.flush(sync=True)
        if self._fd < 0:
            return None
        self._stop_zeroing()  # no zeros may land past the cut
        if cut:
            try:
                if self._preallocated > self._segment_bytes:
                    # the unwritten rest of the preallocation goes: a closed segment
                    # is its frames and nothing else
                    os.ftruncate(self._fd, self._segment_bytes)
                if self.durable:
                    os.fsync(self._fd)
            except OSError as exc:
                self._fail(exc, keep=self._synced_bytes)
            os.close(self._fd)
        closed = self._segment
        self._fd = -1
        self._segment = None
        self._zero_due = _NEVER
        return closed

    def settle(self) -> None:
        """Wait for everything handed to the worker so far (the cuts of rotated
        segments, the next segment, zeros); `close` does, tests do."""
        if self._prep is not None:
            self._prep.drain()

    def close(self) -> Path | None:
        """Flush, fsync and close; returns the last segment. A segment made ahead
        and never written is deleted, the worker's work waited for, and its
        thread stops."""
        try:
            return self._close_segment()
        finally:
            spare, self._spare = self._spare, None
            if spare is not None:
                self._drop_spare(spare)
            if self._prep is not None:
                # nothing of ours touches the directory once its owner lets it go
                self._prep.drain()
                self._prep.close()
                self._prep = None
            if self._disk_sync is not None:
                self._disk_sync.close()

    def _drop_fd(self) -> None:
        self._stop_zeroing()
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
            self._segment = None

    @property
    def preallocated_bytes(self) -> int:
        """The size the open segment was created with (0: none, it grows)."""
        return self._preallocated
