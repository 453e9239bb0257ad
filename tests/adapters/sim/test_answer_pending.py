"""A graceful stop: `SimVenue.answer_pending` answers the requests still
waiting for a market event, at the market the venue last saw.

The defect: with `on_stop = "cancel"` the daemon sends a cancel for every
open order, but a simulated venue acts on a request only at the next market
event of its symbol, and at a stop none comes: the cancel was never answered
(tests/daemon/test_run_process.py::test_on_stop_cancel_... passed only when a
sample trade happened to arrive before the feed stopped)."""

from __future__ import annotations

from events.orders import (
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
)

from .harness import INST, MS, D, Sim


def test_a_cancel_sent_at_a_stop_is_answered_without_another_market_event() -> None:
    sim = Sim(latency_ms=2)
    sim.trade(1 * MS, 100.0)
    cid = sim.submit(1 * MS, "BUY", "LIMIT", "1", price="95")
    sim.trade(5 * MS, 100.0)
    sim.cancel(6 * MS, cid, reason="daemon stopping")
    sim.cancel(6 * MS, "gone")
    assert sim.venue.answer_pending() == 2
    [canceled] = sim.of(OrderCanceled, cid)
    assert (canceled.ts_event, canceled.reason) == (8 * MS, "daemon stopping")
    assert [e.reason for e in sim.of(CancelRejected, "gone")] == ["unknown order 'gone'"]
    assert sim.venue.balance("USDT")[2] == 0
    assert sim.venue.answer_pending() == 0
    assert sim.venue.invariant_violations() == []


def test_orders_sent_at_a_stop_are_accepted_or_refused_against_the_last_market_and_rest() -> None:
    sim = Sim(balances={"USDT": D(1000)})
    sim.quote(1 * MS, 99.0, 101.0)
    rests = sim.submit(2 * MS, "BUY", "LIMIT", "1", price="102")  # would take: it rests
    post = sim.submit(2 * MS, "BUY", "LIMIT", "1", price="101", post_only=True)
    market = sim.submit(2 * MS, "BUY", "MARKET", "5")
    too_big = sim.submit(2 * MS, "BUY", "MARKET", "9")  # 9 × 101 × 1.01 > 1000 - 102 - 510.05
    sim.amend(2 * MS, rests, qty="2")
    assert sim.venue.answer_pending() == 5
    assert sim.of(OrderAccepted, rests) and sim.of(OrderAccepted, market)
    assert [e.reason for e in sim.of(OrderRejected, post)] == ["post-only would take liquidity"]
    assert sim.of(OrderRejected, too_big)
    assert [e.qty for e in sim.of(OrderAmended, rests)] == [D(2)]
    assert not sim.of(Fill), "nothing executes without a market event"
    assert sim.venue.balance("USDT") == (D(1000), D(1000) - D(204) - D("510.05"),
                                         D(204) + D("510.05"))
    sim.quote(3 * MS, 99.0, 101.0)  # after a restart, say: they meet the market
    assert [f[3] for f in sim.fills()] == [D(101), D(101)]
    assert sim.venue.invariant_violations() == []


def test_a_deadline_before_an_arrival_expires_first() -> None:
    sim = Sim(latency_ms=10)
    sim.trade(1 * MS, 100.0)
    cid = sim.submit(1 * MS, "BUY", "LIMIT", "1", price="95", time_in_force="GTD",
                     expire_ts=15 * MS)
    sim.trade(12 * MS, 100.0)
    sim.cancel(12 * MS, cid)  # arrives at 22 ms, after the deadline
    sim.venue.answer_pending()
    [expired] = sim.of(OrderExpired, cid)
    assert expired.ts_event == 15 * MS
    assert [e.reason for e in sim.of(CancelRejected, cid)] == ["order already expired"]


def test_answers_at_a_stop_follow_arrival_order_across_symbols() -> None:
    eth = INST.__class__(venue="sim", symbol="ETHUSDT", base="ETH", quote="USDT",
                         tick_size=D("0.01"), step_size=D("0.001"))
    sim = Sim(instruments=[INST, eth], balances={"USDT": D(10_000), "BTC": D(1), "ETH": D(9)})
    sim.trade(1 * MS, 100.0)
    sim.trade(1 * MS, 50.0, symbol="ETHUSDT")
    btc = sim.submit(1 * MS, "BUY", "LIMIT", "1", price="90")
    eth_ids = [sim.submit(1 * MS, "SELL", "LIMIT", "1", price=px, symbol="ETHUSDT")
               for px in ("60", "61")]
    sim.trade(2 * MS, 100.0)
    sim.trade(2 * MS, 50.0, symbol="ETHUSDT")
    sim.cancel(3 * MS, eth_ids[0], symbol="ETHUSDT")
    sim.cancel(4 * MS, btc)
    sim.cancel(5 * MS, eth_ids[1], symbol="ETHUSDT")
    sim.venue.answer_pending()
    assert [(e.client_order_id, e.ts_event) for e in sim.of(OrderCanceled)] == [
        (eth_ids[0], 3 * MS), (btc, 4 * MS), (eth_ids[1], 5 * MS)]
