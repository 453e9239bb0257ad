"""Slippage models: fixed bps, spread crossing, volume impact with a
participation cap; always rounded against the taker; makers never slip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sim import SimVenue
from adapters.sim.orders import SimOrder
from adapters.sim.slippage import FixedBps, VolumeImpact
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
