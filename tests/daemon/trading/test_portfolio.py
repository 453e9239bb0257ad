"""The portfolio: exact average-cost accounting against an independent reference,
marks, balances and equity, daily PnL, positions files, snapshots and recovery."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal as D
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.trading.api import BUY, SELL, Position
from daemon.trading.portfolio import (
    ACCOUNT,
    DAY_NS,
    Pnl,
    Portfolio,
    load_positions,
)
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument, to_decimal
from events.market import Bar, Quote, Trade
from events.orders import Fill
from events.state import BalanceChanged, PositionChanged, Snapshot

T0 = 19_700 * DAY_NS + 3_600 * 10**9  # 01:00 UTC on some day

INSTRUMENTS = {
    ("sim", "BTCUSDT"): Instrument(venue="sim", symbol="BTCUSDT", base="BTC", quote="USDT",
                                   tick_size=D("0.01"), step_size=D("0.001")),
    ("sim", "ETHUSDT"): Instrument(venue="sim", symbol="ETHUSDT", base="ETH", quote="USDT",
                                   tick_size=D("0.01"), step_size=D("0.001")),
    ("sim", "ETHBTC"): Instrument(venue="sim", symbol="ETHBTC", base="ETH", quote="BTC",
                                  tick_size=D("0.00001"), step_size=D("0.001")),
}


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def new_portfolio(clock: Clock | None = None) -> tuple[Portfolio, list[Event]]:
    out: list[Event] = []
    return Portfolio(out.append, clock or Clock(), INSTRUMENTS, account_currency="USDT"), out


_trade_ids = iter(range(1, 10**9))


def fill(side: str, qty: str | D, price: str | D, *, strategy: str = "s1",
         symbol: str = "BTCUSDT", fee: str | D = "0", fee_currency: str = "USDT",
         ts: int = T0) -> Fill:
    return Fill(ts_event=ts, ts_recv=ts, venue="sim", symbol=symbol, strategy_id=strategy,
                client_order_id=f"{strategy}-1", trade_id=str(next(_trade_ids)), side=side,
                qty=D(qty), price=D(price), fee=D(fee), fee_currency=fee_currency,
                liquidity="TAKER")


def trade(price: float, symbol: str = "BTCUSDT", ts: int = T0) -> Trade:
    return Trade(ts_event=ts, ts_recv=ts, venue="sim", symbol=symbol, price=price, size=1.0)


def balance(currency: str, total: D | str, free: D | str | None = None, ts: int = T0
            ) -> BalanceChanged:
    return BalanceChanged(ts_event=ts, ts_recv=ts, venue="sim", currency=currency,
                          total=D(total), free=D(total if free is None else free))


# -- the reference: textbook average cost in exact rationals -------------------------


@dataclass
class RefPosition:
    """FIFO-free average cost, written independently of the portfolio's cost basis."""

    qty: Fraction = Fraction(0)
    avg: Fraction = Fraction(0)
    realized: Fraction = Fraction(0)
    fees: Fraction = Fraction(0)
    cash: Fraction = Fraction(0)  # -sum(signed qty x price): the trades' cash flow

    def fill(self, side: str, qty: D, price: D, fee: D) -> None:
        q, p = Fraction(qty) * (1 if side == BUY else -1), Fraction(price)
        self.fees += Fraction(fee)
        self.cash -= q * p
        if self.qty == 0 or (self.qty > 0) == (q > 0):
            self.avg = (abs(self.qty) * self.avg + abs(q) * p) / (abs(self.qty) + abs(q))
            self.qty += q
            return
        closed = min(abs(q), abs(self.qty))
        long = self.qty > 0
        self.realized += closed * (p - self.avg) * (1 if long else -1)
        self.qty += closed if q > 0 else -closed
        rest = abs(q) - closed
        if self.qty == 0:
            self.avg = Fraction(0)
            if rest:
                self.qty, self.avg = (rest if q > 0 else -rest), p


# A partial close rounds the released cost to 1e-20 at most once (module doc).
QUANTUM = Fraction(1, 10**20)

qtys = st.one_of(st.sampled_from([D("1"), D("2"), D("0.5"), D("3")]),
                 st.integers(1, 5000).map(lambda n: D(n) * D("0.001")))
