"""`history.TradeHistory`: the klines, 24 h statistics and trade pages the REST
routes and streams answer, checked as invariants over drawn trade sequences."""

from __future__ import annotations

import calendar
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fake_binance.history import (
    DAY_MS,
    INTERVALS,
    HistTrade,
    TradeHistory,
    next_open,
    open_time,
)

T0 = calendar.timegm((2026, 12, 6, 12, 0, 0)) * 1000  # a Sunday


def ms(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, 0)) * 1000


def test_open_times_by_hand() -> None:
    t = ms(2026, 12, 6, 12, 34) + 56_789  # Sunday 2026-12-06 12:34:56.789
    assert open_time("1s", t) == ms(2026, 12, 6, 12, 34) + 56_000
    assert open_time("1m", t) == ms(2026, 12, 6, 12, 34)
    assert open_time("15m", t) == ms(2026, 12, 6, 12, 30)
    assert open_time("4h", t) == ms(2026, 12, 6, 12)
    assert open_time("1d", t) == ms(2026, 12, 6)
    assert open_time("1w", t) == ms(2026, 11, 30)  # the Monday before
    assert open_time("1M", t) == ms(2026, 12, 1)
    assert next_open("1M", ms(2026, 12, 1)) == ms(2027, 1, 1)
    assert next_open("1M", ms(2027, 1, 1)) == ms(2027, 2, 1)
    assert next_open("1w", ms(2026, 11, 30)) == ms(2026, 12, 7)


def trades_strategy() -> st.SearchStrategy[list[HistTrade]]:
    step = st.tuples(st.integers(0, 400_000),  # ms after the previous trade
                     st.integers(6_390_000, 6_410_000),  # price in cents
                     st.integers(1, 5_000),  # qty in 1e-5
                     st.booleans())

    def build(steps: list[tuple[int, int, int, bool]]) -> list[HistTrade]:
        out, t = [], T0
        for i, (dt, cents, units, maker) in enumerate(steps):
            t += dt
            out.append(HistTrade(1000 + i, 1 + i, Decimal(cents) / 100,
                                 Decimal(units) / 100_000, t, maker))
        return out
    return st.lists(step, min_size=1, max_size=60).map(build)


@settings(max_examples=150, deadline=None)
@given(trades=trades_strategy(), interval=st.sampled_from(INTERVALS[:8]))
def test_klines_account_for_every_trade_once(trades: list[HistTrade], interval: str) -> None:
    """Contiguous candles from the oldest trade's to now's; each trade in exactly
    the candle of its time; empty candles repeat the previous close; o/h/l/c and
    volumes are those of the candle's trades."""
    history = TradeHistory()
    for t in trades:
        history.add(t)
    now = trades[-1].time + 1
    rows = history.klines(interval, now, start=None, end=None, limit=1000)
    if len(rows) == 1000:
        assert rows[-1][0] == open_time(interval, now)
        return  # 1s candles over a long draw: only the last 1000 are answered
    assert rows[0][0] == open_time(interval, trades[0].time)
    assert rows[-1][0] == open_time(interval, now)
    prev_close = None
    for a, b in zip(rows, rows[1:], strict=False):
        assert b[0] == next_open(interval, a[0]) == a[6] + 1
    for row in rows:
        inside = [t for t in trades if row[0] <= t.time <= row[6]]
        assert row[8] == len(inside)
        assert Decimal(row[5]) == sum((t.qty for t in inside), Decimal(0))
        assert Decimal(row[7]) == sum((t.qty * t.price for t in inside), Decimal(0))
        assert Decimal(row[9]) == sum((t.qty for t in inside if not t.buyer_maker), Decimal(0))
        if inside:
            assert (Decimal(row[1]), Decimal(row[4])) == (inside[0].price, inside[-1].price)
            assert Decimal(row[2]) == max(t.price for t in inside)
            assert Decimal(row[3]) == min(t.price for t in inside)
        else:
            assert len({row[1], row[2], row[3], row[4]}) == 1
            assert Decimal(row[4]) == prev_close
        prev_close = Decimal(row[4])
    assert sum(r[8] for r in rows) == len(trades)


@settings(max_examples=100, deadline=None)
@given(trades=trades_strategy(), cut=st.integers(0, 59), limit=st.integers(1, 20))
def test_klines_paging_by_start_and_end(trades: list[HistTrade], cut: int, limit: int) -> None:
    """A page from `startTime` begins at the first candle opening at or after it; a
    page up to `endTime` ends with the candle holding it; both are slices of the
    whole answer."""
    history = TradeHistory()
    for t in trades:
        history.add(t)
    now = trades[-1].time + 1
    whole = history.klines("1m", now, start=None, end=None, limit=1000)
    start = trades[min(cut, len(trades) - 1)].time
    page = history.klines("1m", now, start=start, end=None, limit=limit)
    first = next((i for i, r in enumerate(whole) if r[0] >= start), len(whole))
    assert page == whole[first:first + limit]  # by open time, as Binance
    page = history.klines("1m", now, start=None, end=start, limit=limit)
    last = next(i for i, r in enumerate(whole) if r[0] <= start <= r[6])
    assert page == whole[max(0, last + 1 - limit):last + 1]


@settings(max_examples=100, deadline=None)
@given(trades=trades_strategy(), back=st.integers(0, DAY_MS))
def test_24h_statistics(trades: list[HistTrade], back: int) -> None:
    history = TradeHistory()
    for t in trades:
        history.add(t)
    now = trades[-1].time + back
    window = [t for t in trades if t.time >= now - DAY_MS]
    s = history.stats(now)
    view = s.rest("BTCUSDT", (None, None))
    assert view["count"] == len(window)
    assert Decimal(view["volume"]) == sum((t.qty for t in window), Decimal(0))
    assert Decimal(view["lastPrice"]) == trades[-1].price
    if window:
        assert (view["firstId"], view["lastId"]) == (window[0].trade_id, window[-1].trade_id)
        assert Decimal(view["openPrice"]) == window[0].price
        assert Decimal(view["priceChange"]) == trades[-1].price - window[0].price
    else:
        assert (view["firstId"], view["lastId"]) == (-1, -1)


def test_history_is_bounded_and_pages_by_id() -> None:
    history = TradeHistory(maxlen=100)
    for i in range(250):
        history.add(HistTrade(i, i + 1, Decimal(1), Decimal(1), T0 + i, False))
    assert len(history) == 100
    assert [t.trade_id for t in history.recent(3)] == [247, 248, 249]
    assert [t.trade_id for t in history.from_id(10, 2)] == [150, 151]  # reaches back so far
    assert [t.trade_id for t in history.from_id(200, 2)] == [200, 201]
    page = history.aggregates(from_id=None, start=T0 + 180, end=T0 + 185, limit=3)
    assert [t.time for t in page] == [T0 + 180, T0 + 181, T0 + 182]
    assert [t.agg_id for t in history.aggregates(from_id=240, start=None, end=None,
                                                  limit=500)] == list(range(240, 251))
