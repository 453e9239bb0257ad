"""BarBuilder: epoch-aligned OHLCV time bars from trades, golden against freqtrade's 1m bars."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from daemon.strategies.bars import BarBuilder, format_interval
from events.market import Bar, Trade

MIN = 60 * 10**9


def trade(ts: int, price: float, size: float = 1.0) -> Trade:
    return Trade(ts_event=ts, ts_recv=ts, venue="v", symbol="X", price=price, size=size)


def test_bar_closes_on_the_first_trade_past_its_end_before_that_trade_counts() -> None:
    bars: list[Bar] = []
    b = BarBuilder("v", "X", MIN, bars.append)
    b.on_trade(trade(MIN + 5, 10.0, 1.0))
    b.on_trade(trade(MIN + 6, 12.0, 2.0))
    b.on_trade(trade(MIN + 7, 9.0, 0.5))
    b.on_trade(trade(2 * MIN - 1, 11.0, 1.0))
    assert bars == []
    b.on_trade(trade(2 * MIN, 100.0, 7.0))  # exactly at the end: belongs to the next bar
    (bar,) = bars
    assert (bar.ts_open, bar.ts_event, bar.ts_recv) == (MIN, 2 * MIN, 2 * MIN)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (10.0, 12.0, 9.0, 11.0, 4.5)
    assert (bar.venue, bar.symbol, bar.interval) == ("v", "X", "1m")
    # The open bar holds only the closing trade; flush emits it at the end of data.
    last = b.flush()
    assert last is not None and bars[-1] is last
    assert (last.ts_open, last.open, last.high, last.low, last.volume) == (
        2 * MIN, 100.0, 100.0, 100.0, 7.0)
    assert b.flush() is None


def test_empty_intervals_make_no_bar_and_bars_align_to_the_epoch() -> None:
    bars: list[Bar] = []
    b = BarBuilder("v", "X", 5 * MIN, bars.append)
    b.on_trade(trade(7 * MIN + 3, 1.0))  # bar [5m, 10m)
    b.on_trade(trade(31 * MIN, 2.0))  # bar [30m, 35m): 10m..30m had no trades
    b.flush()
    assert [(x.ts_open, x.ts_event) for x in bars] == [(5 * MIN, 10 * MIN), (30 * MIN, 35 * MIN)]
    assert bars[0].interval == "5m"


def test_discard_drops_the_open_bar() -> None:
    bars: list[Bar] = []
    b = BarBuilder("v", "X", MIN, bars.append)
    b.on_trade(trade(5, 1.0))
    assert b.open_bar_start == 0
    b.discard()
    assert b.flush() is None and bars == []


@pytest.mark.parametrize("ns,text", [(MIN, "1m"), (3_600 * 10**9, "1h"), (250 * 10**6, "250ms"),
                                     (86_400 * 10**9, "1d"), (90 * 10**9, "90s")])
def test_format_interval(ns: int, text: str) -> None:
    from daemon.config import parse_interval

    assert format_interval(ns) == text
    assert parse_interval(text) == ns


def test_golden_freqtrade_xrp_eth_1m(shared_data: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    trades = pq.read_table(shared_data / "freqtrade" / "XRP_ETH-trades.parquet")
    golden = feather.read_table(shared_data / "freqtrade" / "XRP_ETH-1m.feather")
    bars: list[Bar] = []
    builder = BarBuilder("binance", "XRPETH", MIN, bars.append)
    for ts_ms, price, amount in zip(trades.column("timestamp").to_pylist(),
                                    trades.column("price").to_pylist(),
                                    trades.column("amount").to_pylist(), strict=True):
        builder.on_trade(trade(ts_ms * 1_000_000, price, amount))
    builder.flush()

    dates = golden.column("date").cast(pa.int64()).to_pylist()  # ns, bar open
    columns = {name: golden.column(name).to_pylist()
               for name in ("open", "high", "low", "close", "volume")}
    assert len(bars) == golden.num_rows == 2469
    for i, bar in enumerate(bars):
        assert bar.ts_open == dates[i], i
        assert bar.ts_event == dates[i] + MIN, i
        assert (bar.open, bar.high, bar.low, bar.close) == (
            columns["open"][i], columns["high"][i], columns["low"][i], columns["close"][i]), i
        assert math.isclose(bar.volume, columns["volume"][i], rel_tol=1e-12, abs_tol=1e-12), i


@settings(max_examples=150, deadline=None)
@given(
    # gaps mostly well under a bar, so that runs grow long enough for numpy
    steps=hst.lists(hst.tuples(hst.one_of(hst.integers(0, 200_000_000),
                                          hst.integers(0, 40_000_000_000)),
                               hst.floats(1.0, 1e6, allow_nan=False),
                               hst.floats(0.0, 1e3, allow_nan=False),
                               hst.one_of(hst.integers(1, 30), hst.integers(40, 400))),
                    min_size=1, max_size=600),
    arrays=hst.booleans(),
)
def test_absorbing_quiet_runs_builds_the_same_bars(steps, arrays) -> None:
    """The replay's quiet runs feed `absorb` with runs that end before a bar
    boundary (as lists or float64 arrays; long runs take the numpy path); the
    bars must be bit-identical to trade-by-trade feeding."""
    from bisect import bisect_left

    from events.market import Trade as T

    trades, ts = [], 1_700_000_000_000_000_000
    for gap, price, size, _ in steps:
        ts += gap
        trades.append(T(ts_event=ts, ts_recv=ts, venue="v", symbol="S", price=price, size=size))
    assert all(type(getattr(t, f)) is float for t in trades for f in ("price", "size"))
    one_by_one: list = []
    a = BarBuilder("v", "S", 60_000_000_000, one_by_one.append)
    for t in trades:
        a.on_trade(t)
    absorbed: list = []
    b = BarBuilder("v", "S", 60_000_000_000, absorbed.append)
    i, runs = 0, iter(s[3] for s in steps)
    prices, sizes = [t.price for t in trades], [t.size for t in trades]
    if arrays:
        prices, sizes = np.array(prices), np.array(sizes)
    while i < len(trades):
        end = bisect_left(trades, b.end_ns, i, min(len(trades), i + next(runs, 5)),
                          key=lambda t: t.ts_event)
        if end > i:
            b.absorb(prices, sizes, i, end)
            i = end
        else:
            b.on_trade(trades[i])
            i += 1
    assert absorbed == one_by_one
    assert a.flush() == b.flush()
    assert all(type(getattr(bar, f)) is float  # never a numpy scalar in a Bar
               for bar in absorbed for f in ("open", "high", "low", "close", "volume"))


@pytest.mark.parametrize("seed", range(40))
def test_long_quiet_runs_absorbed_with_numpy_build_the_same_bars(seed: int) -> None:
    """Runs of hundreds of trades (the numpy path) with fractional sizes, whose
    sum depends on the order of the additions: bit-identical bars."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    n = 3000
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.exponential(50_000_000, n)).astype(np.int64)
    prices = rng.uniform(1.0, 1e5, n).round(rng.integers(0, 8))
    sizes = rng.uniform(0.0, 10.0, n) * 10.0 ** rng.integers(-6, 3)
    trades = [Trade(ts_event=int(t), ts_recv=int(t), venue="v", symbol="S", price=float(p),
                    size=float(s)) for t, p, s in zip(ts, prices, sizes, strict=True)]
    one_by_one: list = []
    a = BarBuilder("v", "S", 60_000_000_000, one_by_one.append)
    for t in trades:
        a.on_trade(t)
    absorbed: list = []
    b = BarBuilder("v", "S", 60_000_000_000, absorbed.append)
    as_lists = seed % 2 == 0
    cols = (prices.tolist(), sizes.tolist()) if as_lists else (prices, sizes)
    i = 0
    while i < n:
        end = int(np.searchsorted(ts, b.end_ns, "left"))
        end = min(end, i + int(rng.integers(1, 600)))
        if end > i:
            b.absorb(*cols, i, end)
            i = end
        else:
            b.on_trade(trades[i])
            i += 1
    assert absorbed == one_by_one, f"seed {seed}"
    assert a.flush() == b.flush(), f"seed {seed}"