prices = st.integers(1, 10_000_000).map(lambda n: D(n) / 100)
fees = st.integers(-50, 500).map(lambda n: D(n) / 10_000)  # negative: a maker rebate
fills_st = st.lists(st.tuples(st.sampled_from(["BTCUSDT", "ETHUSDT"]),
                              st.sampled_from(["s1", "s2"]), st.sampled_from([BUY, SELL]),
                              qtys, prices, fees), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(fills_st)
def test_average_cost_matches_the_reference(fills: list[tuple[str, str, str, D, D, D]]) -> None:
    bus = Bus()
    out: list[Event] = []
    bus.subscribe(PositionChanged, out.append)
    portfolio = Portfolio(bus.publish, Clock(), INSTRUMENTS, account_currency="USDT")
    portfolio.subscribe(bus)
    refs: dict[tuple[str, str], RefPosition] = {}
    for n, (symbol, sid, side, qty, price, fee) in enumerate(fills, 1):
        ref = refs.setdefault((symbol, sid), RefPosition())
        ref.fill(side, qty, price, fee)
        bus.publish(fill(side, qty, price, strategy=sid, symbol=symbol, fee=fee))
        pos = portfolio.position("sim", symbol, sid)
        assert out[-1] == PositionChanged(
            ts_event=T0, ts_recv=T0, seq=out[-1].seq, venue="sim", symbol=symbol,
            strategy_id=sid, qty=pos.qty, avg_price=pos.avg_price,
            realized_pnl=pos.realized_pnl, fees=pos.fees)
        assert len(out) == n  # one PositionChanged per fill
        assert pos.qty == ref.qty  # exact
        assert pos.fees == ref.fees  # exact
        assert abs(Fraction(pos.realized_pnl) - ref.realized) <= n * QUANTUM
        assert abs(Fraction(pos.avg_price) - ref.avg) <= Fraction(1, 10**14)
        if ref.qty == 0:
            # flat: exactly zero, and exactly the trades' cash flow
            assert pos.qty == 0 and pos.avg_price == 0
            assert Fraction(pos.realized_pnl) == ref.realized == ref.cash
    # the account view sums the strategies
    for symbol in ("BTCUSDT", "ETHUSDT"):
        account = portfolio.position("sim", symbol)
        assert account.strategy_id == ACCOUNT
        assert account.qty == sum((r.qty for (s, _), r in refs.items() if s == symbol), 0)


@settings(max_examples=150, deadline=None)
@given(fills_st, prices)
def test_round_trip_to_flat_is_exactly_zero(fills: list[tuple[str, str, str, D, D, D]],
                                            exit_price: D) -> None:
    portfolio, _ = new_portfolio()
    refs: dict[tuple[str, str], RefPosition] = {}
    for symbol, sid, side, qty, price, fee in fills:
        refs.setdefault((symbol, sid), RefPosition()).fill(side, qty, price, fee)
        portfolio.apply(fill(side, qty, price, strategy=sid, symbol=symbol, fee=fee))
    for (symbol, sid), ref in refs.items():
        if ref.qty:
            side = SELL if ref.qty > 0 else BUY
            qty = portfolio.position("sim", symbol, sid).qty.copy_abs()
            ref.fill(side, qty, exit_price, D(0))
            portfolio.apply(fill(side, qty, exit_price, strategy=sid, symbol=symbol))
        pos = portfolio.position("sim", symbol, sid)
        assert pos.qty == 0 and pos.avg_price == 0
        assert Fraction(pos.realized_pnl) == ref.cash  # every cent of the cash flow
        assert Fraction(pos.fees) == ref.fees
        assert portfolio.unrealized_pnl("sim", symbol, sid) == 0
    assert portfolio.positions() == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), qtys, prices, fees), max_size=30),
       st.floats(min_value=0.01, max_value=1e6, allow_nan=False))
