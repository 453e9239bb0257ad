"""The order path leaves nothing the garbage collector tracks behind, order after order.

Young collections run when the collector's count of tracked allocations minus frees
passes its threshold, so every tracked object that outlives its order brings the
next collection (100+ µs on the order path) nearer. The OMS keeps every order the
account ever had (its book is the fold of the journal: restarts, duplicate-id
checks and parent-order algorithms read finished orders), so its records must be
untracked. The real node (strategy runtime, OMS, risk, portfolio) and a real
journal; the venue's part is a subscriber that expires each IOC order, as an
exchange does.
"""

from __future__ import annotations

import gc
import time
from decimal import Decimal
from pathlib import Path

from bench.bench_tick_to_order import _config
from daemon.node import TradingNode
from daemon.trading.order_book import OrderBook
from events.bus import Bus
from events.journal import Journal, JournalPolicy
from events.market import Trade
from events.orders import OrderAccepted, OrderExpired, OrderSubmitted
from events.segments import read_journal
from events.state import BalanceChanged
from events.store import EventStore
from replay.clock import ReplayClock

WARMUP = 500
ORDERS = 3_000


def _wired(tmp_path: Path) -> tuple[Bus, TradingNode, list[int], Journal, EventStore]:
    store = EventStore.open_writer(str(tmp_path))
    journal = store.open_journal(JournalPolicy(fsync="never"))
    bus = Bus(next_seq=journal.next_seq, journal=journal.stage, commit=journal.commit)
    clock = ReplayClock(1_763_735_400_000_000_000)
    node = TradingNode(_config(1), bus, clock, replay=False)
    node.risk.unblock_venue("binance")
    expired: list[int] = [0]

    def venue(e: OrderSubmitted) -> None:  # an IOC limit under the market: expires
        ids = dict(ts_event=e.ts_event, ts_recv=e.ts_event, venue=e.venue, symbol=e.symbol,
                   strategy_id=e.strategy_id, client_order_id=e.client_order_id,
                   venue_order_id=e.client_order_id)
        bus.publish(OrderAccepted(**ids))
        bus.publish(OrderExpired(**ids))
        expired[0] += 1

    bus.subscribe(OrderSubmitted, venue)
    now = clock.now_ns()
    bus.publish(BalanceChanged(ts_event=now, ts_recv=now, venue="binance", currency="USDT",
                               total=Decimal(10**12), free=Decimal(10**12)))
    node.start()
    return bus, node, expired, journal, store


def _trades(bus: Bus, first: int, n: int) -> None:
    for i in range(first, first + n):
        ts = 1_763_735_400_000_000_000 + i * 1_000_000
        bus.publish(Trade(ts_event=ts, ts_recv=ts, venue="binance", symbol="BTCUSDT",
                          price=64000 + (i % 100) / 100, size=0.001, trade_id=str(i)))


def test_orders_leave_no_tracked_object_behind(tmp_path: Path) -> None:
    bus, node, expired, journal, store = _wired(tmp_path)
    _trades(bus, 0, WARMUP)
    assert expired[0] == WARMUP, "every trade became an order, and it expired"
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        before_count = gc.get_count()[0]
        before_objects = len(gc.get_objects())
        t0 = time.perf_counter()
        _trades(bus, WARMUP, ORDERS)
        took = time.perf_counter() - t0
        net_allocs = gc.get_count()[0] - before_count
        gc.collect()
        survivors = len(gc.get_objects()) - before_objects
    finally:
        if was_enabled:
            gc.enable()
    assert expired[0] == WARMUP + ORDERS
    assert len(node.oms.orders) == WARMUP + ORDERS, "the book keeps every order"
    assert not node.oms.open_orders()
    # before: 2 per order (the OMS's Order record and its trade-id set), 6,000 here
    assert survivors < ORDERS // 100, f"{survivors} tracked objects outlived {ORDERS} orders"
    # before: 3 per order (the record, its set, its fees dict), 9,000 here; about
    # 0.06 remain (the node's periodic bookkeeping, not per order)
    assert net_allocs < ORDERS // 10, (
        f"young-collection count grew by {net_allocs} over {ORDERS} orders ({took:.2f} s)")
    # the book is still the journal's fold: recovery rebuilds the same state
    journal.close()
    folded = OrderBook(node.oms.book.id_prefix)
    for event in read_journal(store.journal_dir):
        folded.apply(event)
    assert folded.state() == node.oms.book.state()
    assert folded.counters == node.oms.book.counters
    store.close()
