"""IOC, FOK, GTD and DAY, settled in event time."""

from __future__ import annotations

from datetime import UTC, datetime

from events.orders import CancelRejected, OrderCanceled, OrderExpired, OrderRejected

from .harness import MS, D, Sim

NS = 1_000_000_000


def test_ioc_limit_that_does_not_cross_is_canceled_at_arrival() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99", time_in_force="IOC")
    sim.trade(2, 99.5)
    sim.trade(3, 98.0)
    [canceled] = sim.of(OrderCanceled, cid)
    assert (canceled.ts_event, canceled.reason, canceled.venue_order_id) == (2, "IOC", "sim-1")
    assert sim.fills(cid) == []
    assert sim.order_events(cid) == ["OrderAccepted", "OrderCanceled"]


def test_ioc_fills_what_it_can_and_cancels_the_rest() -> None:
    sim = Sim(slippage_model="volume", volume_limit_pct=50)
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "MARKET", "1.5", time_in_force="IOC")
    sim.trade(2, 100.0, size=1.0)  # at most 0.5 of it
    sim.trade(3, 100.0, size=1.0)
    assert sim.fills(cid) == [(2, "BUY", D("0.5"), D("100.00"), "TAKER")]
    assert sim.order_events(cid) == ["OrderAccepted", "Fill", "OrderCanceled"]
    assert sim.of(OrderCanceled, cid)[0].reason == "IOC"


def test_fok_is_canceled_whole_when_it_cannot_fill_whole() -> None:
    sim = Sim(slippage_model="volume", volume_limit_pct=50)
    sim.trade(1, 100.0)
    partial = sim.submit(1, "BUY", "MARKET", "1.5", time_in_force="FOK")
    whole = sim.submit(1, "BUY", "MARKET", "0.5", time_in_force="FOK")
    sim.trade(2, 100.0, size=1.0)
    assert sim.fills(partial) == []
    assert sim.of(OrderCanceled, partial)[0].reason == "FOK"
    assert sim.fills(whole) == [(2, "BUY", D("0.5"), D("100.00"), "TAKER")]
    assert sim.venue.balance("USDT")[2] == 0  # nothing stays locked


def test_fok_limit_that_does_not_cross_is_canceled() -> None:
    sim = Sim()
    sim.quote(1, 99.0, 100.0)
    cid = sim.submit(1, "SELL", "LIMIT", "1", price="99.5", time_in_force="FOK")
    sim.quote(2, 99.0, 100.0)
    assert sim.order_events(cid) == ["OrderAccepted", "OrderCanceled"]


def test_ioc_stop_is_settled_on_its_trigger_event() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "SELL", "STOP_LIMIT", "1", trigger="99", price="98.5",
                     time_in_force="IOC")
    sim.trade(2, 99.5)  # not triggered: stays open
    assert sim.order_events(cid) == ["OrderAccepted"]
    sim.trade(3, 98.0)  # triggered below its limit: cannot fill now, canceled
    assert sim.order_events(cid) == ["OrderAccepted", "OrderCanceled"]


def test_gtd_expires_at_its_deadline_before_matching() -> None:
    sim = Sim()
    sim.trade(1 * MS, 100.0)
    cid = sim.submit(1 * MS, "BUY", "LIMIT", "1", price="99", time_in_force="GTD",
                     expire_ts=5 * MS)
    sim.trade(3 * MS, 99.5)
    sim.trade(7 * MS, 90.0)  # would fill, but the order expired at 5 ms
    [expired] = sim.of(OrderExpired, cid)
    assert (expired.ts_event, expired.ts_recv) == (5 * MS, 7 * MS)
    assert sim.fills(cid) == []
    release = sim.balances()[-1]
    assert (release.reason, release.ts_event, release.locked) == ("release", 5 * MS, 0)


def test_gtd_deadline_before_arrival_is_rejected() -> None:
    sim = Sim(latency_ms=2)
    sim.trade(1 * MS, 100.0)
    cid = sim.submit(1 * MS, "BUY", "LIMIT", "1", price="99", time_in_force="GTD",
                     expire_ts=2 * MS)
    sim.trade(4 * MS, 100.0)
    [rej] = sim.of(OrderRejected, cid)
    assert rej.ts_event == 3 * MS and "GTD expire_ts" in rej.reason


def test_day_order_expires_at_the_next_midnight_utc() -> None:
    before = int(datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp()) * NS
    midnight = int(datetime(2024, 3, 2, tzinfo=UTC).timestamp()) * NS
    sim = Sim()
    sim.trade(before, 100.0)
    cid = sim.submit(before, "SELL", "LIMIT", "1", price="101", time_in_force="DAY")
    sim.trade(before + NS // 2, 100.5)
    assert sim.order_events(cid) == ["OrderAccepted"]
    sim.trade(midnight + NS, 102.0)
    [expired] = sim.of(OrderExpired, cid)
    assert expired.ts_event == midnight
    assert sim.fills(cid) == []


def test_an_order_expires_before_a_later_cancel_reaches_it() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99", time_in_force="GTD", expire_ts=5)
    sim.trade(2, 100.0)
    sim.cancel(8, cid)
    sim.trade(10, 100.0)  # the deadline (5) passed before the cancel arrived (8)
    assert sim.order_events(cid) == ["OrderAccepted", "OrderExpired", "CancelRejected"]
    assert sim.of(CancelRejected, cid)[0].reason == "order already expired"
