"""One parser per Binance market-data message type, into tapeloop events.

Covers Spot and USD-M futures (see the shape table in
`adapters.binance.messages`): `@trade`, `@aggTrade`, `@bookTicker`, diff depth
`@depth[@100ms|@0ms]`, partial depth `@depth<5|10|20>[@100ms]`, `@kline_<i>`,
USD-M `@markPrice[@1s]` and the REST depth snapshot.

Funding: a `markPrice` message carries the rate `r` that will be settled at the
next funding time `T`. `StreamParser` remembers each symbol's last (r, T); the
first message with `E >= T` settles it: `parse_events` returns a `FundingRate`
(rate r, `funding_ts` = `ts_event` = T) before that message's `MarkPrice`, once
per funding time.

Decoders are built once, at import. `ts_event` is the venue's time
(trade/transaction time `T` where the message has it, else event time `E`;
spot `bookTicker` and spot partial depth carry no time, so `ts_recv`), and
`ts_recv` the local receive time the caller passes in. A message the parsers do
not know returns None; a malformed one raises `msgspec.DecodeError` /
`msgspec.ValidationError` for the caller to log and skip.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec

from adapters.binance.messages import (
    AggTradeFrame,
    AggTradeMsg,
    BookTickerFrame,
    BookTickerMsg,
    DepthSnapshotMsg,
    DepthUpdateFrame,
    DepthUpdateMsg,
    Envelope,
    KlineMsg,
    Levels,
    MarkPriceMsg,
    PartialDepthMsg,
    RawLevels,
    TradeFrame,
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
from events.perp import FundingRate, MarkPrice

MS = 1_000_000

_envelope = msgspec.json.Decoder(Envelope)
_trade_msg = msgspec.json.Decoder(TradeMsg)
_agg = msgspec.json.Decoder(AggTradeMsg)
_ticker = msgspec.json.Decoder(BookTickerMsg)
_depth = msgspec.json.Decoder(DepthUpdateMsg)
_snapshot = msgspec.json.Decoder(DepthSnapshotMsg)
_partial = msgspec.json.Decoder(PartialDepthMsg)
_kline = msgspec.json.Decoder(KlineMsg)
_mark = msgspec.json.Decoder(MarkPriceMsg)

# Partial book depth level counts Binance serves (`@depth5`, `@depth10`, `@depth20`).
PARTIAL_DEPTH_LEVELS = frozenset({"5", "10", "20"})

Parser = Callable[[bytes, str, int], Event | None]


def _trade(m: TradeMsg, venue: str, ts_recv: int) -> Trade:
    return Trade(
        ts_event=(m.T or m.E) * MS, ts_recv=ts_recv, venue=venue, symbol=m.s,
        price=float(m.p), size=float(m.q),
        aggressor=AGGRESSOR_SELL if m.m else AGGRESSOR_BUY, trade_id=str(m.t),
    )


def parse_trade(raw: bytes | msgspec.Raw, venue: str, ts_recv: int) -> Trade:
    return _trade(_trade_msg.decode(raw), venue, ts_recv)


def _agg_trade(m: AggTradeMsg, venue: str, ts_recv: int) -> Trade:
    return Trade(
        ts_event=m.T * MS, ts_recv=ts_recv, venue=venue, symbol=m.s,
        price=float(m.p), size=float(m.q),
        aggressor=AGGRESSOR_SELL if m.m else AGGRESSOR_BUY, trade_id=str(m.a),
    )


def parse_agg_trade(raw: bytes | msgspec.Raw, venue: str, ts_recv: int) -> Trade:
    return _agg_trade(_agg.decode(raw), venue, ts_recv)


def _book_ticker(m: BookTickerMsg, venue: str, ts_recv: int) -> Quote:
    # Spot bookTicker has no timestamp: the receive time is the best we know.
    ts = (m.T or m.E) * MS or ts_recv
    return Quote(
        ts_event=ts, ts_recv=ts_recv, venue=venue, symbol=m.s,
        bid=float(m.b), ask=float(m.a), bid_size=float(m.B), ask_size=float(m.A),
    )


def parse_book_ticker(raw: bytes | msgspec.Raw, venue: str, ts_recv: int) -> Quote:
    return _book_ticker(_ticker.decode(raw), venue, ts_recv)


# A depth message's levels, `[["price","qty"], ...]`, read straight into floats: msgspec's
# lax mode reads the text "58710.20" as the float `float("58710.20")` gives, without a
# str object per number first (a 68-level USD-M update: ~11 µs instead of ~45). Lax mode
# also takes a JSON number, and refuses some text `float()` takes (" 1", "1_0", "+1",
# "012"); "-0" would lose its sign. So it decides only for levels that are all text (two
# strings per level: four quotes) and have no "-" (Binance's never do); anything else is
# read the reference way, text then `float()`, which keeps its events and its errors
# (tests/adapters/binance/test_levels.py holds the two to the same floats, bit for bit).
_levels_lax = msgspec.json.Decoder(list[tuple[float, float]], strict=False)
_levels_text = msgspec.json.Decoder(Levels)


def _levels(levels: Levels) -> tuple[list[float], list[float]]:
    return [float(p) for p, _ in levels], [float(q) for _, q in levels]


def levels_of(raw: RawLevels) -> tuple[list[float], list[float]]:
    """The prices and the quantities of a depth message's raw levels."""
    text = bytes(raw)
    if b"-" not in text:
        try:
            pairs = _levels_lax.decode(text)
        except msgspec.ValidationError:
            pairs = None
        if pairs is not None and text.count(b'"') == 4 * len(pairs):
            return [p for p, _ in pairs], [q for _, q in pairs]
    return _levels(_levels_text.decode(text))


