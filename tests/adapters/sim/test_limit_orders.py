"""Limit orders under each fill model, on trades, quotes, bars and books:
touch vs trade-through, takers on entry, post-only, queue position."""

from __future__ import annotations

import pytest

from events.orders import Fill, OrderAccepted, OrderRejected

from .harness import D, Sim

TRADES = [(2, 100.0), (3, 99.0), (4, 98.99), (5, 98.0)]  # touch 99 at 3, through at 4


@pytest.mark.parametrize(("model", "fill_ts"), [
    ("next", 4), ("conservative", 4), ("aggressive", 3)])
def test_resting_buy_limit_on_trades(model: str, fill_ts: int) -> None:
    sim = Sim(fill_model=model, maker_fee_bps=2, taker_fee_bps=5)
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "0.5", price="99")
    for ts, px in TRADES:
        sim.trade(ts, px)
    assert sim.fills(cid) == [(fill_ts, "BUY", D("0.5"), D("99"), "MAKER")]
    assert sim.of(Fill, cid)[0].fee == D("0.00990000")  # 99 × 0.5 × 2 bps, maker


def test_a_trade_that_rounds_onto_the_limit_touches_it() -> None:
    sim = Sim(fill_model="aggressive")
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.trade(2, 99.5)
    sim.trade(3, 99.004999)  # 99.00 on the tick grid
    assert sim.fills(cid) == [(3, "BUY", D(1), D("99"), "MAKER")]


def test_queue_aware_on_trade_only_data_fills_by_the_volume_at_its_price() -> None:
    sim = Sim(fill_model="queue_aware")
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "0.5", price="99")
    sim.trade(2, 100.0)
    sim.trade(3, 99.0, size=0.3)  # no quote ever seen: nobody is shown ahead of us
    sim.trade(4, 98.99, size=0.01)  # through: the rest, whatever the size
    assert sim.fills(cid) == [(3, "BUY", D("0.3"), D("99"), "MAKER"),
                              (4, "BUY", D("0.2"), D("99"), "MAKER")]


@pytest.mark.parametrize(("model", "fill_ts"), [
    ("next", 4), ("conservative", 4), ("aggressive", 3), ("queue_aware", 4)])
def test_resting_sell_limit_on_trades(model: str, fill_ts: int) -> None:
    sim = Sim(fill_model=model)
    sim.trade(1, 100.0)
    cid = sim.submit(1, "SELL", "LIMIT", "1", price="101")
    sim.trade(2, 100.5)
    sim.trade(3, 101.0, size=0.0)  # a touch with no volume: only aggressive fills here
    sim.trade(4, 101.01)
    assert sim.fills(cid) == [(fill_ts, "SELL", D(1), D("101"), "MAKER")]


@pytest.mark.parametrize(("model", "fill_ts"), [
    ("next", 4), ("conservative", 4), ("aggressive", 3), ("queue_aware", 4)])
def test_resting_buy_limit_on_quotes(model: str, fill_ts: int) -> None:
    sim = Sim(fill_model=model)
    sim.quote(1, 98.5, 99.5)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.quote(2, 98.6, 99.4)
    sim.quote(3, 98.7, 99.0)  # ask touches the limit
    sim.quote(4, 98.7, 98.9)  # ask through the limit
    assert sim.fills(cid) == [(fill_ts, "BUY", D(1), D("99"), "MAKER")]


@pytest.mark.parametrize(("model", "fill_ts"), [
    ("next", 3), ("conservative", 3), ("aggressive", 2), ("queue_aware", 3)])
def test_resting_buy_limit_on_bars(model: str, fill_ts: int) -> None:
    sim = Sim(fill_model=model)
    sim.bar(1, 100, 101, 99.5, 100)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.bar(2, 100, 101, 99.0, 100)  # low touches 99
    sim.bar(3, 100, 100.5, 98.5, 99.2)  # low through 99
    assert sim.fills(cid) == [(fill_ts, "BUY", D(1), D("99"), "MAKER")]


def test_a_bar_that_opens_above_a_buy_limit_and_trades_through_it_fills_it_as_maker() -> None:
    sim = Sim()
    sim.bar(1, 100, 101, 99.5, 100)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.bar(2, 100, 100, 98, 98.5)
    assert sim.fills(cid) == [(2, "BUY", D(1), D("99"), "MAKER")]


@pytest.mark.parametrize("model", ["next", "aggressive", "conservative", "queue_aware"])
def test_a_limit_that_crosses_on_arrival_takes(model: str) -> None:
    sim = Sim(fill_model=model, maker_fee_bps=2, taker_fee_bps=5)
    sim.trade(1, 100.0)
    on_trades = sim.submit(1, "BUY", "LIMIT", "1", price="101")
    sim.trade(2, 100.2)  # no book visible: the taker trades at the trade's price
    assert sim.fills(on_trades) == [(2, "BUY", D(1), D("100.20"), "TAKER")]
    assert sim.of(Fill, on_trades)[0].fee == D("0.05010000")
    on_quotes = sim.submit(2, "SELL", "LIMIT", "1", price="99.5")
    sim.quote(3, 100.1, 100.3)  # takes the bid
    assert sim.fills(on_quotes) == [(3, "SELL", D(1), D("100.10"), "TAKER")]


