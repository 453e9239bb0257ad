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
