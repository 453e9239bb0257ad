"""A paper restart, case by case: ids continue, resting orders and requests in
flight survive, balances come back from the journal (see
test_restore_equivalence.py for the same over random sessions)."""

from __future__ import annotations

from events.orders import (
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
)
from events.state import BalanceChanged

from .harness import INST, MS, D, Sim

DAY_NS = 86_400_000 * MS


def test_trade_ids_and_venue_order_ids_continue_after_a_restart() -> None:
    # the defect: a restarted paper venue numbered from sim-T1 and sim-1 again,
    # and the OMS dropped its new fills as duplicates of the last run's
    first = Sim()
    first.trade(1, 100.0)
    for _ in range(3):
        first.submit(1, "BUY", "MARKET", "0.1")
    first.trade(2, 100.0)
    assert [f.trade_id for f in first.of(Fill)] == ["sim-T1", "sim-T2", "sim-T3"]
    second = Sim(restart_from=first)
    second.trade(3, 100.0)
    cid = second.submit(3, "SELL", "MARKET", "0.1")
    second.trade(4, 100.0)
    [accepted] = second.of(OrderAccepted, cid)
    [fill] = second.of(Fill, cid)
    assert (accepted.venue_order_id, fill.trade_id) == ("sim-4", "sim-T4")
    assert fill.venue_order_id == "sim-4"


def test_an_order_resting_at_a_restart_rests_on_and_fills_after_it() -> None:
    first = Sim(balances={"USDT": D(1000)}, fill_model="queue_aware")
    first.trade(1, 100.0)
    cid = first.submit(1, "BUY", "LIMIT", "3", price="99", time_in_force="GTD",
                       expire_ts=50 * MS)
    first.trade(2, 100.0)
    first.trade(3, 99.0, size=1.0)  # a partial fill: 1 of 3
    assert first.venue.balance("USDT") == (D(901), D(703), D(198))
    second = Sim(balances={"USDT": D(1000)}, fill_model="queue_aware", restart_from=first)
    assert second.venue.open_orders() == [cid]
    assert second.venue.balance("USDT") == (D(901), D(703), D(198))
    assert second.venue.balance("BTC") == (D(1), D(1), 0)
    assert [(b.currency, b.total, b.locked, b.reason) for b in second.balances()] == [
        ("USDT", D(901), D(198), "restored"), ("BTC", D(1), 0, "restored")]
    second.trade(4, 98.0)  # trades through: the rest fills
    assert second.fills(cid) == [(4, "BUY", D(2), D(99), "MAKER")]
    assert second.venue.balance("USDT") == (D(703), D(703), 0)
    assert second.venue.open_orders() == []


def test_a_restored_gtd_order_expires_at_its_deadline_and_a_day_order_at_midnight() -> None:
    first = Sim()
    t0 = 3 * DAY_NS - 10 * MS
    first.trade(t0, 100.0)
    gtd = first.submit(t0, "BUY", "LIMIT", "1", price="90", time_in_force="GTD",
                       expire_ts=t0 + 5 * MS)
    day = first.submit(t0, "SELL", "LIMIT", "1", price="110", time_in_force="DAY")
    first.trade(t0 + 1 * MS, 100.0)
    second = Sim(restart_from=first)
    second.trade(3 * DAY_NS + 20 * MS, 100.0)
    [g] = second.of(OrderExpired, gtd)
    [d] = second.of(OrderExpired, day)
    assert (g.ts_event, d.ts_event) == (t0 + 5 * MS, 3 * DAY_NS)
    assert second.venue.balance("USDT")[2] == 0 and second.venue.balance("BTC")[2] == 0


def test_requests_in_flight_at_a_restart_are_answered_at_the_first_market_event() -> None:
    first = Sim(latency_ms=5)
    first.trade(1 * MS, 100.0)
    resting = first.submit(1 * MS, "BUY", "LIMIT", "1", price="95")
    first.trade(10 * MS, 100.0)
    first.cancel(11 * MS, resting, reason="strategy")
    late = first.submit(11 * MS, "BUY", "LIMIT", "1", price="96")
    first.cancel(11 * MS, "nobody")
    assert first.venue.state()["pending"] == [
        ("CancelOrder", resting), ("OrderSubmitted", late), ("CancelOrder", "nobody")]
    second = Sim(latency_ms=5, restart_from=first)
    assert second.venue.state() == first.venue.state()
    second.trade(12 * MS, 100.0)  # before the arrival (11 + 5 ms): nothing yet
    assert not second.of(OrderCanceled)
    second.trade(16 * MS, 100.0)
    [canceled] = second.of(OrderCanceled, resting)
    assert (canceled.ts_event, canceled.reason) == (16 * MS, "strategy")
    [accepted] = second.of(OrderAccepted, late)
    assert accepted.venue_order_id == "sim-2"
    [refused] = second.of(CancelRejected, "nobody")
    assert refused.reason == "unknown order 'nobody'"


