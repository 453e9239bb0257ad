"""Slippage models: fixed bps, spread crossing, volume impact with a
participation cap; always rounded against the taker; makers never slip."""

from __future__ import annotations

import pytest

from adapters.sim import SimVenue
from adapters.sim.slippage import FixedBps, VolumeImpact

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
    assert impact.cap(D(5), D("3.33333"), INST) == D("0.33333")
    assert impact.cap(D(5), None, INST) == D(5)
    assert impact.price(True, D("50.00"), D(1), None, None, False, INST) == D("50.10")


def test_bad_model_names_fail_loudly() -> None:
    with pytest.raises(ValueError, match="slippage_model 'linear'"):
        SimVenue("sim", [INST], print, int, slippage_model="linear")
    with pytest.raises(ValueError, match="fill_model 'optimistic'"):
        SimVenue("sim", [INST], print, int, fill_model="optimistic")
