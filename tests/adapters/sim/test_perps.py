"""Simulated perpetuals: margin account, acceptance, fills, funding and
liquidation against a direct computation (adapters/sim/perps.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from events import margin
from events.instruments import Instrument
from events.orders import Fill, OrderAccepted, OrderCanceled, OrderRejected
from events.perp import (
    FundingPayment,
    FundingRate,
    LeverageChanged,
    Liquidation,
    MarginModeChanged,
    MarkPrice,
)
from events.state import BalanceChanged

from .harness import SYMBOL, VENUE, D, Sim

HOUR = 3_600 * 1_000_000_000
PERP = Instrument(venue=VENUE, symbol=SYMBOL, base="BTC", quote="USDT",
                  tick_size=D("0.01"), step_size=D("0.001"), kind="perpetual",
                  margin_asset="USDT", max_leverage=20,
                  margin_tiers=margin.tiers([(D(10_000), D("0.01"), 20),
                                             (D(1_000_000), D("0.05"), 5)]))


def perp_sim(wallet: str = "1000", leverage: int = 10, mode: str = "cross",
             **kw: object) -> Sim:
    return Sim(instruments=[PERP], balances={"USDT": D(wallet)},
               leverage={SYMBOL: leverage}, margin_mode={SYMBOL: mode}, **kw)


def mark(sim: Sim, ts: int, px: float) -> None:
    sim._market(MarkPrice(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL, mark=px))


def rate(sim: Sim, ts: int, r: float, funding_ts: int, px: float = 0.0) -> None:
    sim._market(FundingRate(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL, rate=r,
                            funding_ts=funding_ts, mark=px))


def last_balance(sim: Sim) -> BalanceChanged:
    return [b for b in sim.balances() if b.currency == "USDT"][-1]


def test_a_fresh_venue_sets_leverage_and_mode_before_any_order() -> None:
    sim = perp_sim(leverage=7, mode="isolated")
    kinds = [type(e) for e in sim.events]
    assert kinds == [BalanceChanged, LeverageChanged, MarginModeChanged]
    assert sim.of(LeverageChanged)[0].leverage == 7
    assert sim.of(MarginModeChanged)[0].mode == "isolated"
    assert sim.venue.margin_state(SYMBOL)["leverage"] == 7


def test_fills_move_only_the_wallet_by_realized_pnl_and_fee() -> None:
    sim = perp_sim(taker_fee_bps=5)
    sim.trade(1, 100.0)
    buy = sim.submit(1, "BUY", "MARKET", "2")
    sim.trade(2, 100.0)
    b = last_balance(sim)
    # fee 2 x 100 x 0.0005 = 0.1; margin 200 / 10 = 20
    assert (b.total, b.locked, b.free) == (D("999.9"), D(20), D("979.9"))
    assert not any(x.currency == "BTC" for x in sim.balances())
    sell = sim.submit(2, "SELL", "MARKET", "1")
    sim.trade(3, 110.0)
    b = last_balance(sim)
    # realized 1 x (110 - 100) = 10, fee 0.055; one contract left: margin 10
    assert (b.total, b.locked) == (D("1009.845"), D(10))
    assert sim.venue.margin_state(SYMBOL)["qty"] == D(1)
    assert [type(e).__name__ for e in sim.events[-2:]] == ["Fill", "BalanceChanged"]
    assert sim.fills(buy) and sim.fills(sell)
    assert sim.venue.invariant_violations() == []


def test_a_flip_realizes_the_old_side_and_enters_the_rest_at_the_fill_price() -> None:
    sim = perp_sim()
    sim.trade(1, 100.0)
    sim.submit(1, "SELL", "MARKET", "1")
    sim.trade(2, 100.0)
    sim.submit(2, "BUY", "MARKET", "3")
    sim.trade(3, 90.0)
    state = sim.venue.margin_state(SYMBOL)
    assert (state["qty"], state["entry_cost"], state["wallet"]) == (D(2), D(180), D(1010))


def test_orders_reserve_initial_margin_and_are_refused_beyond_it() -> None:
    sim = perp_sim(wallet="100", taker_fee_bps=10)
    sim.trade(1, 100.0)
    # 9 x 100 / 10 = 90 + fee 0.9: fits in 100
    ok = sim.submit(1, "BUY", "LIMIT", "9", price="100")
    too_much = sim.submit(1, "BUY", "LIMIT", "1", price="100")
    sim.trade(2, 101.0)
    assert sim.order_events(ok) == ["OrderAccepted"]
    rej = sim.of(OrderRejected, too_much)[0]
    assert rej.code == "-2019" and "insufficient margin" in rej.reason
    assert last_balance(sim).locked == D("90.9")
    # a reducing order needs no margin even when none is free
    sim.trade(3, 99.0)
    assert sim.venue.margin_state(SYMBOL)["qty"] == D(9)
    close = sim.submit(3, "SELL", "LIMIT", "9", price="200")
    sim.trade(4, 100.0)
    assert sim.order_events(close) == ["OrderAccepted"]


def test_leverage_above_the_tier_maximum_is_refused() -> None:
    sim = perp_sim(wallet="100000", leverage=10)
    sim.trade(1, 100.0)
    small = sim.submit(1, "BUY", "LIMIT", "10", price="100")  # 1000: tier 1 (20x)
    big = sim.submit(1, "BUY", "LIMIT", "200", price="100")  # 20 000: tier 2 (5x)
    sim.trade(2, 100.5)
    assert sim.order_events(small) == ["OrderAccepted"]
    assert sim.of(OrderRejected, big)[0].code == "-2027"


def test_reduce_only_is_refused_when_flat_and_trimmed_at_fill() -> None:
    sim = perp_sim()
    sim.trade(1, 100.0)
    flat = sim.submit(1, "SELL", "MARKET", "1", reduce_only=True)
    sim.trade(2, 100.0)
    assert sim.order_events(flat) == ["OrderRejected"]
    sim.submit(2, "BUY", "MARKET", "1")
    sim.trade(3, 100.0)
    close = sim.submit(3, "SELL", "LIMIT", "3", price="101", reduce_only=True)
    sim.trade(4, 101.0)
    sim.trade(5, 102.0)
    assert [f[2] for f in sim.fills(close)] == [D(1)]
    assert sim.venue.margin_state(SYMBOL)["qty"] == 0


def test_funding_pays_each_strategy_its_share_once_per_funding_time() -> None:
    sim = perp_sim(wallet="10000")
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "3", strategy="a")
    sim.submit(1, "SELL", "MARKET", "1", strategy="b")
    sim.trade(2, 100.0)
    rate(sim, 8 * HOUR, 0.0001, 8 * HOUR, px=120.0)
    rate(sim, 8 * HOUR + 1, 0.0001, 8 * HOUR, px=120.0)  # the same funding time again
    pays = sim.of(FundingPayment)
    assert [(p.strategy_id, p.qty, p.amount) for p in pays] == [
        ("a", D(3), D("-0.036")), ("b", D(-1), D("0.012"))]
    assert last_balance(sim).total == D("10000") - D("0.024")
    assert sim.venue.margin_state(SYMBOL)["paid"] == 8 * HOUR


def test_funding_falls_back_to_the_last_mark_then_the_last_price() -> None:
    sim = perp_sim(wallet="10000")
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "1")
    sim.trade(2, 100.0)
    rate(sim, 8 * HOUR, 0.001, 8 * HOUR)  # no mark known: the last price
    mark(sim, 9 * HOUR, 105.0)
    rate(sim, 16 * HOUR, 0.001, 16 * HOUR)
    assert [p.mark for p in sim.of(FundingPayment)] == [D("100.00"), D("105.00")]


def test_constant_funding_every_interval_from_midnight_never_twice() -> None:
    sim = perp_sim(wallet="10000", funding_rate=0.001, funding_interval_h=8)
    sim.trade(HOUR, 100.0)
    sim.submit(HOUR, "BUY", "MARKET", "1")
    sim.trade(2 * HOUR, 100.0)  # opened after 00:00: that funding is not owed
    for ts in (7 * HOUR, 8 * HOUR, 9 * HOUR, 23 * HOUR, 25 * HOUR):
        sim.trade(ts, 100.0)
    assert [p.funding_ts for p in sim.of(FundingPayment)] == [8 * HOUR, 16 * HOUR, 24 * HOUR]
    assert [p.ts_event for p in sim.of(FundingPayment)] == [8 * HOUR, 23 * HOUR, 25 * HOUR]
    assert all(p.amount == D("-0.1") for p in sim.of(FundingPayment))


def test_liquidation_cancels_open_orders_and_caps_the_fee_at_what_is_left() -> None:
    sim = perp_sim(wallet="100", leverage=20, liquidation_fee_pct=1.0)
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "10")
    sim.trade(2, 100.0)
    resting = sim.submit(2, "BUY", "LIMIT", "1", price="50")
    sim.trade(3, 100.0)
    # margin balance 100 + 10 x (p - 100) <= 0.01 x 10p  <=> p <= 90/9.9 + ...
    sim.trade(4, 91.0)  # 10 > 9.1: not breached
    assert not sim.of(Liquidation)
    sim.trade(5, 90.9)  # 9 <= 9.09: breached
    liq = sim.of(Liquidation)
    assert [(x.ts_event, x.side, x.qty, x.price) for x in liq] == [
        (5, "SELL", D(10), D("90.90"))]
    assert liq[0].fee == D(9)  # 1 % of 909 = 9.09, capped at the 9 left
    assert sim.of(OrderCanceled, resting)[0].reason == "liquidation"
    b = last_balance(sim)
    assert (b.total, b.locked, b.reason) == (D(0), D(0), "liquidation")
    assert sim.venue.invariant_violations() == []


def test_marks_replace_trades_once_the_symbol_has_them() -> None:
    sim = perp_sim(wallet="100", leverage=20)
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "10")
    sim.trade(2, 100.0)
    mark(sim, 3, 95.0)
    sim.trade(4, 80.0)  # a trade far below: not a mark any more
    assert not sim.of(Liquidation)
    mark(sim, 5, 90.0)
    assert [x.ts_event for x in sim.of(Liquidation)] == [5]


@settings(max_examples=150, deadline=None)
@given(lev=st.integers(2, 20), qty=st.integers(1, 50), side=st.sampled_from(["BUY", "SELL"]),
       isolated=st.booleans(), moves=st.lists(st.integers(-300, 300), min_size=1,
                                              max_size=40))
def test_liquidation_happens_at_the_first_breaching_mark_and_never_otherwise(
        lev: int, qty: int, side: str, isolated: bool, moves: list[int]) -> None:
    sim = perp_sim(wallet="1000", leverage=lev, mode="isolated" if isolated else "cross",
                   liquidation_fee_pct=0.5)
    sim.trade(1, 100.0)
    q = D(qty) / 10
    sim.submit(1, side, "MARKET", str(q))
    sim.trade(2, 100.0)
    signed = q if side == "BUY" else -q
    wallet = D(1000)
    expected = None
    px = D(100)
    ts = 3
    for move in moves:
        px = max(D("0.01"), px + D(move) / 100)
        sim.trade(ts, float(px))
        if expected is None:
            upnl = signed * (px - 100)
            base = (abs(signed) * 100 / lev) if isolated else wallet
            maint = margin.maintenance_margin(PERP, abs(signed) * px)
            if maint > 0 and base + upnl <= maint:
                expected = (ts, px)
        ts += 1
    liq = sim.of(Liquidation)
    if expected is None:
        assert liq == []
    else:
        assert [(x.ts_event, x.price, x.qty) for x in liq] == [(*expected, q)]
        assert sim.venue.margin_state(SYMBOL)["qty"] == 0
    assert sim.venue.invariant_violations() == []
    assert len(sim.of(Fill)) == 1 and len(sim.of(OrderAccepted)) == 1


def test_wallet_equals_initial_plus_realized_minus_fees_plus_funding() -> None:
    sim = perp_sim(wallet="10000", taker_fee_bps=4, maker_fee_bps=2)
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "3")
    sim.trade(2, 101.0)
    rate(sim, 8 * HOUR, 0.0003, 8 * HOUR, px=103.0)
    sim.submit(8 * HOUR, "SELL", "LIMIT", "2", price="105")
    sim.trade(8 * HOUR + 1, 104.0)
    sim.trade(8 * HOUR + 2, 106.0)
    fills = sim.of(Fill)
    pays = sim.of(FundingPayment)
    realized = D(2) * (D("105") - D("101"))
    expect = D(10000) + realized - sum(f.fee for f in fills) + sum(p.amount for p in pays)
    assert last_balance(sim).total == expect
    assert sim.venue.invariant_violations() == []


def test_a_liquidation_closes_each_strategys_share_on_its_own_side() -> None:
    sim = perp_sim(wallet="100", leverage=20, liquidation_fee_pct=1.0)
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "3", strategy="a")
    sim.submit(1, "SELL", "MARKET", "13", strategy="b")
    sim.trade(2, 100.0)  # net short 10: margin 50, wallet 100
    sim.trade(3, 108.9)  # 100 - 89 = 11 > 0.01 x 1089: not breached
    assert not sim.of(Liquidation)
    sim.trade(4, 109.0)  # 100 - 90 = 10 <= 10.9
    liq = sim.of(Liquidation)
    assert [(x.strategy_id, x.side, x.qty) for x in liq] == [("a", "SELL", D(3)),
                                                            ("b", "BUY", D(13))]
    # fee 1 % of 1090 = 10.9, capped at the 10 left, split 3 : 13
    assert sum(x.fee for x in liq) == D(10)
    assert liq[0].fee == D("1.875")
    assert last_balance(sim).total == D(0)
    assert sim.venue.invariant_violations() == []


def test_the_margin_held_counts_as_locked_in_the_balance_view() -> None:
    sim = perp_sim()
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "2")
    sim.trade(2, 100.0)
    b = last_balance(sim)
    assert sim.venue.balance("USDT") == (b.total, b.free, b.locked) == (D(1000), D(980), D(20))


def test_a_contract_size_other_than_1_is_not_traded() -> None:
    import msgspec

    odd = msgspec.structs.replace(PERP, contract_size=D("0.1"))
    sim = Sim(instruments=[odd], balances={"USDT": D(1000)})
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "MARKET", "1")
    sim.trade(2, 100.0)
    assert "contract_size" in sim.of(OrderRejected, cid)[0].reason


def test_a_mark_finer_than_the_tick_is_used_as_the_venue_sent_it() -> None:
    # Binance's marks carry more digits than the tick (BTCUSDT mark "60000.51234"):
    # the portfolio values at that mark, so funding and liquidation must too
    sim = perp_sim(wallet="10000")
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "1")
    sim.trade(2, 100.0)
    mark(sim, 3, 100.12345)
    rate(sim, 8 * HOUR, 0.001, 8 * HOUR)
    rate(sim, 16 * HOUR, 0.001, 16 * HOUR, px=99.98765)
    assert [p.mark for p in sim.of(FundingPayment)] == [D("100.12345"), D("99.98765")]
