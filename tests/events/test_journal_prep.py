"""Segment space prepared off the order path (events.segment_prep): a durable journal's
appends land in blocks already written (zeros ahead of the write position), never in
a preallocated block's first write, whose conversion the appending fdatasync would
have to commit; the next segment is made at rotate time, so the first append after a
roll creates no file; zeros never land on frames; and a segment made ahead and left
by a crash or a close is deleted, never rolled, never warned about."""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import events.journal as journal_mod
from events.bus import Bus
from events.journal import MAGIC, Journal, JournalPolicy, list_segments, read_journal
from events.segments import scan_segment
from events.store import EventStore
from replay.check import check_store
from tests.conftest import eventually
from tests.events.test_journal_prealloc import fill, trade
from tests.fuzz.contract import captured_logs

SEGMENT = 4 << 20

_FS_IOC_FIEMAP = 0xC020660B
_EXTENT_UNWRITTEN = 0x800
_EXTENT_LAST = 0x1


def unwritten(fd: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """The (offset, length) of every unwritten extent of `fd` that overlaps
    [lo, hi), from the filesystem's own map (FIEMAP, without syncing the file)."""
    out = []
    count = 64
    start = lo
    while start < hi:
        buf = bytearray(struct.pack("=QQLLLL", start, hi - start, 0, 0, count, 0)
                        + bytes(56 * count))
        fcntl.ioctl(fd, _FS_IOC_FIEMAP, buf)
        mapped = struct.unpack_from("=L", buf, 20)[0]
        if not mapped:
            break
        for k in range(mapped):
            logical, _phys, length = struct.unpack_from("=QQQ", buf, 32 + 56 * k)
            flags = struct.unpack_from("=L", buf, 32 + 56 * k + 40)[0]
            if flags & _EXTENT_UNWRITTEN:
                out.append((logical, length))
            start = logical + length
            if flags & _EXTENT_LAST:
                return out
    return out


def needs_unwritten_extents(path: Path) -> None:
    fd = os.open(path / "probe", os.O_RDWR | os.O_CREAT)
    try:
        os.posix_fallocate(fd, 0, 1 << 16)
        if not unwritten(fd, 0, 1 << 16):
            pytest.skip("this filesystem has no unwritten extents (nothing to convert)")
    except OSError:
        pytest.skip("no fallocate or FIEMAP here")
    finally:
        os.close(fd)
        (path / "probe").unlink()


def test_every_commit_writes_into_blocks_already_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At each fdatasync of an append, the bytes it makes durable lie in written
    blocks: the sync has data to write and no extent to convert."""
    needs_unwritten_extents(tmp_path)
    # several jobs in a short test (raising=False: the test also runs, and fails, on a
    # journal without zeroing)
    monkeypatch.setattr(journal_mod, "ZERO_AHEAD", 64 << 10, raising=False)
    journal, _ = Journal.open(tmp_path / "j", policy=JournalPolicy(segment_max_bytes=SEGMENT))
    bus = Bus(next_seq=journal.next_seq, journal=journal.stage, commit=journal.commit)
    real = journal_mod._datasync
    converted: list[tuple[int, int, list[tuple[int, int]]]] = []

    def datasync(fd: int) -> None:
        lo, hi = journal._synced_bytes, journal._segment_bytes
        got = unwritten(fd, lo, hi)
        if got:
            converted.append((lo, hi, got))
        real(fd)

    bus.publish(fill(0))  # the segment is made here, with the first append
    getattr(journal, "wait_zeroing", lambda: None)()  # the zeros ahead, off the order path
    monkeypatch.setattr(journal_mod, "_datasync", datasync)
    for i in range(1, 3000):  # ~200 KB of frames: past the first zeros, into the next
        bus.publish(fill(i) if i % 3 else trade(i))
    assert journal._segment_bytes > 3 * (64 << 10)
    assert converted == [], f"fdatasyncs that had extents to convert: {converted[:3]}"
    journal.close()
    assert [e.seq for e in read_journal(tmp_path / "j")] == list(range(1, 3001))


def test_the_next_segment_is_made_at_rotate_time_not_by_the_next_append(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No segment file is created on the appending (event loop's) thread after a roll."""
    journal, _ = Journal.open(tmp_path, policy=JournalPolicy(segment_max_bytes=SEGMENT))
    bus = Bus(next_seq=journal.next_seq, journal=journal.stage, commit=journal.commit)
    bus.publish(fill(0))
    first = journal.rotate()
    made_here: list[str] = []
    real_open = os.open
    loop_thread = threading.current_thread()

    def watched_open(path, flags, *args):  # type: ignore[no-untyped-def]
        if flags & os.O_CREAT and "seg-" in str(path) and threading.current_thread() is loop_thread:
            made_here.append(str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", watched_open)
    bus.publish(fill(1))
    monkeypatch.undo()
    assert made_here == [], "the first append after a roll created its segment"
    assert [p for _, p in list_segments(tmp_path)] == [first, tmp_path / f"seg-{2:020d}.tlj"]
    second = journal.close()
    assert second is not None and second.stat().st_size > len(MAGIC)
    assert [e.seq for e in read_journal(tmp_path)] == [1, 2]


def test_a_close_right_after_a_rotate_deletes_the_segment_made_ahead(tmp_path: Path) -> None:
    journal, _ = Journal.open(tmp_path, policy=JournalPolicy(segment_max_bytes=SEGMENT))
    Bus(next_seq=1, journal=journal.stage, commit=journal.commit).publish(fill(0))
    first = journal.rotate()
    assert journal.close() is None
    assert [p for _, p in list_segments(tmp_path)] == [first]
    assert sorted(os.listdir(tmp_path)) == [first.name]


@pytest.mark.parametrize("left", ["made", "being made"])
def test_a_segment_made_ahead_and_left_by_a_crash_is_deleted_quietly(
        tmp_path: Path, left: str) -> None:
    """A crash after a rotate leaves the next segment made and empty (or half made,
    under its temporary name): the next start deletes it without a warning, rolls
    every event, and writes that seq's segment anew."""
    data = tmp_path / "data"
    store = EventStore.open_writer(data)
    journal = store.open_journal(JournalPolicy(segment_max_bytes=SEGMENT))
    bus = Bus(next_seq=journal.next_seq, journal=journal.stage, commit=journal.commit)
    for i in range(50):
        bus.publish(fill(i) if i % 5 == 4 else trade(i))
    closed = journal.rotate()
    assert closed is not None
    spare = data / "journal" / f"seg-{51:020d}.tlj"
    assert journal._spare is not None
    journal._spare[1].wait()  # made by the worker by now
    assert spare.stat().st_size == SEGMENT and scan_segment(spare, 51).zero_tail
    if left == "being made":
        spare.rename(spare.with_name(spare.name + ".tmp"))
    # the process dies here: nothing closed (the worker's file stays as it is)
    os.close(journal._spare[1].result[0])
    store.close()
    report = check_store(data)
    assert not report.findings, report.findings
    with captured_logs() as logs:
        store = EventStore.open_writer(data)  # recovers, then rolls the closed segment
    assert not [r for r in logs() if r.get("level") == "warning"], logs()
    assert os.listdir(data / "journal") == [], "the spare is neither kept nor rolled"
    assert store.last_seq == 50 and store.manifest.rolled_seq == 50
    journal = store.open_journal(JournalPolicy(segment_max_bytes=SEGMENT))
    Bus(next_seq=journal.next_seq, journal=journal.append).publish(fill(50))
    assert journal.close() == spare
    store.close()
    with EventStore.open_writer(data) as store:
        assert store.last_seq == 51


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(0, 4000), min_size=1, max_size=120),
       ahead=st.sampled_from([4096, 3 * 4096, 64 * 1024]))
