"""Stop-market, stop-limit and trailing stops: triggers on trades, quotes and
bars, fills on gaps, the trail following the price."""

from __future__ import annotations

import pytest

from events.orders import OrderRejected

from .harness import D, Sim


def test_sell_stop_triggers_on_a_trade_through_and_fills_at_that_trade() -> None:
    sim = Sim(taker_fee_bps=10)
    sim.trade(1, 100.0)
    cid = sim.submit(1, "SELL", "STOP_MARKET", "1", trigger="99")
    sim.trade(2, 99.5)
    sim.trade(3, 98.7)  # gapped through 99: the trade price, not the trigger
    sim.trade(4, 97.0)
    assert sim.fills(cid) == [(3, "SELL", D(1), D("98.70"), "TAKER")]


def test_buy_stop_touching_the_trigger_fills_at_the_trigger() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "STOP_MARKET", "1", trigger="101")
    sim.trade(2, 100.99)
    sim.trade(3, 101.0)
    assert sim.fills(cid) == [(3, "BUY", D(1), D("101.00"), "TAKER")]


def test_a_stop_already_through_when_placed_triggers_on_the_next_event_only() -> None:
    sim = Sim()
    sim.trade(1, 98.0)
    cid = sim.submit(1, "SELL", "STOP_MARKET", "1", trigger="99")  # E itself is through
    assert sim.fills() == []
    sim.trade(2, 98.5)
    assert sim.fills(cid) == [(2, "SELL", D(1), D("98.50"), "TAKER")]


@pytest.mark.parametrize(("side", "trigger", "bar", "price"), [
    ("SELL", "99", (100, 100.5, 98, 98.5), "99"),  # trades through 99 inside the bar
    ("SELL", "99", (97, 97.5, 96, 97), "97"),  # gapped below: the open
    ("BUY", "101", (100, 102, 99.5, 101.5), "101"),
    ("BUY", "101", (103, 104, 102.5, 103), "103"),  # gapped above: the open
])
def test_stops_on_bars(side: str, trigger: str, bar: tuple[float, float, float, float],
                       price: str) -> None:
    sim = Sim()
    sim.bar(1, 100, 100.5, 99.5, 100)
    cid = sim.submit(1, side, "STOP_MARKET", "1", trigger=trigger)
    sim.bar(2, 100, 100.9, 99.1, 100)  # range inside the triggers: nothing
    sim.bar(3, *bar)
    assert sim.fills(cid) == [(3, side, D(1), D(price), "TAKER")]


def test_stops_on_quotes_trigger_on_the_side_they_would_trade() -> None:
    sim = Sim()
    sim.quote(1, 100.0, 100.2)
    sell = sim.submit(1, "SELL", "STOP_MARKET", "1", trigger="99")
    buy = sim.submit(1, "BUY", "STOP_MARKET", "1", trigger="101")
    sim.quote(2, 99.1, 100.9)
    assert sim.fills() == []
    sim.quote(3, 98.9, 99.0)  # the bid reaches the sell stop
    sim.quote(4, 100.9, 101.1)  # the ask reaches the buy stop
    assert sim.fills(sell) == [(3, "SELL", D(1), D("98.90"), "TAKER")]
    assert sim.fills(buy) == [(4, "BUY", D(1), D("101.10"), "TAKER")]


def test_with_trades_seen_quotes_do_not_move_stops() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "SELL", "STOP_MARKET", "1", trigger="99")
    sim.quote(2, 98.5, 98.7)  # the bid is through, but stops follow the last trade
    assert sim.fills(cid) == []
    sim.trade(3, 98.6)
    assert sim.fills(cid) == [(3, "SELL", D(1), D("98.60"), "TAKER")]


def test_stop_limit_becomes_a_limit_that_takes_when_the_trigger_price_is_within_it() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "STOP_LIMIT", "1", trigger="101", price="101.5")
    sim.trade(2, 101.2)  # triggers; 101.5 >= 101.2: takes, at the trade's price
    assert sim.fills(cid) == [(2, "BUY", D(1), D("101.20"), "TAKER")]


def test_stop_limit_gapping_past_its_limit_rests_and_fills_as_maker() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "STOP_LIMIT", "1", trigger="101", price="101.5")
    sim.trade(2, 102.0)  # triggered, but above the limit: rests at 101.5
    sim.trade(3, 101.5)  # a touch: not through
    assert sim.fills(cid) == []
    sim.trade(4, 101.4)
    assert sim.fills(cid) == [(4, "BUY", D(1), D("101.5"), "MAKER")]


def test_trailing_sell_stop_follows_the_high_then_triggers() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "SELL", "TRAILING_STOP", "1", offset="1")
    for ts, px in [(2, 100.0), (3, 101.0), (4, 102.5), (5, 102.0), (6, 101.6)]:
        sim.trade(ts, px)  # trail: 99, 100, 101.5, 101.5, 101.5
    assert sim.fills(cid) == []
    sim.trade(7, 101.4)
    sim.trade(8, 90.0)
    assert sim.fills(cid) == [(7, "SELL", D(1), D("101.40"), "TAKER")]


def test_trailing_buy_stop_follows_the_low_then_triggers() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "TRAILING_STOP", "1", offset="0.5", trigger="100.2")
    for ts, px in [(2, 100.1), (3, 99.0), (4, 98.0), (5, 98.3), (6, 98.49)]:
        sim.trade(ts, px)  # trail: 100.2 (given), 100.2, 99.5, 98.5, 98.5, 98.5
    assert sim.fills(cid) == []
    sim.trade(7, 98.6)
    assert sim.fills(cid) == [(7, "BUY", D(1), D("98.60"), "TAKER")]


def test_trailing_stop_on_bars_checks_the_trail_before_the_bar_moves_it() -> None:
    sim = Sim()
    sim.bar(1, 100, 100, 100, 100)
    cid = sim.submit(1, "SELL", "TRAILING_STOP", "1", offset="2")
    sim.bar(2, 100, 105, 99, 104)  # no trail yet; the high sets it to 103
    sim.bar(3, 104, 106, 103.5, 105)  # low 103.5 > 103: the high moves it to 104
    assert sim.fills(cid) == []
    sim.bar(4, 105, 105, 103, 103)  # low 103 <= 104: at min(open, trail) = 104
    assert sim.fills(cid) == [(4, "SELL", D(1), D("104"), "TAKER")]


def test_stop_orders_need_their_prices() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    a = sim.submit(1, "SELL", "STOP_MARKET", "1")
    b = sim.submit(1, "SELL", "TRAILING_STOP", "1")
    c = sim.submit(1, "SELL", "STOP_LIMIT", "1", trigger="99")
    sim.trade(2, 100.0)
    reasons = [sim.of(OrderRejected, cid)[0].reason for cid in (a, b, c)]
    assert reasons == ["STOP_MARKET needs a trigger price",
                       "TRAILING_STOP needs a positive trailing_offset",
                       "STOP_LIMIT needs a price"]
