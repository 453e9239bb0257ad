"""The daemon's bus and journal wiring (daemon/storage.py): group commit through
`Storage`, and a commit the disk refuses, whether at once or at the end of a group,
turns the bus to refusing and stops the daemon, without an exception escaping into
the venue task that published."""

from __future__ import annotations

import errno
import os
from decimal import Decimal
from pathlib import Path

import pytest

import events.journal as journal_mod
from daemon.config import JournalConfig
from daemon.errors import EXIT_DATA
from daemon.metrics import KernelMetrics
from daemon.storage import Storage
from daemon.supervisor import Supervisor
from events import Fill, Trade
from events.faults import JournalWriteError


def fill(key: int) -> Fill:
    return Fill(ts_event=key, ts_recv=key, venue="v", symbol="S", strategy_id="s",
                client_order_id=f"c{key}", trade_id=str(key), side="BUY",
                qty=Decimal("0.001"), price=Decimal("100.5"), fee=Decimal(0),
                fee_currency="USD", liquidity="TAKER")


def opened(tmp_path: Path) -> tuple[Storage, Supervisor]:
    supervisor = Supervisor()
    storage = Storage(tmp_path / "data", JournalConfig(), supervisor, KernelMetrics())
    storage.open()
    return storage, supervisor


def test_the_daemon_bus_groups_one_answer_into_one_fdatasync(tmp_path: Path) -> None:
    storage, supervisor = opened(tmp_path)
    bus, journal = storage.bus, storage.journal
    assert bus is not None and journal is not None
    with bus.grouped():
        for key in range(3):
            bus.publish(fill(key))
        assert journal.synced_seq == 0
    assert journal.fsyncs == 1 and journal.synced_seq == 3
    storage.journal.close()
    storage.store.close()  # type: ignore[union-attr]
    assert supervisor.fatal is None


@pytest.mark.parametrize("grouped", [False, True])
def test_a_refused_commit_stops_the_daemon_without_unwinding_the_publisher(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grouped: bool) -> None:
    storage, supervisor = opened(tmp_path)
    bus = storage.bus
    assert bus is not None
    seen: list[int] = []
    bus.subscribe(Trade, lambda e: seen.append(e.seq))

    def refused(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(journal_mod, "_datasync", refused)
    if grouped:
        with bus.grouped():
            bus.publish(fill(1))
    else:
        bus.publish(fill(1))
    assert bus.refusing and supervisor.exit_code == EXIT_DATA
    assert isinstance(supervisor.fatal, JournalWriteError)
    bus.publish(Trade(ts_event=1, ts_recv=1, venue="v", symbol="S", price=1.0, size=1.0,
                      trade_id="t"))
    assert seen == [], "nothing is dispatched once the journal has failed"
    storage.store.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("wait", ["spin", "block"])
def test_the_journal_waits_for_its_fdatasync_as_configured(tmp_path: Path, wait: str) -> None:
    supervisor = Supervisor()
    storage = Storage(tmp_path / "data", JournalConfig(sync_wait=wait), supervisor,
                      KernelMetrics())
    storage.open()
    assert storage.journal is not None
    assert storage.journal.policy.sync_wait == wait
    storage.journal.close()
    storage.store.close()  # type: ignore[union-attr]