def _given(raw: RawLevels) -> bool:
    """A partial depth's levels are in the message (and not `null`)."""
    return len(raw) > 0 and bytes(raw) != b"null"


def _depth_update(m: DepthUpdateMsg, venue: str, ts_recv: int) -> BookDelta:
    bp, bs = levels_of(m.b)
    ap, asz = levels_of(m.a)
    return BookDelta(
        ts_event=(m.T or m.E) * MS, ts_recv=ts_recv, venue=venue, symbol=m.s,
        bid_prices=bp, bid_sizes=bs, ask_prices=ap, ask_sizes=asz,
        first_update_id=m.U, last_update_id=m.u, prev_update_id=m.pu,
    )


def parse_depth_update(raw: bytes | msgspec.Raw, venue: str, ts_recv: int) -> BookDelta:
    """Diff depth; a quantity of 0 deletes the level (kept as 0.0 here)."""
    return _depth_update(_depth.decode(raw), venue, ts_recv)


# Parsers whose whole combined-stream message `StreamParser` may decode in one
# pass: the decoder of the message and what makes the event of its `data`.
_WHOLE: dict[Callable[..., object], tuple[msgspec.json.Decoder[Any], Callable[..., Event]]] = {
    parse_trade: (msgspec.json.Decoder(TradeFrame), _trade),
    parse_agg_trade: (msgspec.json.Decoder(AggTradeFrame), _agg_trade),
    parse_book_ticker: (msgspec.json.Decoder(BookTickerFrame), _book_ticker),
    parse_depth_update: (msgspec.json.Decoder(DepthUpdateFrame), _depth_update),
}
# How Binance starts every combined-stream message: the stream's name comes first.
_STREAM_FIRST = b'{"stream":"'


def parse_depth_snapshot(raw: bytes | msgspec.Raw, venue: str, ts_recv: int,
                         symbol: str) -> BookSnapshot:
    """REST `GET depth` answer; the symbol is the one the caller asked for."""
    m = _snapshot.decode(raw)
    bp, bs = levels_of(m.bids)
    ap, asz = levels_of(m.asks)
    return BookSnapshot(
        ts_event=(m.T or m.E) * MS or ts_recv, ts_recv=ts_recv, venue=venue, symbol=symbol,
        bid_prices=bp, bid_sizes=bs, ask_prices=ap, ask_sizes=asz, last_update_id=m.lastUpdateId,
    )