def test_zeros_never_land_on_frames(tmp_path_factory: pytest.TempPathFactory,
                                    sizes: list[int], ahead: int) -> None:
    """Whatever the timing of the worker (small zero jobs, writes racing into them),
    every frame reads back whole: a write into a range being zeroed waits for it."""
    tmp = tmp_path_factory.mktemp("zeros")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(journal_mod, "ZERO_AHEAD", ahead)
        journal, _ = Journal.open(tmp, policy=JournalPolicy(segment_max_bytes=1 << 20))
        bus = Bus(next_seq=1, journal=journal.stage, commit=journal.commit)
        for i, size in enumerate(sizes):
            bus.publish(fill(i) if i % 2 else trade_of(i, size))
        journal.flush(sync=True)
        journal.wait_zeroing()
        want = list(read_journal(tmp))
        (_, seg), = list_segments(tmp)
        assert not scan_segment(seg, 1).torn
        journal.close()
    assert [e.seq for e in want] == list(range(1, len(sizes) + 1))
    assert [e.trade_id for e in want[::2]] == [str(i) * (1 + s // 8)
                                              for i, s in enumerate(sizes)][::2]


def trade_of(i: int, size: int):  # type: ignore[no-untyped-def]
    t = trade(i)
    from events import Trade

    return Trade(ts_event=t.ts_event, ts_recv=t.ts_recv, venue=t.venue, symbol=t.symbol,
                 price=t.price, size=t.size, trade_id=str(i) * (1 + size // 8))


def test_a_rotate_stops_the_zeros_being_written_before_it_cuts_the_segment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rotate (or close) while the worker writes zeros ahead: the worker stops before
    the cut, so the closed segment is its frames and nothing else, then and later."""
    import events.segment_prep as prep_mod

    started, release = threading.Event(), threading.Event()
    real = prep_mod.write_zeros

    def gated(fd: int, lo: int, hi: int) -> None:
        real(fd, lo, hi)
        if threading.current_thread().name == "tapeloop-journal-prep":
            started.set()
            release.wait()

    monkeypatch.setattr(prep_mod, "write_zeros", gated)
    journal, _ = Journal.open(tmp_path, policy=JournalPolicy(segment_max_bytes=SEGMENT))
    bus = Bus(next_seq=1, journal=journal.stage, commit=journal.commit)
    bus.publish(fill(0))
    assert started.wait(10), "a zero job runs"
    job = journal._zero_job
    assert job is not None
    rotated: list[Path | None] = []
    rotating = threading.Thread(target=lambda: rotated.append(journal.rotate()))
    rotating.start()
    eventually(lambda: job.cancelled, message="the rotate cancels the zeros")
    release.set()
    rotating.join(10)
    (seg,) = rotated
    assert seg is not None
    journal.settle()  # the cut is the worker's too
    end = scan_segment(seg, 1).good_bytes
    assert seg.stat().st_size == end
    job.done.wait(10)
    assert seg.stat().st_size == end, "no zeros landed after the cut"
    assert journal.close() is None
    assert [e.seq for e in read_journal(tmp_path)] == [1]


def test_a_rotate_leaves_the_cut_of_the_closed_segment_to_the_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Freeing a large preallocation's extents and fsyncing the cut took 1-12 ms here:
    a rotate (the journal timer, on the event loop) makes its frames durable and leaves
    the rest to the worker; the closed segment ends up cut to its frames."""
    journal, _ = Journal.open(tmp_path, policy=JournalPolicy(segment_max_bytes=SEGMENT))
    bus = Bus(next_seq=1, journal=journal.stage, commit=journal.commit)
    for i in range(20):
        bus.publish(fill(i) if i % 4 == 3 else trade(i))
    loop_thread = threading.current_thread()
    on_loop: list[str] = []
    for name in ("ftruncate", "fsync"):
        real = getattr(os, name)

        def watched(*args, _real=real, _name=name):  # type: ignore[no-untyped-def]
            if threading.current_thread() is loop_thread:
                on_loop.append(_name)
            return _real(*args)

        monkeypatch.setattr(os, name, watched)
    seg = journal.rotate()
    monkeypatch.undo()
    assert on_loop == [], f"the rotate cut or fsynced the segment on the loop: {on_loop}"
    assert seg is not None and journal.synced_seq == 20
    assert [e.seq for e in read_journal(tmp_path)] == list(range(1, 21))  # durable already
    journal.settle()
    assert seg.stat().st_size == scan_segment(seg, 1).good_bytes
    journal.close()
