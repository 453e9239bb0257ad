"""Market data events: trades, top of book, order book and bars.

Market data prices and sizes are float64 (venue data is decimal text, but float
is exact enough to *observe* a market and 10x cheaper). Anything that becomes
money (orders, fills, positions) is Decimal; see `events.orders`.
"""

from __future__ import annotations

from events.base import Event

# Aggressor side of a trade, from the taker's point of view.
AGGRESSOR_UNKNOWN = 0
AGGRESSOR_BUY = 1
AGGRESSOR_SELL = 2


class Trade(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    symbol: str
    price: float
    size: float
    aggressor: int = AGGRESSOR_UNKNOWN
    trade_id: str = ""


class Quote(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """Best bid and offer."""

    venue: str
    symbol: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float


class BookDelta(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """An incremental book update: each level's new absolute size (0 removes it).

    `first_update_id`/`last_update_id`/`prev_update_id` carry the venue's sequence
    numbers so a book builder can detect gaps (Binance U/u/pu).
    """

    venue: str
    symbol: str
    bid_prices: list[float]
    bid_sizes: list[float]
    ask_prices: list[float]
    ask_sizes: list[float]
    first_update_id: int = 0
    last_update_id: int = 0
    prev_update_id: int = 0


class BookSnapshot(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """A full (or depth-limited) book image; replaces the local book."""

    venue: str
    symbol: str
    bid_prices: list[float]
    bid_sizes: list[float]
    ask_prices: list[float]
    ask_sizes: list[float]
    last_update_id: int = 0


class Bar(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """An OHLCV bar. `ts_event` is the bar's *close* time (the moment it is known,
    so no strategy can see a bar before it ends); `ts_open` is its open time."""

    venue: str
    symbol: str
    interval: str
    ts_open: int
    open: float
    high: float
    low: float
    close: float
    volume: float
