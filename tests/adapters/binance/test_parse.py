"""Binance market-data parsers: every payload in section 8 of
`binance-spot-protocol.md` (where the doc elides a value with `…` the test
fills in a concrete one), the USD-M futures shapes, the `StreamParser.parse`
contract, and the message counts of a real USD-M recording."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.binance.parse import (
    StreamParser,
    parse_agg_trade,
    parse_book_ticker,
    parse_depth_snapshot,
    parse_depth_update,
    parse_kline,
    parse_partial_depth,
    parse_trade,
    parser_for_stream,
)
from adapters.binance.stream import read_recording
from events.market import (
    AGGRESSOR_BUY,
    AGGRESSOR_SELL,
    Bar,
    BookDelta,
    BookSnapshot,
    Quote,
    Trade,
)

USDM = Path("/work/shared/data/hftbacktest/usdm/btcusdt_20240808.gz")
MS = 1_000_000
RECV = 1_700_000_000_123_456_789  # a local receive time, ns
V = "binance"


def wrap(stream: str, data: dict | bytes) -> bytes:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return b'{"stream":"' + stream.encode() + b'","data":' + body + b"}"


# --- section 8 payloads (spot), `…` filled in ---------------------------------------------

SPOT_TRADE = {
    "e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345, "p": "0.001", "q": "100",
    "T": 1672515782134, "m": True, "M": True,
}
SPOT_AGG_TRADE = {
    "e": "aggTrade", "E": 1672515782136, "s": "BNBBTC", "a": 12345, "p": "0.001", "q": "100",
    "f": 100, "l": 105, "T": 1672515782134, "m": True, "M": True,
}
SPOT_BOOK_TICKER = {
    "u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
    "a": "25.36520000", "A": "40.66000000",
}
SPOT_PARTIAL_DEPTH = {"lastUpdateId": 160, "bids": [["0.0024", "10"]], "asks": [["0.0026", "100"]]}
SPOT_DEPTH_UPDATE = {
    "e": "depthUpdate", "E": 1672515782136, "s": "BNBBTC", "U": 157, "u": 160,
    "b": [["0.0024", "10"]], "a": [["0.0026", "100"]],
}
SPOT_SNAPSHOT = {
    "lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]],
    "asks": [["4.00000200", "12.00000000"]],
}


def kline(closed: bool) -> dict:
    return {
        "e": "kline", "E": 1672515782136, "s": "BNBBTC",
        "k": {
            "t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "f": 100, "L": 200,
            "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100,
            "x": closed, "q": "1.0000", "V": "500", "Q": "0.500", "B": "123456",
        },
    }


# --- USD-M futures shapes (as in the recording and the futures docs) ----------------------

FUT_TRADE = {
    "e": "trade", "E": 1723161256322, "T": 1723161256321, "s": "BTCUSDT", "t": 5266583935,
    "p": "61800.30", "q": "0.006", "X": "MARKET", "m": False,
}
FUT_AGG_TRADE = {
    "e": "aggTrade", "E": 1723161256322, "s": "BTCUSDT", "a": 2233, "p": "61800.30",
    "q": "0.100", "f": 5266583930, "l": 5266583935, "T": 1723161256321, "m": False,
}
FUT_BOOK_TICKER = {
    "e": "bookTicker", "u": 5123107839020, "s": "BTCUSDT", "b": "61800.20", "B": "2.507",
    "a": "61800.30", "A": "2.510", "T": 1723161256313, "E": 1723161256314,
}
FUT_DEPTH_UPDATE = {
    "e": "depthUpdate", "E": 1723161256299, "T": 1723161256298, "s": "BTCUSDT",
    "U": 5123107832006, "u": 5123107837557, "pu": 5123107831937,
    "b": [["58710.20", "0.014"], ["61510.90", "0.000"]], "a": [["61800.30", "1.5"]],
}
FUT_PARTIAL_DEPTH = {
    "e": "depthUpdate", "E": 1723161256299, "T": 1723161256298, "s": "BTCUSDT",
    "U": 5123107832006, "u": 5123107837557, "pu": 5123107831937,
    "b": [["61800.20", "2.5"], ["61800.10", "0.7"]], "a": [["61800.30", "1.5"]],
}
FUT_SNAPSHOT = {
    "lastUpdateId": 5123107852948, "E": 1723161256501, "T": 1723161256493,
    "bids": [["61800.20", "2.909"]], "asks": [["61800.30", "1.0"]],
}


def enc(d: dict) -> bytes:
    return json.dumps(d).encode()


# --- trades ---------------------------------------------------------------------------------


def test_spot_trade_field_by_field() -> None:
    t = parse_trade(enc(SPOT_TRADE), V, RECV)
    assert t == Trade(
        ts_event=1672515782134 * MS, ts_recv=RECV, venue=V, symbol="BNBBTC",
        price=0.001, size=100.0, aggressor=AGGRESSOR_SELL, trade_id="12345",
    )
    assert isinstance(t.price, float) and isinstance(t.size, float)


def test_futures_trade_buyer_aggressor() -> None:
    t = parse_trade(enc(FUT_TRADE), V, RECV)
    assert t == Trade(
        ts_event=1723161256321 * MS, ts_recv=RECV, venue=V, symbol="BTCUSDT",
        price=61800.30, size=0.006, aggressor=AGGRESSOR_BUY, trade_id="5266583935",
    )


def test_spot_agg_trade_field_by_field() -> None:
    t = parse_agg_trade(enc(SPOT_AGG_TRADE), V, RECV)
    assert t == Trade(
        ts_event=1672515782134 * MS, ts_recv=RECV, venue=V, symbol="BNBBTC",
        price=0.001, size=100.0, aggressor=AGGRESSOR_SELL, trade_id="12345",
    )


def test_futures_agg_trade() -> None:
    t = parse_agg_trade(enc(FUT_AGG_TRADE), V, RECV)
    assert (t.symbol, t.price, t.size, t.trade_id) == ("BTCUSDT", 61800.30, 0.1, "2233")
    assert t.aggressor == AGGRESSOR_BUY and t.ts_event == 1723161256321 * MS


# --- bookTicker -----------------------------------------------------------------------------


def test_spot_book_ticker_has_no_time_uses_recv() -> None:
    q = parse_book_ticker(enc(SPOT_BOOK_TICKER), V, RECV)
    assert q == Quote(
        ts_event=RECV, ts_recv=RECV, venue=V, symbol="BNBUSDT",
        bid=25.3519, ask=25.3652, bid_size=31.21, ask_size=40.66,
    )


def test_futures_book_ticker_uses_transaction_time() -> None:
    q = parse_book_ticker(enc(FUT_BOOK_TICKER), V, RECV)
    assert q == Quote(
        ts_event=1723161256313 * MS, ts_recv=RECV, venue=V, symbol="BTCUSDT",
        bid=61800.20, ask=61800.30, bid_size=2.507, ask_size=2.510,
    )


# --- diff depth -----------------------------------------------------------------------------


def test_spot_depth_update_has_no_pu() -> None:
    d = parse_depth_update(enc(SPOT_DEPTH_UPDATE), V, RECV)
    assert d == BookDelta(
        ts_event=1672515782136 * MS, ts_recv=RECV, venue=V, symbol="BNBBTC",
        bid_prices=[0.0024], bid_sizes=[10.0], ask_prices=[0.0026], ask_sizes=[100.0],
        first_update_id=157, last_update_id=160, prev_update_id=0,
    )


def test_futures_depth_update_with_pu_and_delete() -> None:
    d = parse_depth_update(enc(FUT_DEPTH_UPDATE), V, RECV)
    assert d == BookDelta(
        ts_event=1723161256298 * MS, ts_recv=RECV, venue=V, symbol="BTCUSDT",
        bid_prices=[58710.20, 61510.90], bid_sizes=[0.014, 0.0],
        ask_prices=[61800.30], ask_sizes=[1.5],
        first_update_id=5123107832006, last_update_id=5123107837557,
        prev_update_id=5123107831937,
    )


@pytest.mark.parametrize("stream", ["bnbbtc@depth", "bnbbtc@depth@100ms", "bnbbtc@depth@0ms"])
def test_depth_stream_variants_are_diff_updates(stream: str) -> None:
    ev = StreamParser(V).parse(wrap(stream, SPOT_DEPTH_UPDATE), RECV)
    assert isinstance(ev, BookDelta) and ev.last_update_id == 160


# --- partial depth / snapshots --------------------------------------------------------------


@pytest.mark.parametrize(
    "stream", ["bnbbtc@depth5", "bnbbtc@depth10", "bnbbtc@depth20", "bnbbtc@depth20@100ms"]
)
def test_spot_partial_depth_symbol_from_stream_name(stream: str) -> None:
    ev = StreamParser(V).parse(wrap(stream, SPOT_PARTIAL_DEPTH), RECV)
    assert ev == BookSnapshot(
        ts_event=RECV, ts_recv=RECV, venue=V, symbol="BNBBTC",
        bid_prices=[0.0024], bid_sizes=[10.0], ask_prices=[0.0026], ask_sizes=[100.0],
        last_update_id=160,
    )


def test_futures_partial_depth() -> None:
    ev = StreamParser(V).parse(wrap("btcusdt@depth5@100ms", FUT_PARTIAL_DEPTH), RECV)
    assert ev == BookSnapshot(
        ts_event=1723161256298 * MS, ts_recv=RECV, venue=V, symbol="BTCUSDT",
        bid_prices=[61800.20, 61800.10], bid_sizes=[2.5, 0.7],
        ask_prices=[61800.30], ask_sizes=[1.5], last_update_id=5123107837557,
    )


def test_partial_depth_direct_call() -> None:
    s = parse_partial_depth(enc(SPOT_PARTIAL_DEPTH), V, RECV, symbol="ETHBTC")
    assert s.symbol == "ETHBTC" and s.last_update_id == 160


def test_rest_snapshot_spot_and_futures() -> None:
    s = parse_depth_snapshot(enc(SPOT_SNAPSHOT), V, RECV, "BTCUSDT")
    assert s == BookSnapshot(
        ts_event=RECV, ts_recv=RECV, venue=V, symbol="BTCUSDT",
        bid_prices=[4.0], bid_sizes=[431.0], ask_prices=[4.000002], ask_sizes=[12.0],
        last_update_id=1027024,
    )
    f = parse_depth_snapshot(enc(FUT_SNAPSHOT), V, RECV, "BTCUSDT")
    assert f.ts_event == 1723161256493 * MS and f.last_update_id == 5123107852948
    assert (f.bid_prices, f.bid_sizes, f.ask_prices, f.ask_sizes) == (
        [61800.20], [2.909], [61800.30], [1.0]
    )


# --- klines ---------------------------------------------------------------------------------


def test_open_kline_is_ignored() -> None:
    assert parse_kline(enc(kline(closed=False)), V, RECV) is None
    sp = StreamParser(V)
    assert sp.parse(wrap("bnbbtc@kline_1m", kline(closed=False)), RECV) is None
    assert sp.unknown == 0  # known stream, just not a bar yet


def test_closed_kline_becomes_bar() -> None:
    bar = StreamParser(V).parse(wrap("bnbbtc@kline_1m", kline(closed=True)), RECV)
    assert bar == Bar(
        ts_event=1672515840000 * MS, ts_recv=RECV, venue=V, symbol="BNBBTC", interval="1m",
        ts_open=1672515780000 * MS, open=0.001, high=0.0025, low=0.0015, close=0.002,
        volume=1000.0,
    )
    assert bar.ts_event - bar.ts_open == 60_000 * MS


# --- stream routing and the parse contract --------------------------------------------------


def test_parser_for_stream_routing() -> None:
    assert parser_for_stream("btcusdt@trade") is parse_trade
    assert parser_for_stream("btcusdt@aggTrade") is parse_agg_trade
    assert parser_for_stream("btcusdt@bookTicker") is parse_book_ticker
    assert parser_for_stream("btcusdt@depth@0ms") is parse_depth_update
    assert parser_for_stream("btcusdt@kline_1s") is parse_kline
    assert parser_for_stream("btcusdt@depth10") is not None
    assert parser_for_stream("btcusdt@markPrice@1s") is not None
    for unknown in ["btcusdt@forceOrder", "btcusdt@depth7", "btcusdt@ticker", "!serverShutdown",
                    "!bookTicker", "", "btcusdt"]:
        assert parser_for_stream(unknown) is None, unknown


def test_unknown_stream_returns_none_and_counts() -> None:
    sp = StreamParser(V)
    assert sp.parse(wrap("btcusdt@forceOrder", {"e": "forceOrder", "E": 1}), RECV) is None
    assert sp.parse(wrap("btcusdt@forceOrder", {"e": "forceOrder", "E": 2}), RECV) is None
    assert sp.unknown == 2


@pytest.mark.parametrize(
    "raw",
    [
        wrap("!serverShutdown", {"e": "serverShutdown", "E": 1778198400000}),
        b'{"result":null,"id":1}',
        b'{"result":["btcusdt@trade"],"id":3}',
        b'{"code":2,"msg":"Invalid request: unknown variant"}',
    ],
)
def test_shutdown_and_control_messages_return_none(raw: bytes) -> None:
    sp = StreamParser(V)
    assert sp.parse(raw, RECV) is None
    assert sp.unknown == 1


@pytest.mark.parametrize(
    ("stream", "data"),
    [
        ("btcusdt@trade", {k: v for k, v in SPOT_TRADE.items() if k != "p"}),
        ("btcusdt@trade", {**SPOT_TRADE, "t": "not-an-int"}),
        ("btcusdt@aggTrade", {k: v for k, v in SPOT_AGG_TRADE.items() if k != "a"}),
        ("btcusdt@bookTicker", {k: v for k, v in SPOT_BOOK_TICKER.items() if k != "b"}),
        ("btcusdt@depth", {k: v for k, v in SPOT_DEPTH_UPDATE.items() if k != "U"}),
        ("btcusdt@depth5", {"lastUpdateId": 160, "bids": []}),
        ("btcusdt@depth5", {"e": "depthUpdate", "s": "BTCUSDT", "b": [], "a": []}),
        ("btcusdt@kline_1m", {"e": "kline", "E": 1, "s": "BNBBTC"}),
    ],
)
@pytest.mark.parametrize("warm", [False, True])  # True: the stream's fast path is taken
def test_missing_required_field_raises_validation_error(stream: str, data: dict,
                                                        warm: bool) -> None:
    parser = warmed(stream) if warm else StreamParser(V)
    with pytest.raises(msgspec.ValidationError):
        parser.parse(wrap(stream, data), RECV)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"stream":"btcusdt@trade","data":{"e":"trade",',
        b"not json",
        wrap("btcusdt@trade", b"{]"),
        b'{"stream":"btcusdt@trade"}',  # a known stream without its payload
    ],
)
@pytest.mark.parametrize("warm", [False, True])
def test_malformed_json_raises_decode_error(raw: bytes, warm: bool) -> None:
    parser = warmed("btcusdt@trade") if warm else StreamParser(V)
    with pytest.raises(msgspec.DecodeError):
        parser.parse(raw, RECV)


# --- the one-decode path for trade, aggTrade, bookTicker and diff depth streams ----------

VALID = {"trade": SPOT_TRADE, "aggTrade": SPOT_AGG_TRADE, "bookTicker": SPOT_BOOK_TICKER,
         "depth": SPOT_DEPTH_UPDATE, "depth5": SPOT_PARTIAL_DEPTH, "kline_1m": kline(True)}


def warmed(stream: str) -> StreamParser:
    """A parser that has parsed a valid message of `stream` (its fast path is set up)."""
    parser = StreamParser(V)
    kind = stream.split("@", 1)[1]
    assert parser.parse(wrap(stream, VALID[kind]), RECV) is not None
    return parser


texts = st.text("0123456789.", min_size=1, max_size=12)
numbers = st.integers(-(2**63), 2**63 - 1)
json_values = st.one_of(numbers, texts, st.booleans(), st.none(), st.floats(allow_nan=False))


def payloads(kind: str) -> st.SearchStrategy[dict]:
    """The kind's valid payload with fields dropped, changed or mistyped at random."""
    base = VALID[kind]
    good = {"p": texts, "q": texts, "b": texts, "a": texts, "B": texts, "A": texts,
            "s": st.text(min_size=0, max_size=8), "m": st.booleans(), "M": st.booleans()}
    if kind == "depth":  # its b and a are levels: [price, qty] texts
        good["b"] = good["a"] = st.lists(st.tuples(texts, texts), max_size=3)
    field = st.sampled_from(sorted(base) + ["T", "E", "X", "extra"])
    edits = st.lists(st.tuples(field, st.one_of(json_values, *good.values()), st.booleans()),
                     max_size=4)

    def edited(changes: list[tuple[str, object, bool]]) -> dict:
        data = dict(base)
        for name, value, drop in changes:
            if drop:
                data.pop(name, None)
            else:
                data[name] = value
        return data

    return st.one_of(edits.map(edited), st.fixed_dictionaries(
        {k: good.get(k, st.just(v)) for k, v in base.items()}))