def test_equity_identity(fills: list[tuple[str, D, D, D]], mark: float) -> None:
    """cash + base x mark == initial + realized - fees + unrealized, exactly, when
    the venue's balances follow the fills."""
    portfolio, _ = new_portfolio()
    initial = cash = D("1000000")
    base = D(0)
    portfolio.apply(balance("USDT", cash))
    for side, qty, price, fee in fills:
        signed = qty if side == BUY else -qty
        cash -= signed * price + fee
        base += signed
        portfolio.apply(fill(side, qty, price, fee=fee))
        portfolio.apply(balance("USDT", cash))
        portfolio.apply(balance("BTC", base))
    portfolio.apply(trade(mark))
    pos = portfolio.position("sim", "BTCUSDT", "s1")
    unrealized = portfolio.unrealized_pnl("sim", "BTCUSDT", "s1")
    # qty x (mark - avg), avg being the shown (28-digit) average
    assert abs(unrealized - pos.qty * (to_decimal(mark) - pos.avg_price)) <= D("1e-12")
    assert portfolio.equity() == cash + base * to_decimal(mark)
    assert portfolio.equity() == initial + pos.realized_pnl - pos.fees + unrealized
    assert portfolio.equity("sim") == initial + portfolio.pnl("s1")


def test_worked_example_with_flip() -> None:
    portfolio, _ = new_portfolio()
    apply = portfolio.apply
    assert apply(fill(BUY, "1", "100")) == Position(
        venue="sim", symbol="BTCUSDT", strategy_id="s1", qty=D(1), avg_price=D(100))
    p = apply(fill(BUY, "2", "103"))
    assert p is not None and p.qty == 3 and p.avg_price == 102
    p = apply(fill(SELL, "1", "110", fee="0.5"))  # partial close: avg unchanged
    assert p is not None and (p.qty, p.avg_price, p.realized_pnl, p.fees) == (2, 102, 8, D("0.5"))
    p = apply(fill(SELL, "3", "90"))  # through zero: close 2 at 102, open 1 short at 90
    assert p is not None and (p.qty, p.avg_price, p.realized_pnl) == (-1, 90, -16)
    apply(trade(85.5))
    assert portfolio.unrealized_pnl("sim", "BTCUSDT") == D("4.5")
    assert portfolio.pnl("s1") == D(-16) - D("0.5") + D("4.5")
    p = apply(fill(BUY, "1", "95"))
    assert p is not None and (p.qty, p.avg_price, p.realized_pnl) == (0, 0, -21)


def test_fees_in_base_and_third_currencies() -> None:
    """A base fee comes out of the position and counts at the fill price; a fee in
    a third currency stays in it (it used to be valued through a made-up rate)."""
    portfolio, _ = new_portfolio()
    portfolio.apply(fill(BUY, "1", "100", fee="0.001", fee_currency="BTC"))
    pos = portfolio.position("sim", "BTCUSDT", "s1")
    assert (pos.qty, pos.avg_price, pos.fees) == (D("0.999"), 100, D("0.1"))
    portfolio.apply(trade(2000.0, symbol="ETHUSDT"))
    portfolio.apply(fill(BUY, "1", "100", fee="0.0001", fee_currency="ETH"))
    pos = portfolio.position("sim", "BTCUSDT", "s1")
    assert (pos.qty, pos.fees) == (D("1.999"), D("0.1"))
    assert portfolio.pnl_by_currency()["ETH"].fees == D("0.0001")


def test_marks_from_trades_quotes_and_bars() -> None:
    portfolio, _ = new_portfolio()
    assert portfolio.last_price("sim", "BTCUSDT") is None
    portfolio.apply(trade(0.1))
    assert portfolio.last_price("sim", "BTCUSDT") == D("0.1")  # exact, via repr
    portfolio.apply(Quote(ts_event=T0, ts_recv=T0, venue="sim", symbol="BTCUSDT",
                          bid=100.1, ask=100.2, bid_size=1, ask_size=1))
    assert portfolio.last_price("sim", "BTCUSDT") == D("100.15")
    portfolio.apply(Quote(ts_event=T0, ts_recv=T0, venue="sim", symbol="BTCUSDT",
                          bid=0.0, ask=100.2, bid_size=0, ask_size=1))  # one-sided: no mid
    assert portfolio.last_price("sim", "BTCUSDT") == D("100.15")
    portfolio.apply(Bar(ts_event=T0, ts_recv=T0, venue="sim", symbol="BTCUSDT", interval="1m",
                        ts_open=T0 - 60 * 10**9, open=1, high=2, low=1, close=101.25,
                        volume=3))
    assert portfolio.last_price("sim", "BTCUSDT") == D("101.25")


