"""The risk engine's accept path (daemon.trading.risk_fast) against the Decimal reference.

The engine with its accept path answers every order exactly as the reference does
(same check, same reason) over random instruments, limits, marks, positions,
balances and orders, on and off the grid, before and after the state it caches
changes; the accept path proves every pass it can take; and an engine recovered
from the journal decides as the live one did.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.config import RiskConfig, VenueConfig
from daemon.trading.api import BUY, LIMIT, MARKET, SELL, STOP_MARKET, OrderRequest
from daemon.trading.portfolio import DAY_NS, Portfolio
from daemon.trading.risk import RiskEngine
from daemon.trading.risk_checks import CHECKS
from daemon.trading.risk_fast import FastPlan, UnitCache, fast_accepts
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.market import Trade
from events.orders import Fill
from events.state import BalanceChanged
from events.system import ACTIVE, REDUCING, TradingState
from tests.daemon.trading.test_risk import T0, OpenOrder
from tests.daemon.trading.test_risk_grid import KEY, context, order_of, scenarios
from tests.examples import examples

D = Decimal
FEE_BPS = 10.0
FEE = 1 + D(FEE_BPS) / 10_000
NUDGES = (D(0), D(0), D("-0.00000001"), D("0.00000001"), D("-1"), D(10**15))


@st.composite
def accept_scenarios(draw: Any) -> dict[str, Any]:
    """`test_risk_grid.scenarios`, mostly without open orders (the accept path's
    case), with balances and position notional limits at or near what the order
    needs, and shorting allowed or not."""
    s = draw(scenarios())
    if draw(st.integers(0, 2)):
        s["open_orders"] = []
    else:  # resting quotes, partly filled, stops, some with a remainder off the lot grid
        s["open_orders"] = [draw(_reshaped(o, s["step"])) for o in s["open_orders"]]
    shape = draw(st.integers(0, 5))
    if shape == 0:  # every position flat
        s["position"] = {"s1": D(0), "s2": D(0)}
    elif shape == 1:  # the account flat, its strategies not
        s["position"]["s2"] = -s["position"]["s1"]
    order_type = s["order_type"]
    valued = s["mark"] if order_type == MARKET else \
        s["trigger"] if order_type == STOP_MARKET else s["price"]
    need = s["qty"] * valued * FEE
    s["balances"] = {
        "USDT": max(D(0), need + draw(st.sampled_from(NUDGES))),
        "X": max(D(0), s["qty"] + draw(st.sampled_from(NUDGES))),
        "BTC": max(D(0), need + draw(st.sampled_from(NUDGES)))}
    s["free_short"] = draw(st.sampled_from((D(0), D(0), D("0.00000001"))))
    s["allow_short"] = draw(st.booleans())
    if draw(st.integers(0, 2)) == 0:
        # the account's or a strategy's projected position, valued, at the limit
        signed = s["qty"] if s["side"] == BUY else -s["qty"]
        held = abs(draw(st.sampled_from((sum(s["position"].values()), s["position"]["s1"],
                                         s["position"]["s2"]))) + signed)
        edge = held * valued + draw(st.sampled_from(NUDGES[:4]))
        s["risk"]["max_position_notional"] = float(max(D("0.01"), edge))
    return s


@st.composite
def _reshaped(draw: Any, o: OpenOrder, step: Decimal) -> OpenOrder:
    """An open order of `scenarios` as a market maker's book holds them."""
    lots = int(o.qty / step)
    filled = draw(st.integers(0, lots - 1)) * step if lots > 1 else D(0)
    if draw(st.integers(0, 5)) == 0:
        filled += step / 2  # a remainder off the grid: the reference decides
    kind = draw(st.sampled_from((LIMIT, LIMIT, LIMIT, STOP_MARKET, MARKET)))
    return OpenOrder(o.client_order_id, o.strategy_id, o.side, o.qty, symbol=o.symbol,
                     filled_qty=filled, order_type=kind,
                     price=o.price if kind == LIMIT else None,
                     trigger_price=o.price if kind == STOP_MARKET else None)


