"""The background roller across a stop: a segment it has taken is rolled or
handed back, never dropped (CI once saw SIGTERM leave one unrolled)."""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pyarrow.dataset as ds

from daemon.storage import Roller
from events import Trade
from events.bus import Bus
from events.store import EventStore

T0 = 1_723_161_255_030_314_667


def one_segment(store: EventStore, n: int) -> Path:
    journal = store.open_journal()
    bus = Bus(next_seq=journal.next_seq)
    bus.subscribe_all(journal.append)
    for i in range(n):
        bus.publish(Trade(ts_event=T0 + i, ts_recv=T0 + i, venue="v", symbol="S",
                          price=float(i + 1), size=1.0, trade_id=str(i)))
    segment = journal.close()
    assert segment is not None
    return segment


async def test_a_stop_while_the_roll_starts_rolls_the_segment_or_hands_it_back(
        tmp_path: Path) -> None:
    with EventStore.open_writer(tmp_path) as store:
        segment = one_segment(store, 500)
        roller = Roller(store)
        roller.queue.put_nowait(segment)
        task = asyncio.create_task(roller.run())
        while not roller.queue.empty():  # the roller has taken it and is starting the child
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        pending = roller.pending()
        assert pending == [p for p in [segment] if p.exists()], \
            "the stop dropped a segment the roller had taken"
        for left in pending:  # what the daemon's close does with them
            store.roll_segment(left)
    assert not segment.exists()
    rows = ds.dataset(tmp_path / "events", partitioning="hive").to_table(columns=["seq"])
    assert sorted(rows["seq"].to_pylist()) == list(range(1, 501))
