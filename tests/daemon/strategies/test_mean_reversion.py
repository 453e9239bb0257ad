"""MeanReversion: z-score entries and exits, long and (optionally) short."""

from __future__ import annotations

from decimal import Decimal

from daemon.trading.api import BUY, SELL
from events.market import Bar
from tests.daemon.strategies.conftest import World
from tests.daemon.strategies.fakes import strategy_config

MIN = 60 * 10**9


def bars(closes: list[float]) -> list[Bar]:
    return [Bar(ts_event=(i + 1) * MIN, ts_recv=(i + 1) * MIN, venue="sim", symbol="BTCUSDT",
                interval="1m", ts_open=i * MIN, open=c, high=c, low=c, close=c, volume=1.0)
            for i, c in enumerate(closes)]


def run(closes: list[float], **params: object) -> World:
    world = World()
    world.runtime.add(strategy_config(
        "mr", "daemon.strategies.mean_reversion:MeanReversion", bar_interval="1m",
        params={"window": 5, "qty": 1, "entry_z": 1.5, "exit_z": 0.5, **params}))
    world.runtime.start()
    world.feed(bars(closes))
    return world


def test_long_entry_below_minus_entry_z_and_exit_near_the_mean() -> None:
    # window 5: [100,101,100,101,90] has z(90) ~ -2.0 -> buy; then back to the mean -> sell
    world = run([100, 101, 100, 101, 90, 95, 98, 100, 99, 100])
    sides = [(r.side, r.qty) for _, r in world.gateway.submitted]
    assert sides == [(BUY, Decimal(1)), (SELL, Decimal(1))]
    assert world.portfolio.position("sim", "BTCUSDT", "mr").qty == 0


def test_short_only_when_allowed() -> None:
    closes = [100, 99, 100, 99, 110, 105, 102, 100, 101, 100]
    assert run(closes).gateway.submitted == []
    sides = [r.side for _, r in run(closes, allow_short=True).gateway.submitted]
    assert sides == [SELL, BUY]