def outcome(parser: StreamParser, raw: bytes, events: bool = False) -> object:
    """What `parse` (or, with `events`, `parse_events`) makes of `raw`."""
    try:
        event = parser.parse_events(raw, RECV) if events else parser.parse(raw, RECV)
    except msgspec.ValidationError:
        return "ValidationError"
    except msgspec.DecodeError:
        return "DecodeError"
    except ValueError as exc:  # float() of a price that is not a number
        return f"ValueError: {exc}"
    return msgspec.json.encode(event) if event is not None else None


@settings(max_examples=300, deadline=None, database=None)
@given(st.sampled_from(["trade", "aggTrade", "bookTicker", "depth"]).flatmap(
    lambda kind: st.tuples(st.just(kind), payloads(kind))),
    st.sampled_from(["btcusdt", "BNBBTC", "x"]))
def test_the_one_decode_path_gives_what_the_envelope_path_gives(
        kind_data: tuple[str, dict], symbol: str) -> None:
    kind, data = kind_data
    stream = f"{symbol}@{kind}"
    fast = warmed(stream)
    assert fast._whole  # the fast path is set up, and taken below
    raw = wrap(stream, data)
    slow = StreamParser(V)  # a parser's first message of a stream goes the envelope way
    assert outcome(fast, raw) == outcome(slow, raw)
    assert outcome(fast, raw) == outcome(fast, raw)
    # parse_events (a recording's reader, the paper feed) takes the same one pass
    assert outcome(fast, raw, events=True) == outcome(StreamParser(V), raw, events=True)