def test_a_cancel_of_an_order_filled_before_the_restart_is_refused_as_filled() -> None:
    first = Sim()
    first.trade(1, 100.0)
    cid = first.submit(1, "BUY", "MARKET", "1")
    first.trade(2, 100.0)
    second = Sim(restart_from=first)
    second.cancel(3, cid)
    second.submit(3, "BUY", "LIMIT", "1", price="50", cid=cid)  # a reused id
    second.trade(4, 100.0)
    assert [e.reason for e in second.of(CancelRejected, cid)] == ["order already filled"]
    assert [e.reason for e in second.of(OrderRejected, cid)] == [
        f"duplicate client_order_id {cid!r}"]


def test_a_market_buy_still_filling_keeps_the_reservation_its_acceptance_locked() -> None:
    first = Sim(balances={"USDT": D(10_000)}, slippage_model="volume", volume_limit_pct=50)
    first.trade(1, 100.0, size=10.0)
    cid = first.submit(1, "BUY", "MARKET", "4")
    first.trade(2, 100.0, size=2.0)  # 1 of 4 fills; 3 × 101 stay locked
    assert first.venue.balance("USDT")[2] == D(303)
    # the restarted venue has seen no price yet: the lock comes from the journal
    second = Sim(balances={"USDT": D(10_000)}, slippage_model="volume", volume_limit_pct=50,
                 restart_from=first)
    assert second.venue.balance("USDT") == first.venue.balance("USDT")
    assert second.venue.state() == first.venue.state()
    second.trade(4, 120.0, size=100.0)
    assert [f[2] for f in second.fills(cid)] == [D(3)]
    assert second.venue.balance("USDT")[2] == 0


def test_a_fill_journaled_without_its_balance_changes_still_moves_the_balances() -> None:
    # a kill between a Fill and the BalanceChanged after it: the journal ends
    # on the Fill, and the balances must still include it
    first = Sim(balances={"USDT": D(1000)}, taker_fee_bps=10)
    first.trade(1, 100.0)
    first.submit(1, "BUY", "MARKET", "2")
    first.trade(2, 100.0)
    tail = len(first.events)
    while type(first.events[tail - 1]) is BalanceChanged:
        tail -= 1
    assert type(first.events[tail - 1]) is Fill
    first.events[tail:] = []
    second = Sim(balances={"USDT": D(1000)}, taker_fee_bps=10, restart_from=first)
    assert second.venue.balance("USDT") == (D("799.8"), D("799.8"), 0)
    assert second.venue.balance("BTC") == (D(2), D(2), 0)


def test_a_first_start_publishes_the_opening_balances_and_a_new_currency_keeps_its_own() -> None:
    fresh = Sim(balances={"USDT": D(50)}, restart_from=Sim(balances={}))
    assert [(b.currency, b.total, b.reason) for b in fresh.balances()] == [
        ("USDT", D(50), "initial")]
    first = Sim(balances={"USDT": D(1000)})
    first.trade(1, 100.0)
    first.submit(1, "BUY", "MARKET", "1")
    first.trade(2, 100.0)
    # the config gained BNB since: the journal never mentioned it
    second = Sim(balances={"USDT": D(1000), "BNB": D(5)}, restart_from=first)
    assert sorted((b.currency, b.total, b.reason) for b in second.balances()) == [
        ("BNB", D(5), "initial"), ("BTC", D(1), "restored"), ("USDT", D(900), "restored")]


def test_orders_and_requests_of_a_symbol_no_longer_listed_are_closed_at_start() -> None:
    eth = INST.__class__(venue="sim", symbol="ETHUSDT", base="ETH", quote="USDT",
                         tick_size=D("0.01"), step_size=D("0.001"))
    first = Sim(instruments=[INST, eth], balances={"USDT": D(1000), "ETH": D(1)})
    first.trade(1, 10.0, symbol="ETHUSDT")
    resting = first.submit(1, "SELL", "LIMIT", "1", price="20", symbol="ETHUSDT")
    first.trade(2, 10.0, symbol="ETHUSDT")
    waiting = first.submit(2, "SELL", "LIMIT", "1", price="30", symbol="ETHUSDT")
    second = Sim(instruments=[INST], balances={"USDT": D(1000)}, restart_from=first)
    [closed] = second.of(OrderCanceled, resting)
    [refused] = second.of(OrderRejected, waiting)
    assert closed.reason == refused.reason == "unknown symbol 'ETHUSDT' at 'sim'"
    assert second.venue.invariant_violations() == []


def test_the_invariant_check_names_a_lock_no_order_holds() -> None:
    sim = Sim(balances={"USDT": D(1000)})
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "2", price="99")
    sim.trade(2, 100.0)
    assert sim.venue.invariant_violations() == []
    sim.venue._acc.locked["USDT"] += 1  # noqa: SLF001 - a corrupted book, on purpose
    sim.venue._symbols["BTCUSDT"].open[cid].filled = D(2)  # noqa: SLF001
    assert sim.venue.invariant_violations() == [
        f"{cid}: open with filled 2 of qty 2",
        f"{cid}: reserves 198 USDT, its remaining 0 needs 0",
        "USDT: locked 199 but the open orders reserve 198"]
