"""The append-only journal: length-prefixed, checksummed msgpack frames.

A journal is a directory of segment files `seg-<first seq, 20 digits>.tlj`.
Each segment starts with an 8-byte magic and holds frames:

    u32 little-endian payload length | u32 crc32(payload) | payload (msgpack event)

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
before it dispatches the first such event: `append` is `stage` then `commit`.

Preallocation: a durable journal (fsync critical/always) creates each segment at
its full size (`segment_max_bytes`, `posix_fallocate`) and fsyncs it with its
directory once, so an append's fdatasync writes the data and not a new file size.
A segment that outgrows it just grows; where the filesystem refuses, segments grow
as they are written. A clean rotate or close truncates the segment to its frames.
A segment a crash left preallocated ends in zeros: a frame header of length 0 is
the end of the frames (`_frames`), every reader stops there, and recovery cuts the
zero tail without calling it torn (a tear followed by zeros is still a tear).

Opening a journal recovers it: every segment is scanned, a torn or corrupt tail
is truncated at the last good frame with a warning (never a crash, and frames
before it are never lost), and writing resumes at the next seq. A tail a crash
tore holds no whole frame of a critical event after the tear: such a frame was
fsynced, and so was everything before it. When one is found there, the segment
was damaged, not torn: truncating would lose recorded orders or state, so opening
refuses (`JournalDamaged`, naming the segment and the byte) and a person decides.

A write or fsync that fails (a full or failing disk) is a `JournalWriteError`: the
segment is cut back to the frames written whole before it (so a later start finds no
torn frame), the buffer is dropped, and the journal refuses every event from then on,
the same way each time, while `written_seq`/`synced_seq` keep saying what is on disk.
Nothing may act on an event the journal refused; the owner stops and a later start
recovers everything written.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import msgspec
import structlog

from events.base import Event
from events.codec import decode, encode
from events.faults import JournalDamaged, JournalWriteError
from events.registry import CRITICAL_TYPES

MAGIC = b"TAPELJ01"
HEADER = struct.Struct("<II")
HEADER_SIZE = HEADER.size
_pack_header = HEADER.pack
MAX_FRAME = 64 * 1024 * 1024  # anything larger is a corrupt length, not a frame
SEGMENT_SUFFIX = ".tlj"
# A 1 TiB segment limit (a backtest's "never roll") must not reserve a terabyte.
MAX_PREALLOCATE = 1 << 30
_READ_CHUNK = 4 << 20  # read_segment reads this much at a time, up to the zero tail

log = structlog.get_logger("tapeloop.journal")


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

    def __post_init__(self) -> None:
        if self.fsync not in ("critical", "always", "never"):
            raise ValueError(f"journal fsync must be critical|always|never, not {self.fsync!r}")


@dataclass(frozen=True, slots=True)
class ScanResult:
    path: Path
    first_seq: int
    frames: int
    good_bytes: int  # offset just past the last good frame
    file_bytes: int
    last_seq: int  # first_seq - 1 when empty
    zero_tail: bool = False  # only zeros follow good_bytes: preallocated, never written

    @property
    def torn(self) -> bool:
        return self.good_bytes != self.file_bytes and not self.zero_tail


def segment_name(first_seq: int) -> str:
    return f"seg-{first_seq:020d}{SEGMENT_SUFFIX}"


def list_segments(journal_dir: Path) -> list[tuple[int, Path]]:
    """(first seq, path) of every segment, in seq order."""
    out = []
    try:
        entries = list(os.scandir(journal_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        name = entry.name
        if name.startswith("seg-") and name.endswith(SEGMENT_SUFFIX):
            try:
                out.append((int(name[4:-len(SEGMENT_SUFFIX)]), Path(entry.path)))
            except ValueError:
                continue
    out.sort()
    return out


def _frames(buf: memoryview | bytes, start: int) -> Iterator[tuple[int, int]]:
    """(payload start, payload end) of each valid frame from `start`; stops at
    the first torn or corrupt one."""
    end = len(buf)
    pos = start
    unpack = HEADER.unpack_from
    crc32 = zlib.crc32
    while pos + HEADER_SIZE <= end:
        length, crc = unpack(buf, pos)
        body = pos + HEADER_SIZE
        if length == 0 or length > MAX_FRAME or body + length > end:
            return
        if crc32(buf[body : body + length]) != crc:
            return
        yield body, body + length
        pos = body + length


def zeros_from(buf: memoryview | bytes, start: int) -> bool:
    """True when every byte of `buf` from `start` on is zero (a preallocated tail)."""
    import numpy as np

    if start >= len(buf):
        return True
    # count_nonzero walks the mapping without a temporary array the size of the tail
    return int(np.count_nonzero(np.frombuffer(buf, dtype=np.uint8, offset=start))) == 0


def content_end(buf: memoryview | bytes, start: int = 0) -> int:
    """One past the last non-zero byte of `buf` at or after `start` (`start` when
    none): where a preallocated segment's written bytes end at the latest."""
    import numpy as np

    hi = len(buf)
    while hi > start:
        lo = max(start, hi - _READ_CHUNK)
        nz = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8, count=hi - lo, offset=lo))
        if len(nz):
            return lo + int(nz[-1]) + 1
        hi = lo
    return start


