from __future__ import annotations

import pytest

from events import Fill, Quote, Trade
from events.bus import Bus


def trade(i: int = 0) -> Trade:
    return Trade(ts_event=i, ts_recv=i, venue="v", symbol="S", price=1.0, size=1.0)


def quote(i: int = 0) -> Quote:
    return Quote(ts_event=i, ts_recv=i, venue="v", symbol="S", bid=1.0, ask=2.0,
                 bid_size=1.0, ask_size=1.0)


def test_dispatch_by_type_catch_all_first_and_seq_stamped() -> None:
    bus = Bus(next_seq=10)
    seen: list[tuple[str, int]] = []
    bus.subscribe(Trade, lambda e: seen.append(("trade", e.seq)))
    bus.subscribe(Quote, lambda e: seen.append(("quote", e.seq)))
    bus.subscribe_all(lambda e: seen.append(("all", e.seq)))
    bus.publish(trade())
    bus.publish(quote())
    assert seen == [("all", 10), ("trade", 10), ("all", 11), ("quote", 11)]
    assert bus.next_seq == 12


def test_nested_publish_is_queued_so_every_subscriber_sees_seq_order() -> None:
    bus = Bus()
    first: list[int] = []
    last: list[int] = []

    def reacts(e: Trade) -> None:
        first.append(e.seq)
        if e.seq == 1:
            bus.publish(trade(99))  # published while seq 1 is still being dispatched

    bus.subscribe(Trade, reacts)
    bus.subscribe(Trade, lambda e: last.append(e.seq))
    bus.publish(trade())
    assert first == [1, 2]
    assert last == [1, 2]  # without queueing, `last` would see 2 before 1


def test_a_raising_handler_is_reported_and_others_still_run() -> None:
    errors = []
    bus = Bus(on_error=lambda ev, h, exc: errors.append((ev.seq, str(exc))))
    got: list[int] = []

    def boom(e: Trade) -> None:
        raise RuntimeError("strategy bug")

    bus.subscribe(Trade, boom)
    bus.subscribe(Trade, lambda e: got.append(e.seq))
    bus.publish(trade())
    bus.publish(trade())
    assert got == [1, 2]
    assert errors == [(1, "strategy bug"), (2, "strategy bug")]


def test_unsubscribe_and_dispatch_keep_seq() -> None:
    bus = Bus()
    got: list[int] = []
    handler = got.append
    bus.subscribe(Trade, handler)
    bus.publish(trade())
    bus.unsubscribe(Trade, handler)
    bus.publish(trade())
    assert [e.seq for e in got] == [1]
    stored = trade()
    bus.subscribe_all(handler)
    from events.base import stamp_seq

    stamp_seq(stored, 500)
    bus.dispatch_many([stored])
    assert got[-1].seq == 500 and bus.next_seq == 3


def test_publish_many_orders_and_stamps() -> None:
    bus = Bus()
    got: list[int] = []
    bus.subscribe_all(lambda e: got.append(e.seq))
    bus.publish_many([trade(i) for i in range(5)])
    assert got == [1, 2, 3, 4, 5]


def test_fill_is_dispatched_to_its_own_subscribers_only() -> None:
    from decimal import Decimal

    bus = Bus()
    trades: list[object] = []
    bus.subscribe(Trade, trades.append)
    bus.publish(Fill(ts_event=0, ts_recv=0, venue="v", symbol="S", strategy_id="a",
                     client_order_id="c", trade_id="t", side="BUY", qty=Decimal(1),
                     price=Decimal(2), fee=Decimal(0), fee_currency="USD", liquidity="TAKER"))
    assert trades == []


def test_dispatch_many_consumes_its_iterable_lazily() -> None:
    """The replay driver's generator sets the clock per event: each event must
    be dispatched before the next one is pulled."""
    bus = Bus()
    log: list[str] = []
    bus.subscribe(Trade, lambda e: log.append(f"dispatch {e.ts_event}"))

    def feed():
        for i in range(3):
            log.append(f"pull {i}")
            yield trade(i)

    bus.dispatch_many(feed())
    assert log == ["pull 0", "dispatch 0", "pull 1", "dispatch 1", "pull 2", "dispatch 2"]


def test_the_journal_hook_records_what_is_published_not_what_is_dispatched() -> None:
    recorded: list[int] = []
    seen: list[int] = []
    bus = Bus(journal=lambda e: recorded.append(e.seq))
    bus.subscribe(Trade, lambda e: seen.append(e.seq))
    bus.publish(trade())
    stored = trade()
    from events.base import stamp_seq

    stamp_seq(stored, 77)
    bus.dispatch(stored)  # a replay's input: delivered, not journaled
    bus.publish_many([trade(), trade()])
    assert recorded == [1, 2, 3]
    assert seen == [1, 77, 2, 3]


def test_a_failing_journal_stops_the_publish() -> None:
    def broken(event: Trade) -> None:
        raise OSError("disk full")

    bus = Bus(journal=broken)
    seen: list[int] = []
    bus.subscribe(Trade, seen.append)
    with pytest.raises(OSError):
        bus.publish(trade())
    assert seen == []


def test_defer_runs_after_what_the_current_event_caused() -> None:
    bus = Bus()
    log: list[str] = []

    def venue(e: Trade) -> None:
        if e.ts_event == 0:
            bus.publish(quote(1))  # caused by the trade: queued

    def strategy(e: Trade) -> None:
        bus.defer(lambda: log.append(f"deferred after trade {e.seq}"))

    bus.subscribe(Trade, venue)
    bus.subscribe(Trade, strategy)
    bus.subscribe(Quote, lambda e: log.append(f"quote {e.seq}"))
    bus.publish(trade(0))
    assert log == ["quote 2", "deferred after trade 1"]
    bus.defer(lambda: log.append("now"))  # outside any dispatch: at once
    assert log[-1] == "now"
