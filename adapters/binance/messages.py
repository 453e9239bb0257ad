"""Binance market-data payloads as msgspec Structs named in Binance's own fields.

Spot and USD-M futures share most shapes; fields only one of them sends have
defaults, fields both send are required (a payload missing one raises
`msgspec.ValidationError`). Unknown extra fields (`e`, `M`, kline `f`/`L`/`n`/
`q`/`V`/`Q`/`B`, ...) are ignored. Prices and quantities stay text here (a depth
message's levels stay the raw JSON): the parser decides how to turn them into numbers.

Shapes (docs: web-socket-streams.md, USD-M websocket market streams):

    stream                    spot                            USD-M futures
    <s>@trade                 e E s t p q T m M               e E T s t p q X m
    <s>@aggTrade              e E s a p q f l T m M           e E s a p q f l T m
    <s>@bookTicker            u s b B a A (no e/E/T)          e u s b B a A T E
    <s>@depth[@100ms|@0ms]    e E s U u b a (no pu)           e E T s U u pu b a
    <s>@depth<5|10|20>[@..]   lastUpdateId bids asks (no s)   e E T s U u pu b a
    <s>@kline_<i>             e E s k{t T s i o c h l v x ..} same
    <s>@markPrice[@1s]        (none)                          e E s p i P r T
    REST GET depth            lastUpdateId bids asks          lastUpdateId E T bids asks
"""

from __future__ import annotations

import msgspec

Levels = list[tuple[str, str]]
# A depth message's levels as they came (`[["price","qty"], ...]`): the parser reads
# them into numbers in one pass (`parse.levels_of`) instead of a text per number first.
RawLevels = msgspec.Raw
NO_LEVELS = msgspec.Raw(b"")  # a partial depth's levels the message does not give


class Envelope(msgspec.Struct):
    """A combined-stream message: `{"stream": "btcusdt@trade", "data": {...}}`.

    Both fields default so that control answers on the same socket
    (`{"result":null,"id":1}`, `{"code":2,"msg":"..."}`) decode to an
    envelope with an empty `stream` instead of failing.
    """

    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")


class TradeMsg(msgspec.Struct):
    E: int  # event time, ms
    s: str
    t: int  # trade id
    p: str
    q: str
    T: int  # trade time, ms (both venues send it)
    m: bool  # buyer is the maker: the aggressor sold
    X: str = ""  # futures only: MARKET | LIQUIDATION | ...


class AggTradeMsg(msgspec.Struct):
    E: int
    s: str
    a: int  # aggregate trade id
    p: str
    q: str
    f: int  # first trade id
    l: int  # noqa: E741 - Binance's field name; last trade id
    T: int
    m: bool


class BookTickerMsg(msgspec.Struct):
    u: int  # order book update id
    s: str
    b: str
    B: str
    a: str
    A: str
    T: int = 0  # futures only; spot bookTicker carries no time at all
    E: int = 0  # futures only


class DepthUpdateMsg(msgspec.Struct):
    """Diff depth `<s>@depth[@100ms|@0ms]` (`e` = "depthUpdate")."""

    E: int
    s: str
    U: int  # first update id in the event
    u: int  # final update id in the event
    b: RawLevels
    a: RawLevels
    T: int = 0  # futures only
    pu: int = 0  # futures only: previous event's `u`


class DepthSnapshotMsg(msgspec.Struct):
    """REST `GET depth` answer (spot; futures adds `E`/`T`)."""

    lastUpdateId: int  # noqa: N815
    bids: RawLevels
    asks: RawLevels
    E: int = 0
    T: int = 0


class PartialDepthMsg(msgspec.Struct):
    """Partial book depth `<s>@depth<N>[@100ms]`, either venue's shape.

    Spot sends `{"lastUpdateId","bids","asks"}` (no symbol, no time); futures
    sends a depthUpdate-like `{"e","E","T","s","U","u","pu","b","a"}`. One
    struct with every field optional decodes both; the parser checks that one
    complete shape is present.
    """

    lastUpdateId: int = -1  # noqa: N815 - spot
    bids: RawLevels = NO_LEVELS  # spot
    asks: RawLevels = NO_LEVELS  # spot
    E: int = 0  # futures
    T: int = 0  # futures
    s: str = ""  # futures
    U: int = 0  # futures
    u: int = -1  # futures
    pu: int = 0  # futures
    b: RawLevels = NO_LEVELS  # futures
    a: RawLevels = NO_LEVELS  # futures


class KlineData(msgspec.Struct):
    t: int  # open time, ms
    T: int  # close time, ms (last ms of the bar)
    s: str
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741
    v: str  # base asset volume
    x: bool  # closed


class KlineMsg(msgspec.Struct):
    E: int
    s: str
    k: KlineData


class MarkPriceMsg(msgspec.Struct):
    """USD-M `<s>@markPrice[@1s]` (`e` = "markPriceUpdate"): the mark `p`, index
    `i`, the funding rate `r` that applies at the next funding time `T` (an
    estimate until then), event time `E`."""

    E: int
    s: str
    p: str
    i: str = "0"
    r: str = "0"  # empty for a delivery contract: no funding
    T: int = 0


# A whole combined-stream message of one kind, decoded in one pass (the parser's
# fast path for the streams every market event comes from); `data` as above.


class TradeFrame(msgspec.Struct):
    stream: str
    data: TradeMsg


class AggTradeFrame(msgspec.Struct):
    stream: str
    data: AggTradeMsg


class BookTickerFrame(msgspec.Struct):
    stream: str
    data: BookTickerMsg


class DepthUpdateFrame(msgspec.Struct):
    stream: str
    data: DepthUpdateMsg