def engines(s: dict[str, Any]) -> tuple[RiskEngine, RiskEngine, Bus]:
    """An engine with the accept path and one on the reference, one portfolio."""
    inst = Instrument(venue="sim", symbol="XUSDT", base="X", quote=s["quote"],
                      tick_size=s["tick"], step_size=s["step"], **s["inst"])
    instruments = {KEY: inst}
    bus = Bus()
    portfolio = Portfolio(bus.publish, lambda: T0, instruments, account_currency="USDT")
    portfolio.subscribe(bus)
    for currency, total in s["balances"].items():
        bus.publish(BalanceChanged(ts_event=T0, ts_recv=T0, venue="sim", currency=currency,
                                   total=total, free=max(D(0), total - s["free_short"])))
    for n, (sid, qty) in enumerate(s["position"].items()):
        if qty:
            bus.publish(Fill(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT",
                             strategy_id=sid, client_order_id=f"{sid}-0", trade_id=f"t{n}",
                             side=BUY if qty > 0 else SELL, qty=abs(qty), price=s["entry"],
                             fee=s["fee"], fee_currency=s["fee_currency"], liquidity="TAKER"))
    bus.publish(Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT",
                      price=float(s["mark"]), size=1.0))
    out = []
    for integer in (True, False):
        engine = RiskEngine(RiskConfig(**s["risk"]), {"s1": s["strategy"], "s2": None},
                            instruments, portfolio, lambda: T0, bus.publish,
                            venues=[VenueConfig(name="sim", taker_fee_bps=FEE_BPS,
                                                allow_short=s["allow_short"])])
        engine.integer_path = integer
        out.append(engine)
    return out[0], out[1], bus


def same_answers(fast: RiskEngine, reference: RiskEngine, order: OrderRequest,
                 open_orders: list[Any]) -> None:
    for sid in ("s1", "s2"):
        assert fast.check(sid, order, open_orders) == reference.check(sid, order, open_orders)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=accept_scenarios(), moved=st.integers(0, 3))
def test_the_accept_path_answers_exactly_as_the_decimal_reference(s: dict[str, Any],
                                                                 moved: int) -> None:
    """Also after what it caches moves: a fill (positions, the day's PnL), a balance,
    the mark (its ticks, the day's PnL of an open position)."""
    fast, reference, bus = engines(s)
    order = order_of(s)
    same_answers(fast, reference, order, s["open_orders"])
    same_answers(fast, reference, order, s["open_orders"])  # the plan is built now
    if moved == 1:
        bus.publish(Fill(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT",
                         strategy_id="s1", client_order_id="s1-9", trade_id="t9",
                         side=s["side"], qty=s["qty"], price=s["mark"], fee=D("0.5"),
                         fee_currency="USDT", liquidity="TAKER"))
    elif moved == 2:
        bus.publish(BalanceChanged(ts_event=T0, ts_recv=T0, venue="sim", currency="USDT",
                                   total=D(1), free=D(1)))
        bus.publish(BalanceChanged(ts_event=T0, ts_recv=T0, venue="sim", currency="X",
                                   total=D(0), free=D(0)))
    elif moved == 3:
        bus.publish(Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT",
                          price=float(s["mark"]) * 0.7, size=1.0))
    same_answers(fast, reference, order, s["open_orders"])


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=accept_scenarios())
def test_the_accept_path_proves_what_the_reference_passes_in_its_case(
        s: dict[str, Any]) -> None:
    """Every order the reference passes, in the case the path takes (spot, on the
    grid, in the account currency, open orders' remainders on the grid, no
    concentration limit), is
    proved: a pass it cannot prove would be a slow path; one it proves wrongly
    (checked here against each reference check) a loosened limit."""
    fast, _, _ = engines(s)
    order = order_of(s)
    portfolio = fast._portfolio
    assert isinstance(portfolio, Portfolio)
    held = [portfolio.position_qty("sim", "XUSDT", sid) for sid in ("s1", "s2")]
    mark = portfolio.last_price("sim", "XUSDT")  # (the float a trade carries, exactly)
    in_case = (all(v is None or v % s["tick"] == 0 for v in (mark, s["price"], s["trigger"]))
               and s["qty"] % s["step"] == 0 and all(q % s["step"] == 0 for q in held)
               and s["quote"] == "USDT"
               and all((o.qty - o.filled_qty) % s["step"] == 0 for o in s["open_orders"])
               and s["risk"]["max_concentration_pct"] is None)
    for sid in ("s1", "s2"):
        limits = fast.limits(sid)
        plan = FastPlan.of(fast._instruments[KEY], fast.account_limits, limits, "USDT",
                           D(FEE_BPS) / 10_000, s["allow_short"])
        ctx = context(fast, sid, order, s["open_orders"])
        ctx.taker_fee_rate, ctx.allow_short = D(FEE_BPS) / 10_000, s["allow_short"]
        ctx.self_trade_prevention = s["risk"]["self_trade_prevention"]
        passes = all(c(order, ctx) is None for c in CHECKS if c.name != "order_rate")
        loss = -portfolio.daily_pnls(sid)[1]
        proved = plan is not None and fast_accepts(
            plan, order, portfolio, portfolio.state_version, sid, loss, s["open_orders"],
            s["risk"]["self_trade_prevention"], fast._instruments)
        if proved:
            assert passes
        if in_case and passes and loss < limits.daily_loss_limit:  # (else: reduces)
            assert plan is not None
            assert proved, "a pass in the accept path's case it did not prove"