def test_equity_values_balances_at_marks() -> None:
    portfolio, _ = new_portfolio()
    for event in (balance("USDT", "1000"), balance("BTC", "2", free="1.5"), balance("ETH", "10"),
                  balance("USD", "5")):
        portfolio.apply(event)
    assert portfolio.balance("sim", "BTC") == 2 and portfolio.free_balance("sim", "BTC") == D("1.5")
    # no marks yet: BTC and ETH have no value; USD is linked to USDT by nothing (it
    # used to count as 1 USDT): all three are unvalued, not 0 and not 1
    assert portfolio.equity() == 1000
    assert [(u.currency, u.balance) for u in portfolio.unvalued()] == [
        ("BTC", 2), ("ETH", 10), ("USD", 5)]
    portfolio.apply(trade(30000.0))
    assert portfolio.equity() == 1000 + 60000
    # ETH is priced through ETHBTC and BTCUSDT when ETHUSDT has no mark
    portfolio.apply(trade(0.05, symbol="ETHBTC"))
    assert portfolio.equity("sim") == 1000 + 60000 + 10 * D("0.05") * 30000
    portfolio.apply(trade(1400.0, symbol="ETHUSDT"))  # a direct pair wins over a cross
    assert portfolio.equity() == 1000 + 60000 + 14000
    assert portfolio.equity("elsewhere") == 0
    assert [u.currency for u in portfolio.unvalued()] == ["USD"]


