"""Instrument grid rounding: an order's prices never round to a worse price
than asked (a BUY down, a SELL up), trailing offsets never farther, market
prices to the nearest tick, quantities never above what was asked."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.instruments import Instrument

D = Decimal
TICKS = [D("0.01"), D("0.5"), D("0.00000001"), D(5), D("0.25"), D("0.0001")]


def inst(tick: Decimal = TICKS[0]) -> Instrument:
    return Instrument(venue="v", symbol="BTCUSDT", base="BTC", quote="USDT", tick_size=tick,
                      step_size=D("0.00001"))


prices = st.decimals(min_value=D("0.00000001"), max_value=D("1e9"), places=10,
                     allow_nan=False, allow_infinity=False)


@given(tick=st.sampled_from(TICKS), price=prices)
def test_a_buy_price_rounds_down_and_a_sell_price_up_to_the_nearest_tick(
        tick: Decimal, price: Decimal) -> None:
    i = inst(tick)
    if price >= tick:
        buy = i.round_order_price(price, "BUY")
        assert i.on_price_grid(buy) and price - tick < buy <= price
    sell = i.round_order_price(price, "SELL")
    assert i.on_price_grid(sell) and price <= sell < price + tick
    if i.on_price_grid(price):  # already on the grid: unchanged either side
        assert i.round_order_price(price, "BUY") == price == sell


@given(tick=st.sampled_from(TICKS), price=st.floats(min_value=1e-6, max_value=1e9))
def test_float_prices_are_taken_as_their_repr_and_never_rounded_against_the_side(
        tick: Decimal, price: float) -> None:
    i, exact = inst(tick), D(repr(price))
    if exact >= tick:
        assert i.round_order_price(price, "BUY") <= exact
    assert i.round_order_price(price, "SELL") >= exact


def test_half_a_tick_no_longer_rounds_a_buy_up_or_a_sell_down() -> None:
    i = inst()
    # half-even (the old rounding) gave 100.01 and 100.00: a buy paying more
    # than it asked, a sell receiving less
    assert i.round_order_price(D("100.006"), "BUY") == D("100.00")
    assert i.round_order_price(D("100.004"), "SELL") == D("100.01")
    assert i.round_order_price("100.005", "BUY") == D("100.00")
    assert i.round_order_price(100.005, "SELL") == D("100.01")


@given(tick=st.sampled_from(TICKS), offset=prices)
def test_a_trailing_offset_rounds_down_never_trailing_farther_than_asked(
        tick: Decimal, offset: Decimal) -> None:
    i = inst(tick)
    if offset < tick:
        with pytest.raises(ValueError, match="below BTCUSDT's tick"):
            i.round_offset(offset)
        return
    rounded = i.round_offset(offset)
    assert i.on_price_grid(rounded) and offset - tick < rounded <= offset


def test_prices_below_a_tick_and_unknown_sides_are_refused() -> None:
    i = inst()
    with pytest.raises(ValueError, match="price 0.004 rounds to 0.00 on BTCUSDT's tick 0.01"):
        i.round_order_price(D("0.004"), "BUY")
    assert i.round_order_price(D("0.004"), "SELL") == D("0.01")
    with pytest.raises(ValueError, match="side must be BUY or SELL, got 'buy'"):
        i.round_order_price(D(1), "buy")


def test_market_prices_still_round_to_the_nearest_tick() -> None:
    i = inst()
    assert i.round_price(100.12499999) == D("100.12")
    assert i.round_price(D("100.125")) == D("100.12")  # half-even
    assert i.round_price(D("100.126")) == D("100.13")
