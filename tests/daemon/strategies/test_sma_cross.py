"""SmaCross on real 1-minute BTC-PERP bars: its signals equal a plain loop over the
closes with math.fsum (DESIGN's exact semantics)."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from daemon.trading.api import BUY, SELL
from events.market import Bar
from tests.daemon.strategies.conftest import World
from tests.daemon.strategies.fakes import instrument, strategy_config

MIN = 60 * 10**9
FAST, SLOW, QTY = 10, 30, 0.01


def load_bars(path: Path) -> list[Bar]:
    bars = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            opened = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S.%f")
            ts_open = int(opened.replace(tzinfo=UTC).timestamp()) * 10**9
            bars.append(Bar(ts_event=ts_open + MIN, ts_recv=ts_open + MIN, venue="sim",
                            symbol="BTCUSDT", interval="1m", ts_open=ts_open,
                            open=float(row["open"]), high=float(row["high"]),
                            low=float(row["low"]), close=float(row["close"]),
                            volume=float(row["volume"])))
    return bars


def reference_signals(closes: list[float], fast: int, slow: int) -> list[tuple[int, str]]:
    """The independent computation: a plain loop, flat/long, fills assumed immediate."""
    signals, long = [], False
    for i in range(slow - 1, len(closes)):
        f = math.fsum(closes[i + 1 - fast:i + 1]) / fast
        s = math.fsum(closes[i + 1 - slow:i + 1]) / slow
        if not long and f > s:
            signals.append((i, BUY))
            long = True
        elif long and f < s:
            signals.append((i, SELL))
            long = False
    return signals


@pytest.fixture(scope="module")
def btc_bars(request: pytest.FixtureRequest) -> list[Bar]:
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
    if not path.is_file():
        pytest.skip(f"shared market data not found at {path}")
    return load_bars(path)


@pytest.mark.parametrize("bar_interval", ["1m", None])
def test_signals_equal_the_reference_loop(btc_bars: list[Bar], bar_interval: str | None) -> None:
    assert len(btc_bars) == 45_031
    world = World([instrument("BTCUSDT", tick="0.25", step="0.0001")])
    world.runtime.add(strategy_config("sma", bar_interval=bar_interval,
                                      params={"fast": FAST, "slow": SLOW, "qty": QTY}))
    world.runtime.start()
    world.feed(btc_bars)
    world.runtime.stop()

    expected = reference_signals([b.close for b in btc_bars], FAST, SLOW)
    index_of = {b.ts_event: i for i, b in enumerate(btc_bars)}
    got = [(index_of[ts], req.side)
           for ts, (_, req) in zip(world.gateway.submitted_at, world.gateway.submitted,
                                   strict=True)]
    assert len(expected) > 1000  # a real test: many crossings in a month of minutes
    assert got == expected
    assert all(req.qty == Decimal("0.01") and req.order_type == "MARKET"
               for _, req in world.gateway.submitted)
    final = Decimal("0.01") if expected[-1][1] == BUY else Decimal(0)
    assert world.portfolio.position("sim", "BTCUSDT", "sma").qty == final
    assert world.statuses("sma") == [("sma", "running"), ("sma", "stopped")]


def bar(i: int, close: float) -> Bar:
    return Bar(ts_event=(i + 1) * MIN, ts_recv=(i + 1) * MIN, venue="sim", symbol="BTCUSDT",
               interval="1m", ts_open=i * MIN, open=close, high=close, low=close, close=close,
               volume=1.0)


def test_an_order_in_flight_is_never_doubled() -> None:
    world = World(fill_market=False)
    world.runtime.add(strategy_config("sma", bar_interval="1m",
                                      params={"fast": 2, "slow": 3, "qty": 1}))
    world.runtime.start()
    rising = [bar(i, 100.0 + i) for i in range(10)]
    world.feed(rising)
    # fast > slow from bar 2 on, but the first buy never filled: one order only
    assert [r.side for _, r in world.gateway.submitted] == [BUY]
    world.gateway.fill("sma-1", price=Decimal(102))
    world.feed([bar(10, 50.0)])  # now long, and fast < slow: sell the whole position
    assert [(r.side, r.qty) for _, r in world.gateway.submitted] == [
        (BUY, Decimal(1)), (SELL, Decimal(1))]


def test_a_rejected_order_frees_the_signal() -> None:
    world = World(reject=True)
    world.runtime.add(strategy_config("sma", bar_interval="1m",
                                      params={"fast": 2, "slow": 3, "qty": 1}))
    world.runtime.start()
    world.feed([bar(i, 100.0 + i) for i in range(5)])
    # rejected at once each time, so it tries again on each bar with fast > slow
    assert len(world.gateway.submitted) == 3


def test_equality_does_nothing() -> None:
    world = World()
    world.runtime.add(strategy_config("sma", bar_interval="1m",
                                      params={"fast": 2, "slow": 3, "qty": 1}))
    world.runtime.start()
    world.feed([bar(i, 100.0) for i in range(10)])
    assert world.gateway.submitted == []


def test_state_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "sma.json"
    params = {"fast": 2, "slow": 3, "qty": 1}
    world = World()
    world.runtime.add(strategy_config("sma", bar_interval="1m", params=params, state_file=state))
    world.runtime.start()
    world.feed([bar(0, 100.0), bar(1, 100.0)])
    world.runtime.stop()
    assert state.is_file()

    # A restart trades on the very next bar: the window came back from the state file.
    world = World()
    world.runtime.add(strategy_config("sma", bar_interval="1m", params=params, state_file=state))
    world.runtime.start()
    world.feed([bar(2, 200.0)])
    assert [r.side for _, r in world.gateway.submitted] == [BUY]


def reference_long_short(closes: list[float], fast: int, slow: int) -> list[tuple[int, str]]:
    """Long/short: fills assumed immediate; the first signal opens, each later flips."""
    signals, side = [], 0
    for i in range(slow - 1, len(closes)):
        f = math.fsum(closes[i + 1 - fast:i + 1]) / fast
        s = math.fsum(closes[i + 1 - slow:i + 1]) / slow
        if f > s and side <= 0:
            signals.append((i, BUY))
            side = 1
        elif f < s and side >= 0:
            signals.append((i, SELL))
            side = -1
    return signals


def test_long_short_flips_through_zero_on_each_crossing(btc_bars: list[Bar]) -> None:
    bars = btc_bars[:5000]
    world = World([instrument("BTCUSDT", tick="0.25", step="0.0001")])
    world.runtime.add(strategy_config("sma", bar_interval="1m", params={
        "fast": FAST, "slow": SLOW, "qty": QTY, "short": True}))
    world.runtime.start()
    world.feed(bars)
    world.runtime.stop()
    expected = reference_long_short([b.close for b in bars], FAST, SLOW)
    index_of = {b.ts_event: i for i, b in enumerate(bars)}
    got = [(index_of[ts], req.side)
           for ts, (_, req) in zip(world.gateway.submitted_at, world.gateway.submitted,
                                   strict=True)]
    assert len(expected) > 50 and got == expected
    qtys = [req.qty for _, req in world.gateway.submitted]
    assert qtys[0] == Decimal("0.01") and set(qtys[1:]) == {Decimal("0.02")}
    final = Decimal("0.01") if expected[-1][1] == BUY else Decimal("-0.01")
    assert world.portfolio.position("sim", "BTCUSDT", "sma").qty == final