def scan_segment(path: Path, first_seq: int) -> ScanResult:
    """Validate a segment's frames without decoding them all."""
    size = path.stat().st_size
    if size < len(MAGIC):
        return ScanResult(path, first_seq, 0, 0, size, first_seq - 1)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if mm[: len(MAGIC)] != MAGIC:
            return ScanResult(path, first_seq, 0, 0, size, first_seq - 1)
        view = memoryview(mm)
        try:
            frames = 0
            good = len(MAGIC)
            last: tuple[int, int] | None = None
            for body, stop in _frames(view, len(MAGIC)):
                frames += 1
                good = stop
                last = (body, stop)
            last_seq = first_seq - 1
            if last is not None:
                last_seq = decode(view[last[0] : last[1]]).seq
                if last_seq != first_seq + frames - 1:
                    log.warning("journal.segment_seq_mismatch", path=str(path))
            zero_tail = good < size and zeros_from(view, good)
        finally:
            view.release()
    return ScanResult(path, first_seq, frames, good, size, last_seq, zero_tail)


def read_segment(path: Path) -> Iterator[Event]:
    """Every valid event of a segment, in order (a torn tail is ignored).

    Read a chunk at a time and only up to where the frames end: a live segment is
    preallocated, and its zero tail is not worth reading into memory."""
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            return
        rest = b""
        while True:
            chunk = f.read(_READ_CHUNK)
            data = rest + chunk if rest else chunk
            view = memoryview(data)
            pos = 0
            for body, stop in _frames(view, 0):
                yield decode(view[body:stop])
                pos = stop
            if not chunk or _frames_end(view, pos):
                return
            rest = data[pos:]


def _frames_end(view: memoryview, pos: int) -> bool:
    """Whether `_frames` stopped at `pos` for good (a zero length, i.e. the
    preallocated tail, or a bad header or checksum) rather than for want of bytes."""
    if pos + HEADER_SIZE > len(view):
        return False
    length, _crc = HEADER.unpack_from(view, pos)
    return length == 0 or length > MAX_FRAME or pos + HEADER_SIZE + length <= len(view)


def read_journal(journal_dir: Path, after_seq: int = 0) -> Iterator[Event]:
    """Every event in the journal with seq > after_seq, in seq order."""
    segments = list_segments(journal_dir)
    for i, (_first, path) in enumerate(segments):
        nxt = segments[i + 1][0] if i + 1 < len(segments) else None
        if nxt is not None and nxt <= after_seq + 1:
            continue
        try:
            for event in read_segment(path):
                if event.seq > after_seq:
                    yield event
        except FileNotFoundError:  # rolled into Parquet while we read
            continue


# The appended bytes and what reading them back needs (the file's size), not its
# times: fdatasync skips the inode's timestamps, a disk write fsync would add to
# every order. The segment's creation is fsynced in full, with its directory.
_datasync = getattr(os, "fdatasync", os.fsync)


