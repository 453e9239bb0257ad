"""One symbol's public trade history and what Binance derives from it (pure).

`TradeHistory` keeps the last `maxlen` public trades of a symbol (10,000 by default:
Binance's `trades` endpoint too only reaches back so far, and `historicalTrades`
reaches back by id). From it come the answers of `GET /api/v3/trades`,
`historicalTrades`, `aggTrades`, `klines`/`uiKlines`, `ticker/24hr` and the
`@kline_<i>`, `@ticker` and `@miniTicker` streams. The fake prints one
aggregate trade per trade (`a` = its own agg id, `f` = `l` = the trade id), as
Binance does for a taker that meets one maker.

Klines follow Binance (rest-api.md "Kline/Candlestick data"): keyed by open time,
an interval with no trade repeats the previous close with zero volume, the last
one is the unclosed current interval. Intervals `1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h
12h 1d 3d 1w 1M`; weeks open on Monday 00:00 UTC, months on the 1st. They begin
with the interval of the oldest trade still held.
"""

from __future__ import annotations

import bisect
import calendar
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tests.fake_binance.common import ZERO, d8

DAY_MS = 86_400_000
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
             "1d", "3d", "1w", "1M")
_MONDAY_MS = 4 * DAY_MS  # 1970-01-05, the first Monday: weeks are aligned to it


@dataclass(frozen=True)
class HistTrade:
    """One public trade: `buyer_maker` is Binance's `m` / `isBuyerMaker`."""

    trade_id: int
    agg_id: int
    price: Decimal
    qty: Decimal
    time: int
    buyer_maker: bool

    def rest(self) -> dict[str, Any]:
        """GET /api/v3/trades and historicalTrades item."""
        return {"id": self.trade_id, "price": d8(self.price), "qty": d8(self.qty),
                "quoteQty": d8(self.price * self.qty), "time": self.time,
                "isBuyerMaker": self.buyer_maker, "isBestMatch": True}

    def agg(self) -> dict[str, Any]:
        """GET /api/v3/aggTrades item."""
        return {"a": self.agg_id, "p": d8(self.price), "q": d8(self.qty), "f": self.trade_id,
                "l": self.trade_id, "T": self.time, "m": self.buyer_maker, "M": True}


# --- intervals -----------------------------------------------------------------------

def open_time(interval: str, t: int) -> int:
    """The open time (ms) of the `interval` candle holding time `t`."""
    if interval == "1M":
        d = datetime.fromtimestamp(t / 1000, UTC)
        return calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000
    size = int(interval[:-1]) * _UNIT_MS[interval[-1]]
    if interval[-1] == "w":
        return t - (t - _MONDAY_MS) % size
    return t - t % size


def next_open(interval: str, open_ms: int) -> int:
    """The open time of the candle after the one opening at `open_ms`."""
    if interval == "1M":
        d = datetime.fromtimestamp(open_ms / 1000, UTC)
        y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return calendar.timegm((y, m, 1, 0, 0, 0)) * 1000
    return open_ms + int(interval[:-1]) * _UNIT_MS[interval[-1]]


def prev_open(interval: str, open_ms: int) -> int:
    return open_time(interval, open_ms - 1)


# --- the history ---------------------------------------------------------------------

