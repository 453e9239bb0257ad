"""One parser per Binance market-data message type, into tapeloop events.

Decoders are built once. `ts_event` is the venue's time (trade/transaction
time `T` where the message has it, else event time `E`), `ts_recv` the local
receive time the caller passes in. A message the parsers do not know returns
None; a malformed one raises `msgspec.DecodeError` / `ValidationError` for the
caller to log and skip.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from adapters.binance.messages import (
    AggTradeMsg,
    BookTickerMsg,
    DepthSnapshotMsg,
    DepthUpdateMsg,
    Envelope,
    KlineMsg,
    TradeMsg,
)
from events.base import Event
from events.market import (
    AGGRESSOR_BUY,
    AGGRESSOR_SELL,
    Bar,
    BookDelta,
    BookSnapshot,
    Quote,
    Trade,
)

MS = 1_000_000

_envelope = msgspec.json.Decoder(Envelope)
_trade = msgspec.json.Decoder(TradeMsg)
_agg = msgspec.json.Decoder(AggTradeMsg)
_ticker = msgspec.json.Decoder(BookTickerMsg)
_depth = msgspec.json.Decoder(DepthUpdateMsg)
_snapshot = msgspec.json.Decoder(DepthSnapshotMsg)
_kline = msgspec.json.Decoder(KlineMsg)

Parser = Callable[[bytes, str, int], Event | None]


def parse_trade(raw: bytes, venue: str, ts_recv: int) -> Trade:
    m = _trade.decode(raw)
    return Trade(
        ts_event=(m.T or m.E) * MS, ts_recv=ts_recv, venue=venue, symbol=m.s,
        price=float(m.p), size=float(m.q),
        aggressor=AGGRESSOR_SELL if m.m else AGGRESSOR_BUY, trade_id=str(m.t),
    )


def parse_agg_trade(raw: bytes, venue: str, ts_recv: int) -> Trade:
    m = _agg.decode(raw)
    return Trade(
        ts_event=m.T * MS, ts_recv=ts_recv, venue=venue, symbol=m.s,
        price=float(m.p), size=float(m.q),
        aggressor=AGGRESSOR_SELL if m.m else AGGRESSOR_BUY, trade_id=str(m.a),
    )


def parse_book_ticker(raw: bytes, venue: str, ts_recv: int) -> Quote:
    m = _ticker.decode(raw)
    # Spot bookTicker has no timestamp: the receive time is the best we know.
    ts = (m.T or m.E) * MS or ts_recv
    return Quote(
        ts_event=ts, ts_recv=ts_recv, venue=venue, symbol=m.s,
        bid=float(m.b), ask=float(m.a), bid_size=float(m.B), ask_size=float(m.A),
    )


def _levels(levels: list[tuple[str, str]]) -> tuple[list[float], list[float]]:
    return [float(p) for p, _ in levels], [float(q) for _, q in levels]


def parse_depth_update(raw: bytes, venue: str, ts_recv: int) -> BookDelta:
    m = _depth.decode(raw)
    bp, bs = _levels(m.b)
    ap, asz = _levels(m.a)
    return BookDelta(
        ts_event=(m.T or m.E) * MS, ts_recv=ts_recv, venue=venue, symbol=m.s,
        bid_prices=bp, bid_sizes=bs, ask_prices=ap, ask_sizes=asz,
        first_update_id=m.U, last_update_id=m.u, prev_update_id=m.pu,
    )


def parse_depth_snapshot(raw: bytes, venue: str, ts_recv: int, symbol: str) -> BookSnapshot:
    m = _snapshot.decode(raw)
    bp, bs = _levels(m.bids)
    ap, asz = _levels(m.asks)
    return BookSnapshot(
        ts_event=(m.T or m.E) * MS or ts_recv, ts_recv=ts_recv, venue=venue, symbol=symbol,
        bid_prices=bp, bid_sizes=bs, ask_prices=ap, ask_sizes=asz, last_update_id=m.lastUpdateId,
    )


def parse_kline(raw: bytes, venue: str, ts_recv: int) -> Bar | None:
    """Only closed klines become bars (an open one is still changing)."""
    m = _kline.decode(raw)
    k = m.k
    if not k.x:
        return None
    return Bar(
        ts_event=(k.T + 1) * MS, ts_recv=ts_recv, venue=venue, symbol=k.s, interval=k.i,
        ts_open=k.t * MS, open=float(k.o), high=float(k.h), low=float(k.l),
        close=float(k.c), volume=float(k.v),
    )


def parser_for_stream(stream: str) -> Parser | None:
    """The parser for a stream name such as `btcusdt@depth@100ms`."""
    kind = stream.split("@", 2)[1] if "@" in stream else stream
    if kind == "trade":
        return parse_trade
    if kind == "aggTrade":
        return parse_agg_trade
    if kind == "bookTicker":
        return parse_book_ticker
    if kind.startswith("kline_"):
        return parse_kline
    if kind == "depth" or (kind.startswith("depth") and "@" not in kind and not kind[5:].isdigit()):
        return parse_depth_update
    return None


class StreamParser:
    """Turns combined-stream messages into events, caching a parser per stream."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._parsers: dict[str, Parser | None] = {}
        self.unknown = 0

    def parse(self, raw: bytes, ts_recv: int) -> Event | None:
        env = _envelope.decode(raw)
        parser = self._parsers.get(env.stream, False)
        if parser is False:
            parser = parser_for_stream(env.stream)
            self._parsers[env.stream] = parser
        if parser is None:
            self.unknown += 1
            return None
        return parser(env.data, self.venue, ts_recv)  # type: ignore[operator]