def parse_partial_depth(raw: bytes | msgspec.Raw, venue: str, ts_recv: int,
                        symbol: str) -> BookSnapshot:
    """Partial book depth `<s>@depth<N>[@100ms]` → a top-N `BookSnapshot`.

    Spot: `{"lastUpdateId","bids","asks"}` with no symbol or time, so `symbol`
    (the stream name's, upper-cased) and `ts_recv` are used. Futures: the
    depthUpdate-like shape with `s`, `u` and `T`/`E`. A payload with neither
    complete shape raises `msgspec.ValidationError`.
    """
    m = _partial.decode(raw)
    if m.lastUpdateId >= 0 and _given(m.bids) and _given(m.asks):
        bids, asks, last_id, sym = m.bids, m.asks, m.lastUpdateId, symbol
    elif m.u >= 0 and _given(m.b) and _given(m.a) and m.s:
        bids, asks, last_id, sym = m.b, m.a, m.u, m.s
    else:
        raise msgspec.ValidationError(
            "partial depth: neither spot {lastUpdateId, bids, asks} nor futures {s, u, b, a}"
        )
    bp, bs = levels_of(bids)
    ap, asz = levels_of(asks)
    return BookSnapshot(
        ts_event=(m.T or m.E) * MS or ts_recv, ts_recv=ts_recv, venue=venue, symbol=sym,
        bid_prices=bp, bid_sizes=bs, ask_prices=ap, ask_sizes=asz, last_update_id=last_id,
    )


def parse_kline(raw: bytes | msgspec.Raw, venue: str, ts_recv: int) -> Bar | None:
    """Only closed klines become bars (an open one is still changing).

    `ts_open` is the open time `t`; `ts_event` is the close time `T` + 1 ms,
    i.e. the instant the bar's interval ends.
    """
    m = _kline.decode(raw)
    k = m.k
    if not k.x:
        return None
    return Bar(
        ts_event=(k.T + 1) * MS, ts_recv=ts_recv, venue=venue, symbol=k.s, interval=k.i,
        ts_open=k.t * MS, open=float(k.o), high=float(k.h), low=float(k.l),
        close=float(k.c), volume=float(k.v),
    )


def parse_mark_price(raw: bytes | msgspec.Raw, venue: str, ts_recv: int) -> MarkPrice:
    """USD-M `<s>@markPrice[@1s]`: stamped at the event time `E`; the rate `r`
    and the funding time `T` it applies at ride along (0 when not sent)."""
    m = _mark.decode(raw)
    return MarkPrice(
        ts_event=m.E * MS, ts_recv=ts_recv, venue=venue, symbol=m.s, mark=float(m.p),
        index=float(m.i or 0), funding_rate=float(m.r or 0), next_funding_ts=m.T * MS,
    )


def parser_for_stream(stream: str) -> Parser | None:
    """The parser for a stream name such as `btcusdt@depth@100ms`, or None.

    None for anything not listed in the module docstring: other streams,
    `!serverShutdown` and other `!`-streams, an empty name.
    """
    parts = stream.split("@")
    if len(parts) < 2 or not parts[0] or parts[0].startswith("!"):
        return None
    kind = parts[1]
    if kind == "trade":
        return parse_trade
    if kind == "aggTrade":
        return parse_agg_trade
    if kind == "bookTicker":
        return parse_book_ticker
    if kind.startswith("kline_"):
        return parse_kline
    if kind == "markPrice":
        return parse_mark_price
    if kind == "depth":
        return parse_depth_update
    if kind.startswith("depth") and kind[5:] in PARTIAL_DEPTH_LEVELS:
        return partial(parse_partial_depth, symbol=parts[0].upper())
    return None