def test_an_ordinary_order_takes_the_accept_path_and_builds_no_context(
        monkeypatch: Any) -> None:
    s = dict(tick=D("0.01"), step=D("0.00001"), mark=D("64000.37"), price=D("63360.36"),
             entry=D("64000.37"), trigger=None, qty=D("0.001"), order_type=LIMIT, side=BUY,
             position={"s1": D(0), "s2": D(0)}, fee=D(0), fee_currency="USDT",
             risk=dict(max_order_qty=1.0, max_order_notional=1e9, max_position_qty=1e6,
                       daily_loss_limit=1e9, max_orders_per_s=1e9, price_band_pct=50.0),
             strategy=None, inst=dict(min_notional=D(5)), open_orders=[], quote="USDT",
             balances={"USDT": D(10**6)}, free_short=D(0), allow_short=False)
    fast, _, _ = engines(s)

    def no_context(*_a: Any, **_k: Any) -> None:
        raise AssertionError("built a CheckContext on the accept path")

    monkeypatch.setattr("daemon.trading.risk.CheckContext", no_context)
    assert fast.check("s1", order_of(s)) is None
    assert fast.check("s2", order_of(s)) is None


def test_a_unit_cache_answers_as_the_conversion_and_stays_bounded() -> None:
    cache = UnitCache(D("0.01").as_integer_ratio())
    assert cache(D("1.00")) == cache(D("1")) == 100
    for nothing in ("0.001", "sNaN", "NaN", "-1", "0", "1E+10", "Infinity"):  # 0: none
        assert cache(D(nothing)) == 0
    for n in range(1, 5000):
        assert cache(D(n) / 100) == n
    assert len(cache.known) <= 4096
    bounded = UnitCache(D("0.01").as_integer_ratio(), 5, 7)
    assert [bounded(D(n) / 100) for n in range(4, 9)] == [0, 5, 6, 7, 0]


# -- restart: the accept path's state is the recovered state's --------------------

