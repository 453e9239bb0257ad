"""Preallocated journal segments: a durable journal creates each segment at its full
size, a clean rotate cuts it to its frames, and every reader (recovery, the roll,
`read_segment`, the store check) takes the zero tail a crash leaves for the end of
the frames, never for a tear, while a tear followed by zeros is still a tear."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from events import Fill, Trade
from events.bus import Bus
from events.journal import (
    HEADER_SIZE,
    MAGIC,
    Journal,
    JournalPolicy,
    list_segments,
    read_journal,
    read_segment,
    recover,
    scan_segment,
)
from events.store import EventStore
from replay.check import check_store
from tests.conftest import REPO, cli_env, eventually
from tests.fuzz.contract import captured_logs

SEGMENT = 1 << 20  # small segments: the tests read whole files


def trade(i: int) -> Trade:
    return Trade(ts_event=1_700_000_000_000_000_000 + i, ts_recv=i, venue="v", symbol="S",
                 price=float(i), size=1.0, trade_id=str(i))


def fill(i: int) -> Fill:
    return Fill(ts_event=1_700_000_000_000_000_000 + i, ts_recv=i, venue="v", symbol="S",
                strategy_id="s", client_order_id=f"c{i}", trade_id=str(i), side="BUY",
                qty=Decimal("0.001"), price=Decimal("100.5"), fee=Decimal(0),
                fee_currency="USD", liquidity="TAKER")


def written(journal_dir: Path, n: int, *, fsync: str = "critical",
            segment: int = SEGMENT) -> Journal:
    """A journal holding `n` events (every 7th a fill, so some are synced), open."""
    journal, _ = Journal.open(journal_dir, policy=JournalPolicy(fsync=fsync,
                                                                segment_max_bytes=segment))
    bus = Bus(next_seq=journal.next_seq, journal=journal.stage, commit=journal.commit)
    for i in range(n):
        bus.publish(fill(i) if i % 7 == 6 else trade(i))
    journal.flush(sync=True)
    return journal


def frames_end(path: Path) -> int:
    return scan_segment(path, list_segments(path.parent)[0][0]).good_bytes


def test_a_durable_segment_is_created_at_full_size_and_rotate_cuts_it(tmp_path: Path) -> None:
    journal = written(tmp_path, 50)
    (_, seg), = list_segments(tmp_path)
    assert journal.preallocated_bytes == SEGMENT
    assert seg.stat().st_size == SEGMENT, "the segment is created at its full size"
    assert seg.stat().st_blocks * 512 >= SEGMENT, "and its blocks are reserved"
    end = frames_end(seg)
    assert len(MAGIC) < end < SEGMENT
    assert journal.rotate() == seg
    journal.settle()  # the cut is the worker's (events.segment_prep)
    assert seg.stat().st_size == end, "a rotated segment is its frames and nothing else"
    assert [e.seq for e in read_journal(tmp_path)] == list(range(1, 51))


def test_no_preallocation_without_fsync_or_when_switched_off(tmp_path: Path) -> None:
    for name, policy in (("never", JournalPolicy(fsync="never", segment_max_bytes=SEGMENT)),
                         ("off", JournalPolicy(preallocate=False, segment_max_bytes=SEGMENT))):
        journal, _ = Journal.open(tmp_path / name, policy=policy)
        Bus(journal=journal.append).publish(fill(0))
        journal.flush()
        (_, seg), = list_segments(tmp_path / name)
        assert journal.preallocated_bytes == 0 and seg.stat().st_size == frames_end(seg)
        journal.close()


def test_a_segment_that_outgrows_its_preallocation_grows(tmp_path: Path) -> None:
    journal = written(tmp_path, 4000, segment=16 << 10)  # ~4 events per 100 bytes
    (_, seg), = list_segments(tmp_path)
    assert seg.stat().st_size > 16 << 10 and seg.stat().st_size == frames_end(seg)
    assert journal.tick() is True, "and is due for rotation"
    journal.close()
    assert [e.seq for e in read_journal(tmp_path)] == list(range(1, 4001))


def test_the_zero_tail_of_a_crashed_segment_is_its_end_for_every_reader(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = EventStore.open_writer(data)
    journal = store.open_journal(JournalPolicy(segment_max_bytes=SEGMENT))
    bus = Bus(next_seq=journal.next_seq, journal=journal.stage, commit=journal.commit)
    for i in range(300):
        bus.publish(fill(i) if i % 7 == 6 else trade(i))
    journal.flush(sync=True)
    (_, seg), = list_segments(data / "journal")
    assert seg.stat().st_size == SEGMENT  # left open: what a kill -9 leaves
    # readers while it is live
    assert [e.seq for e in read_segment(seg)] == list(range(1, 301))
    scan = scan_segment(seg, 1)
    assert scan.zero_tail and not scan.torn and scan.last_seq == 300
    report = check_store(data)
    assert not report.findings, report.findings
    os.close(journal._fd)  # the writer dies without closing
    store.close()
    # recovery: no warning, the zeros cut, every event kept, the next start goes on
    with captured_logs() as logs:
        store = EventStore.open_writer(data, roll=False)
    assert not [r for r in logs() if r.get("level") == "warning"], logs()
    assert [r["event"] for r in logs() if "tail" in r["event"]] == ["journal.preallocated_tail_cut"]
    assert seg.stat().st_size == scan.good_bytes
    assert store.last_seq == 300
    journal = store.open_journal(JournalPolicy(segment_max_bytes=SEGMENT))
    Bus(next_seq=journal.next_seq, journal=journal.append).publish(trade(300))
    journal.close()
    store.roll_segment(seg)
    store.close()
    with EventStore.open_writer(data) as store:  # rolls the second segment
        assert store.last_seq == 301


@pytest.mark.parametrize("keep", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3])
def test_a_torn_frame_followed_by_zeros_is_a_tear(tmp_path: Path, keep: int) -> None:
    journal = written(tmp_path, 40)
    (_, seg), = list_segments(tmp_path)
    end = frames_end(seg)
    os.close(journal._fd)
    # the last frame torn: its first `keep` bytes survive, zeros after them
    last = [e for e in read_segment(seg)][-1]
    with open(seg, "r+b") as f:
        blob = f.read(end)
        start = end - (len(blob) - _last_frame_start(blob))
        f.seek(start + keep)
        f.write(bytes(end - start - keep))
    scan = scan_segment(seg, 1)
    assert scan.torn and not scan.zero_tail and scan.last_seq == last.seq - 1
    with captured_logs() as logs:
        scans = recover(tmp_path)
    assert [r["event"] for r in logs() if r.get("level") == "warning"] == ["journal.torn_tail"]
    assert scans[0].last_seq == last.seq - 1 and seg.stat().st_size == start
    assert [e.seq for e in read_journal(tmp_path)] == list(range(1, last.seq))


def _last_frame_start(blob: bytes) -> int:
    pos, last = len(MAGIC), len(MAGIC)
    while pos < len(blob):
        last = pos
        pos += HEADER_SIZE + int.from_bytes(blob[pos : pos + 4], "little")
    return last


def test_read_segment_reads_frames_across_its_chunks(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames straddling the reader's chunks are read whole, the same as at once."""
    import events.segments as segments_mod

    journal = written(tmp_path, 500)
    (_, seg), = list_segments(tmp_path)
    whole = list(read_segment(seg))
    for chunk in (1, 7, 64, 1000):
        monkeypatch.setattr(segments_mod, "_READ_CHUNK", chunk)
        assert list(read_segment(seg)) == whole, chunk
    journal.close()


