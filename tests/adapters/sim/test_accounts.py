"""Spot balances: initial events, reservations, fills moving quote and base,
fees, insufficient balance, short selling and reduce-only."""

from __future__ import annotations

from events.orders import Fill, OrderCanceled, OrderRejected
from events.state import BalanceChanged

from .harness import D, Sim


def _last(sim: Sim, currency: str) -> BalanceChanged:
    return [b for b in sim.balances() if b.currency == currency][-1]


def test_start_publishes_the_initial_balances_in_config_order() -> None:
    sim = Sim(balances={"USDT": D("1000.5"), "BTC": D("0.1")})
    assert [(b.currency, b.total, b.free, b.locked, b.reason) for b in sim.balances()] == [
        ("USDT", D("1000.5"), D("1000.5"), 0, "initial"),
        ("BTC", D("0.1"), D("0.1"), 0, "initial")]


def test_buy_limit_locks_quote_and_its_fill_moves_quote_to_base_with_the_fee() -> None:
    sim = Sim(balances={"USDT": D(1000)}, maker_fee_bps=10)
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "2", price="99.5")
    sim.trade(2, 100.0)
    lock = _last(sim, "USDT")
    assert (lock.ts_event, lock.total, lock.free, lock.locked, lock.reason) == (
        1, D(1000), D("801"), D("199"), "order")
    sim.trade(3, 99.0)
    assert sim.fills(cid) == [(3, "BUY", D(2), D("99.5"), "MAKER")]
    fee = D("0.199")  # 99.5 × 2 × 10 bps
    usdt, btc = _last(sim, "USDT"), _last(sim, "BTC")
    assert (usdt.total, usdt.free, usdt.locked, usdt.reason) == (
        D(1000) - D(199) - fee, D(1000) - D(199) - fee, 0, "fill")
    assert (btc.total, btc.free, btc.locked) == (D(2), D(2), 0)
    assert [type(e).__name__ for e in sim.events[-3:]] == ["Fill", "BalanceChanged",
                                                           "BalanceChanged"]


def test_partial_fills_release_the_lock_in_proportion() -> None:
    sim = Sim(balances={"USDT": D(1000)}, fill_model="queue_aware")
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "LIMIT", "3", price="99")
    sim.trade(2, 100.0)
    sim.trade(3, 99.0, size=1.0)
    assert sim.venue.balance("USDT") == (D(901), D(703), D(198))
    assert sim.venue.balance("BTC") == (D(1), D(1), 0)


def test_market_buy_is_checked_against_the_last_price_plus_one_percent() -> None:
    sim = Sim(balances={"USDT": D(1000)})
    sim.trade(1, 100.0)
    too_big = sim.submit(1, "BUY", "MARKET", "9.91")  # 9.91 × 101 = 1000.91
    fits = sim.submit(1, "BUY", "MARKET", "9.9")  # 999.9
    sim.trade(2, 100.0)
    [rej] = sim.of(OrderRejected, too_big)
    assert rej.reason == "insufficient balance: need 1000.91 USDT, free 1000"
    assert rej.ts_event == 1
    assert sim.fills(fits) == [(2, "BUY", D("9.9"), D("100.00"), "TAKER")]
    assert sim.venue.balance("USDT") == (D(10), D(10), 0)


def test_sell_needs_the_base_unless_short_selling_is_allowed() -> None:
    sim = Sim(balances={"USDT": D(1000), "BTC": D("0.5")})
    sim.trade(1, 100.0)
    cid = sim.submit(1, "SELL", "MARKET", "0.6")
    sim.trade(2, 100.0)
    assert sim.of(OrderRejected, cid)[0].reason == (
        "insufficient balance: need 0.6 BTC, free 0.5")

    short = Sim(balances={"USDT": D(1000)}, allow_short=True, taker_fee_bps=10)
    short.trade(1, 100.0)
    cid = short.submit(1, "SELL", "MARKET", "0.6")
    short.trade(2, 100.0)
    assert short.fills(cid) == [(2, "SELL", D("0.6"), D("100.00"), "TAKER")]
    assert short.venue.balance("BTC") == (D("-0.6"), D("-0.6"), 0)
    assert short.venue.balance("USDT")[0] == D(1060) - D("0.06")
    assert short.venue.position("BTCUSDT") == D("-0.6")


def test_cancel_releases_the_lock() -> None:
    sim = Sim(balances={"USDT": D(1000), "BTC": D(1)})
    sim.trade(1, 100.0)
    cid = sim.submit(1, "SELL", "LIMIT", "1", price="105")
    sim.trade(2, 100.0)
    assert sim.venue.balance("BTC") == (D(1), D(0), D(1))
    sim.cancel(2, cid)
    sim.trade(3, 100.0)
    assert sim.venue.balance("BTC") == (D(1), D(1), D(0))
    assert _last(sim, "BTC").reason == "release"


def test_reduce_only_is_refused_when_flat_and_trimmed_to_the_position() -> None:
    sim = Sim(balances={"USDT": D(1000), "BTC": D(5)})
    sim.trade(1, 100.0)
    flat = sim.submit(1, "SELL", "MARKET", "1", reduce_only=True)
    sim.trade(2, 100.0)
    assert sim.of(OrderRejected, flat)[0].reason == (
        "reduce-only order would increase the BTCUSDT position")
    buy = sim.submit(2, "BUY", "MARKET", "0.5")
    sim.trade(3, 100.0)
    assert sim.venue.position("BTCUSDT") == D("0.5")
    wrong_side = sim.submit(3, "BUY", "MARKET", "0.1", reduce_only=True)
    trim = sim.submit(3, "SELL", "MARKET", "0.8", reduce_only=True)
    sim.trade(4, 101.0)
    assert sim.fills(buy) == [(3, "BUY", D("0.5"), D("100.00"), "TAKER")]
    assert sim.of(OrderRejected, wrong_side)
    assert sim.fills(trim) == [(4, "SELL", D("0.5"), D("101.00"), "TAKER")]
    assert sim.of(OrderCanceled, trim)[0].reason == "reduce-only"
    assert sim.venue.position("BTCUSDT") == 0
    assert sim.venue.balance("BTC") == (D(5), D(5), 0)


def test_a_round_trip_leaves_exactly_the_fees() -> None:
    sim = Sim(balances={"USDT": D(1000)}, taker_fee_bps=7.5)
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "0.33333")
    sim.trade(2, 100.01)
    sim.submit(2, "SELL", "MARKET", "0.33333")
    sim.trade(3, 100.01)
    fees = [f.fee for f in sim.of(Fill)]
    assert fees == [D("0.02500225"), D("0.02500225")]  # 33.3363333 × 7.5 bps, half-even
    assert sim.venue.balance("USDT") == (D(1000) - sum(fees), D(1000) - sum(fees), 0)
    assert sim.venue.balance("BTC") == (0, 0, 0)
