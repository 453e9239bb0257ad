"""events.disk_sync: a commit's fdatasync runs on a thread of its own while the
committer spins; the commit still returns only once the data is durable, raises
what the fdatasync raised, and the journal's policy picks the wait."""

from __future__ import annotations

import errno
import os
import threading
from decimal import Decimal
from pathlib import Path

import pytest

import events.journal as journal_mod
from events.bus import Bus
from events.disk_sync import DiskSync
from events.journal import Journal, JournalPolicy
from events.market import Trade
from events.orders import OrderSubmitted

T0 = 1_700_000_000 * 10**9


def _file(tmp_path: Path) -> int:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"x" * 4096)
    return fd


@pytest.mark.parametrize("spin_ns", [0, 10**9])  # blocks at once / spins throughout
def test_the_call_returns_after_the_fdatasync_on_another_thread(tmp_path: Path,
                                                                spin_ns: int) -> None:
    fd = _file(tmp_path)
    seen: list[tuple[int, bool]] = []
    gate = threading.Event()

    def datasync(fd_: int) -> None:
        # the caller must still be waiting: it cannot have gone on without us
        assert fd_ == fd
        gate.wait(timeout=30)
        os.fdatasync(fd_)
        seen.append((threading.get_ident(), True))

    sync = DiskSync(datasync, spin_ns=spin_ns)
    try:
        for _ in range(50):
            gate.clear()
            opener = threading.Timer(0.001, gate.set)  # the disk "answers" a ms later
            opener.start()
            sync(fd)
            opener.join()
            # returned only once the fdatasync had returned
            assert len(seen) == _ + 1 and seen[-1][1]
        assert {ident for ident, _ in seen} != {threading.get_ident()}
        assert len({ident for ident, _ in seen}) == 1  # one thread, kept
    finally:
        sync.close()
        os.close(fd)


def test_an_fdatasync_error_is_raised_by_the_call_and_the_next_call_works(
        tmp_path: Path) -> None:
    fd = _file(tmp_path)
    fail = [True]

    def datasync(fd_: int) -> None:
        if fail[0]:
            raise OSError(errno.EIO, "Input/output error")
        os.fdatasync(fd_)

    sync = DiskSync(datasync)
    try:
        with pytest.raises(OSError) as info:
            sync(fd)
        assert info.value.errno == errno.EIO
        fail[0] = False
        sync(fd)  # the error was the call's, not the object's
    finally:
        sync.close()
        os.close(fd)


def test_close_stops_the_thread_and_a_later_call_starts_one(tmp_path: Path) -> None:
    fd = _file(tmp_path)
    threads: list[threading.Thread] = []
    sync = DiskSync(lambda f: threads.append(threading.current_thread()) or os.fdatasync(f))
    try:
        sync(fd)
        sync.close()
        assert not threads[0].is_alive()
        sync(fd)
        assert threads[1] is not threads[0] and threads[1].is_alive()
    finally:
        sync.close()
        os.close(fd)
    assert not threads[1].is_alive()


def _submitted(seq: int) -> OrderSubmitted:
    return OrderSubmitted(ts_event=T0 + seq, ts_recv=T0 + seq, venue="sim", symbol="BTCUSDT",
                          strategy_id="s", client_order_id=f"s-{seq}", side="BUY",
                          order_type="LIMIT", qty=Decimal("0.001"), price=Decimal("64000"))


@pytest.mark.parametrize("wait", ["spin", "block"])
def test_the_journal_syncs_where_its_policy_says_and_stays_durable_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wait: str) -> None:
    """With "spin" the fdatasync runs off the committing thread, with "block" on it;
    either way each commit is durable before the bus delivers the intent, and the
    thread is gone when the journal closes."""
    journal, _ = Journal.open(tmp_path / "j", policy=JournalPolicy(sync_wait=wait))
    bus = Bus(next_seq=journal.next_seq, journal=journal.stage, commit=journal.commit)
    real = journal_mod._datasync
    where: list[int] = []
    durable = [0]

    def datasync(fd: int) -> None:
        real(fd)
        where.append(threading.get_ident())
        durable[0] = journal.written_seq

    monkeypatch.setattr(journal_mod, "_datasync", datasync)
    delivered: list[tuple[int, int]] = []
    bus.subscribe(OrderSubmitted, lambda e: delivered.append((e.seq, durable[0])))
    for i in range(20):
        bus.publish(Trade(ts_event=T0 + i, ts_recv=T0 + i, venue="sim", symbol="BTCUSDT",
                          price=64000.0, size=1.0))
        bus.publish(_submitted(i))
    assert len(delivered) == 20 and all(seq <= done for seq, done in delivered), delivered
    me = threading.get_ident()
    assert where and all((ident == me) == (wait == "block") for ident in where)
    journal.close()
    names = {t.name for t in threading.enumerate()}
    assert "tapeloop-journal-sync" not in names


def test_a_policy_with_an_unknown_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="sync_wait must be spin|block, not 'sleep'"):
        JournalPolicy(sync_wait="sleep")


def test_the_switch_interval_is_short_during_a_sync_and_restored_after(
        tmp_path: Path) -> None:
    """The syncing thread needs the GIL to start and to report back; the spinning
    caller keeps taking it back, so only a short switch interval lets it in soon
    (at the default 5 ms a sync waited up to that long for it)."""
    import sys

    from events.disk_sync import HANDOFF_S

    fd = _file(tmp_path)
    during: list[float] = []
    sync = DiskSync(lambda f: during.append(sys.getswitchinterval()) or os.fdatasync(f))
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.004)
    try:
        sync(fd)
        assert during == [pytest.approx(HANDOFF_S)]
        assert sys.getswitchinterval() == pytest.approx(0.004)
    finally:
        sys.setswitchinterval(before)
        sync.close()
        os.close(fd)
