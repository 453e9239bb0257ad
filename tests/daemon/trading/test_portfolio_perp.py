"""The portfolio's perpetuals: PnL at the venue's mark, funding and liquidations
folded exactly (checked against plain arithmetic written here), margin figures,
attribution of account-level events, and snapshot/restore equality."""

from __future__ import annotations

import random
from decimal import Decimal as D
from fractions import Fraction

from daemon.trading.api import BUY, SELL
from daemon.trading.margin_view import split
from daemon.trading.portfolio import DAY_NS, Portfolio
from events.base import Event
from events.instruments import Instrument
from events.margin import tiers
from events.market import Trade
from events.orders import Fill
from events.perp import (
    FundingPayment,
    LeverageChanged,
    Liquidation,
    MarginModeChanged,
    MarkPrice,
)
from events.state import BalanceChanged

T0 = 19_700 * DAY_NS + 3_600 * 10**9
PERP = Instrument(venue="fut", symbol="BTCUSDT", base="BTC", quote="USDT",
                  tick_size=D("0.1"), step_size=D("0.001"), kind="perpetual",
                  margin_asset="USDT", max_leverage=125,
                  margin_tiers=tiers([(D(50000), D("0.004"), 125),
                                      (D(250000), D("0.005"), 100)]))
INSTRUMENTS = {PERP.key: PERP}


def new(settings: dict | None = None) -> tuple[Portfolio, list[Event]]:
    out: list[Event] = []
    return Portfolio(out.append, lambda: T0, INSTRUMENTS, account_currency="USDT",
                     perp_settings=settings), out


_ids = iter(range(1, 10**9))


def fill(side: str, qty: str, price: str, strategy: str = "s1", fee: str = "0") -> Fill:
    return Fill(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", strategy_id=strategy,
                client_order_id=f"{strategy}-1", trade_id=str(next(_ids)), side=side,
                qty=D(qty), price=D(price), fee=D(fee), fee_currency="USDT", liquidity="TAKER")


