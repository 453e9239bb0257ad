"""Binance market-data payloads as msgspec Structs named in Binance's own fields.

Spot and USD-M futures share these shapes; futures adds fields (`T`, `pu`,
`X`) that spot lacks, so those have defaults. Prices and quantities stay text
here: the parser decides how to turn them into numbers.
"""

from __future__ import annotations

import msgspec


class Envelope(msgspec.Struct):
    """A combined-stream message: `{"stream": "btcusdt@trade", "data": {...}}`."""

    stream: str
    data: msgspec.Raw


class TradeMsg(msgspec.Struct):
    E: int  # event time, ms
    s: str
    t: int  # trade id
    p: str
    q: str
    m: bool  # buyer is the maker: the aggressor sold
    T: int = 0  # trade time, ms
    X: str = ""  # futures: MARKET | LIQUIDATION | ...


class AggTradeMsg(msgspec.Struct):
    E: int
    s: str
    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 - Binance's field name
    T: int
    m: bool


class BookTickerMsg(msgspec.Struct):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str
    T: int = 0  # futures only; spot bookTicker carries no time at all
    E: int = 0


class DepthUpdateMsg(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    T: int = 0
    pu: int = 0  # futures only


class DepthSnapshotMsg(msgspec.Struct):
    """REST `GET depth` answer (and the partial book stream `@depth<N>`)."""

    lastUpdateId: int  # noqa: N815
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    E: int = 0
    T: int = 0


class KlineData(msgspec.Struct):
    t: int  # open time, ms
    T: int  # close time, ms (last ms of the bar)
    s: str
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741
    v: str
    x: bool  # closed


class KlineMsg(msgspec.Struct):
    E: int
    s: str
    k: KlineData
