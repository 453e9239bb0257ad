"""Child process for the full-disk tests: a journal on a disk that stops taking writes.

`RLIMIT_FSIZE` caps every file this process writes at LIMIT bytes, with SIGXFSZ
ignored, so a write past it fails with EFBIG (or is cut short), as on a full disk.
The child appends trades, with a fill every 10th event (critical: written and
fsynced before `append` returns), until the journal refuses, keeping that first
exception alive (as an asyncio task keeps the exception that ended it); then it
tries 5 more appends, a tick and a close, and prints one JSON line: the last seq
acknowledged, the journal's counters and the name of every exception it met.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from decimal import Decimal
from pathlib import Path

from events import Fill, Trade
from events.bus import Bus
from events.journal import Journal, JournalPolicy


def event(seq: int) -> Trade | Fill:
    ts = 1_700_000_000_000_000_000 + seq * 1_000_000
    if seq % 10 == 0:
        return Fill(ts_event=ts, ts_recv=ts, venue="v", symbol="S", strategy_id="s",
                    client_order_id=f"c{seq}", trade_id=str(seq), side="BUY",
                    qty=Decimal("0.001"), price=Decimal("100.5"), fee=Decimal(0),
                    fee_currency="USD", liquidity="TAKER")
    return Trade(ts_event=ts, ts_recv=ts, venue="v", symbol="S", price=1.0, size=2.0,
                 trade_id=str(seq))


def main(journal_dir: str, limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    journal, _ = Journal.open(Path(journal_dir), policy=JournalPolicy(buffer_bytes=4096))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    bus = Bus(next_seq=journal.next_seq, journal=journal.append)
    acked = journal.written_seq
    kept: list[BaseException] = []  # the first failure stays alive, frames and all
    while not kept:
        try:
            e = bus.publish(event(bus.next_seq))
        except Exception as exc:  # noqa: BLE001 - what the journal raises is the finding
            kept.append(exc)
        else:
            if isinstance(e, Fill):
                acked = e.seq  # written and fsynced: it must survive
    later = []
    for _ in range(5):
        try:
            bus.publish(event(bus.next_seq))
            later.append("accepted")
        except Exception as exc:  # noqa: BLE001
            later.append(type(exc).__name__)
    outcome = {"first": type(kept[0]).__name__, "message": str(kept[0]), "later": later,
               "acked": acked, "written_seq": journal.written_seq,
               "synced_seq": journal.synced_seq}
    for step in ("tick", "close"):
        try:
            getattr(journal, step)()
            outcome[step] = "ok"
        except Exception as exc:  # noqa: BLE001
            outcome[step] = type(exc).__name__
    print(json.dumps(outcome))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
