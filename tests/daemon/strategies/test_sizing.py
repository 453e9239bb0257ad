"""Position sizing: exact Decimal results, rounded down to the step."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from daemon.strategies import sizing

D = Decimal


def test_round_down_never_rounds_up_and_never_goes_negative() -> None:
    assert sizing.round_down(0.12349, "0.001") == D("0.123")
    assert sizing.round_down(D("0.3"), 0.1) == D("0.3")  # 0.1 is one tenth, not 0.1000..055
    assert sizing.round_down(-1, "0.1") == 0
    with pytest.raises(ValueError):
        sizing.round_down(1, 0)


def test_fixed() -> None:
    assert sizing.fixed(0.0105, "0.001") == D("0.010")


def test_fixed_fractional_risks_the_fraction_between_entry_and_stop() -> None:
    # 1% of 100k = 1000 at risk; 2000 per unit between entry and stop -> 0.5 units
    assert sizing.fixed_fractional(100_000, 0.01, 50_000, 48_000, "0.0001") == D("0.5")
    assert sizing.fixed_fractional(100_000, 0.01, 48_000, 50_000, "0.0001") == D("0.5")  # short
    with pytest.raises(ValueError):
        sizing.fixed_fractional(1, 0.01, 5, 5, 1)


def test_volatility_target() -> None:
    # target 20% vs realised 80% -> a quarter of equity in notional: 25k / 50k = 0.5
    assert sizing.volatility_target(100_000, 50_000, 0.2, 0.8, "0.001") == D("0.5")
    # capped at 1x leverage: 40% / 10% would be 4x
    assert sizing.volatility_target(100_000, 50_000, 0.4, 0.1, "0.001", max_leverage=1) == D(2)
    assert sizing.volatility_target(100_000, 50_000, 0.2, 0, "0.001") == 0


def test_capped_kelly() -> None:
    assert sizing.kelly_fraction(0.6, 1) == D("0.2")
    assert sizing.kelly_fraction(0.4, 1) == D("-0.2")
    # f* = 0.2 under the 0.25 cap: 0.2 * 10k / 100 = 20 units
    assert sizing.capped_kelly(10_000, 100, 0.6, 1, 1) == 20
    # f* = 0.55 - 0.45/2 = 0.325, capped at 0.25 -> 25 units
    assert sizing.capped_kelly(10_000, 100, 0.55, 2, 1) == 25
    assert sizing.capped_kelly(10_000, 100, 0.4, 1, 1) == 0  # no edge, no bet
    with pytest.raises(ValueError):
        sizing.kelly_fraction(1.5, 1)


def test_optimal_f_matches_a_brute_force_search() -> None:
    # Vince's classic example: trades of +9, +18, +7, +1, +10, -5, -3, -17, -7
    pnls = [9, 18, 7, 1, 10, -5, -3, -17, -7]

    def twr(f: float) -> float:
        return math.prod(1 + f * (-p / -17) for p in pnls)

    brute = max((i / 10_000 for i in range(1, 10_000)), key=twr)
    f = sizing.optimal_f(pnls)
    assert abs(f - brute) < 1e-3
    assert abs(f - 0.24) < 0.01  # the book's answer: f = .24
    # units = equity / (largest loss / f) = 10_000 / (17 / 0.24) ~= 141
    assert sizing.optimal_f_qty(10_000, pnls, 1) == int(10_000 * f / 17)


def test_optimal_f_without_losses_or_edge() -> None:
    with pytest.raises(ValueError):
        sizing.optimal_f([1, 2, 3])
    assert sizing.optimal_f([-1, -2, 0.5]) == 0.0
    assert sizing.optimal_f_qty(10_000, [-1, -2, 0.5], 1) == 0