@st.composite
def histories(draw: Any) -> list[tuple[str, Any]]:
    """A day of fills, balances, marks and a kill switch, as the journal has them."""
    out: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(("fill", "fill", "balance", "trade", "halt", "resume")))
        if kind == "fill":
            out.append((kind, (draw(st.sampled_from(("s1", "s2"))),
                               draw(st.sampled_from((BUY, SELL))),
                               draw(st.integers(1, 50)) * D("0.01"),
                               draw(st.integers(90, 110)) * D(1))))
        elif kind == "balance":
            out.append((kind, (draw(st.sampled_from(("USDT", "X"))),
                               draw(st.integers(0, 3000)) * D(1))))
        else:
            out.append((kind, draw(st.integers(90, 110))))
    return out


def node(config: RiskConfig, bus: Bus) -> tuple[Portfolio, RiskEngine]:
    inst = Instrument(venue="sim", symbol="XUSDT", base="X", quote="USDT",
                      tick_size=D("0.01"), step_size=D("0.01"))
    portfolio = Portfolio(bus.publish, lambda: T0 + 1, {KEY: inst})
    portfolio.subscribe(bus)
    engine = RiskEngine(config, {"s1": None, "s2": None}, {KEY: inst}, portfolio,
                        lambda: T0 + 1, bus.publish, venues=[VenueConfig(name="sim")])
    engine.subscribe(bus)
    return portfolio, engine


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), orders=st.lists(st.tuples(
    st.sampled_from(("s1", "s2")), st.sampled_from((BUY, SELL)), st.integers(1, 80),
    st.integers(90, 110)), min_size=1, max_size=6),
    loss_limit=st.sampled_from((5.0, 50.0, 1e9)))
def test_a_recovered_engine_decides_as_the_live_one(history: list[tuple[str, Any]],
                                                    orders: list[Any],
                                                    loss_limit: float) -> None:
    config = RiskConfig(max_order_qty=0.5, max_order_notional=40.0, max_position_qty=1.0,
                        daily_loss_limit=loss_limit, max_orders_per_s=1e9,
                        price_band_pct=10.0, max_position_notional=90.0)
    live_bus = Bus()
    journal: list[Event] = []
    live_bus.subscribe_all(journal.append)
    portfolio, live = node(config, live_bus)
    live_bus.publish(Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT",
                           price=100.0, size=1.0))
    for n, (kind, what) in enumerate(history):
        if kind == "fill":
            sid, side, qty, price = what
            live_bus.publish(Fill(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT",
                                  strategy_id=sid, client_order_id=f"{sid}-{n}",
                                  trade_id=f"t{n}", side=side, qty=qty, price=price,
                                  fee=D("0.01"), fee_currency="USDT", liquidity="TAKER"))
        elif kind == "balance":
            currency, total = what
            live_bus.publish(BalanceChanged(ts_event=T0, ts_recv=T0, venue="sim",
                                            currency=currency, total=total, free=total))
        elif kind == "trade":
            live_bus.publish(Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT",
                                   price=float(what), size=1.0))
        elif kind == "halt":
            live.halt()
        else:
            live.resume()
    mark = Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT", price=101.0, size=1.0)
    live_bus.publish(mark)
    # the restart: a new process folds what the journal kept (no market data)
    bus = Bus()
    recovered_portfolio, recovered = node(config, bus)
    recovered_portfolio.recover([e for e in journal if type(e) in (Fill, BalanceChanged)])
    recovered.recover([e for e in journal if type(e) is TradingState])
    bus.publish(Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT", price=101.0,
                      size=1.0))
    assert (recovered.state, recovered.reason) == (live.state, live.reason)
    assert recovered_portfolio.daily_pnls("s1") == portfolio.daily_pnls("s1")
    for sid, side, lots, ticks in orders:
        order = OrderRequest(venue="sim", symbol="XUSDT", side=side, qty=lots * D("0.01"),
                             order_type=LIMIT, price=ticks * D(1))
        assert recovered.check(sid, order) == live.check(sid, order)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=accept_scenarios(), moves=st.lists(st.sampled_from(
    ("mark", "mark", "fill", "fee", "balance", "day")), max_size=6),
    sids=st.sampled_from((("s1",), ("s2",), ("s1", "s2"))))