@pytest.mark.parametrize("raw", [
    # the same stream's name repeated with another: the last one counts, as the envelope's
    b'{"stream":"btcusdt@trade","stream":"btcusdt@depth","data":'
    + json.dumps(SPOT_DEPTH_UPDATE).encode() + b"}",
    b'{"stream":"btcusdt@trade","stream":"btcusdt@aggTrade","data":'  # both shapes in one
    + json.dumps({**SPOT_TRADE, **SPOT_AGG_TRADE, "t": 1, "a": 2}).encode() + b"}",
    # data before the name, an escaped name, a name that is a prefix of another
    b'{"data":' + json.dumps(SPOT_TRADE).encode() + b',"stream":"btcusdt@trade"}',
    b'{"stream":"btcusdt\\u0040trade","data":' + json.dumps(SPOT_TRADE).encode() + b"}",
    b'{"stream":"btcusdt@trade2","data":' + json.dumps(SPOT_TRADE).encode() + b"}",
])
def test_unusual_messages_of_a_warm_stream_parse_as_a_fresh_parser_does(raw: bytes) -> None:
    assert outcome(warmed("btcusdt@trade"), raw) == outcome(StreamParser(V), raw)
    assert outcome(warmed("btcusdt@trade"), raw, events=True) == \
        outcome(StreamParser(V), raw, events=True)


# --- the real recording ---------------------------------------------------------------------


@pytest.mark.skipif(not USDM.exists(), reason=f"{USDM} not present")
def test_recording_counts() -> None:
    counts = Counter(type(ev).__name__ for _, ev in read_recording(USDM, V, "BTCUSDT"))
    assert counts == {"Trade": 21_313, "Quote": 66_089, "BookDelta": 6_551, "BookSnapshot": 1}
