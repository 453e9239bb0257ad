from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from events import Fill, Trade
from events.bus import Bus
from events.journal import MAGIC, Journal, JournalError, JournalPolicy, list_segments, read_journal
from events.lock import DirLock, StoreLocked
from events.store import EventStore
from tests.conftest import REPO, cli_env


def trades(n: int, start: int = 0) -> list[Trade]:
    return [Trade(ts_event=1_700_000_000_000_000_000 + i, ts_recv=i, venue="v", symbol="S",
                  price=float(i), size=1.0, trade_id=str(i)) for i in range(start, start + n)]


def write(journal_dir: Path, events: list, policy: JournalPolicy | None = None) -> Journal:
    journal, _ = Journal.open(journal_dir, policy=policy)
    bus = Bus(next_seq=journal.next_seq)
    bus.subscribe_all(journal.append)
    for e in events:
        bus.publish(e)
    return journal


def test_append_close_reopen_continues_seq(tmp_path: Path) -> None:
    write(tmp_path, trades(100)).close()
    journal = write(tmp_path, trades(50, 100))
    journal.close()
    back = list(read_journal(tmp_path))
    assert [e.seq for e in back] == list(range(1, 151))
    assert [e.trade_id for e in back] == [str(i) for i in range(150)]


def test_refuses_a_seq_gap(tmp_path: Path) -> None:
    journal, _ = Journal.open(tmp_path)
    event = trades(1)[0]
    from events.base import stamp_seq

    stamp_seq(event, 5)
    with pytest.raises(JournalError):
        journal.append(event)


@pytest.mark.parametrize("cut", [1, 3, 7, 8, 20])
def test_torn_tail_is_truncated_with_a_warning(tmp_path: Path, cut: int, capsys) -> None:
    write(tmp_path, trades(10)).close()
    (_, seg), = list_segments(tmp_path)
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - cut)  # tear the last frame
    journal, scans = Journal.open(tmp_path)
    assert journal.next_seq == 10  # frame 10 was torn; 1..9 survive
    assert scans[0].frames == 9
    assert [e.seq for e in read_journal(tmp_path)] == list(range(1, 10))


def test_corrupt_frame_keeps_every_earlier_frame(tmp_path: Path) -> None:
    write(tmp_path, trades(10)).close()
    (_, seg), = list_segments(tmp_path)
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte in the middle: crc mismatch
    seg.write_bytes(bytes(data))
    journal, scans = Journal.open(tmp_path)
    survivors = [e.seq for e in read_journal(tmp_path)]
    assert survivors == list(range(1, len(survivors) + 1)) and 3 <= len(survivors) < 10
    assert journal.next_seq == len(survivors) + 1


def test_garbage_and_zero_filled_tails(tmp_path: Path) -> None:
    write(tmp_path, trades(5)).close()
    (_, seg), = list_segments(tmp_path)
    with open(seg, "ab") as f:
        f.write(b"\x00" * 4096)  # a power cut can leave a zero-filled extent
    journal, _ = Journal.open(tmp_path)
    assert journal.next_seq == 6
    (_, seg), = list_segments(tmp_path)
    with open(seg, "ab") as f:
        f.write(os.urandom(1000))
    journal, _ = Journal.open(tmp_path)
    assert journal.next_seq == 6


def test_segment_with_torn_magic_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "seg-00000000000000000001.tlj").write_bytes(MAGIC[:3])
    journal, scans = Journal.open(tmp_path)
    assert journal.next_seq == 1 and scans == []


def test_critical_events_are_written_before_append_returns(tmp_path: Path) -> None:
    journal = write(tmp_path, trades(3))
    assert journal.written_seq == 0  # market data still buffered
    fill = Fill(ts_event=1, ts_recv=1, venue="v", symbol="S", strategy_id="s",
                client_order_id="c", trade_id="t", side="SELL", qty=Decimal("1"),
                price=Decimal("2"), fee=Decimal("0.1"), fee_currency="USD", liquidity="MAKER")
    bus = Bus(next_seq=journal.next_seq)
    bus.subscribe_all(journal.append)
    bus.publish(fill)
    assert journal.written_seq == 4 and journal.synced_seq == 4
    assert [type(e).__name__ for e in read_journal(tmp_path)] == ["Trade"] * 3 + ["Fill"]


def test_flush_window_writes_buffered_market_data(tmp_path: Path) -> None:
    clock = [0.0]
    journal = Journal(tmp_path, policy=JournalPolicy(flush_interval_ms=200),
                      monotonic=lambda: clock[0])
    bus = Bus()
    bus.subscribe_all(journal.append)
    bus.publish(trades(1)[0])
    journal.tick()
    assert journal.written_seq == 0
    clock[0] = 0.25
    journal.tick()
    assert journal.written_seq == 1


def test_rotation_by_age_and_size(tmp_path: Path) -> None:
    clock = [0.0]
    journal = Journal(tmp_path, policy=JournalPolicy(roll_interval_s=60, segment_max_bytes=10_000),
                      monotonic=lambda: clock[0])
    bus = Bus()
    bus.subscribe_all(journal.append)
    bus.publish(trades(1)[0])
    journal.flush()
    assert journal.tick() is False
    clock[0] = 61
    assert journal.tick() is True
    first = journal.rotate()
    bus.publish_many(trades(400, 1))
    journal.flush()
    assert journal.tick() is True  # past segment_max_bytes
    second = journal.rotate()
    journal.close()  # deletes the segment made ahead for the next append, never written
    assert first != second and [p for _, p in list_segments(tmp_path)] == [first, second]


def test_second_writer_is_refused_with_one_clear_line(tmp_path: Path) -> None:
    with EventStore.open_writer(tmp_path):
        with pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
            EventStore.open_writer(tmp_path)
        # and from another process
        code = ("import sys; from events.store import EventStore, StoreLocked\n"
                "try: EventStore.open_writer(sys.argv[1])\n"
                "except StoreLocked as e: print(e); sys.exit(4)\n")
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                              env=cli_env(), cwd=REPO, text=True)
        assert proc.returncode == 4
        assert proc.stdout.count("\n") == 1 and "in use by pid" in proc.stdout
    # released on close: a new writer gets it
    lock = DirLock(tmp_path)
    lock.acquire()
    lock.release()


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    code = ("import sys, time; from events.store import EventStore\n"
            "s = EventStore.open_writer(sys.argv[1]); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            env=cli_env(), cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
    with pytest.raises(StoreLocked):
        EventStore.open_writer(tmp_path)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    EventStore.open_writer(tmp_path).close()
