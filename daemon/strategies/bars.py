"""Time bars built from trades, for strategies whose data has no bars of their interval.

A bar covers `[t0, t0 + interval)` with `t0 = floor(ts / interval) * interval`
(aligned to the Unix epoch, so a 1-minute bar starts on the minute in UTC). It
closes when the first trade at or after `t0 + interval` arrives: that trade's
arrival is the first moment the bar is known to be complete, so the bar is
emitted (with `ts_event = t0 + interval`, its close time, as every `Bar`) before
the trade is added to the next bar. Intervals without trades produce no bar;
`flush()` emits the last, open bar at the end of the data.

The per-trade path is a handful of attribute updates: it runs for every trade
of every symbol a bar-driven strategy follows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from events.market import Bar, Trade

__all__ = ["BarBuilder", "format_interval"]

# Units from largest to smallest; an interval is named in the largest unit that
# divides it, the spelling `daemon.config.parse_interval` reads back.
_UNITS = (
    ("w", 7 * 86_400 * 10**9),
    ("d", 86_400 * 10**9),
    ("h", 3_600 * 10**9),
    ("m", 60 * 10**9),
    ("s", 10**9),
    ("ms", 10**6),
)

# Before the first trade: any timestamp is past the (non-existent) bar's end.
_NO_BAR = -(2**63)

# Runs at least this long are absorbed with numpy; shorter ones in a plain loop,
# which costs less than the arrays' set-up.
_VECTOR_RUN = 48


def format_interval(interval_ns: int) -> str:
    """`60_000_000_000` -> `"1m"`; the inverse of `daemon.config.parse_interval`."""
    for unit, size in _UNITS:
        if interval_ns % size == 0:
            return f"{interval_ns // size}{unit}"
    return f"{interval_ns}ns"


class BarBuilder:
    """OHLCV time bars of one (venue, symbol) from its trades.

    `on_trade(trade)` (or `update(ts, price, size)` for raw values) feeds it;
    `on_bar(bar)` is called with each completed bar. Trades must arrive in
    `ts_event` order; a late trade (before the open bar's start) is counted in
    the open bar rather than reopening a closed one.
    """

    __slots__ = (
        "venue",
        "symbol",
        "interval_ns",
        "interval",
        "on_bar",
        "bars",
        "_open_ts",
        "_end",
        "_open",
        "_high",
        "_low",
        "_close",
        "_volume",
    )

    def __init__(
        self,
        venue: str,
        symbol: str,
        interval_ns: int,
        on_bar: Callable[[Bar], object],
        interval: str | None = None,
    ) -> None:
        if interval_ns <= 0:
            raise ValueError(f"bar interval must be positive, got {interval_ns} ns")
        self.venue = venue
        self.symbol = symbol
        self.interval_ns = interval_ns
        self.interval = interval or format_interval(interval_ns)
        self.on_bar = on_bar
        self.bars = 0  # bars emitted so far
        self._open_ts = _NO_BAR
        self._end = _NO_BAR
        self._open = self._high = self._low = self._close = 0.0
        self._volume = 0.0

    def on_trade(self, trade: Trade) -> None:
        """Add one trade (closing the open bar first if the trade is past its end)."""
        # `update`'s body, inlined: one call less on the path every trade takes.
        ts = trade.ts_event
        price = trade.price
        if ts >= self._end:
            self._roll(ts, price, trade.size)
            return
        if price > self._high:
            self._high = price
        elif price < self._low:
            self._low = price
        self._close = price
        self._volume += trade.size

    @property
    def end_ns(self) -> int:
        """The close time of the open bar: a trade at or past it closes the bar."""
        return self._end

    def absorb(self, prices: Sequence[float], sizes: Sequence[float], start: int,
               stop: int) -> None:
        """`on_trade` for the trades whose prices and sizes are
        prices/sizes[start:stop], none of them at or past `end_ns` (the caller
        checks): the same arithmetic in the same order, so the bar is
        bit-identical to one fed trade by trade. Lists or float64 arrays."""
        if stop - start >= _VECTOR_RUN:
            self._absorb_vector(prices, sizes, start, stop)
            return
        if not isinstance(prices, list):  # array elements would be numpy scalars
            prices, sizes = prices[start:stop].tolist(), sizes[start:stop].tolist()  # type: ignore[attr-defined]
            start, stop = 0, stop - start
        high, low, volume = self._high, self._low, self._volume
        for i in range(start, stop):
            price = prices[i]
            if price > high:
                high = price
            elif price < low:
                low = price
            volume += sizes[i]
        self._high, self._low, self._volume = high, low, volume
        self._close = float(prices[stop - 1])

    def _absorb_vector(self, prices: Sequence[float], sizes: Sequence[float], start: int,
                       stop: int) -> None:
        # The loop above, in numpy: a price that is neither above the high nor
        # below the low changes neither, so high/low are the run's fmax/fmin
        # (fmax/fmin skip NaN, as the comparisons do). The volume must be added
        # left to right as the loop adds it: `add.accumulate` is sequential
        # (unlike `sum`, which adds pairwise and rounds differently).
        p = np.asarray(prices[start:stop], dtype=np.float64)
        top, bottom = float(np.fmax.reduce(p)), float(np.fmin.reduce(p))
        if top > self._high:
            self._high = top
        if bottom < self._low:
            self._low = bottom
        acc = np.empty(stop - start + 1)
        acc[0] = self._volume
        acc[1:] = sizes[start:stop]
        self._volume = float(np.add.accumulate(acc)[-1])
        self._close = float(p[-1])

    def update(self, ts: int, price: float, size: float) -> None:
        """Add one trade given as raw values."""
        if ts >= self._end:
            self._roll(ts, price, size)
            return
        if price > self._high:
            self._high = price
        elif price < self._low:
            self._low = price
        self._close = price
        self._volume += size

    def _roll(self, ts: int, price: float, size: float) -> None:
        # Cold path, once per bar: emit the finished bar, then open the trade's own.
        if self._end != _NO_BAR:
            self._emit()
        interval = self.interval_ns
        self._open_ts = ts - ts % interval  # floor, also for negative ts
        self._end = self._open_ts + interval
        self._open = self._high = self._low = self._close = price
        self._volume = size

    def flush(self) -> Bar | None:
        """Emit the open bar (end of data) and return it; None if there is none."""
        if self._end == _NO_BAR:
            return None
        bar = self._emit()
        self._open_ts = self._end = _NO_BAR
        return bar

    def discard(self) -> None:
        """Drop the open bar without emitting it (the data turned out to have bars)."""
        self._open_ts = self._end = _NO_BAR

    @property
    def open_bar_start(self) -> int | None:
        """Start of the bar being built, or None before the first trade."""
        return None if self._end == _NO_BAR else self._open_ts

    def _emit(self) -> Bar:
        end = self._end
        bar = Bar(
            ts_event=end,
            # A derived bar is "received" when it is complete: its close time.
            ts_recv=end,
            venue=self.venue,
            symbol=self.symbol,
            interval=self.interval,
            ts_open=self._open_ts,
            open=self._open,
            high=self._high,
            low=self._low,
            close=self._close,
            volume=self._volume,
        )
        self.bars += 1
        self.on_bar(bar)
        return bar