def test_daily_pnl_resets_at_the_utc_day() -> None:
    clock = Clock()
    portfolio, _ = new_portfolio(clock)
    portfolio.apply(fill(BUY, "2", "100", fee="1"))
    portfolio.apply(trade(110.0))
    assert portfolio.daily_pnl() == 20 - 1
    midnight = (T0 // DAY_NS + 1) * DAY_NS
    portfolio.apply(trade(90.0, ts=midnight + 1))  # first event of the new day
    clock.now = midnight + 1
    # today's PnL is the change since midnight: marked from 110 to 90
    assert portfolio.daily_pnl() == -40
    portfolio.apply(fill(SELL, "2", "95", fee="1", strategy="s1", ts=midnight + 2))
    assert portfolio.daily_pnl("s1") == -30 - 1
    portfolio.apply(fill(BUY, "1", "95", strategy="s2", ts=midnight + 3))
    portfolio.apply(trade(96.0, ts=midnight + 4))
    assert portfolio.daily_pnl("s2") == 1
    assert portfolio.daily_pnl() == -30
    # a query on the next day rolls too, by the run's clock
    clock.now = midnight + DAY_NS
    assert portfolio.daily_pnl() == 0


def test_live_bus_and_journal_fold_agree() -> None:
    """The same fold rebuilds the state from the journal (no second code path)."""
    clock = Clock()
    bus = Bus()
    journal: list[Event] = []
    bus.subscribe_all(journal.append)
    live = Portfolio(bus.publish, clock, INSTRUMENTS, account_currency="USDT")
    live.subscribe(bus)
    bus.publish(balance("USDT", "1000"))
    bus.publish(trade(100.0))
    bus.publish(fill(BUY, "1", "100"))
    bus.publish(fill(SELL, "0.3", "101", fee="0.01"))
    bus.publish(trade(99.0))
    assert [type(e) for e in journal].count(PositionChanged) == 2
    folded = Portfolio(lambda e: None, clock, INSTRUMENTS, account_currency="USDT")
    folded.recover(journal)
    assert folded.snapshot().state == live.snapshot().state


# -- snapshots and recovery ------------------------------------------------------------


def _events_st() -> st.SearchStrategy[list[Event]]:
    fill_ev = st.tuples(st.sampled_from([BUY, SELL]), qtys, prices, fees,
                        st.sampled_from(["s1", "s2"])).map(
        lambda t: fill(t[0], t[1], t[2], fee=t[3], strategy=t[4]))
    trade_ev = st.floats(min_value=0.01, max_value=1e5).map(trade)
    bal_ev = st.integers(0, 10**9).map(lambda n: balance("USDT", D(n) / 100))
    return st.lists(st.one_of(fill_ev, trade_ev, bal_ev), max_size=40)


def _sequenced(events: list[Event], gap_ns: int) -> list[Event]:
    """Stamp seq and spread ts over (maybe) a UTC midnight, as a journal would."""
    out = []
    for i, e in enumerate(events, 1):
        ts = T0 - 2 * 3_600 * 10**9 + i * gap_ns  # from 23:00 the day before
        fields = {f: getattr(e, f) for f in e.__struct_fields__}
        out.append(type(e)(**{**fields, "ts_event": ts, "ts_recv": ts, "seq": i}))
    return out


@settings(max_examples=100, deadline=None)
@given(_events_st(), st.integers(0, 40), st.sampled_from([10**9, 200 * 10**9]))
def test_snapshot_restore_then_fold_equals_folding(events: list[Event], cut: int,
                                                   gap_ns: int) -> None:
    events = _sequenced(events, gap_ns)
    cut = min(cut, len(events))
    clock = Clock(events[-1].ts_event if events else T0)
    whole = Portfolio(lambda e: None, clock, INSTRUMENTS, account_currency="USDT")
    for e in events:
        whole.apply(e)
    first = Portfolio(lambda e: None, clock, INSTRUMENTS, account_currency="USDT")
    for e in events[:cut]:
        first.apply(e)
    snapshot = first.snapshot()
    assert snapshot.component == "portfolio"
    assert snapshot.upto_seq == (events[cut - 1].seq if cut else 0)
    resumed = Portfolio(lambda e: None, clock, INSTRUMENTS, account_currency="USDT")
    resumed.recover(events, snapshot)  # skips what the snapshot already holds
    assert resumed.snapshot().state == whole.snapshot().state
    assert resumed.daily_pnl() == whole.daily_pnl()
    assert resumed.equity() == whole.equity()
    for sid in ("s1", "s2"):
        assert resumed.position("sim", "BTCUSDT", sid) == whole.position("sim", "BTCUSDT", sid)


@settings(max_examples=100, deadline=None)
@given(_events_st(), st.integers(0, 40))
def test_has_any_position_follows_every_event_and_restore(events: list[Event],
                                                          cut: int) -> None:
    """has_any_position is kept per state_version: asked after every event (fills
    that open, close and flip, marks, balances) and after a restore, it is what
    the positions say."""
    events = _sequenced(events, 10**9)
    clock = Clock(events[-1].ts_event if events else T0)
    portfolio = Portfolio(lambda e: None, clock, INSTRUMENTS, account_currency="USDT")
    assert not portfolio.has_any_position()
    snapshot = portfolio.snapshot()
    for i, e in enumerate(events):
        portfolio.apply(e)
        assert portfolio.has_any_position() == any(
            p.qty for by_sid in portfolio._positions.values() for p in by_sid.values())
        if i == cut:
            snapshot = portfolio.snapshot()
    portfolio.restore(snapshot)
    assert portfolio.has_any_position() == any(
        p.qty for by_sid in portfolio._positions.values() for p in by_sid.values())
    portfolio.restore(Portfolio(lambda e: None, clock, INSTRUMENTS,
                                account_currency="USDT").snapshot())
    assert not portfolio.has_any_position()


def test_restore_rejects_another_components_snapshot() -> None:
    portfolio, _ = new_portfolio()
    with pytest.raises(ValueError, match="not a portfolio snapshot"):
        portfolio.restore(Snapshot(ts_event=0, ts_recv=0, component="oms", upto_seq=0,
                                   state=b""))


def test_seed_publishes_positions_and_a_snapshot() -> None:
    portfolio, out = new_portfolio()
    seed = [Position(venue="sim", symbol="BTCUSDT", strategy_id="", qty=D("1.5"),
                     avg_price=D("20000")),
            Position(venue="sim", symbol="ETHUSDT", strategy_id="s1", qty=D("-2"),
                     avg_price=D("1500"))]
    snapshot = portfolio.seed(None, seed)
    assert [type(e) for e in out] == [PositionChanged, PositionChanged, Snapshot]
    assert out[-1] is snapshot
    assert portfolio.position("sim", "BTCUSDT").qty == D("1.5")
    portfolio.apply(trade(1400.0, symbol="ETHUSDT"))
    assert portfolio.unrealized_pnl("sim", "ETHUSDT", "s1") == 200
    assert portfolio.daily_pnl() == 0  # the seed is not today's PnL
    recovered, _ = new_portfolio()
    recovered.recover([trade(1400.0, symbol="ETHUSDT")], snapshot)
    assert recovered.position("sim", "ETHUSDT", "s1") == portfolio.position("sim", "ETHUSDT", "s1")


def test_seed_attributes_positions_to_a_strategy() -> None:
    portfolio, out = new_portfolio()
    portfolio.seed("sma", [Position(venue="sim", symbol="BTCUSDT", strategy_id="",
                                    qty=D("0.5"), avg_price=D("100"))])
    assert portfolio.position("sim", "BTCUSDT", "sma").qty == D("0.5")
    assert portfolio.position("sim", "BTCUSDT", "").qty == 0
    assert isinstance(out[0], PositionChanged) and out[0].strategy_id == "sma"


def test_run_summaries() -> None:
    portfolio, _ = new_portfolio()
    portfolio.apply(fill(BUY, "2", "100", fee="0.2"))
    portfolio.apply(fill(SELL, "1", "110", fee="0.1"))
    portfolio.apply(fill(SELL, "1", "50", strategy="mm", symbol="ETHUSDT"))
    portfolio.apply(trade(105.0))
    portfolio.apply(trade(40.0, symbol="ETHUSDT"))
    assert portfolio.equity_by_strategy() == {"mm": D(10), "s1": D(10) - D("0.3") + D(5)}
    assert portfolio.final_report(D(1000)) == {
        "positions": {"BTCUSDT": D(1), "ETHUSDT": D(-1)}, "realized": D(10),
        "unrealized": D(15), "fees": D("0.3"), "funding": D(0), "initial_equity": D(1000),
        "marks": {"BTCUSDT": D(105), "ETHUSDT": D(40)}, "currency": "USDT",
        "pnl_by_currency": {"USDT": Pnl(realized=D(10), unrealized=D(15), fees=D("0.3"))},
        "unvalued": []}


# -- positions files -------------------------------------------------------------------


def test_load_csv(tmp_path: Path) -> None:
    path = tmp_path / "positions.csv"
    path.write_text("Symbol,Exchange,Quantity,AvgEntryPrice,UnrealizedPnl,StrategyId\n"
                    "BTCUSDT,sim,0.1,30000.10,12,sma\n"
                    "\n"
                    "ETHUSDT, sim ,-2,1500,0,\n")
    assert load_positions(path) == [
        Position(venue="sim", symbol="BTCUSDT", strategy_id="sma", qty=D("0.1"),
                 avg_price=D("30000.10")),
        Position(venue="sim", symbol="ETHUSDT", strategy_id="", qty=D(-2),
                 avg_price=D(1500)),
    ]


def test_load_json(tmp_path: Path) -> None:
    path = tmp_path / "positions.json"
    path.write_text(json.dumps([
        {"symbol": "BTCUSDT", "venue": "sim", "qty": 0.1, "avg_price": "30000.1",
         "strategy_id": "sma", "note": "ignored"},
        {"symbol": "ETHUSDT", "venue": "sim", "qty": -2, "avg_price": 1500},
    ], indent=2))
    positions = load_positions(path)
    assert positions[0].qty == D("0.1") and str(positions[0].qty) == "0.1"  # exact, not float
    assert positions[0].strategy_id == "sma" and positions[1].strategy_id == ""
    assert positions[1] == Position(venue="sim", symbol="ETHUSDT", strategy_id="",
                                    qty=D(-2), avg_price=D(1500))


BAD_FILES = [
    ("p.csv", "", "p.csv:1:1: empty positions file"),
    ("p.csv", "Symbol,Exchange,Quantity\nBTC,sim,1\n", "p.csv:1:4: missing column 'AvgEntryPrice'"),
    ("p.csv", "Symbol,Exchange,Quantity,AvgEntryPrice\nBTCUSDT,sim,1,100\nBTCUSDT,sim,abc,1\n",
     "p.csv:3:3: Quantity: expected a decimal number, got 'abc'"),
    ("p.csv", "Symbol,Exchange,Quantity,AvgEntryPrice\nBTCUSDT,sim,1\n",
     "p.csv:2:4: AvgEntryPrice: missing value"),
    ("p.csv", "Symbol,Exchange,Quantity,AvgEntryPrice\nBTCUSDT,sim,1,-5\n",
     "p.csv:2:4: AvgEntryPrice: must be >= 0"),
    ("p.csv", "Symbol,Exchange,Quantity,AvgEntryPrice\nBTCUSDT,sim,1,0\n",
     "p.csv:2:4: avg_price: must be > 0 for a non-zero quantity"),
    ("p.csv", "Symbol,Exchange,Quantity,AvgEntryPrice\n,sim,1,5\n",
     "p.csv:2:1: symbol: expected a non-empty name"),
    ("p.csv", "Symbol,Exchange,Quantity,AvgEntryPrice\nX,sim,1,5\nX,sim,2,5\n",
     "p.csv:3:1: duplicate position sim:X"),
    ("p.csv", "Symbol,Exchange,Quantity,AvgEntryPrice\nX,sim,NaN,5\n",
     "p.csv:2:3: Quantity: expected a finite number"),
    ("p.json", '[\n  {"symbol": "X", "venue": "sim",\n   "qty": 1, "avg_price": 5,}\n]',
     "p.json:3:29: invalid JSON: Expecting property name"),
    ("p.json", '{"symbol": "X"}', "p.json:1:1: expected a JSON list of positions"),
    ("p.json", '[{"symbol": "X", "venue": "sim", "qty": 1, "avg_price": 5},\n 7]',
     "p.json:2:2: $[1]: expected an object, got int"),
    ("p.json", '[\n {"symbol": "X", "venue": "sim", "avg_price": 5}]',
     "p.json:2:2: $[0]: missing key 'qty'"),
    ("p.json", '[\n {"symbol": "X", "venue": "sim",\n  "qty": true, "avg_price": 5}]',
     "p.json:3:3: $[0]: qty: expected a decimal number, got True"),
    ("p.json", '[{"symbol": "X", "venue": "sim", "qty": 1, "avg_price": 5, "strategy_id": 3}]',
     "p.json:1:60: $[0]: strategy_id: expected a string, got 3"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_FILES,
                         ids=[m.split(": ", 1)[1][:30] for _, _, m in BAD_FILES])
def test_bad_positions_file(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_positions(path)
    assert str(info.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(info.value)


def test_unreadable_positions_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing\.csv:1:1: cannot read positions file"):
        load_positions(tmp_path / "missing.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"Symbol,Exchange,Quantity,AvgEntryPrice\nBTC\xe9,sim,1,5\n")
    with pytest.raises(ValueError, match=r"latin1\.csv:2:4: not UTF-8 text"):
        load_positions(path)


@settings(max_examples=150, deadline=None)
@given(_events_st(), st.integers(0, 40))
def test_a_valuation_changes_only_with_the_portfolio_versions(events: list[Event],
                                                              restore_at: int) -> None:
    """(mark_version, state_version) is the replay's key for repeating an equity
    sample: whenever equity or a strategy's PnL differs from the last time they
    were asked, the key differs too (fills, balances, marks, a restore)."""
    events = _sequenced(events, 10**9)
    clock = Clock(events[-1].ts_event if events else T0)
    portfolio = Portfolio(lambda e: None, clock, INSTRUMENTS, account_currency="USDT")
    seen = {}
    for i, e in enumerate(events):
        if i == restore_at:  # a restore to an earlier state must change the key too
            other = Portfolio(lambda e: None, clock, INSTRUMENTS, account_currency="USDT")
            portfolio.restore(other.snapshot())
        portfolio.apply(e)
        key = (portfolio.mark_version, portfolio.state_version)
        figures = (portfolio.equity(), portfolio.equity_by_strategy())
        assert seen.setdefault(key, figures) == figures, f"event {i}: {e}"