def mark(price: float) -> MarkPrice:
    return MarkPrice(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", mark=price)


def wallet(total: str, free: str | None = None) -> BalanceChanged:
    return BalanceChanged(ts_event=T0, ts_recv=T0, venue="fut", currency="USDT",
                          total=D(total), free=D(free or total))


def funding(amount: str, strategy: str = "", qty: str = "0") -> FundingPayment:
    return FundingPayment(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT",
                          amount=D(amount), currency="USDT", rate=D("0.0001"),
                          mark=D("100"), qty=D(qty), funding_ts=T0, strategy_id=strategy)


def test_unrealized_is_at_the_venue_mark_once_one_is_seen_and_trades_no_longer_move_it():
    pf, _ = new()
    pf.apply(fill(BUY, "2", "100"))
    pf.apply(Trade(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", price=105.0,
                   size=1.0))
    assert pf.unrealized_pnl("fut", "BTCUSDT") == D(10)
    pf.apply(mark(110.5))
    assert pf.unrealized_pnl("fut", "BTCUSDT") == D(21)
    pf.apply(Trade(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", price=90.0,
                   size=1.0))
    assert pf.last_price("fut", "BTCUSDT") == D("110.5")
    # and through the fast path the live bus takes
    pf._on_trade(Trade(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", price=80.0,
                       size=1.0))
    assert pf.last_price("fut", "BTCUSDT") == D("110.5")


def test_equity_is_the_wallet_plus_unrealized_and_pnl_counts_funding():
    pf, _ = new()
    pf.apply(wallet("1000"))
    pf.apply(fill(BUY, "1", "100", fee="0.04"))
    pf.apply(wallet("999.96"))  # the venue took the fee from the wallet
    pf.apply(mark(101.0))
    assert pf.equity() == D("1000.96")
    pf.apply(funding("-0.0101", strategy="s1", qty="1"))
    pf.apply(wallet("999.9499"))
    assert pf.equity() == D("1000.9499")
    assert pf.pnl("s1") == D("1") - D("0.04") - D("0.0101")
    assert pf.pnl_summary().funding == D("-0.0101")
    assert pf.pnl_summary().net == pf.pnl("s1")


def test_an_account_payment_is_split_over_the_holders_exactly():
    pf, _ = new()
    pf.apply(fill(BUY, "1", "100", strategy="a"))
    pf.apply(fill(BUY, "2", "100", strategy="b"))
    pf.apply(funding("-1", qty="3"))
    a = pf._positions[PERP.key]["a"].funding
    b = pf._positions[PERP.key]["b"].funding
    assert a + b == D(-1)
    assert abs(a - D(-1) / 3) < D("1e-19")


def test_split_always_sums_to_the_amount():
    rng = random.Random(7)
    for _ in range(500):
        amount = D(rng.randint(-10**9, 10**9)) / D(10**rng.randint(0, 12))
        weights = [D(rng.randint(1, 10**6)) / D(1000) for _ in range(rng.randint(1, 6))]
        assert sum(map(Fraction, split(amount, weights))) == Fraction(amount), (amount, weights)


def test_a_liquidation_closes_every_strategys_share_at_its_price():
    pf, out = new()
    pf.apply(fill(BUY, "1", "100", strategy="a"))
    pf.apply(fill(BUY, "3", "100", strategy="b"))
    liq = Liquidation(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", side=SELL,
                      qty=D(4), price=D("90"), mark=D("90"), fee=D("4.5"),
                      fee_currency="USDT", trade_id="L1")
    pf._on_liquidation(liq)
    a = pf.position("fut", "BTCUSDT", "a")
    b = pf.position("fut", "BTCUSDT", "b")
    assert (a.qty, b.qty) == (0, 0)
    assert a.realized_pnl == D(-10) and b.realized_pnl == D(-30)
    assert a.fees + b.fees == D("4.5")
    assert len([e for e in out if type(e).__name__ == "PositionChanged"]) == 2


def test_margin_figures_follow_events_margin_arithmetic():
    pf, _ = new({PERP.key: (10, "cross")})
    pf.apply(wallet("1000", free="900"))
    pf.apply(fill(BUY, "1", "10000"))
    pf.apply(mark(9900.0))
    (acct,) = pf.margin()
    assert acct.unrealized_pnl == D(-100)
    assert acct.margin_balance == D(900)
    assert acct.initial_margin == D(1000)  # 10000 / 10
    assert acct.maintenance_margin == D("39.6")  # 9900 x 0.4 %
    assert acct.margin_ratio == D("0.044")  # 39.6 / 900
    (pos,) = pf.perp_positions()
    # wallet 1000: LP = (1000 - 10000) / (0.004 - 1) = 9036.14..., on the tick grid
    assert pos.liquidation_price == D("9036.1")
    assert pos.leverage == 10 and pos.margin_mode == "cross"
    pf.apply(LeverageChanged(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT",
                             leverage=20))
    pf.apply(MarginModeChanged(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT",
                               mode="isolated"))
    (pos,) = pf.perp_positions()
    assert pos.initial_margin == D(500)
    # isolated: the position's own margin 500: LP = (500 - 10000) / (0.004 - 1)
    assert pos.liquidation_price == D("9538.2")
    assert pf.margin_usage() == D("0.5555555556")  # 500 / 900 to 10 decimals


def test_snapshot_restore_equals_the_fold():
    pf, _ = new({PERP.key: (5, "isolated")})
    rng = random.Random(11)
    events: list[Event] = [wallet("5000")]
    for i in range(200):
        r = rng.random()
        if r < 0.4:
            events.append(fill(rng.choice([BUY, SELL]), str(rng.randint(1, 5) / 1000),
                               str(rng.randint(9000, 11000)), strategy=rng.choice("ab"),
                               fee=str(rng.randint(0, 100) / 10000)))
        elif r < 0.7:
            events.append(mark(float(rng.randint(9000, 11000))))
        elif r < 0.8:
            events.append(funding(str(rng.randint(-100, 100) / 10000),
                                  strategy=rng.choice(["", "a"])))
        elif r < 0.85:
            events.append(LeverageChanged(ts_event=T0, ts_recv=T0, venue="fut",
                                          symbol="BTCUSDT", leverage=rng.randint(1, 20)))
        else:
            events.append(wallet(str(rng.randint(4000, 6000))))
        events[-1] = events[-1].__class__(**{**{f: getattr(events[-1], f)
                                                for f in events[-1].__struct_fields__},
                                             "seq": i + 1})
    for e in events:
        pf.apply(e)
    again, _ = new({PERP.key: (5, "isolated")})
    again.restore(pf.snapshot())
    assert again.perp_positions("fut", "") == pf.perp_positions("fut", "")
    assert again.perp_positions() == pf.perp_positions()
    assert again.margin() == pf.margin()
    assert again.equity() == pf.equity()
    folded, _ = new({PERP.key: (5, "isolated")})
    folded.recover([e for e in events if type(e) is not MarkPrice], pf.snapshot())
    assert folded.margin() == pf.margin()


def test_the_account_position_nets_in_fill_order_as_the_venue_does():
    # a short of one strategy, then a larger long of another: one-way, the account
    # is closed and reopened at the second price (not the strategies' blend)
    pf, _ = new()
    pf.apply(fill(SELL, "0.002", "104.48", strategy="a"))
    pf.apply(fill(BUY, "0.004", "103.25", strategy="b"))
    (acct,) = pf.perp_positions()
    assert (acct.qty, acct.entry_price) == (D("0.002"), D("103.25"))
    assert pf.position("fut", "BTCUSDT").qty == D("0.002")


def test_an_account_liquidation_closes_opposite_shares_each_on_its_own_side():
    pf, out = new()
    pf.apply(fill(SELL, "0.002", "100", strategy="a"))
    pf.apply(fill(BUY, "0.004", "100", strategy="b"))
    pf._on_liquidation(Liquidation(
        ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", side=SELL, qty=D("0.002"),
        price=D(90), mark=D(90), fee=D("0.06"), fee_currency="USDT", trade_id="L2"))
    a = pf.position("fut", "BTCUSDT", "a")
    b = pf.position("fut", "BTCUSDT", "b")
    assert (a.qty, b.qty) == (0, 0)
    assert (a.realized_pnl, b.realized_pnl) == (D("0.02"), D("-0.04"))
    assert a.fees + b.fees == D("0.06")
    assert pf.perp_positions() == []
