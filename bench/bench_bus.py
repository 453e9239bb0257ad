"""Bus publish to 3 subscribers (target >= 2 M events/s) and journal append with
the default flush policy through the bus (target >= 500 k events/s)."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

from bench.common import emit, now, rounds
from events import Trade
from events.bus import Bus
from events.journal import Journal, JournalPolicy

N = 400_000
ROUNDS = 9


def _trades(n: int) -> list[Trade]:
    return [Trade(ts_event=1_723_161_255_000_000_000 + i, ts_recv=1_723_161_255_000_000_000 + i,
                  venue="binance", symbol="BTCUSDT", price=60_000.0 + (i % 100) * 0.1,
                  size=0.001 * (1 + i % 7), aggressor=1 + i % 2, trade_id=str(5_266_583_935 + i))
            for i in range(n)]


def bench_bus(events: list[Trade]) -> None:
    """Publish to 3 subscribers: no-op ones (what the bus itself costs) and ones
    that count (the smallest real work a subscriber does)."""
    counts = [0, 0, 0]

    def s0(e: Trade) -> None:
        counts[0] += 1

    def s1(e: Trade) -> None:
        counts[1] += 1

    def s2(e: Trade) -> None:
        counts[2] += 1

    def noop(e: Trade) -> None:
        return None

    for name, subscribers in (("bus_publish_3_subscribers", (noop, noop, noop)),
                              ("bus_publish_3_counting_subscribers", (s0, s1, s2))):
        def once(subscribers: tuple = subscribers) -> float:
            bus = Bus()
            for s in subscribers:
                bus.subscribe(Trade, s)
            publish = bus.publish
            t0 = now()
            for e in events:
                publish(e)
            return len(events) / (now() - t0)

        r = rounds(ROUNDS, once)
        emit(name, events=len(events), events_per_s=r["best"],
             median_events_per_s=r["median"], target=2_000_000)


def bench_journal(events: list[Trade]) -> None:
    def once() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            journal = Journal(Path(tmp), policy=JournalPolicy())  # the default policy
            bus = Bus()
            bus.subscribe_all(journal.append)
            publish = bus.publish
            tick = journal.tick
            t0 = now()
            for i, e in enumerate(events):
                publish(e)
                if not i & 1023:
                    tick()  # what the daemon's journal timer does, at most every 20 ms
            journal.close()
            return len(events) / (now() - t0)

    r = rounds(ROUNDS, once)
    emit("journal_append_default_policy", events=len(events), events_per_s=r["best"],
         median_events_per_s=r["median"], target=500_000)


def main() -> None:
    events = _trades(N)
    gc.collect()
    gc.freeze()
    bench_bus(events)
    bench_journal(events)


if __name__ == "__main__":
    main()