def test_with_a_known_quote_a_limit_entering_on_a_trade_crosses_the_last_ask() -> None:
    sim = Sim()
    sim.quote(1, 99.9, 100.1)
    sim.trade(2, 100.0)
    rests = sim.submit(2, "BUY", "LIMIT", "1", price="100.05")  # above the trade, below the ask
    takes = sim.submit(2, "BUY", "LIMIT", "1", price="100.2")
    sim.trade(3, 100.06)
    assert sim.fills(takes) == [(3, "BUY", D(1), D("100.10"), "TAKER")]
    assert sim.fills(rests) == []
    sim.trade(4, 100.04)  # a seller went below our bid: we were hit first
    assert sim.fills(rests) == [(4, "BUY", D(1), D("100.05"), "MAKER")]


def test_post_only_that_would_take_is_rejected_at_arrival() -> None:
    sim = Sim()
    sim.quote(1, 99.9, 100.1)
    taker = sim.submit(1, "BUY", "LIMIT", "1", price="100.1", post_only=True)
    maker = sim.submit(1, "BUY", "LIMIT", "1", price="100", post_only=True)
    sim.quote(2, 99.9, 100.1)
    [rej] = sim.of(OrderRejected, taker)
    assert (rej.ts_event, rej.reason, rej.check) == (1, "post-only would take liquidity", "")
    assert sim.order_events(maker) == ["OrderAccepted"]
    sim.quote(3, 99.8, 99.9)  # the ask comes through 100: the post-only rests and is hit
    assert sim.fills(maker) == [(3, "BUY", D(1), D("100"), "MAKER")]


# -- queue_aware with a visible book --------------------------------------------


def test_queue_aware_waits_for_the_displayed_queue_ahead_then_fills_partially() -> None:
    sim = Sim(fill_model="queue_aware")
    sim.quote(1, 99.0, 99.5, bid_size=2.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.quote(2, 99.0, 99.5, bid_size=2.0)  # arrives: joins behind 2.0 at 99
    sim.trade(3, 99.0, size=1.5)  # 0.5 left ahead
    assert sim.fills(cid) == []
    sim.trade(4, 99.0, size=0.8)  # 0.3 beyond the queue
    sim.trade(5, 99.0, size=0.5)
    sim.trade(6, 98.99, size=0.00001)  # through: the rest
    assert sim.fills(cid) == [(4, "BUY", D("0.3"), D("99"), "MAKER"),
                              (5, "BUY", D("0.5"), D("99"), "MAKER"),
                              (6, "BUY", D("0.2"), D("99"), "MAKER")]
    assert [f.trade_id for f in sim.of(Fill)] == ["sim-T1", "sim-T2", "sim-T3"]


def test_queue_aware_queue_shrinks_with_the_displayed_size() -> None:
    sim = Sim(fill_model="queue_aware")
    sim.quote(1, 99.0, 99.5, bid_size=5.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.quote(2, 99.0, 99.5, bid_size=5.0)
    sim.quote(3, 99.0, 99.5, bid_size=0.4)  # cancellations ahead of us
    sim.trade(4, 99.0, size=1.0)
    assert sim.fills(cid) == [(4, "BUY", D("0.6"), D("99"), "MAKER")]


def test_queue_aware_behind_the_top_waits_until_its_level_is_shown() -> None:
    sim = Sim(fill_model="queue_aware")
    sim.quote(1, 99.5, 100.0, bid_size=1.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.quote(2, 99.5, 100.0, bid_size=1.0)  # rests behind the top: queue unknown
    sim.trade(3, 99.0, size=3.0)  # its level traded but the queue there is unknown
    assert sim.fills(cid) == []
    sim.quote(4, 99.0, 99.2, bid_size=0.7)  # now shown: 0.7 ahead
    sim.trade(5, 99.0, size=1.0)
    assert sim.fills(cid) == [(5, "BUY", D("0.3"), D("99"), "MAKER")]


def test_queue_aware_improving_the_best_bid_is_first_in_line() -> None:
    sim = Sim(fill_model="queue_aware")
    sim.quote(1, 99.0, 99.5, bid_size=9.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99.1")
    sim.quote(2, 99.0, 99.5, bid_size=9.0)
    sim.trade(3, 99.1, size=0.25)
    assert sim.fills(cid) == [(3, "BUY", D("0.25"), D("99.1"), "MAKER")]


def test_queue_aware_with_a_book_uses_the_depth_at_its_level() -> None:
    sim = Sim(fill_model="queue_aware")
    sim.book(1, [(99.5, 1.0), (99.0, 2.5)], [(100.0, 1.0)], snapshot=True)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.book(2, [(99.5, 1.5)], [])  # arrival: 2.5 shown at 99 in the book
    sim.trade(3, 99.0, size=3.0)
    assert sim.fills(cid) == [(3, "BUY", D("0.5"), D("99"), "MAKER")]
    sim.book(4, [(99.5, 0.0), (99.0, 0.0)], [])  # our level emptied: we are the best bid
    sim.trade(5, 99.0, size=0.1)
    assert sim.fills(cid)[-1] == (5, "BUY", D("0.1"), D("99"), "MAKER")


def test_book_events_act_as_quotes_for_takers() -> None:
    sim = Sim()
    sim.book(1, [(99.5, 1.0)], [(100.0, 1.0), (100.5, 1.0)], snapshot=True)
    cid = sim.submit(1, "BUY", "MARKET", "1")
    sim.book(2, [], [(100.0, 0.0)])  # best ask removed: 100.5
    assert sim.fills(cid) == [(2, "BUY", D(1), D("100.5"), "TAKER")]
    assert sim.of(OrderAccepted, cid)[0].ts_event == 1
