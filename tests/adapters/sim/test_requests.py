"""Cancel and amend requests: answered at arrival, races with fills, queue
priority on repricing."""

from __future__ import annotations

from events.orders import AmendRejected, CancelRejected, OrderAmended, OrderCanceled

from .harness import MS, D, Sim


def test_cancel_of_an_open_order_at_its_arrival_time() -> None:
    sim = Sim(latency_ms=1)
    sim.trade(0, 100.0)
    cid = sim.submit(0, "BUY", "LIMIT", "1", price="99")
    sim.trade(1 * MS, 100.0)
    sim.cancel(2 * MS, cid, reason="strategy stop")
    sim.trade(2 * MS + 1, 98.0)  # before the cancel arrives (3 ms): fills
    assert sim.fills(cid) == [(2 * MS + 1, "BUY", D(1), D("99"), "MAKER")]
    sim.trade(4 * MS, 98.0)
    assert sim.of(CancelRejected, cid)[0].reason == "order already filled"
    assert sim.of(CancelRejected, cid)[0].ts_event == 3 * MS


def test_cancel_arriving_before_the_next_price_wins() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.trade(2, 100.0)
    sim.cancel(2, cid)
    sim.trade(3, 98.0)
    [canceled] = sim.of(OrderCanceled, cid)
    assert (canceled.ts_event, canceled.reason) == (2, "requested")
    assert sim.fills(cid) == []
    assert sim.venue.open_orders() == []


def test_cancel_or_amend_of_an_unknown_order_is_rejected() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    sim.cancel(1, "s-404")
    sim.amend(1, "s-405", qty="1")
    sim.trade(2, 100.0)
    assert sim.of(CancelRejected)[0].reason == "unknown order 's-404'"
    assert sim.of(AmendRejected)[0].reason == "unknown order 's-405'"


def test_amend_price_then_fill_at_the_new_price() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="98")
    sim.trade(2, 100.0)
    sim.amend(2, cid, price="99")
    sim.trade(3, 99.5)  # the amend arrives here: 99 rests
    sim.trade(4, 98.5)
    [amended] = sim.of(OrderAmended, cid)
    assert (amended.ts_event, amended.qty, amended.price) == (2, D(1), D(99))
    assert sim.fills(cid) == [(4, "BUY", D(1), D("99"), "MAKER")]
    assert sim.venue.balance("USDT")[2] == 0


def test_a_repriced_order_enters_again_and_takes_if_it_crosses() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="98")
    sim.trade(2, 100.0)
    sim.amend(2, cid, price="99")
    sim.trade(3, 98.5)  # trade-only data: entering at 99 over a 98.5 trade takes, at 98.5
    assert sim.fills(cid) == [(3, "BUY", D(1), D("98.50"), "TAKER")]


def test_amend_that_crosses_takes_and_relocks_the_balance() -> None:
    sim = Sim(balances={"USDT": D(1000)})
    sim.quote(1, 99.0, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "2", price="98")
    sim.quote(2, 99.0, 100.0)
    assert sim.venue.balance("USDT") == (D(1000), D(804), D(196))
    sim.amend(2, cid, price="100.5")
    sim.quote(3, 99.5, 100.1)  # amended at 3: re-enters crossing, takes the ask
    assert sim.balances()[-3].locked == D(201)
    assert sim.fills(cid) == [(3, "BUY", D(2), D("100.10"), "TAKER")]
    assert sim.venue.balance("USDT") == (D("799.8"), D("799.8"), 0)


def test_amend_qty_below_filled_is_rejected() -> None:
    sim = Sim(fill_model="queue_aware")
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.trade(2, 100.0)
    sim.trade(3, 99.0, size=0.6)
    sim.amend(3, cid, qty="0.5")
    sim.amend(3, cid, qty="0.6")
    sim.trade(4, 100.0)
    reasons = [r.reason for r in sim.of(AmendRejected, cid)]
    assert reasons == ["qty 0.5 is not above the filled qty 0.6",
                       "qty 0.6 is not above the filled qty 0.6"]


def test_amend_that_changes_price_loses_queue_priority_a_smaller_qty_keeps_it() -> None:
    sim = Sim(fill_model="queue_aware")
    sim.quote(1, 99.0, 99.5, bid_size=2.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.quote(2, 99.0, 99.5, bid_size=2.0)  # 2.0 ahead
    sim.trade(3, 99.0, size=1.9)  # 0.1 ahead
    sim.amend(3, cid, qty="0.8")  # smaller: keeps its place
    sim.trade(4, 99.0, size=0.2)
    assert sim.fills(cid) == [(4, "BUY", D("0.1"), D("99"), "MAKER")]
    sim.amend(4, cid, price="98.99")  # repriced: behind the top, queue unknown
    sim.amend(4, cid, price="99")  # back at 99: the back of the 2.0 shown there
    sim.trade(5, 99.0, size=1.5)
    assert len(sim.fills(cid)) == 1
    sim.trade(6, 99.0, size=1.0)
    assert sim.fills(cid)[1:] == [(6, "BUY", D("0.5"), D("99"), "MAKER")]


def test_amend_stop_trigger() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "SELL", "STOP_MARKET", "1", trigger="95")
    sim.trade(2, 100.0)
    sim.amend(2, cid, trigger="99")
    sim.trade(3, 98.9)
    assert sim.fills(cid) == [(3, "SELL", D(1), D("98.90"), "TAKER")]
    sim.amend(3, cid, price="1")
    sim.trade(4, 100.0)
    assert sim.of(AmendRejected, cid)[0].reason == "order already filled"