def _preallocate(fd: int, size: int) -> bool:
    """Reserve the segment's `size` bytes on disk; False (and the file as it was)
    where the filesystem or the disk refuses: the segment then grows as written."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError:
        # silent: nothing is lost, an append's fdatasync just also writes the size
        with contextlib.suppress(OSError):
            os.ftruncate(fd, len(MAGIC))  # a refused allocation may have left a size
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The writer. Owned by one process (the caller holds the directory lock).

    Subscribe `append` to the bus as its first catch-all handler: it refuses an
    event whose seq is not the next one, so the journal is gap-free by
    construction.
    """

    def __init__(self, journal_dir: Path, *, next_seq: int = 1,
                 policy: JournalPolicy | None = None, monotonic=time.monotonic) -> None:
        self.dir = Path(journal_dir)
        self.policy = policy or JournalPolicy()
        self._monotonic = monotonic
        self._buf = bytearray()
        self._fd = -1
        self._segment: Path | None = None
        self._segment_bytes = 0
        self._synced_bytes = 0  # of the open segment, made durable by an fsync
        self._preallocated = 0  # bytes the open segment was created with (0: grows)
        self._segment_opened = 0.0
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
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            if os.write(fd, MAGIC) != len(MAGIC):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            p = self.policy
            size = min(p.segment_max_bytes, MAX_PREALLOCATE)
            preallocated = (size if p.preallocate and p.fsync != "never" and size > len(MAGIC)
                            and _preallocate(fd, size) else 0)
            os.fsync(fd)  # the size and the extents, once: appends then sync data only
            _fsync_dir(self.dir)
        except OSError:
            # a segment with no whole magic: the next start drops it anyway
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self._fd = fd
        self._segment = path
        self._segment_bytes = self._synced_bytes = len(MAGIC)
        self._preallocated = preallocated
        self._segment_opened = self._monotonic()

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
        buf += _pack_header(len(payload), zlib.crc32(payload))
        buf += payload
        self.next_seq = seq + 1
        self._pending_seq = seq
        critical = self._critical
        if critical is None or type(event) in critical:
            self.flush(sync=True)
        elif len(buf) >= self.policy.buffer_bytes:
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
        buf += _pack_header(len(payload), zlib.crc32(payload))
        buf += payload
        self.next_seq = seq + 1
        self._pending_seq = seq
        critical = self._critical
        if critical is None or type(event) in critical:
            return True
        if len(buf) >= self.policy.buffer_bytes:
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
            self.flushes += 1
            self.flush_seconds_total += time.perf_counter() - t0
            self._last_flush = self._monotonic()
        if sync and self.policy.fsync != "never" and self.synced_seq < self.written_seq:
            try:
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
        failed write (the segment stays where it is, for the next start)."""
        if self.failed is not None:
            self._drop_fd()
            return None
        self.flush(sync=True)
        if self._fd < 0:
            return None
        try:
            if self._preallocated > self._segment_bytes:
                # the unwritten rest of the preallocation goes: a closed segment is
                # its frames and nothing else
                os.ftruncate(self._fd, self._segment_bytes)
            os.fsync(self._fd)
        except OSError as exc:
            self._fail(exc, keep=self._synced_bytes)
        os.close(self._fd)
        closed = self._segment
        self._fd = -1
        self._segment = None
        return closed

    def close(self) -> Path | None:
        """Flush, fsync and close; returns the last segment."""
        return self.rotate()

    def _drop_fd(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
            self._segment = None

    @property
    def preallocated_bytes(self) -> int:
        """The size the open segment was created with (0: none, it grows)."""
        return self._preallocated


def frames_after(path: Path, start: int) -> list[tuple[int, Event]]:
    """Whole, valid frames of a segment found past a damaged spot at byte `start`
    (each as its offset and event): a frame counts when its length fits, its
    checksum matches and its payload decodes. Candidate headers are found with
    numpy a window at a time, so searching a large damaged tail stays cheap."""
    data = path.read_bytes()
    out: list[tuple[int, Event]] = []
    pos = max(start, 0)
    # a header has a non-zero length: none starts in a preallocated zero tail
    last_start = content_end(data, pos)
    while True:
        found = _next_frame(data, pos + 1, last_start)
        if found is None:
            return out
        at, event = found
        out.append(found)
        # walk the chain of frames from there; search again where it breaks
        pos = at + HEADER_SIZE + HEADER.unpack_from(data, at)[0]
        for body, stop in _frames(data, pos):
            out.append((body - HEADER_SIZE, decode(data[body:stop])))
            pos = stop


_WINDOW = 1 << 20


def _next_frame(data: bytes, start: int, last_start: int | None = None
                ) -> tuple[int, Event] | None:
    """The first valid frame at an offset >= `start` (and < `last_start`), with its event."""
    import numpy as np

    end = len(data)
    stop = end - HEADER_SIZE + 1
    if last_start is not None:
        stop = min(stop, last_start)
    for lo in range(start, stop, _WINDOW):
        hi = min(lo + _WINDOW, stop)  # candidate offsets lo..hi-1
        b = np.frombuffer(data, dtype=np.uint8, count=hi - lo + 3, offset=lo).astype(np.uint32)
        n = hi - lo
        lengths = b[:n] | b[1 : n + 1] << 8 | b[2 : n + 2] << 16 | b[3 : n + 3] << 24
        room = end - HEADER_SIZE - np.arange(lo, hi, dtype=np.int64)  # bytes after each header
        fits = (lengths > 0) & (lengths <= MAX_FRAME) & (lengths.astype(np.int64) <= room)
        for k in np.flatnonzero(fits).tolist():
            at = lo + k
            length, crc = HEADER.unpack_from(data, at)
            body = at + HEADER_SIZE
            if zlib.crc32(data[body : body + length]) != crc:
                continue
            try:
                return at, decode(data[body : body + length])
            except msgspec.DecodeError:  # garbage that passed the crc: not a frame
                continue
    return None


def recover(journal_dir: Path) -> list[ScanResult]:
    """Scan every segment; truncate torn or corrupt tails (with a warning) and
    drop empty segments. Earlier frames are never touched. Raises JournalDamaged
    when a critical event's frame lies past the damage (see the module doc)."""
    results = []
    for first_seq, path in list_segments(journal_dir):
        scan = scan_segment(path, first_seq)
        if scan.torn:
            after = frames_after(path, scan.good_bytes)
            durable = [e.seq for _, e in after if type(e) in CRITICAL_TYPES]
            if durable:
                raise JournalDamaged(
                    f"{path}: damaged at byte {scan.good_bytes}, and {len(after)} whole frames "
                    f"follow, {len(durable)} of them order or state events (seq {durable[0]}"
                    f"..{durable[-1]}) that were on disk: truncating would lose them; to "
                    f"accept that loss, truncate the file at byte {scan.good_bytes}")
        if scan.frames == 0:
            if scan.file_bytes != len(MAGIC) and not scan.zero_tail:
                log.warning("journal.torn_empty_segment", path=str(path), bytes=scan.file_bytes)
            path.unlink()
            continue
        if scan.good_bytes != scan.file_bytes:
            if scan.torn:
                log.warning(
                    "journal.torn_tail", path=str(path),
                    truncated_bytes=scan.file_bytes - scan.good_bytes, last_seq=scan.last_seq,
                )
            else:  # a preallocated segment a crash left open: its zeros are no loss
                log.info("journal.preallocated_tail_cut", path=str(path),
                         bytes=scan.file_bytes - scan.good_bytes, last_seq=scan.last_seq)
            with open(path, "r+b") as f:
                f.truncate(scan.good_bytes)
                os.fsync(f.fileno())
            scan = ScanResult(path, first_seq, scan.frames, scan.good_bytes, scan.good_bytes,
                              scan.last_seq)
        results.append(scan)
    _fsync_dir(journal_dir)
    return results