class StreamParser:
    """Turns combined-stream messages into events, caching a parser per stream."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._parsers: dict[str, Parser | None] = {}
        # by the stream's name as the message's bytes spell it: the whole message's
        # decoder, the event's maker, the name (see `parse`)
        self._whole: dict[bytes, tuple[msgspec.json.Decoder[Any], Callable[..., Event], str]] = {}
        self.unknown = 0
        self._funding = FundingSettlement(venue)

    def parse(self, raw: bytes, ts_recv: int) -> Event | None:
        """One combined-stream message → one event, or None.

        Contract (there is no custom `ParseError`):
        - returns an event for a known market-data stream;
        - returns None, and counts it in `self.unknown`, for an unknown stream,
          for `!serverShutdown`, and for control messages on the socket
          (`{"result":...,"id":...}`, `{"code":...,"msg":...}`) — these never
          raise;
        - returns None (not counted) for an open kline, which is not a bar yet;
        - raises `msgspec.DecodeError` for bytes that are not valid JSON, and
          `msgspec.ValidationError` (a subclass of DecodeError) for a payload of
          a known stream that misses a required field or has a wrong type.
          The caller logs and skips the message.
        """
        event = self._one_pass(raw, ts_recv)
        if event is not None:
            return event
        events = self._by_envelope(raw, ts_recv)
        return events[-1] if events else None

    def parse_events(self, raw: bytes, ts_recv: int) -> list[Event]:
        """One message → its events: as `parse`, and a `markPrice` message that
        passes the announced funding time gives the settled `FundingRate`
        first (see the module docstring). `parse` returns only the last event
        (the mark): a USD-M consumer wanting funding calls this."""
        event = self._one_pass(raw, ts_recv)
        if event is not None:
            return [event]
        return self._by_envelope(raw, ts_recv)

    def _one_pass(self, raw: bytes, ts_recv: int) -> Event | None:
        """The event of a trade, aggTrade, bookTicker or diff depth stream seen
        before, from the message in one decode (no envelope first, no Raw of its
        data); None: the message goes the envelope way, which gives the same events
        and errors (tests/adapters/binance/test_parse.py) and says what is wrong."""
        if raw.startswith(_STREAM_FIRST):
            whole = self._whole.get(raw[11:raw.find(b'"', 11)])
            if whole is not None:
                decoder, make, stream = whole
                try:
                    message = decoder.decode(raw)
                except msgspec.DecodeError:
                    return None
                # (another stream's name repeated after this one: the envelope way)
                if message.stream == stream:
                    return make(message.data, self.venue, ts_recv)
        return None

    def _by_envelope(self, raw: bytes, ts_recv: int) -> list[Event]:
        env = _envelope.decode(raw)
        parser = self._parsers.get(env.stream, False)
        if parser is False:
            parser = parser_for_stream(env.stream)
            self._parsers[env.stream] = parser
            whole = _WHOLE.get(parser)  # type: ignore[arg-type]
            if whole is not None and env.stream.isascii():
                self._whole[env.stream.encode()] = (*whole, env.stream)
        if parser is None:
            self.unknown += 1
            return []
        event = parser(env.data, self.venue, ts_recv)  # type: ignore[operator]
        if event is None:
            return []
        if type(event) is MarkPrice:
            funding = self._funding.settle(event)
            if funding is not None:
                return [funding, event]
        return [event]


class FundingSettlement:
    """Funding rates settled, from a stream of marks that announce them: each
    `MarkPrice` before its `next_funding_ts` carries the rate for that time; the
    first mark at or after it settles it, once, with the rate and the mark of the
    last message before it (Binance settles at T with the last rate announced).
    A funding time no message reached (the stream was down across it) settles
    nothing: a live venue recovers that payment from its history, not a guess.
    Used by `StreamParser`, the USD-M venue and the ccxt feed's mark prices."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        # per symbol: (funding time, its rate, the last mark before it) as the last
        # mark announced them, and the last funding time settled (each once)
        self._next_funding: dict[str, tuple[int, float, float]] = {}
        self._settled: dict[str, int] = {}

    def settle(self, mark: MarkPrice) -> FundingRate | None:
        """The funding settled by the time of `mark`, if one is due (once)."""
        symbol = mark.symbol
        due = self._next_funding.get(symbol)
        if mark.next_funding_ts > mark.ts_event:  # only a message before T announces T
            self._next_funding[symbol] = (mark.next_funding_ts, mark.funding_rate, mark.mark)
        if due is None:
            return None
        funding_ts, rate, at_mark = due
        if mark.ts_event < funding_ts or self._settled.get(symbol, 0) >= funding_ts:
            return None
        self._settled[symbol] = funding_ts
        return FundingRate(ts_event=funding_ts, ts_recv=mark.ts_recv, venue=self.venue,
                           symbol=symbol, rate=rate, funding_ts=funding_ts, mark=at_mark)
