"""Child process for the crash tests: appends events to DATA's journal forever,
printing the highest seq acknowledged as durable after each write.

Every 50th event is a Fill (critical: written and fsynced before `append`
returns); the rest are trades, buffered and written in batches. Every ~3000
events the segment is rotated and rolled into Parquet in-process, so kills also
land inside rolls. Each trade's `trade_id` is the seq it must get, so a reader
can prove no event moved or changed.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import structlog

from events import Fill, Trade
from events.bus import Bus
from events.journal import JournalPolicy
from events.store import EventStore


def main(data: str, buffer_bytes: int) -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    store = EventStore.open_writer(Path(data))
    journal = store.open_journal(JournalPolicy(buffer_bytes=buffer_bytes))
    bus = Bus(next_seq=journal.next_seq)
    bus.subscribe_all(journal.append)
    out = sys.stdout
    out.write(f"start {journal.next_seq}\n")
    out.flush()
    acked = journal.written_seq
    n = 0
    base_ts = 1_700_000_000_000_000_000
    while True:
        seq = bus.next_seq
        ts = base_ts + seq * 7_000_000_000  # crosses UTC midnights: several date partitions
        if seq % 50 == 0:
            bus.publish(Fill(ts_event=ts, ts_recv=ts, venue="v", symbol="S", strategy_id="s",
                             client_order_id=f"c{seq}", trade_id=str(seq), side="BUY",
                             qty=Decimal("0.001"), price=Decimal("100.5"), fee=Decimal(0),
                             fee_currency="USD", liquidity="TAKER"))
        else:
            bus.publish(Trade(ts_event=ts, ts_recv=ts, venue="v", symbol="S", price=1.0,
                              size=2.0, trade_id=str(seq)))
        n += 1
        if n % 3000 == 0:
            segment = journal.rotate()
            if segment is not None:
                store.roll_segment(segment)
        if journal.written_seq != acked:
            acked = journal.written_seq
            out.write(f"ack {acked}\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