FULL = JournalPolicy().segment_max_bytes


def _live_segment_size(journal: Path) -> int:
    try:
        return list_segments(journal)[-1][1].stat().st_size
    except (IndexError, FileNotFoundError):  # none yet, or rolled away meanwhile
        return -1


@pytest.mark.timeout(300)
def test_kill_9_while_writing_a_preallocated_segment_loses_nothing_acknowledged(
        tmp_path: Path) -> None:
    """A child appends (a fill every 50th event, acknowledged once fsynced) to
    preallocated segments and is killed at seeded random moments; each restart
    recovers every acknowledged event and invents none, and goes on after them."""
    seed = int(os.environ.get("TAPELOOP_SEED", random.randrange(2**32)))
    print(f"seed={seed}")
    rng = random.Random(seed)
    data = tmp_path / "data"
    max_acked = 0
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "events" / "journal_child.py"), str(data),
             "65536"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=cli_env(),
            cwd=REPO)
        assert child.stdout is not None
        start = child.stdout.readline().split()
        assert start and start[0] == b"start" and int(start[1]) >= max_acked + 1
        for _ in range(rng.randint(1, 300)):
            line = child.stdout.readline()
            assert line.startswith(b"ack "), line
            max_acked = max(max_acked, int(line.split()[1]))
        # the live segment is preallocated: the kill lands on a zero tail. The child
        # rotates every 3000 events, and ext4 grows a file's size as posix_fallocate
        # goes, so a segment just opened may show part of its size for a moment.
        eventually(lambda: _live_segment_size(data / "journal") == FULL,
                   message="a preallocated live segment")
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    with captured_logs() as logs:
        store = EventStore.open_writer(data)
    assert not [r for r in logs() if r.get("event") == "journal.torn_tail"], logs()
    assert store.last_seq >= max_acked
    store.close()
    from tests.events.test_journal_crash import all_events

    events = all_events(data)
    seqs = [s for s, _, _ in events]
    assert seqs == list(range(1, len(seqs) + 1)), "gap-free, nothing twice"
    assert all(tid == str(s) for s, _, tid in events), "every event is the one written at its seq"
