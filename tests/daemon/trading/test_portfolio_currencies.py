"""The portfolio across currencies: fees in the base, the quote or a third asset
booked as the venue books them; PnL, fees and daily PnL per currency; the account's
figures in one account currency through conversion marks; unvalued currencies;
the fill gate; recovery from a snapshot (or without a readable one)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.trading.api import BUY, SELL
from daemon.trading.portfolio import DAY_NS, Pnl, Portfolio
from daemon.trading.portfolio_state import State, decode_state, encode_state
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument, to_decimal
from events.market import Trade
from events.orders import Fill
from events.state import BalanceChanged, PositionChanged, Snapshot

T0 = 19_700 * DAY_NS + 3_600 * 10**9  # 01:00 UTC


def inst(symbol: str, base: str, quote: str) -> Instrument:
    return Instrument(venue="sim", symbol=symbol, base=base, quote=quote,
                      tick_size=D("0.00001"), step_size=D("0.0001"))


INSTRUMENTS = {i.key: i for i in (
    inst("BTCUSDT", "BTC", "USDT"), inst("ETHEUR", "ETH", "EUR"),
    inst("EURUSDT", "EUR", "USDT"), inst("BNBUSDT", "BNB", "USDT"),
    inst("DOGEUSDT", "DOGE", "USDT"))}
BASE = {"BTCUSDT": "BTC", "ETHEUR": "ETH"}
QUOTE = {"BTCUSDT": "USDT", "ETHEUR": "EUR"}


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def new_portfolio(clock: Clock | None = None, **kw: Any) -> Portfolio:
    return Portfolio(lambda e: None, clock or Clock(), INSTRUMENTS, account_currency="USDT",
                     **kw)


_ids = iter(range(1, 10**9))


def fill(side: str, qty: str | D, price: str | D, *, symbol: str = "BTCUSDT",
         fee: str | D = "0", fee_currency: str = "USDT", strategy: str = "s1",
         ts: int = T0) -> Fill:
    return Fill(ts_event=ts, ts_recv=ts, venue="sim", symbol=symbol, strategy_id=strategy,
                client_order_id=f"{strategy}-1", trade_id=str(next(_ids)), side=side,
                qty=D(qty), price=D(price), fee=D(fee), fee_currency=fee_currency,
                liquidity="TAKER")


def trade(price: float | str, symbol: str = "BTCUSDT", ts: int = T0) -> Trade:
    return Trade(ts_event=ts, ts_recv=ts, venue="sim", symbol=symbol, price=float(price),
                 size=1.0)


def balance(currency: str, total: D | str, ts: int = T0) -> BalanceChanged:
    return BalanceChanged(ts_event=ts, ts_recv=ts, venue="sim", currency=currency,
                          total=D(total), free=D(total))


# -- issue 9, item 4: a fee in the base asset ---------------------------------------------


def test_a_base_fee_comes_out_of_the_position_as_out_of_the_balance() -> None:
    portfolio = new_portfolio()
    portfolio.apply(fill(BUY, "0.1", "50000", fee="0.0001", fee_currency="BTC"))
    pos = portfolio.position("sim", "BTCUSDT", "s1")
    assert pos.qty == D("0.0999")  # what the venue credited: 0.1 - 0.0001
    assert pos.avg_price == 50000 and pos.fees == 5  # 0.0001 x 50000, exact
    # closing it (the venue takes the sell's fee in the quote) leaves exactly zero,
    # and realized - fees is exactly the USDT the round trip moved
    portfolio.apply(fill(SELL, "0.0999", "51000", fee="5.0949", fee_currency="USDT"))
    pos = portfolio.position("sim", "BTCUSDT", "s1")
    assert (pos.qty, pos.avg_price) == (0, 0)
    cash = -D("0.1") * 50000 + D("0.0999") * 51000 - D("5.0949")
    assert pos.realized_pnl - pos.fees == cash


def test_a_sell_with_a_base_fee_moves_the_position_by_qty_plus_fee() -> None:
    portfolio = new_portfolio()
    portfolio.apply(fill(BUY, "1", "100"))
    portfolio.apply(fill(SELL, "0.5", "110", fee="0.001", fee_currency="BTC"))
    pos = portfolio.position("sim", "BTCUSDT", "s1")
    assert pos.qty == D("0.499")
    assert pos.realized_pnl == D("0.501") * 10 and pos.fees == D("0.11")


# -- issue 9, item 5: a currency with no price ------------------------------------------------


# Only BTC trades here: BNB and DOGE are no instrument's base (they used to count 1 each).
BTC_ONLY = {("sim", "BTCUSDT"): INSTRUMENTS[("sim", "BTCUSDT")]}


def test_a_third_currency_fee_stays_in_it_and_leaves_the_quote_pnl_alone() -> None:
    portfolio = Portfolio(lambda e: None, Clock(), BTC_ONLY)
    portfolio.apply(fill(BUY, "1", "100", fee="0.0075", fee_currency="BNB"))
    portfolio.apply(trade(100))
    pos = portfolio.position("sim", "BTCUSDT", "s1")
    assert pos.fees == 0  # it used to be 0.0075 USDT (BNB valued at 1)
    assert portfolio.pnl() == 0 and portfolio.daily_pnl() == 0  # no BNB price: unvalued
    by = portfolio.pnl_by_currency()
    assert by["USDT"].net == 0 and by["BNB"].fees == D("0.0075")
    assert portfolio.daily_pnl_by_currency() == {"BNB": D("-0.0075"), "USDT": 0}
    priced = new_portfolio()  # BNBUSDT among the instruments, and a price for it
    priced.apply(fill(BUY, "1", "100", fee="0.0075", fee_currency="BNB"))
    priced.apply(trade(100))
    assert priced.pnl() == 0
    priced.apply(trade(600, symbol="BNBUSDT"))
    assert priced.pnl() == D("-4.5") and priced.daily_pnl() == D("-4.5")


def test_a_currency_with_no_mark_adds_nothing_to_equity_and_is_listed(captured: Any) -> None:
    _buf, lines = captured
    balances = (balance("USDT", "10000"), balance("BNB", "1000"), balance("DOGE", "100000"))
    portfolio = Portfolio(lambda e: None, Clock(), BTC_ONLY)
    for event in balances:
        portfolio.apply(event)
    assert portfolio.equity() == 10000  # was 111,000: BNB and DOGE counted at 1 USDT
    assert [(u.currency, u.balance) for u in portfolio.unvalued()] == [
        ("BNB", 1000), ("DOGE", 100000)]
    assert "no instrument links them" in portfolio.unvalued()[0].reason
    portfolio.equity()
    warned = [line for line in lines() if line["event"] == "portfolio.unvalued"]
    assert sorted(line["currency"] for line in warned) == ["BNB", "DOGE"]  # once each
    priced = new_portfolio()  # with BNBUSDT and DOGEUSDT: valued once they have a price
    for event in balances:
        priced.apply(event)
    assert priced.equity() == 10000
    assert "DOGEUSDT has no price" in priced.unvalued()[1].reason
    priced.apply(trade(0.1, symbol="DOGEUSDT"))
    assert priced.equity() == 10000 + 10000
    assert [u.currency for u in priced.unvalued()] == ["BNB"]


# -- issue 9, item 6: PnL per currency, the account's in one currency ---------------------------


def test_daily_pnl_is_kept_per_currency_and_converted_for_the_account() -> None:
    portfolio = new_portfolio()
    portfolio.apply(trade(2, symbol="EURUSDT"))
    portfolio.apply(fill(BUY, "1", "1000", symbol="ETHEUR"))
    portfolio.apply(fill(SELL, "1", "900", symbol="ETHEUR"))  # -100 EUR
    portfolio.apply(fill(BUY, "1", "100"))
    portfolio.apply(fill(SELL, "1", "70"))  # -30 USDT
    assert portfolio.daily_pnl() == -100 * 2 - 30  # it used to be -130
    assert portfolio.daily_pnl_by_currency() == {"EUR": -100, "USDT": -30}
    assert portfolio.pnl_by_currency()["EUR"].realized == -100
    assert portfolio.pnl_summary().realized == -230


# -- invariants ------------------------------------------------------------------------------

fee_currencies = st.sampled_from(["base", "quote", "BNB"])
fills_st = st.lists(st.tuples(
    st.sampled_from(["BTCUSDT", "ETHEUR"]), st.sampled_from([BUY, SELL]),
    st.integers(1, 5000).map(lambda n: D(n) / 1000),  # qty
    st.integers(1, 10**7).map(lambda n: D(n) / 100),  # price
    st.integers(-5, 50).map(lambda n: D(n) / 10**5),  # fee (negative: a rebate)
    fee_currencies, st.sampled_from(["s1", "s2"])), min_size=1, max_size=30)
marks_st = st.tuples(*(st.integers(1, 10**8).map(lambda n: n / 1000) for _ in range(3)),
                     st.booleans())


def follow(apply: Callable[[Event], object], fills: list[tuple], balances: dict[str, D]
           ) -> None:
    """`apply` each fill and the balance changes a venue would report for it."""
    for symbol, side, qty, price, fee, where, sid in fills:
        base, quote = BASE[symbol], QUOTE[symbol]
        currency = {"base": base, "quote": quote}.get(where, where)
        signed = qty if side == BUY else -qty
        balances[quote] -= signed * price
        balances[base] += signed
        balances[currency] -= fee
        apply(fill(side, qty, price, symbol=symbol, fee=fee, fee_currency=currency,
                   strategy=sid))
        for c in (base, quote, currency):
            apply(balance(c, balances[c]))


INITIAL = {"USDT": D(10**6), "EUR": D(10**6), "BNB": D(100), "BTC": D(0), "ETH": D(0)}


@settings(max_examples=150, deadline=None)
@given(fills_st, marks_st)
def test_equity_is_initial_plus_pnl_per_currency_exactly(fills: list[tuple], marks: tuple
                                                          ) -> None:
    portfolio = new_portfolio()
    balances = dict(INITIAL)
    for c, amount in balances.items():
        portfolio.apply(balance(c, amount))
    follow(portfolio.apply, fills, balances)
    btc, eth, eur, bnb_priced = marks
    portfolio.apply(trade(btc))
    portfolio.apply(trade(eth, symbol="ETHEUR"))
    portfolio.apply(trade(eur, symbol="EURUSDT"))
    if bnb_priced:
        portfolio.apply(trade(600, symbol="BNBUSDT"))
    by = defaultdict(Pnl, portfolio.pnl_by_currency())
    mark = {s: portfolio.last_price("sim", s) for s in ("BTCUSDT", "ETHEUR", "EURUSDT")}
    # per currency: cash + base x mark == initial + realized - fees + unrealized
    assert balances["USDT"] + balances["BTC"] * mark["BTCUSDT"] == INITIAL["USDT"] + by["USDT"].net
    assert balances["EUR"] + balances["ETH"] * mark["ETHEUR"] == INITIAL["EUR"] + by["EUR"].net
    assert balances["BNB"] == INITIAL["BNB"] - by["BNB"].fees
    # the account (USDT): equity == initial + pnl, valued parts only, exactly
    rate_eur = mark["EURUSDT"]
    initial = INITIAL["USDT"] + INITIAL["EUR"] * rate_eur + (INITIAL["BNB"] * 600 if bnb_priced
                                                              else 0)
    assert portfolio.equity() == initial + portfolio.pnl()
    assert [u.currency for u in portfolio.unvalued()] == (
        [] if bnb_priced or not balances["BNB"] else ["BNB"])


@settings(max_examples=100, deadline=None)
@given(fills_st, st.integers(1, 10**7).map(lambda n: D(n) / 100))
def test_a_round_trip_to_flat_leaves_exactly_zero(fills: list[tuple], exit_price: D) -> None:
    portfolio = new_portfolio()
    balances = dict(INITIAL)
    follow(portfolio.apply, fills, balances)
    closing = []
    for p in portfolio.positions():
        side = SELL if p.qty > 0 else BUY
        closing.append((p.symbol, side, abs(p.qty), exit_price, D(0), "quote", p.strategy_id))
    follow(portfolio.apply, closing, balances)
    assert portfolio.positions() == []
    assert balances["BTC"] == balances["ETH"] == 0
    by = portfolio.pnl_by_currency()
    for currency in ("USDT", "EUR"):
        if currency in by:
            assert by[currency].unrealized == 0
            assert balances[currency] - INITIAL[currency] == by[currency].net  # to the last digit


def _sequenced(events: list[Event], gap_ns: int) -> list[Event]:
    out = []
    for i, e in enumerate(events, 1):
        ts = T0 - 2 * 3_600 * 10**9 + i * gap_ns  # from 23:00 the day before
        out.append(msgspec.structs.replace(e, ts_event=ts, ts_recv=ts, seq=i))
    return out


def _journal(fills: list[tuple]) -> list[Event]:
    """What a journal holds for `fills`: balances, the fills, a trade after each."""
    journal: list[Event] = [balance(c, amount) for c, amount in INITIAL.items()]
    balances = dict(INITIAL)
    for i, f in enumerate(fills):
        follow(journal.append, [f], balances)
        journal.append(trade(100 + i, symbol=f[0]))
    return journal


@settings(max_examples=80, deadline=None)
@given(fills_st, st.integers(0, 200), st.sampled_from([10**9, 600 * 10**9]))
def test_snapshot_then_fold_equals_folding_from_scratch(fills: list[tuple], cut: int,
                                                        gap_ns: int) -> None:
    events = _sequenced(_journal(fills), gap_ns)
    cut = min(cut, len(events))
    clock = Clock(events[-1].ts_event)
    whole = new_portfolio(clock)
    for e in events:
        whole.apply(e)
    first = new_portfolio(clock)
    for e in events[:cut]:
        first.apply(e)
    resumed = new_portfolio(clock)
    resumed.recover(events, first.snapshot())
    assert decode_state(resumed.snapshot().state) == decode_state(whole.snapshot().state)
    assert resumed.daily_pnl_by_currency() == whole.daily_pnl_by_currency()
    assert resumed.pnl_by_currency() == whole.pnl_by_currency()
    assert resumed.equity() == whole.equity()


def test_an_unreadable_snapshot_is_logged_and_everything_is_folded(captured: Any) -> None:
    _buf, lines = captured
    events = _sequenced(_journal([("BTCUSDT", BUY, D(1), D(100), D("0.001"), "BNB", "s1"),
                                  ("BTCUSDT", SELL, D("0.5"), D(110), D(0), "quote", "s1")]),
                        10**9)
    whole = new_portfolio()
    for e in events:
        whole.apply(e)
    older = State(version=1, upto_seq=3, day=None, positions=[], balances=[], marks=[],
                  baselines=[], fee_baselines=[])
    for state in (b"\x01\x02garbage", encode_state(older)):
        stale = Snapshot(ts_event=T0, ts_recv=T0, seq=3, component="portfolio", upto_seq=3,
                         state=state)
        recovered = new_portfolio()
        recovered.recover(events, stale)
        assert recovered.snapshot().state == whole.snapshot().state
    warnings = [line for line in lines() if line["event"] == "portfolio.snapshot_unreadable"]
    assert len(warnings) == 2 and "version 1" in warnings[1]["error"]


# -- the fill gate -----------------------------------------------------------------------------


def test_only_fills_the_gate_lets_through_are_applied_live_and_in_the_fold() -> None:
    counted: set[str] = set()
    bus = Bus()
    changes: list[Event] = []
    bus.subscribe(PositionChanged, changes.append)
    live = Portfolio(bus.publish, Clock(), INSTRUMENTS, account_currency="USDT",
                     fill_gate=lambda f: f.trade_id in counted)
    live.subscribe(bus)
    first, second = fill(BUY, "1", "100"), fill(BUY, "2", "100")
    counted.add(first.trade_id)
    bus.publish(first)
    bus.publish(second)  # the OMS did not apply it: neither does the portfolio
    assert live.position("sim", "BTCUSDT", "s1").qty == 1 and len(changes) == 1
    folded = Portfolio(lambda e: None, Clock(), INSTRUMENTS, account_currency="USDT",
                       fill_gate=lambda f: f.trade_id in counted)
    folded.recover([first, second])
    assert folded.position("sim", "BTCUSDT", "s1").qty == 1
    assert new_portfolio().apply(second) is not None  # no gate: every fill


def test_marks_are_exact_decimals() -> None:
    portfolio = new_portfolio()
    portfolio.apply(trade(0.1, symbol="EURUSDT"))
    assert portfolio.to_account(D(3), "EUR", "sim") == D("0.3") == 3 * to_decimal(0.1)
