"""Journal segment space, prepared off the order path (for events.journal).

A durable journal preallocates its segments (`posix_fallocate`), but ext4 and XFS
hand the reserved blocks out as *unwritten* extents: the first write into each block
converts it, and that conversion is a metadata change the next fdatasync must commit
through the filesystem's own journal (another device write and flush). With frames
of a few hundred bytes that is one order in every few, and it is the durable path's
p90-p99. Creating a segment (open, preallocate, fsync it and its directory) costs a
millisecond or more, which the first append after a roll used to pay.

`SegmentPrep` is one worker thread (started on first use) that does both away from
the event loop:

- `zero(path, lo, hi)`: write zeros over [lo, hi) of the open segment and fdatasync
  them, ahead of the write position, so the blocks an append lands in are already
  written and its fdatasync writes data only. The journal never writes into a range
  whose job is running (it waits for it), so zeros never overwrite frames; a crash
  leaves zeros after the frames, which every reader takes for their end
  (events.segments). The worker opens the segment itself (a file description of
  its own): an fsync error of the journal's writes is then reported to the
  journal's own fdatasync, never consumed by the worker's.
- `create(path, size)`: make the next segment at rotate time (`create_segment`),
  with its first `ZERO_AHEAD` bytes zeroed, so the first append after a roll finds
  it ready. It is made under a temporary name and renamed when whole; a crash leaves
  either that temporary file or an empty segment (magic then zeros), and recovery
  deletes both.

- `cut(fd, size)`: cut a rotated segment's unwritten preallocation and fsync and
  close it (freeing the extents of a large preallocation took milliseconds), after
  the journal has fdatasynced its frames.

A job's failure is the job's (`Job.error`): zeroing and cutting are optimisations
(the journal then just stops zeroing that segment; a segment not cut ends in zeros),
and a failed creation is raised by the append that needed the segment, as a
synchronous creation's would be.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from events.segments import MAGIC, TMP_SUFFIX, _fsync_dir

# Zeros written ahead of the write position per job: a job's conversion is one
# filesystem commit, which an fdatasync of the journal's running at that moment
# waits for, so that happens once per this many bytes of frames (about 1,500 orders).
ZERO_AHEAD = 1 << 20
_ZEROS = bytes(1 << 16)


class Job:
    """One piece of work for the worker; `done` is set when it has finished."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None

    def wait(self) -> Any:
        """Wait for the job; its result, or its error raised."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


class ZeroJob(Job):
    """A `zero` job: `written` is set once its zeros are written (or it stopped), before
    its fdatasync; `cancel()` stops it at its next piece and skips the fdatasync."""

    __slots__ = ("written", "cancelled")

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()
        self.cancelled = False

    def cancel(self) -> None:
        """Stop writing (a cut of the segment follows): returns once it writes no more."""
        self.cancelled = True
        self.written.wait()


def preallocate(fd: int, size: int) -> bool:
    """Reserve `size` bytes for the segment open on `fd`; False (and the file as it
    was) where the filesystem or the disk refuses: the segment then grows as written."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError:
        # silent: nothing is lost, an append's fdatasync just also writes the size
        with contextlib.suppress(OSError):
            os.ftruncate(fd, len(MAGIC))  # a refused allocation may have left a size
        return False
    return True


def write_zeros(fd: int, lo: int, hi: int) -> None:
    """Write zeros over [lo, hi) of `fd` (positioned writes: the file offset of a
    shared descriptor is not touched)."""
    pos = lo
    while pos < hi:
        n = os.pwrite(fd, memoryview(_ZEROS)[: min(len(_ZEROS), hi - pos)], pos)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        pos += n


def create_segment(path: Path, size: int, zero: int = 0, *, durable: bool = True
                   ) -> tuple[int, int]:
    """Create the segment `path` (its magic, then `size` bytes reserved when `size`
    is more than the magic and the filesystem allows it, its bytes up to `zero`
    written as zeros), fsynced with its directory; returns (fd open for writing at
    the end of the magic, bytes preallocated (0: it grows)). It is made under a
    temporary name (`tmp_name`) and renamed when whole, so a segment on disk always
    has its magic and its reservation; a segment that could not be made is removed
    and the OSError raised. Not `durable` (a replay's throwaway journal): no fsync."""
    tmp = tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        if os.write(fd, MAGIC) != len(MAGIC):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        preallocated = size if size > len(MAGIC) and preallocate(fd, size) else 0
        if preallocated and zero:
            # converted by the fsync below, once, not by the first appends' fdatasyncs
            with contextlib.suppress(OSError):
                write_zeros(fd, len(MAGIC), min(zero, preallocated))
        if durable:
            os.fsync(fd)  # the size and the extents, once: appends then sync data only
        os.rename(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except OSError:
        os.close(fd)
        for leftover in (tmp, path):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    return fd, preallocated


def tmp_name(path: Path) -> Path:
    """Where the segment `path` is made (recovery deletes what a crash left there)."""
    return path.with_name(path.name + TMP_SUFFIX)


def _zero_synced(path: Path, lo: int, hi: int, job: ZeroJob) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        try:
            pos = lo
            while pos < hi and not job.cancelled:
                end = min(hi, pos + len(_ZEROS))
                write_zeros(fd, pos, end)
                pos = end
        finally:
            job.written.set()
        if not job.cancelled:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _cut(fd: int, size: int) -> None:
    try:
        with contextlib.suppress(OSError):
            if size >= 0:
                os.ftruncate(fd, size)
            os.fsync(fd)
    finally:
        os.close(fd)


class SegmentPrep:
    """The worker thread of one journal; jobs run in the order submitted."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Job, Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._thread: threading.Thread | None = None

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Job:
        job = Job()
        self._queue.put((job, fn, args))
        self._start()
        return job

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tapeloop-journal-prep",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            job, fn, args = item
            try:
                job.result = fn(*args)
            except BaseException as exc:  # the job's, for whoever waits on it
                job.error = exc
            finally:
                job.done.set()

    def zero(self, path: Path, lo: int, hi: int) -> ZeroJob:
        """Zeros over [lo, hi) of the segment `path`, fdatasynced."""
        job = ZeroJob()
        self._queue.put((job, _zero_synced, (path, lo, hi, job)))
        self._start()
        return job

    def create(self, path: Path, size: int) -> Job:
        """The segment `path`, made by `create_segment` with `ZERO_AHEAD` zeroed."""
        return self._submit(create_segment, path, size, ZERO_AHEAD)

    def cut(self, fd: int, size: int) -> Job:
        """Cut the closed segment open on `fd` to `size` bytes (-1: leave it), fsync
        and close it; the fd is the worker's from now on. Its frames were fdatasynced
        before, so a failure loses nothing (the zeros left are its frames' end) and
        is not raised: the disk reports itself to the next append."""
        return self._submit(_cut, fd, size)

    def drain(self) -> None:
        """Wait for every job submitted so far."""
        if self._thread is not None:
            self._submit(lambda: None).done.wait()

    def close(self) -> None:
        """Stop the thread once the jobs submitted are done (a later job starts a new
        one). Not waited for: the journal has cancelled its zeros and waited for a
        segment being made, so all that may remain is a cancelled job's fdatasync."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread = None