def test_daily_pnls_remembered_are_the_pnls_computed_now(s: dict[str, Any],
                                                          moves: list[str],
                                                          sids: tuple[str, ...]) -> None:
    """After any mark, fill, third-currency fee, balance or new day (asked for one
    strategy, what it remembers is asked again after the move)."""
    fast, _, _ = engines(s)
    portfolio = fast._portfolio
    assert isinstance(portfolio, Portfolio)
    ts = T0
    for n, move in enumerate(moves):
        if move == "mark":
            portfolio.apply(Trade(ts_event=ts, ts_recv=ts, venue="sim", symbol="XUSDT",
                                  price=float(s["mark"]) * (1 + (n + 1) / 10), size=1.0))
        elif move in ("fill", "fee"):
            portfolio.apply(Fill(ts_event=ts, ts_recv=ts, venue="sim", symbol="XUSDT",
                                 strategy_id="s1", client_order_id=f"s1-{n}",
                                 trade_id=f"m{n}", side=BUY, qty=s["step"], price=s["mark"],
                                 fee=D("0.001"), fee_currency="BNB" if move == "fee" else "USDT",
                                 liquidity="TAKER"))
        elif move == "balance":
            portfolio.apply(BalanceChanged(ts_event=ts, ts_recv=ts, venue="sim",
                                           currency="USDT", total=D(n), free=D(n)))
        else:  # the next day, from its first nanosecond
            ts = (ts // DAY_NS + 1) * DAY_NS
            portfolio._now_ns = lambda ts=ts: ts  # type: ignore[method-assign]
        for sid in sids:
            assert portfolio.daily_pnls(sid) == (portfolio.daily_pnl(), portfolio.daily_pnl(sid))


def test_a_state_folded_in_is_judged_again_on_the_same_figures() -> None:
    """The engine skips the comparisons for daily figures it has already judged in
    the same state: a state set from outside (a journal's TradingState folded in)
    is judged afresh, as every evaluation did before."""
    from tests.daemon.trading.test_risk import Env

    env = Env({"max_position_qty": 100.0})
    env.fill(BUY, "20", "100")
    env.trade(60.0)
    env.trade(50.0)  # risk sees each mark one event late: loss 800, then 1000
    assert env.check(side=SELL, qty="1", price="50") is None  # reduces: passes
    assert env.risk.state == REDUCING
    assert env.check(side=SELL, qty="1", price="50") is None  # the same figures
    now = env.clock.now
    env.risk.apply(TradingState(ts_event=now, ts_recv=now, state=ACTIVE, reason="folded"))
    assert env.check(side=SELL, qty="1", price="50") is None
    assert env.risk.state == REDUCING
    assert env.states()[-1] == (REDUCING, "daily loss 1000 >= daily_loss_limit 1000")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lots=st.integers(1, 8), limits=st.lists(st.integers(1, 12), min_size=4, max_size=4),
       held=st.sampled_from(((0, 0), (3, -3), (0, 4), (-2, 0))), side=st.sampled_from((BUY, SELL)),
       below=st.sampled_from((D(0), D("0.001"), D("0.0005"))),
       resting=st.lists(st.tuples(st.sampled_from(("s1", "s2")), st.integers(1, 4),
                                  st.booleans(), st.integers(0, 5)), max_size=3))
