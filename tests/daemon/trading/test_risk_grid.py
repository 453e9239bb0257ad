"""The integer risk path (daemon.trading.risk_grid) against the Decimal reference.

Two levels: each limit converted to ticks/lots decides exactly as the Decimal
comparison it replaces (so a rounding direction that loosens or tightens a limit
fails), and the whole engine answers every order exactly as the reference does
(same check, same reason), over random instruments, limits, marks, positions,
open orders and orders, on and off the grid.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from daemon.config import RiskConfig, StrategyRiskConfig, VenueConfig
from daemon.trading.api import BUY, LIMIT, MARKET, SELL, STOP_LIMIT, STOP_MARKET, OrderRequest
from daemon.trading.portfolio import DAY_NS, Portfolio
from daemon.trading.risk import Limits, RiskEngine
from daemon.trading.risk_checks import CHECKS, CheckContext
from daemon.trading.risk_grid import (
    GRID_CHECKS,
    Grid,
    GridLimits,
    ceil_units,
    floor_units,
    grid_accepts,
    units,
)
from events.bus import Bus
from events.instruments import Instrument, to_decimal
from events.market import Trade
from events.orders import Fill
from events.state import BalanceChanged
from tests.daemon.trading.test_risk import T0, OpenOrder
from tests.examples import examples

D = Decimal
TICKS = ("0.01", "0.00001", "0.5", "0.00000001", "0.00025", "1", "5", "0.1")
STEPS = ("0.001", "0.00001", "1", "0.1", "0.00000001", "0.5", "100")
KEY = ("sim", "XUSDT")


def exact(value: Decimal, unit: Decimal, rounding: str) -> int:
    """value / unit rounded to a whole number, at a precision that makes it exact."""
    with localcontext() as ctx:
        ctx.prec = 200
        return int((value / unit).to_integral_value(rounding=rounding))


decimals = st.decimals(min_value=D("-1e9"), max_value=D("1e9"), allow_nan=False,
                       allow_infinity=False, places=10)


@given(value=decimals, unit=st.sampled_from(TICKS + STEPS + ("0.003", "7", "2.5")))
def test_units_are_exact_floor_and_ceil(value: Decimal, unit: str) -> None:
    u = D(unit)
    ratio = u.as_integer_ratio()
    assert floor_units(value, ratio) == exact(value, u, ROUND_FLOOR)
    assert ceil_units(value, ratio) == exact(value, u, ROUND_CEILING)
    whole = units(value, ratio)
    assert whole == (exact(value, u, ROUND_FLOOR) if value % u == 0 else None)


def test_zero_in_any_spelling_is_zero_units() -> None:
    for zero in ("0", "-0", "0E-8", "0.00000", "0E+5"):
        assert units(D(zero), D("0.01").as_integer_ratio()) == 0
    assert units(D("NaN"), D("0.01").as_integer_ratio()) is None


def near(draw: Any, center: int) -> int:
    """An integer at, just around, or anywhere near `center` (the boundaries matter)."""
    return max(0, center + draw(st.sampled_from((-1, 0, 0, 1, 2, -2))) if draw(st.booleans())
               else draw(st.integers(0, max(4, 2 * center))))


def off_by(draw: Any, unit: Decimal) -> Decimal:
    """0, or a fraction of `unit` (a limit or value off the grid)."""
    return draw(st.sampled_from((D(0), D(0), D("0.5"), D("0.25"), D("0.999"), D("0.001")))) * unit


@settings(max_examples=400)
@given(data=st.data())
def test_limits_in_lots_and_ticks_decide_as_the_decimal_comparisons(data: Any) -> None:
    draw = data.draw
    tick, step = D(draw(st.sampled_from(TICKS))), D(draw(st.sampled_from(STEPS)))
    lots, ticks = draw(st.integers(1, 10**7)), draw(st.integers(1, 10**7))
    qty, price = lots * step, ticks * tick
    notional = qty * price
    lim = {
        "min_qty": near(draw, lots) * step + off_by(draw, step),
        "max_qty": near(draw, lots) * step + off_by(draw, step),
        "min_notional": near(draw, lots * ticks) * step * tick + off_by(draw, step * tick),
    }
    inst = Instrument(venue="sim", symbol="XUSDT", base="X", quote="USDT", tick_size=tick,
                      step_size=step, **lim)
    grid = Grid.of(inst)
    assert grid is not None
    assert (qty < inst.min_qty) == (lots < grid.min_lots)
    assert inst.max_qty is not None and grid.max_lots is not None
    assert (qty > inst.max_qty) == (lots > grid.max_lots)
    assert (notional < inst.min_notional) == (lots * ticks < grid.min_notional)
    limits = Limits(
        max_order_qty=near(draw, lots) * step + off_by(draw, step),
        max_position_qty=near(draw, lots) * step + off_by(draw, step),
        max_order_notional=near(draw, lots * ticks) * step * tick + off_by(draw, step * tick),
        daily_loss_limit=D(1000), max_orders_per_s=D(10), price_band_pct=D(5))
    gl = GridLimits.of(limits, grid)
    assert gl is not None
    assert (qty > limits.max_order_qty) == (lots > gl.max_order_lots)
    assert (qty > limits.max_position_qty) == (lots > gl.max_position_lots)
    assert (notional > limits.max_order_notional) == (lots * ticks > gl.max_order_notional)


# -- the whole engine, integer path against the reference ---------------------------------


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    tick, step = D(draw(st.sampled_from(TICKS))), D(draw(st.sampled_from(STEPS)))
    # a mark in whole hundreds of ticks puts the band's edge on a tick
    mark_ticks = draw(st.integers(1, 10**4)) * draw(st.sampled_from((1, 100, 1000)))
    lots = draw(st.integers(1, 10**5))
    mark = mark_ticks * tick + (off_by(draw, tick) if draw(st.integers(0, 9)) == 0 else 0)
    band = D(draw(st.sampled_from(("5", "1", "2.5", "0.3", "50", "10", "0.01"))))
    # an order price at, inside or just outside the band (or off the grid)
    edge = int(band * mark_ticks / 100)
    # ... or a few percent of the band beyond its edge
    def banded() -> int:
        distance = near(draw, edge) if draw(st.booleans()) else \
            edge + draw(st.integers(0, edge // 20 + 2))
        return max(1, mark_ticks + draw(st.sampled_from((1, -1))) * distance)

    price_ticks = banded()
    price = price_ticks * tick + (off_by(draw, tick) if draw(st.integers(0, 9)) == 0 else 0)
    order_type = draw(st.sampled_from((LIMIT, LIMIT, MARKET, STOP_MARKET, STOP_LIMIT)))
    trigger = banded() * tick if order_type in (STOP_MARKET, STOP_LIMIT) else None
    qty = lots * step + (off_by(draw, step) if draw(st.integers(0, 9)) == 0 else 0)
    value_ticks = price_ticks if order_type != MARKET else mark_ticks
    position = {sid: draw(st.integers(-2 * lots, 2 * lots)) * step
                + (off_by(draw, step) if draw(st.integers(0, 9)) == 0 else 0)
                for sid in ("s1", "s2")}
    account_pos_lots = abs(int(sum(position.values()) / step))

    def limit_near(units_: int, unit: Decimal) -> float:
        # mostly out of the way, so that the one limit an order meets decides
        if draw(st.integers(0, 5)):
            return 1e15
        return float(max(1, near(draw, units_)) * unit + off_by(draw, unit))

    def tight(value: Decimal, lax: Decimal | None) -> Decimal | None:
        return value if draw(st.integers(0, 5)) == 0 else lax

    risk = dict(
        max_order_qty=limit_near(lots, step),
        max_order_notional=limit_near(lots * value_ticks, step * tick),
        max_position_qty=limit_near(lots + account_pos_lots, step),
        daily_loss_limit=float(draw(st.sampled_from((1e9, 1e9, 1.0, 50.0, 1000.0, 1e5)))),
        max_orders_per_s=1e9, price_band_pct=float(band),
        # limits the integer path leaves to the reference (it drops them when unset)
        max_position_notional=draw(st.sampled_from((None, None, None, 1e6, 1e12))),
        max_concentration_pct=draw(st.sampled_from((None, None, None, 1.0, 100.0))),
        self_trade_prevention=draw(st.booleans()))
    strategy = StrategyRiskConfig(max_order_qty=limit_near(lots, step),
                                  max_position_qty=limit_near(lots + account_pos_lots, step)) \
        if draw(st.booleans()) else None
    inst = dict(
        min_qty=tight(max(0, near(draw, lots)) * step + off_by(draw, step), D(0)),
        max_qty=tight(near(draw, lots) * step + off_by(draw, step), None),
        min_notional=tight(near(draw, lots * value_ticks) * step * tick, D(0)))
    open_orders = [
        OpenOrder(f"s{n % 2 + 1}-{n}", f"s{n % 2 + 1}", draw(st.sampled_from((BUY, SELL))),
                  draw(st.integers(1, lots)) * step, price_ticks * tick, symbol="XUSDT")
        for n in range(draw(st.integers(0, 3)))]
    # positions bought or sold away from the mark: a daily loss (or gain)
    entry = max(1, mark_ticks + draw(st.integers(-mark_ticks // 10, mark_ticks // 10))) * tick
    fee, fee_currency = draw(st.sampled_from(((D(0), "USDT"), (D("0.01"), "USDT"),
                                              (D("0.003"), "BNB"), (D("0.002"), "X"))))
    return dict(tick=tick, step=step, mark=mark, entry=entry, fee=fee,
                fee_currency=fee_currency, price=price, trigger=trigger, qty=qty,
                order_type=order_type, side=draw(st.sampled_from((BUY, SELL))),
                position=position, risk=risk, strategy=strategy, inst=inst,
                open_orders=open_orders, quote="BTC" if draw(st.integers(0, 5)) == 0 else "USDT")


def engines(s: dict[str, Any]) -> tuple[RiskEngine, RiskEngine]:
    """An engine on the integer path and one on the reference, one portfolio."""
    inst = Instrument(venue="sim", symbol="XUSDT", base="X", quote=s["quote"],
                      tick_size=s["tick"], step_size=s["step"], **s["inst"])
    instruments = {KEY: inst}
    bus = Bus()
    portfolio = Portfolio(bus.publish, lambda: T0, instruments, account_currency="USDT")
    portfolio.subscribe(bus)
    for currency in ("USDT", "X", "BTC"):
        bus.publish(BalanceChanged(ts_event=T0, ts_recv=T0, venue="sim", currency=currency,
                                   total=D(10**15), free=D(10**15)))
    for n, (sid, qty) in enumerate(s["position"].items()):
        if qty:
            bus.publish(Fill(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT",
                             strategy_id=sid, client_order_id=f"{sid}-0", trade_id=f"t{n}",
                             side=BUY if qty > 0 else SELL, qty=abs(qty), price=s["entry"],
                             fee=s.get("fee", D(0)), fee_currency=s.get("fee_currency", s["quote"]),
                             liquidity="TAKER"))
    bus.publish(Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="XUSDT",
                      price=float(s["mark"]), size=1.0))
    out = []
    for integer in (True, False):
        engine = RiskEngine(RiskConfig(**s["risk"]), {"s1": s["strategy"], "s2": None},
                            instruments, portfolio, lambda: T0, bus.publish,
                            venues=[VenueConfig(name="sim", taker_fee_bps=10.0)])
        engine.integer_path = integer
        out.append(engine)
    return out[0], out[1]


def order_of(s: dict[str, Any]) -> OrderRequest:
    return OrderRequest(
        venue="sim", symbol="XUSDT", side=s["side"], qty=s["qty"], order_type=s["order_type"],
        price=None if s["order_type"] in (MARKET, STOP_MARKET) else s["price"],
        trigger_price=s["trigger"])


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scenarios())
def test_the_integer_path_answers_exactly_as_the_decimal_reference(s: dict[str, Any]) -> None:
    fast, reference = engines(s)
    order = order_of(s)
    for sid in ("s1", "s2"):
        assert fast.check(sid, order, s["open_orders"]) == \
            reference.check(sid, order, s["open_orders"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scenarios(), later=st.integers(0, 3))
def test_both_daily_pnls_in_one_pass_are_each_one_on_its_own(s: dict[str, Any],
                                                             later: int) -> None:
    fast, _ = engines(s)
    portfolio = fast._portfolio
    assert isinstance(portfolio, Portfolio)
    ts = T0
    if later >= 2:  # a new day: the positions' values (and fees) become its baseline
        ts += DAY_NS
        portfolio.apply(Trade(ts_event=ts, ts_recv=ts, venue="sim", symbol="XUSDT",
                              price=float(s["mark"]), size=1.0))
        portfolio.apply(Fill(ts_event=ts, ts_recv=ts, venue="sim", symbol="XUSDT",
                             strategy_id="s1", client_order_id="s1-9", trade_id="t9",
                             side=BUY, qty=s["step"], price=s["mark"], fee=D("0.001"),
                             fee_currency="BNB", liquidity="TAKER"))
    if later:  # the mark moves after the day's baseline
        portfolio.apply(Trade(ts_event=ts, ts_recv=ts, venue="sim", symbol="XUSDT",
                              price=float(s["mark"]) * (1 + later / 10), size=1.0))
    for sid in ("s1", "s2", "s3"):
        pair = portfolio.daily_pnls(sid)
        assert pair == (portfolio.daily_pnl(), portfolio.daily_pnl(sid))
        assert [str(v) for v in pair] == [str(portfolio.daily_pnl()),
                                          str(portfolio.daily_pnl(sid))]


def context(engine: RiskEngine, sid: str, order: OrderRequest,
            open_orders: list[OpenOrder]) -> CheckContext:
    limits = engine.limits(sid)
    return CheckContext(
        strategy_id=sid, order=order, instrument=engine._instruments.get(KEY),
        instruments=engine._instruments, limits=limits, account_limits=engine.account_limits,
        portfolio=engine._portfolio, open_orders=open_orders, trading_state=engine.state,
        state_reason=engine.reason, recent_orders=0, recent_strategy_orders=0,
        taker_fee_rate=D(0), allow_short=False, self_trade_prevention=False)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scenarios())
def test_the_integer_path_proves_what_the_reference_passes_on_the_grid(
        s: dict[str, Any]) -> None:
    """Its verdict on GRID_CHECKS is the reference's, whenever everything is on the
    grid and in the account currency: a pass it cannot prove would be a slow path,
    and a pass it proves wrongly a loosened limit."""
    on_grid = all(v is None or v % s["tick"] == 0 for v in (s["mark"], s["price"], s["trigger"]))
    fast, _ = engines(s)
    held = [fast._portfolio.position_qty("sim", "XUSDT", sid) for sid in ("s1", "s2")]
    # (a fee in the base currency takes a position off the grid)
    on_grid = on_grid and s["qty"] % s["step"] == 0 and all(q % s["step"] == 0 for q in held)
    order = order_of(s)
    grid = Grid.of(fast._instruments[KEY])
    assert grid is not None
    for sid in ("s1", "s2"):
        ctx = context(fast, sid, order, s["open_orders"])
        account, strategy = GridLimits.of(fast.account_limits, grid), \
            GridLimits.of(fast.limits(sid), grid)
        assert account is not None and strategy is not None
        proved = grid_accepts(order, ctx, grid, account, strategy)
        passes = all(c(order, ctx) is None for c in CHECKS[:len(GRID_CHECKS)])
        if proved:
            assert passes
        elif on_grid and s["quote"] == "USDT" and passes:
            assume(-ctx.portfolio.daily_pnl(sid) < ctx.limits.daily_loss_limit)
            raise AssertionError("a pass on the grid the integers did not prove")


def test_the_integer_path_is_taken_for_an_ordinary_order() -> None:
    s = dict(tick=D("0.01"), step=D("0.00001"), mark=D("64000.37"), price=D("63360.36"),
             entry=D("64000.37"),
             trigger=None, qty=D("0.001"), order_type=LIMIT, side=BUY,
             position={"s1": D("0.002"), "s2": D(0)},
             risk=dict(max_order_qty=1.0, max_order_notional=1e9, max_position_qty=1e6,
                       daily_loss_limit=1e9, max_orders_per_s=1e9, price_band_pct=50.0),
             strategy=None, inst=dict(min_notional=D(5)), open_orders=[], quote="USDT")
    fast, _ = engines(s)
    order = order_of(s)
    grid = Grid.of(fast._instruments[KEY])
    assert grid is not None
    gl = GridLimits.of(fast.account_limits, grid)
    assert gl is not None
    assert grid_accepts(order, context(fast, "s1", order, []), grid, gl, gl)
    assert fast.check("s1", order) is None


def test_an_oversized_position_may_not_grow_by_a_single_lot() -> None:
    """Over its limit already, a position may shrink but not grow, by even one lot."""
    s = dict(tick=D("0.01"), step=D("0.001"), mark=D(100), price=D(100), entry=D(100),
             trigger=None, qty=D("0.001"), order_type=LIMIT, side=BUY,
             position={"s1": D("0.005"), "s2": D(0)},
             risk=dict(max_order_qty=1.0, max_order_notional=1e9, max_position_qty=0.003,
                       daily_loss_limit=1e9, max_orders_per_s=1e9, price_band_pct=5.0),
             strategy=None, inst={}, open_orders=[], quote="USDT")
    fast, reference = engines(s)
    grows = order_of(s)
    refusal = reference.check("s1", grows)
    assert refusal is not None and refusal.check == "max_position_qty"
    assert fast.check("s1", grows) == refusal
    shrinks = order_of({**s, "side": SELL})
    assert fast.check("s1", shrinks) is None and reference.check("s1", shrinks) is None


def test_numbers_that_are_no_grid_price_are_left_to_the_reference() -> None:
    tick = D("0.01").as_integer_ratio()
    for value in ("NaN", "Infinity", "-Infinity", "1E+999999999", "1E-999999999"):
        assert units(D(value), tick) is None
    s = dict(tick=D("0.01"), step=D("0.001"), mark=D(100), price=D("1E+999999999"),
             entry=D(100), trigger=None, qty=D("0.001"), order_type=LIMIT, side=BUY,
             position={"s1": D(0), "s2": D(0)},
             risk=dict(max_order_qty=1.0, max_order_notional=1e9, max_position_qty=1.0,
                       daily_loss_limit=1e9, max_orders_per_s=1e9, price_band_pct=5.0),
             strategy=None, inst={}, open_orders=[], quote="USDT")
    fast, reference = engines(s)
    order = order_of(s)
    with pytest.raises(InvalidOperation):  # as the reference does today: price % tick
        reference.check("s1", order)
    with pytest.raises(InvalidOperation):
        fast.check("s1", order)


def test_numbers_past_the_references_precision_take_the_reference() -> None:
    """Ticks or lots past 10**12 (where the Decimal reference's products could round)
    are left to the reference."""
    inst = Instrument(venue="sim", symbol="XUSDT", base="X", quote="USDT",
                      tick_size=D("0.00000001"), step_size=D("0.00000001"))
    grid = Grid.of(inst)
    limits = Limits(max_order_qty=D(10**9), max_position_qty=D(10**9),
                    max_order_notional=D(10**30), daily_loss_limit=D(1000),
                    max_orders_per_s=D(10), price_band_pct=D(5))
    gl = GridLimits.of(limits, grid)
    assert grid is not None and gl is not None
    s = dict(tick=inst.tick_size, step=inst.step_size, mark=D(20000), price=D(20000),
             entry=D(20000),
             trigger=None, qty=D(20000), order_type=LIMIT, side=BUY,
             position={"s1": D(0), "s2": D(0)},
             risk=dict(max_order_qty=1e9, max_order_notional=1e30, max_position_qty=1e9,
                       daily_loss_limit=1e9, max_orders_per_s=1e9, price_band_pct=5.0),
             strategy=None, inst={}, open_orders=[], quote="USDT")
    fast, reference = engines(s)
    order = order_of(s)
    assert not grid_accepts(order, context(fast, "s1", order, []), grid, gl, gl)  # 2e12 lots
    assert fast.check("s1", order) == reference.check("s1", order) is None
    assert to_decimal(1e-8) == inst.tick_size
