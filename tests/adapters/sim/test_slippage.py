"""Slippage models: fixed bps, spread crossing, volume impact with a
participation cap; always rounded against the taker; makers never slip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sim import SimVenue
from adapters.sim.orders import SimOrder
from adapters.sim.slippage import FixedBps, Hybrid, SpreadCross, VolumeImpact
from events.orders import Fill, OrderSubmitted

from .harness import INST, D, Sim


def test_fixed_bps_rounds_away_from_the_taker() -> None:
    sim = Sim(slippage_bps=10)  # the default model when slippage_bps > 0
    assert sim.venue.slippage_model == "fixed_bps"
    sim.trade(1, 100.0)
    buy = sim.submit(1, "BUY", "MARKET", "1")
    sell = sim.submit(1, "SELL", "MARKET", "1")
    sim.trade(2, 100.03)
    assert sim.fills(buy)[0][3] == D("100.14")  # 100.13003 up
    assert sim.fills(sell)[0][3] == D("99.92")  # 99.92997 down


def test_fixed_bps_does_not_touch_resting_limits_and_caps_crossing_limits() -> None:
    sim = Sim(slippage_bps=50)
    sim.quote(1, 99.9, 100.0)
    resting = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    crossing = sim.submit(1, "BUY", "LIMIT", "1", price="100.3")
    sim.quote(2, 99.9, 100.0)  # crossing takes 100 × 1.005 = 100.5, capped at its 100.3
    sim.quote(3, 98.0, 98.5)
    assert sim.fills(crossing) == [(2, "BUY", D(1), D("100.3"), "TAKER")]
    assert sim.fills(resting) == [(3, "BUY", D(1), D("99"), "MAKER")]


def test_spread_model_crosses_half_the_last_spread_on_trades() -> None:
    sim = Sim(slippage_model="spread")
    sim.trade(1, 100.0)
    no_quote_yet = sim.submit(1, "BUY", "MARKET", "1")
    sim.trade(2, 100.0)
    sim.quote(3, 99.9, 100.2)  # half spread 0.15
    buy = sim.submit(3, "BUY", "MARKET", "1")
    sell = sim.submit(3, "SELL", "MARKET", "1")
    sim.trade(4, 100.05)
    on_quote = sim.submit(4, "BUY", "MARKET", "1")
    sim.quote(5, 99.9, 100.2)  # already the far side: nothing added
    assert sim.fills(no_quote_yet)[0][3] == D("100.00")
    assert sim.fills(buy)[0][3] == D("100.20")
    assert sim.fills(sell)[0][3] == D("99.90")
    assert sim.fills(on_quote)[0][3] == D("100.20")


def test_volume_model_caps_each_execution_and_moves_the_price_by_participation() -> None:
    sim = Sim(slippage_model="volume", slippage_bps=10, volume_limit_pct=25)
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "MARKET", "1")
    sim.trade(2, 100.0, size=2.0)  # 0.5 = 25 % of 2: impact 10 × 0.5/2 = 2.5 bps
    sim.trade(3, 100.0, size=4.0)  # 0.5 left (cap 1.0): impact 1.25 bps
    assert sim.fills(cid) == [(2, "BUY", D("0.5"), D("100.03"), "TAKER"),
                              (3, "BUY", D("0.5"), D("100.02"), "TAKER")]
    assert sim.venue.open_orders() == []


def test_slippage_models_directly() -> None:
    fixed = FixedBps(25)
    assert fixed.price(False, D("100.00"), D(1), None, None, False, INST) == D("99.75")
    impact = VolumeImpact(20, 10)
    order = _order("5")
    assert impact.cap(order, D("3.33333"), INST) == D("0.33333")
    assert order.allowance == D("0.000003")  # carried to the next event
    assert impact.cap(order, D("0.00007"), INST) == D("0.00001")  # 0.000007 + 0.000003
    assert order.allowance == D(0)
    assert impact.cap(order, None, INST) == D(5)
    assert impact.price(True, D("50.00"), D(1), None, None, False, INST) == D("50.10")


def test_hybrid_model_crosses_half_the_spread_then_adds_the_volume_impact() -> None:
    sim = Sim(slippage_model="hybrid", slippage_bps=10, volume_limit_pct=25)
    assert sim.venue.slippage_model == "hybrid"
    sim.quote(1, 99.9, 100.1)  # half spread 0.1
    sim.trade(1, 100.0)
    buy = sim.submit(1, "BUY", "MARKET", "1")
    sell = sim.submit(1, "SELL", "MARKET", "1")
    sim.trade(2, 100.0, size=2.0)  # 0.5 each (25 % of 2): impact 2.5 bps
    sim.trade(3, 100.0, size=4.0)  # 0.5 left: impact 1.25 bps
    # buy: 100.1 × 1.00025 = 100.125025 up; 100.1 × 1.000125 = 100.1125125 up
    assert sim.fills(buy) == [(2, "BUY", D("0.5"), D("100.13"), "TAKER"),
                              (3, "BUY", D("0.5"), D("100.12"), "TAKER")]
    # sell: 99.9 × 0.99975 = 99.875025 down; 99.9 × 0.999875 = 99.8875125 down
    assert sim.fills(sell) == [(2, "SELL", D("0.5"), D("99.87"), "TAKER"),
                               (3, "SELL", D("0.5"), D("99.88"), "TAKER")]


def test_hybrid_on_a_quote_adds_only_the_impact_and_without_a_quote_only_the_impact() -> None:
    hybrid = Hybrid(10, 50)
    # on the book the price already is the far side
    assert hybrid.price(True, D("100.10"), D(1), D(4), D("0.1"), True, INST) == D("100.13")
    # no spread known: the volume impact alone
    assert hybrid.price(False, D("100.00"), D(1), D(4), None, False, INST) == D("99.97")
    # no impact (bps 0): the spread model's price
    flat = Hybrid(0, 50)
    assert flat.price(True, D("100.00"), D(1), D(4), D("0.15"), False, INST) == D("100.15")
    order = _order("5")
    assert hybrid.cap(order, D(3), INST) == D("1.5")  # the volume model's cap


@settings(max_examples=200, deadline=None)
@given(buy=st.booleans(), px=st.integers(100, 10_000_000), qty=st.integers(1, 1000),
       size=st.integers(1, 1000), half=st.integers(0, 500), bps=st.integers(0, 100),
       on_book=st.booleans())
def test_hybrid_never_better_than_spread_or_volume_alone_and_never_past_their_sum(
        buy: bool, px: int, qty: int, size: int, half: int, bps: int, on_book: bool) -> None:
    p, q, s, h = D(px) / 100, D(qty) / 100, D(size) / 100, D(half) / 100
    hybrid = Hybrid(bps, 10).price(buy, p, q, s, h, on_book, INST)
    spread = SpreadCross().price(buy, p, q, s, h, on_book, INST)
    volume = VolumeImpact(bps, 10).price(buy, p, q, s, h, on_book, INST)
    worse = (lambda a, b: a >= b) if buy else (lambda a, b: a <= b)
    assert worse(hybrid, spread) and worse(hybrid, volume)  # both costs are paid
    assert hybrid % INST.tick_size == 0
    exact = (spread if on_book else (p + h if buy else p - h))
    impact = bps * q / s / 10_000 if bps else D(0)
    exact = exact * (1 + impact) if buy else exact * (1 - impact)
    assert abs(hybrid - exact) < INST.tick_size or hybrid == INST.tick_size


def _order(qty: str) -> SimOrder:
    sub = OrderSubmitted(ts_event=0, ts_recv=0, venue="sim", symbol="BTCUSDT", strategy_id="s",
                         client_order_id="s-1", side="BUY", order_type="MARKET", qty=D(qty))
    return SimOrder(sub, "sim-1", 0)


def test_volume_cap_below_one_step_per_event_still_fills_the_order() -> None:
    # 10 % of 0.00005 is half a step: a per-event cap rounded down to the step
    # was 0 on every trade and the market order never filled
    sim = Sim(slippage_model="volume", slippage_bps=0, volume_limit_pct=10)
    sim.trade(1, 100.0, size=0.00005)
    cid = sim.submit(1, "BUY", "MARKET", "0.0001")
    for ts in range(2, 22):
        sim.trade(ts, 100.0, size=0.00005)
    assert [f[2] for f in sim.fills(cid)] == [D("0.00001")] * 10  # every second trade
    assert [f[0] for f in sim.fills(cid)] == list(range(3, 22, 2))
    assert sim.venue.open_orders() == []


@settings(max_examples=100, deadline=None)
@given(pct=st.sampled_from([2.5, 10, 25, 100]),
       qty=st.integers(min_value=1, max_value=40),
       events=st.lists(st.tuples(st.sampled_from(["trade", "quote", "bar"]),
                                 st.integers(min_value=1, max_value=400)),
                       min_size=1, max_size=40),
       side=st.sampled_from(["BUY", "SELL"]))
def test_volume_cap_never_exceeds_its_share_of_the_volume_seen_and_always_completes(
        pct: float, qty: int, events: list[tuple[str, int]], side: str) -> None:
    """Sizes are in steps (1e-5); the smallest possible is 1 step, so the
    order must be done once its share of the volume seen reaches qty."""
    step = INST.step_size
    sim = Sim(slippage_model="volume", slippage_bps=5, volume_limit_pct=pct,
              allow_short=True)
    sim.trade(0, 100.0)
    sim.submit(0, side, "MARKET", str(qty * step))
    share = D(repr(pct)) / 100
    seen = filled = D(0)
    n = 0
    while True:
        kind, units = events[n % len(events)]
        before = len(sim.events)
        n += 1
        size = float(units * step)
        if kind == "trade":
            sim.trade(n, 100.0, size=size)
        elif kind == "quote":
            sim.quote(n, 99.99, 100.01, bid_size=size, ask_size=size)
        else:
            sim.bar(n, 100.0, 100.5, 99.5, 100.0, v=size)
        seen += D(repr(size))
        filled += sum((e.qty for e in sim.events[before:] if isinstance(e, Fill)), D(0))
        assert filled <= seen * share, (filled, seen)
        if filled == qty * step:
            break
        assert seen * share < qty * step, "the order should have completed by now"
    assert sim.venue.open_orders() == []


def test_bad_model_names_fail_loudly() -> None:
    with pytest.raises(ValueError, match="slippage_model 'linear'"):
        SimVenue("sim", [INST], print, int, slippage_model="linear")
    with pytest.raises(ValueError, match="fill_model 'optimistic'"):
        SimVenue("sim", [INST], print, int, fill_model="optimistic")
