"""A strategy's prices reach the gateway on the tick grid and never worse than
it asked: BUY limits and triggers round down, SELL up, trailing offsets down;
the same through `amend` and `bracket`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.strategies.base import Strategy
from tests.daemon.strategies.conftest import World
from tests.daemon.strategies.fakes import strategy_config
from tests.daemon.strategies.test_runtime import trade
from tests.examples import examples

D = Decimal
TICK = D("0.01")


class Plain(Strategy):
    pass


def started(world: World) -> Any:
    s = world.runtime.add(strategy_config("a", f"{__name__}:Plain"))
    world.runtime.start()
    world.feed([trade(1)])
    return s


def last_request(world: World) -> Any:
    return world.gateway.submitted[-1][1]


def test_limit_prices_round_in_the_order_s_favour(world: World) -> None:
    a = started(world)
    a.buy("BTCUSDT", 1, price=100.006)  # half-even gave 100.01: paying more than asked
    assert last_request(world).price == D("100.00")
    a.sell("BTCUSDT", 1, price=100.004)  # half-even gave 100.00: selling for less
    assert last_request(world).price == D("100.01")
    a.sell("BTCUSDT", 1, price="100.02")  # on the grid: as asked
    assert last_request(world).price == D("100.02")


def test_stop_triggers_round_so_a_stop_never_fires_later_and_offsets_never_trail_farther(
        world: World) -> None:
    a = started(world)
    a.sell("BTCUSDT", 1, trigger_price=94.996)  # a sell stop: up (fires at 95.00 or sooner)
    assert (last_request(world).order_type, last_request(world).trigger_price) == (
        "STOP_MARKET", D("95.00"))
    a.buy("BTCUSDT", 1, trigger_price=105.004, price=105.009)  # buy stop-limit: both down
    assert (last_request(world).trigger_price, last_request(world).price) == (
        D("105.00"), D("105.00"))
    a.sell("BTCUSDT", 1, order_type="TRAILING_STOP", trailing_offset=0.579)
    assert last_request(world).trailing_offset == D("0.57")
    with pytest.raises(ValueError, match="a: trailing offset 0.004 is below"):
        a.sell("BTCUSDT", 1, order_type="TRAILING_STOP", trailing_offset=0.004)
    with pytest.raises(ValueError, match="a: price 0.004 rounds to 0.00"):
        a.buy("BTCUSDT", 1, price=0.004)


def test_amend_rounds_in_the_order_s_favour(world: World) -> None:
    a = started(world)
    buy = a.buy("BTCUSDT", 1, price=99)
    sell = a.sell("BTCUSDT", 1, price=101)
    a.amend(buy, price=99.506)
    a.amend(sell, price=100.504, qty=0.123456)
    assert world.gateway.amends == [(buy, {"qty": None, "price": D("99.50")}),
                                    (sell, {"qty": D("0.12345"), "price": D("100.51")})]


def test_amend_of_an_order_adopted_from_the_oms_rounds_by_its_side(world: World) -> None:
    a = started(world)
    cid = a.sell("BTCUSDT", 1, price=101)
    a._orders.clear()  # as after a restart, before adopting
    a._adopt_open_orders()
    a.amend(cid, price=100.001)
    assert world.gateway.amends[-1] == (cid, {"qty": None, "price": D("100.01")})


def test_amend_of_an_order_sent_through_the_gateway_itself_rounds_by_the_oms_side(
        world: World) -> None:
    a = started(world)
    cid = a.ctx.gateway.submit(a.id, a.order_request("SELL", "BTCUSDT", 1, price=101))
    assert not a.is_open(cid)  # the base class never saw it
    a.amend(cid, price=100.001)
    assert world.gateway.amends[-1] == (cid, {"qty": None, "price": D("100.01")})


def test_a_bracket_s_exit_prices_round_for_the_exit_side(world: World) -> None:
    a = started(world)
    a.bracket("BUY", "BTCUSDT", 0.5, price=99.999, stop_price=95.001, target_price=110.001)
    entry, stop, target = (r for _, r in world.gateway.submitted[-3:])
    assert entry.price == D("99.99")  # a buy: down
    assert stop.trigger_price == D("95.01")  # the protective sell stop: up, never lower
    assert target.price == D("110.01")  # the sell target: up


@settings(max_examples=200, deadline=None)
@given(side=st.sampled_from(["BUY", "SELL"]),
       price=st.decimals(min_value=D("0.01"), max_value=D("100000"), places=6))
def test_no_requested_price_ever_becomes_a_worse_one(side: str, price: Decimal) -> None:
    world = World()
    a = started(world)
    req = a.order_request(side, "BTCUSDT", 1, price=price)
    assert req.price is not None and req.price % TICK == 0
    if side == "BUY":
        assert price - TICK < req.price <= price
    else:
        assert price <= req.price < price + TICK


# -- the fast path (daemon.strategies.grid) against the definition ---------------------

TICKS = ["0.01", "0.5", "0.3", "0.00001", "1", "25", "0.0000001", "0.07", "0.1", "5E+1"]


def _grid(tick: str) -> Any:
    from daemon.strategies.grid import Grid
    from events.instruments import Instrument

    return Grid(Instrument(venue="sim", symbol="X", base="X", quote="USDT",
                           tick_size=D(tick), step_size=D(tick)))


def _same(fast: Any, slow: Any) -> None:
    """The same Decimal to the digit (value and exponent), or the same ValueError."""
    assert type(fast) is type(slow)
    if isinstance(fast, Decimal):
        assert fast.as_tuple() == slow.as_tuple(), (fast, slow)
    else:
        assert str(fast) == str(slow)


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except (ValueError, ArithmeticError) as exc:
        return exc


near_grid = st.builds(  # a float a few ulps from k ticks: where a float quotient errs
    lambda tick, k, ulps: (tick, _nudge(k * float(D(tick)), ulps)),
    st.sampled_from(TICKS), st.integers(1, 10**9), st.integers(-3, 3))


def _nudge(x: float, ulps: int) -> float:
    import math

    for _ in range(abs(ulps)):
        x = math.nextafter(x, math.inf if ulps > 0 else -math.inf)
    return x


@settings(max_examples=examples(1000), deadline=None)
@given(side=st.sampled_from(["BUY", "SELL"]),
       case=near_grid | st.tuples(st.sampled_from(TICKS),
                                  st.floats(allow_nan=True, allow_infinity=True) | st.floats(
                                      min_value=1e-9, max_value=1e12)))
def test_a_float_price_rounds_as_the_instrument_rounds_it(side: str, case: Any) -> None:
    from events.instruments import to_decimal

    tick, price = case
    grid = _grid(tick)
    slow = _outcome(lambda p: grid.inst.round_order_price(to_decimal(p), side), price)
    _same(_outcome(grid.order_price, price, side), slow)
    _same(_outcome(grid.order_price, price, side), slow)  # remembered: the same again


@settings(max_examples=500, deadline=None)
@given(qtys=st.lists(st.sampled_from(["0.001", "0.0010", 0.001, 1, 1.0, True, D("0.001"),
                                      D("0.0010"), D("1E-3"), 2.5, "2.5", D(7)]),
                     min_size=1, max_size=8),
       tick=st.sampled_from(TICKS))
def test_a_remembered_quantity_rounds_as_the_instrument_rounds_it(qtys: list, tick: str
                                                                  ) -> None:
    from events.instruments import to_decimal

    grid = _grid(tick)
    for qty in qtys:  # in any order: a remembered value never answers for another
        _same(_outcome(grid.qty, qty), _outcome(lambda q: grid.inst.round_qty(to_decimal(q)), qty))


def test_prices_on_and_just_off_the_grid_take_the_instrument_s_answer() -> None:
    grid = _grid("0.01")
    # 0.29's binary value lies below 0.29: a floor of the float quotient gives 0.28
    assert grid.order_price(0.29, "BUY") == D("0.29")
    assert grid.order_price(64000.57 * 0.99, "BUY") == D("63360.56")
    assert grid.order_price(64000.57 * 0.99, "SELL") == D("63360.57")
    with pytest.raises(ValueError, match="rounds to 0.00"):
        grid.order_price(0.004, "BUY")


@settings(max_examples=200, deadline=None)
@given(side=st.sampled_from(["BUY", "SELL"]),
       qty=st.sampled_from(["0.001", 0.5, 2, D("1.23456")]),
       price=st.none() | st.floats(1, 1e5) | st.decimals("1", "100000", places=3),
       kw=st.fixed_dictionaries({}, optional={
           "time_in_force": st.sampled_from(["GTC", "IOC", "FOK"]),
           "post_only": st.booleans(), "reduce_only": st.booleans(),
           "expire_ts": st.integers(0, 10**18)}))
def test_a_plain_order_s_short_build_is_the_full_one(side: str, qty: Any, price: Any,
                                                      kw: dict) -> None:
    """Without trigger, offset or type, `order_request` takes a shorter call; naming
    the type it infers takes the full one: both give the same request."""
    world = World()
    a = started(world)
    short = a.order_request(side, "BTCUSDT", qty, price=price, **kw)
    full = a.order_request(side, "BTCUSDT", qty, price=price,
                           order_type="MARKET" if price is None else "LIMIT", **kw)
    assert short == full
    a.buy("BTCUSDT", qty, price=price, **kw) if side == "BUY" else a.sell(
        "BTCUSDT", qty, price=price, **kw)
    assert last_request(world) == full