def test_position_limits_of_the_account_and_a_strategy_each_hold(
        lots: int, limits: list[int], held: tuple[int, int], side: str, below: Decimal,
        resting: list[tuple[str, int, bool, int]]) -> None:
    """The account's and a tighter strategy's position limits (qty and notional) at
    and around the order's size (a notional limit on, or a unit or half a unit
    under, a whole number of tick x lot units), with the positions flat, the account flat but not
    its strategies, or one strategy holding, and resting orders of either strategy on
    the order's side counting towards them (some with a remainder off the lot grid,
    some on the other side, away from the order's price): each limit holds for each
    scope."""
    from daemon.config import StrategyRiskConfig

    step, price = D("0.1"), D(100)
    account_qty, strategy_qty, account_notional, strategy_notional = limits
    s = dict(tick=D("0.01"), step=step, mark=price, price=price, entry=price, trigger=None,
             qty=lots * step, order_type=LIMIT, side=side, fee=D(0), fee_currency="USDT",
             position={"s1": held[0] * step, "s2": held[1] * step},
             risk=dict(max_order_qty=1e6, max_order_notional=1e9,
                       max_position_qty=float(max(account_qty, strategy_qty) * step),
                       max_position_notional=float(max(account_notional, strategy_notional)
                                                   * step * price - below),
                       daily_loss_limit=1e9, max_orders_per_s=1e9, price_band_pct=5.0),
             strategy=StrategyRiskConfig(
                 max_position_qty=float(min(account_qty, strategy_qty) * step),
                 max_position_notional=float(min(account_notional, strategy_notional)
                                             * step * price - below)),
             inst={}, open_orders=[], quote="USDT", balances={"USDT": D(10**9), "X": D(10**9)},
             free_short=D(0), allow_short=False)
    fast, reference, _ = engines(s)
    opposite = SELL if side == BUY else BUY
    book = [OpenOrder(f"{sid}-r{n}", sid, side if kind else opposite, n_lots * step,
                      price + (-1 if (side if kind else opposite) == BUY else 1),
                      symbol="XUSDT", filled_qty=step / 2 if off == 0 else D(0))
            for n, (sid, n_lots, kind, off) in enumerate(resting)]
    same_answers(fast, reference, order_of(s), book)


def test_a_trade_price_is_the_same_decimal_remembered_or_not() -> None:
    from events.instruments import price_decimal, to_decimal

    for price in (64000.0, 64000, 0.1, 1e-8, 123456.789, 0.0, -0.0, -5.0, float("inf")):
        for _ in range(2):  # the second time, remembered
            assert str(price_decimal(price)) == str(to_decimal(price))


def test_what_a_seed_changes_is_not_remembered_from_halfway_through_it() -> None:
    """A strategy that answers the seed's first PositionChanged with an order must
    not leave the half-seeded position remembered for the orders after the seed."""
    from daemon.trading.api import Position
    from events.state import PositionChanged

    inst = Instrument(venue="sim", symbol="XUSDT", base="X", quote="USDT",
                      tick_size=D("0.01"), step_size=D("0.01"))
    bus = Bus()
    portfolio = Portfolio(bus.publish, lambda: T0, {KEY: inst})
    portfolio.subscribe(bus)
    engines_ = [RiskEngine(RiskConfig(max_order_qty=10.0, max_order_notional=1e6,
                                      max_position_qty=6.0, daily_loss_limit=1e9,
                                      max_orders_per_s=1e9, price_band_pct=10.0),
                           {"s1": None}, {KEY: inst}, portfolio, lambda: T0, bus.publish)
                for _ in (0, 1)]
    engines_[1].integer_path = False
    order = OrderRequest(venue="sim", symbol="XUSDT", side=BUY, qty=D(2), order_type=LIMIT,
                         price=D(100))
    bus.publish(BalanceChanged(ts_event=T0, ts_recv=T0, venue="sim", currency="USDT",
                               total=D(10**6), free=D(10**6)))
    bus.publish(Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT", price=100.0,
                      size=1.0))
    bus.subscribe(PositionChanged, lambda _e: engines_[0].check("s1", order))
    portfolio.seed("s1", [Position(venue="sim", symbol="XUSDT", strategy_id="s1", qty=D(0)),
                          Position(venue="sim", symbol="XUSDT", strategy_id="s1", qty=D(5),
                                   avg_price=D(100))])
    refusal = engines_[1].check("s1", order)
    assert refusal is not None and refusal.check == "max_position_qty"
    assert engines_[0].check("s1", order) == refusal
