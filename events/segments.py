"""Journal segments on disk: their format, reading them, and recovering them.

A journal is a directory of segment files `seg-<first seq, 20 digits>.tlj`.
Each segment starts with an 8-byte magic and holds frames:

    u32 little-endian payload length | u32 crc32(payload) | payload (msgpack event)

A frame header of length 0 is the end of the frames: a segment the writer
(events.journal) preallocated and a crash left open ends in zeros, and every
reader stops there; `read_segment` reads a chunk at a time and no further.

Opening a journal recovers it (`recover`): every segment is scanned, a torn or
corrupt tail is truncated at the last good frame with a warning (never a crash, and
frames before it are never lost), and writing resumes at the next seq. A zeros-only
tail (preallocated, never written) is cut without a warning, and a segment of
nothing but its magic and zeros (made ahead by the writer, never written) and a
segment a crash stopped being made (`seg-*.tlj.tmp`) are deleted without one; a tear
followed by zeros is still a tear. A tail a crash tore holds no whole frame of a critical event
after the tear: such a frame was fsynced, and so was everything before it. When one
is found there, the segment was damaged, not torn: truncating would lose recorded
orders or state, so opening refuses (`JournalDamaged`, naming the segment and the
byte) and a person decides.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog

from events.base import Event
from events.codec import decode
from events.faults import JournalDamaged
from events.registry import CRITICAL_TYPES

MAGIC = b"TAPELJ01"
HEADER = struct.Struct("<II")
HEADER_SIZE = HEADER.size
MAX_FRAME = 64 * 1024 * 1024  # anything larger is a corrupt length, not a frame
SEGMENT_SUFFIX = ".tlj"
TMP_SUFFIX = ".tmp"  # a segment being made (events.segment_prep), renamed when whole
_READ_CHUNK = 4 << 20  # read_segment reads this much at a time, up to the zero tail

log = structlog.get_logger("tapeloop.journal")


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def recover(journal_dir: Path, *, durable: bool = True) -> list[ScanResult]:
    """Scan every segment; truncate torn or corrupt tails (with a warning) and
    drop empty segments. Earlier frames are never touched. Raises JournalDamaged
    when a critical event's frame lies past the damage (see the module doc).
    The directory is fsynced last, also when nothing changed here: a process
    killed between a segment's rename and its directory's fsync left an entry
    only this makes durable. Not `durable`: a replay's run directory, no fsync."""
    results = []
    for leftover in journal_dir.glob(f"seg-*{SEGMENT_SUFFIX}{TMP_SUFFIX}"):
        leftover.unlink()  # a segment a crash stopped being made: it held no frame
    for first_seq, path in list_segments(journal_dir):
        scan = scan_segment(path, first_seq)
        if scan.torn:
            after = frames_after(path, scan.good_bytes)
            critical = [e.seq for _, e in after if type(e) in CRITICAL_TYPES]
            if critical:
                raise JournalDamaged(
                    f"{path}: damaged at byte {scan.good_bytes}, and {len(after)} whole frames "
                    f"follow, {len(critical)} of them order or state events (seq {critical[0]}"
                    f"..{critical[-1]}) that were on disk: truncating would lose them; to "
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
                if durable:
                    os.fsync(f.fileno())
            scan = ScanResult(path, first_seq, scan.frames, scan.good_bytes, scan.good_bytes,
                              scan.last_seq)
        results.append(scan)
    if durable:
        _fsync_dir(journal_dir)
    return results