class TradeHistory:
    """The last `maxlen` public trades of one symbol, oldest first."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._trades: deque[HistTrade] = deque(maxlen=maxlen)

    def add(self, trade: HistTrade) -> None:
        self._trades.append(trade)

    def __len__(self) -> int:
        return len(self._trades)

    def last(self) -> HistTrade | None:
        return self._trades[-1] if self._trades else None

    def recent(self, limit: int) -> list[HistTrade]:
        """The `limit` most recent trades, oldest first."""
        n = len(self._trades)
        return [self._trades[i] for i in range(max(0, n - limit), n)]

    def from_id(self, from_id: int, limit: int) -> list[HistTrade]:
        """Trades with id >= `from_id`, oldest first, at most `limit`."""
        trades = list(self._trades)
        i = bisect.bisect_left([t.trade_id for t in trades], from_id)
        return trades[i:i + limit]

    def aggregates(self, *, from_id: int | None, start: int | None, end: int | None,
                   limit: int) -> list[HistTrade]:
        """GET /api/v3/aggTrades: from agg id `from_id` on, or within [start, end]
        from `start` on, or (neither) the most recent; oldest first, at most `limit`."""
        trades = list(self._trades)
        if from_id is not None:
            out = [t for t in trades if t.agg_id >= from_id]
            return out[:limit]
        if start is None and end is None:
            return trades[-limit:]
        out = [t for t in trades if (start is None or t.time >= start)
               and (end is None or t.time <= end)]
        return out[:limit] if start is not None else out[-limit:]

    # --- klines -------------------------------------------------------------------

    def klines(self, interval: str, now: int, *, start: int | None, end: int | None,
               limit: int) -> list[list[Any]]:
        """GET /api/v3/klines rows (open time within [start, end]; without `start`,
        the last `limit` up to `end` or now)."""
        if not self._trades:
            return []
        first = open_time(interval, self._trades[0].time)
        last = open_time(interval, now if end is None else min(end, now))
        opens: list[int] = []
        if start is not None:
            o = max(first, open_time(interval, start))
            if o < start:
                o = next_open(interval, o)
            while o <= last and len(opens) < limit:
                opens.append(o)
                o = next_open(interval, o)
        else:
            o = last
            while o >= first and len(opens) < limit:
                opens.append(o)
                o = prev_open(interval, o)
            opens.reverse()
        return [c.row() for c in self._candles(interval, opens)]

    def candle(self, interval: str, now: int) -> Candle | None:
        """The current (unclosed) `interval` candle at `now`, for the kline stream."""
        if not self._trades:
            return None
        return self._candles(interval, [open_time(interval, now)])[0]

    def _candles(self, interval: str, opens: list[int]) -> list[Candle]:
        if not opens:
            return []
        trades = list(self._trades)
        times = [t.time for t in trades]
        i = bisect.bisect_left(times, opens[0])
        prev_close = trades[i - 1].price if i > 0 else trades[0].price
        out = []
        for o in opens:
            close_ms = next_open(interval, o) - 1
            c = Candle(interval, o, close_ms, prev_close)
            i = bisect.bisect_left(times, o, lo=i)
            while i < len(trades) and trades[i].time <= close_ms:
                c.add(trades[i])
                i += 1
            prev_close = c.close
            out.append(c)
        return out

    # --- 24 h statistics ------------------------------------------------------------

    def stats(self, now: int, window_ms: int = DAY_MS) -> Stats:
        """The rolling window statistics of `ticker/24hr` and `@ticker` at `now`."""
        trades = list(self._trades)
        i = bisect.bisect_left([t.time for t in trades], now - window_ms)
        return Stats(trades[i:], trades[i - 1] if i > 0 else None,
                     trades[-1] if trades else None, now - window_ms, now)


class Candle:
    """One kline being built; `row()` is the REST array, `stream()` the `k` object."""

    def __init__(self, interval: str, open_ms: int, close_ms: int, prev_close: Decimal) -> None:
        self.interval, self.open_ms, self.close_ms = interval, open_ms, close_ms
        self.open = self.high = self.low = self.close = prev_close
        self.volume = self.quote = self.taker_base = self.taker_quote = ZERO
        self.count, self.first_id, self.last_id = 0, -1, -1

    def add(self, t: HistTrade) -> None:
        if self.count == 0:
            self.open = self.high = self.low = t.price
            self.first_id = t.trade_id
        self.high, self.low, self.close = max(self.high, t.price), min(self.low, t.price), t.price
        self.volume += t.qty
        self.quote += t.qty * t.price
        if not t.buyer_maker:  # the taker bought
            self.taker_base += t.qty
            self.taker_quote += t.qty * t.price
        self.count += 1
        self.last_id = t.trade_id

    def row(self) -> list[Any]:
        return [self.open_ms, d8(self.open), d8(self.high), d8(self.low), d8(self.close),
                d8(self.volume), self.close_ms, d8(self.quote), self.count, d8(self.taker_base),
                d8(self.taker_quote), "0"]

    def stream(self, symbol: str, now: int) -> dict[str, Any]:
        return {"t": self.open_ms, "T": self.close_ms, "s": symbol, "i": self.interval,
                "f": self.first_id, "L": self.last_id, "o": d8(self.open), "c": d8(self.close),
                "h": d8(self.high), "l": d8(self.low), "v": d8(self.volume), "n": self.count,
                "x": now > self.close_ms, "q": d8(self.quote), "V": d8(self.taker_base),
                "Q": d8(self.taker_quote), "B": "0"}


class Stats:
    """Rolling-window statistics of the trades in [open_ms, close_ms]."""

    def __init__(self, window: list[HistTrade], before: HistTrade | None,
                 last: HistTrade | None, open_ms: int, close_ms: int) -> None:
        self.open_ms, self.close_ms = open_ms, close_ms
        self.count = len(window)
        last_price = last.price if last is not None else ZERO
        self.prev_close = before.price if before is not None else ZERO
        self.open = window[0].price if window else last_price
        self.last = last_price
        self.last_qty = window[-1].qty if window else ZERO
        self.high = max((t.price for t in window), default=last_price)
        self.low = min((t.price for t in window), default=last_price)
        self.volume = sum((t.qty for t in window), ZERO)
        self.quote = sum((t.qty * t.price for t in window), ZERO)
        self.first_id = window[0].trade_id if window else -1
        self.last_id = window[-1].trade_id if window else -1

    @property
    def change(self) -> Decimal:
        return self.last - self.open

    @property
    def change_percent(self) -> str:
        pct = self.change / self.open * 100 if self.open else ZERO
        return f"{pct:.3f}"

    @property
    def weighted_avg(self) -> Decimal:
        return self.quote / self.volume if self.volume else ZERO

    def rest(self, symbol: str, book: tuple[tuple[Decimal, Decimal] | None,
                                            tuple[Decimal, Decimal] | None],
             mini: bool = False) -> dict[str, Any]:
        """GET /api/v3/ticker/24hr object (type FULL, or MINI)."""
        if mini:
            return {"symbol": symbol, "openPrice": d8(self.open), "highPrice": d8(self.high),
                    "lowPrice": d8(self.low), "lastPrice": d8(self.last),
                    "volume": d8(self.volume), "quoteVolume": d8(self.quote),
                    "openTime": self.open_ms, "closeTime": self.close_ms,
                    "firstId": self.first_id, "lastId": self.last_id, "count": self.count}
        (bid, bid_qty), (ask, ask_qty) = book[0] or (ZERO, ZERO), book[1] or (ZERO, ZERO)
        return {"symbol": symbol, "priceChange": d8(self.change),
                "priceChangePercent": self.change_percent,
                "weightedAvgPrice": d8(self.weighted_avg), "prevClosePrice": d8(self.prev_close),
                "lastPrice": d8(self.last), "lastQty": d8(self.last_qty),
                "bidPrice": d8(bid), "bidQty": d8(bid_qty), "askPrice": d8(ask),
                "askQty": d8(ask_qty), "openPrice": d8(self.open), "highPrice": d8(self.high),
                "lowPrice": d8(self.low), "volume": d8(self.volume),
                "quoteVolume": d8(self.quote), "openTime": self.open_ms,
                "closeTime": self.close_ms, "firstId": self.first_id, "lastId": self.last_id,
                "count": self.count}

    def ticker_event(self, symbol: str, now: int,
                     book: tuple[tuple[Decimal, Decimal] | None,
                                 tuple[Decimal, Decimal] | None]) -> dict[str, Any]:
        """The `<symbol>@ticker` payload (`24hrTicker`)."""
        (bid, bid_qty), (ask, ask_qty) = book[0] or (ZERO, ZERO), book[1] or (ZERO, ZERO)
        return {"e": "24hrTicker", "E": now, "s": symbol, "p": d8(self.change),
                "P": self.change_percent, "w": d8(self.weighted_avg), "x": d8(self.prev_close),
                "c": d8(self.last), "Q": d8(self.last_qty), "b": d8(bid), "B": d8(bid_qty),
                "a": d8(ask), "A": d8(ask_qty), "o": d8(self.open), "h": d8(self.high),
                "l": d8(self.low), "v": d8(self.volume), "q": d8(self.quote),
                "O": self.open_ms, "C": self.close_ms, "F": self.first_id, "L": self.last_id,
                "n": self.count}

    def mini_event(self, symbol: str, now: int) -> dict[str, Any]:
        """The `<symbol>@miniTicker` payload (`24hrMiniTicker`)."""
        return {"e": "24hrMiniTicker", "E": now, "s": symbol, "c": d8(self.last),
                "o": d8(self.open), "h": d8(self.high), "l": d8(self.low),
                "v": d8(self.volume), "q": d8(self.quote)}
