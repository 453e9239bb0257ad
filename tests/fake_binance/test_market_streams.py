"""Market streams of the fake over real sockets, read with our own parsers and
`BookSync("spot")`: the local book must equal the fake's authoritative book."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from adapters.binance.book import Action, BookSync
from adapters.binance.market_ws import is_server_shutdown
from adapters.binance.parse import (
    StreamParser,
    parse_depth_snapshot,
    parse_depth_update,
    parse_partial_depth,
)
from adapters.binance.rest import BinanceRest
from events.market import BookDelta, Quote, Trade
from tests.fake_binance import FakeBinanceServer
from tests.fake_binance.conftest import recv_json, recv_until

VENUE = "binance"
STREAMS = "btcusdt@depth@100ms/btcusdt@trade/btcusdt@aggTrade/btcusdt@bookTicker"


def floats(levels: list[tuple[Decimal, Decimal]]) -> list[tuple[float, float]]:
    return [(float(p), float(q)) for p, q in levels]


def assert_same_book(sync: BookSync, server: FakeBinanceServer) -> None:
    bids, asks = server.book()
    assert sync.book.as_dict() == {"bids": floats(bids), "asks": floats(asks)}


def reached(update_id: int, stream: str = "btcusdt@depth@100ms"):  # type: ignore[no-untyped-def]
    def done(frames: list[bytes]) -> bool:
        return any(json.loads(f).get("stream") == stream and
                   json.loads(f)["data"]["u"] >= update_id for f in frames)
    return done


async def snapshot(rest: BinanceRest, limit: int = 100) -> Any:
    return parse_depth_snapshot(await rest.depth("BTCUSDT", limit), VENUE, 0, "BTCUSDT")


async def test_depth_stream_and_snapshot_sync(server: FakeBinanceServer,
                                              rest: BinanceRest) -> None:
    parser, sync = StreamParser(VENUE), BookSync("spot")
    async with connect(f"{server.stream_url}/stream?streams={STREAMS}") as ws:
        await server.step(5)  # diffs older than the snapshot: buffered, then dropped
        snap = await snapshot(rest)
        assert snap.last_update_id == server.last_update_id()
        await server.step(30)
        frames = await recv_until(ws, reached(server.last_update_id()), raw=True)
    events = [parser.parse(f, 0) for f in frames]
    for ev in events:
        if isinstance(ev, BookDelta):
            assert sync.on_delta(ev) is Action.BUFFERED
    assert sync.on_snapshot(snap) is Action.APPLIED
    assert sync.stale >= 1 and sync.applied >= 1 and sync.gaps == 0
    assert_same_book(sync, server)
    assert any(isinstance(e, Trade) for e in events)
    quote = [e for e in events if isinstance(e, Quote)][-1]
    bids, asks = server.book()
    assert (quote.bid, quote.ask) == (float(bids[0][0]), float(asks[0][0]))


async def test_sync_while_the_market_runs(server: FakeBinanceServer, rest: BinanceRest) -> None:
    sync = BookSync("spot")
    server.tick_interval_s = 0.005
    async with connect(f"{server.stream_url}/ws/btcusdt@depth") as ws:

        async def delta() -> BookDelta:
            return parse_depth_update(await ws.recv(decode=False), VENUE, 0)

        sync.on_delta(await delta())  # buffered: the snapshot comes after it
        sync.on_snapshot(await snapshot(rest, 1000))
        while sync.needs_snapshot():  # the documented retry, if the stream outran us
            sync.on_delta(await delta())
            sync.on_snapshot(await snapshot(rest, 1000))
        while sync.applied < 20:  # follow the live stream for a while
            assert sync.on_delta(await delta()) in (Action.APPLIED, Action.STALE)
        server.tick_interval_s = None  # freeze the market, then read up to its last id
        target = server.last_update_id()
        while sync.last_update_id < target:
            assert sync.on_delta(await delta()) is Action.APPLIED
    assert sync.gaps == 0 and sync.applied > 0
    assert_same_book(sync, server)


async def test_gap_is_detected_and_resync_recovers(server: FakeBinanceServer,
                                                   rest: BinanceRest) -> None:
    sync = BookSync("spot")
    async with connect(f"{server.stream_url}/stream?streams=btcusdt@depth") as ws:
        sync.on_snapshot(await snapshot(rest))
        await server.step(3)
        for f in await recv_until(ws, lambda fs: len(fs) == 3):
            assert sync.on_delta(parse_depth_update(json.dumps(f["data"]).encode(), VENUE, 0)) \
                is Action.APPLIED
        server.depth_gap("BTCUSDT")
        await server.step(1)
        gap = (await recv_json(ws))["data"]
        assert gap["U"] > sync.last_update_id + 1
        assert sync.on_delta(parse_depth_update(json.dumps(gap).encode(), VENUE, 0)) \
            is Action.NEED_SNAPSHOT
        assert sync.gaps == 1 and sync.needs_snapshot()
        await server.step(2)
        for f in await recv_until(ws, lambda fs: len(fs) == 2):
            sync.on_delta(parse_depth_update(json.dumps(f["data"]).encode(), VENUE, 0))
        assert sync.on_snapshot(await snapshot(rest)) is Action.APPLIED
    assert_same_book(sync, server)


async def test_raw_stream_control_frames_and_partial_depth(server: FakeBinanceServer) -> None:
    async with connect(f"{server.stream_url}/ws/btcusdt@depth5") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}))
        assert await recv_json(ws) == {"result": None, "id": 1}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        assert await recv_json(ws) == {"result": ["btcusdt@depth5", "btcusdt@trade"], "id": 2}
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}))
        assert await recv_json(ws) == {"result": None, "id": 3}
        await ws.send(json.dumps({"method": "NOPE", "id": 4}))
        assert (await recv_json(ws))["error"]["code"] == 2
        await server.step(1)
        raw = await ws.recv(decode=False)
    snap = parse_partial_depth(raw, VENUE, 0, "BTCUSDT")
    bids, asks = server.book()
    assert snap.bid_prices == [float(p) for p, _ in bids[:5]]
    assert snap.ask_sizes == [float(q) for _, q in asks[:5]]


async def test_malformed_and_unknown_frames(server: FakeBinanceServer) -> None:
    parser = StreamParser(VENUE)
    async with connect(f"{server.stream_url}/stream?streams=btcusdt@trade") as ws:
        server.send_malformed(user=False)
        server.send_unknown(user=False)
        bad, unknown = await recv_until(ws, lambda fs: len(fs) == 2, raw=True)
    with pytest.raises(msgspec.DecodeError):
        parser.parse(bad, 0)
    assert parser.parse(unknown, 0) is None and parser.unknown == 1


async def test_disconnect_aborts_without_close_frame(server: FakeBinanceServer) -> None:
    async with connect(f"{server.stream_url}/stream?streams=btcusdt@trade") as ws:
        assert len(server.market_connections) == 1
        assert server.disconnect_market() == 1
        with pytest.raises(ConnectionClosed) as e:
            await recv_json(ws)
        assert e.value.rcvd is None  # no close handshake
    assert server.market_connections == []


async def test_server_shutdown_notice_then_close(server: FakeBinanceServer) -> None:
    async with connect(f"{server.stream_url}/stream?streams=btcusdt@trade") as ws:
        server.server_shutdown()
        raw = await ws.recv(decode=False)
        assert is_server_shutdown(raw)
        assert json.loads(raw)["data"]["e"] == "serverShutdown"
        with pytest.raises(ConnectionClosed) as e:
            await recv_json(ws)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1001
