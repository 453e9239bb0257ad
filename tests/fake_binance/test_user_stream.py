"""The WS-API user data stream of the fake, read with `UserStreamTranslator`."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from adapters.binance.rest import BinanceRest
from adapters.binance.signing import Ed25519Signer, sign_ws
from adapters.binance.user_stream import UserStreamTranslator
from events.orders import Fill, OrderAccepted, OrderCanceled
from events.state import BalanceChanged
from tests.fake_binance import FakeBinanceServer
from tests.fake_binance.conftest import (
    events_of,
    recv_json,
    recv_until,
    subscribe_frame,
    subscribed,
)

SYMBOL = "BTCUSDT"


def reports(frames: list[Any], x: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events_of(frames, "executionReport") if x is None or e["x"] == x]


def translate(frames: list[Any]) -> list[Any]:
    tr = UserStreamTranslator("binance")
    return [ev for f in frames for ev in tr.translate(json.dumps(f).encode(), 0)]


async def limit_below(rest: BinanceRest, server: FakeBinanceServer, cid: str,
                      qty: str = "0.001") -> dict[str, Any]:
    bid = server.book()[0][0][0]
    return await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal(qty),
                                price=bid - 100, time_in_force="GTC", new_client_order_id=cid)


async def test_order_lifecycle_through_the_translator(server: FakeBinanceServer,
                                                      rest: BinanceRest) -> None:
    async with connect(server.ws_api_url) as ws:
        sid = await subscribed(ws)
        placed = await limit_below(rest, server, "tl-1")
        await rest.cancel_order(SYMBOL, "tl-1")
        await rest.new_order(SYMBOL, "BUY", "MARKET", quantity=Decimal("0.002"),
                             new_client_order_id="tl-2")
        frames = await recv_until(ws, lambda fs: len(reports(fs)) == 4)
        frames += await recv_until(ws, lambda fs: len(fs) == 1)  # the last account position
    assert {f["subscriptionId"] for f in frames} == {sid}
    assert [(r["x"], r["X"]) for r in reports(frames)] == [
        ("NEW", "NEW"), ("CANCELED", "CANCELED"), ("NEW", "NEW"), ("TRADE", "FILLED")]
    cancel = reports(frames, "CANCELED")[0]
    assert cancel["C"] == "tl-1" and cancel["c"] != "tl-1"
    events = translate(frames)
    kinds = [type(e) for e in events if not isinstance(e, BalanceChanged)]
    assert kinds == [OrderAccepted, OrderCanceled, OrderAccepted, Fill]
    assert events[0].venue_order_id == str(placed["orderId"])
    fill = [e for e in events if isinstance(e, Fill)][0]
    assert (fill.client_order_id, fill.liquidity, fill.fee_currency, fill.qty) == (
        "tl-2", "TAKER", "BTC", Decimal("0.002"))
    last = [e for e in events if isinstance(e, BalanceChanged) and e.currency == "BTC"][-1]
    assert last.free == server.balances["BTC"][0]


async def test_resting_limit_fills_when_the_market_crosses(server: FakeBinanceServer,
                                                           rest: BinanceRest) -> None:
    bid = server.book()[0][0][0]
    async with connect(server.ws_api_url) as ws:
        await subscribed(ws)
        placed = await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                                      price=bid, time_in_force="GTC", new_client_order_id="tl-m")
        assert placed["status"] == "NEW"
        frames = await recv_until(ws, lambda fs: len(reports(fs)) == 1)
        order = server.orders[placed["orderId"]]
        for _ in range(500):
            if not order.is_open:
                break
            await server.step(1)
        assert order.status == "FILLED"
        frames += await recv_until(ws, lambda fs: any(r["X"] == "FILLED" for r in reports(fs)))
        trade = reports(frames, "TRADE")[-1]
        # REST already shows what the report says.
        got = await rest.get_order(SYMBOL, "tl-m")
        assert (got["status"], got["executedQty"]) == ("FILLED", trade["z"])
        assert await rest.open_orders(SYMBOL) == []
        mine = await rest.my_trades(SYMBOL, order_id=placed["orderId"])
        assert trade["t"] in {t["id"] for t in mine} and all(t["isMaker"] for t in mine)
        later = await rest.my_trades(SYMBOL, from_id=mine[-1]["id"])
        assert [t["id"] for t in later] == [mine[-1]["id"]]
    fills = [e for e in translate(frames) if isinstance(e, Fill)]
    assert fills and all(f.liquidity == "MAKER" and f.price == bid for f in fills)
    assert sum(f.qty for f in fills) == Decimal("0.001")


async def test_refused_subscriptions(server: FakeBinanceServer, rest: BinanceRest) -> None:
    async with connect(server.ws_api_url) as ws:
        await ws.send(subscribe_frame(1, secret="not-the-secret"))
        r = await recv_json(ws)
        assert (r["id"], r["status"], r["error"]["code"]) == (1, 400, -1022)
        await ws.send(subscribe_frame(2, key="someone-else"))
        r = await recv_json(ws)
        assert (r["status"], r["error"]["code"]) == (401, -2015)
        await ws.send(subscribe_frame(3, timestamp=time.time_ns() // 1_000_000 - 60_000))
        r = await recv_json(ws)
        assert (r["status"], r["error"]["code"]) == (400, -1021)
        server.skew_ms = -10_000  # our clock is now >1 s ahead of the venue's
        await ws.send(subscribe_frame(4))
        r = await recv_json(ws)
        assert r["error"] == {"code": -1021, "msg": "Timestamp for this request was 1000ms "
                                                    "ahead of the server's time."}
        server.skew_ms = 0
        await limit_below(rest, server, "tl-x")
        await ws.send(json.dumps({"id": 5, "method": "ping"}))
        r = await recv_json(ws)  # no event came before the reply: not subscribed
        assert (r["id"], r["status"], r["result"]) == (5, 200, {})
        assert r["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"


async def test_other_methods_and_bad_frames(server: FakeBinanceServer) -> None:
    async with connect(server.ws_api_url) as ws:
        await ws.send(json.dumps({"id": "a", "method": "time"}))
        r = await recv_json(ws)
        assert abs(r["result"]["serverTime"] - time.time_ns() // 1_000_000) < 5000
        await ws.send(json.dumps({"id": 2, "method": "order.teleport", "params": {}}))
        r = await recv_json(ws)
        assert (r["id"], r["status"], r["error"]["code"]) == (2, 400, -1100)
        await ws.send("{not json")
        r = await recv_json(ws)
        assert (r["id"], r["status"], r["error"]["code"]) == (None, 400, -1135)
        await ws.send(json.dumps({"id": 3, "method": "userDataStream.subscribe"}))
        r = await recv_json(ws)
        assert (r["status"], r["error"]["code"]) == (401, -1002)  # needs session.logon
        sid = await subscribed(ws)
        await ws.send(subscribe_frame(4))
        assert (await recv_json(ws))["error"]["code"] == -1191  # one per connection
        await ws.send(json.dumps({"id": 5, "method": "userDataStream.unsubscribe"}))
        ended, reply = await recv_until(ws, lambda fs: len(fs) == 2)
        assert ended["subscriptionId"] == sid
        assert ended["event"]["e"] == "eventStreamTerminated"
        assert (reply["id"], reply["status"]) == (5, 200)
        assert await subscribed(ws) == sid + 1


async def test_ed25519_logon_then_subscribe() -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    pub = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    server = FakeBinanceServer(seed=1, tick_interval_s=None, ed25519_api_key="ed-key",
                               ed25519_public_key_pem=pub)
    await server.start()
    try:
        signer = Ed25519Signer(pem)
        async with connect(server.ws_api_url) as ws:
            now = time.time_ns() // 1_000_000
            await ws.send(json.dumps({"id": 1, "method": "session.logon", "params": sign_ws(
                signer, {"apiKey": "ed-key", "timestamp": now})}))
            r = await recv_json(ws)
            assert r["status"] == 200 and r["result"]["apiKey"] == "ed-key"
            await ws.send(json.dumps({"id": 2, "method": "userDataStream.subscribe"}))
            assert (await recv_json(ws))["result"] == {"subscriptionId": 0}
        async with connect(server.ws_api_url) as ws:
            await ws.send(json.dumps({"id": 1, "method": "session.logon", "params": sign_ws(
                Ed25519Signer(Ed25519PrivateKey.generate().private_bytes(
                    Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())),
                {"apiKey": "ed-key", "timestamp": time.time_ns() // 1_000_000})}))
            assert (await recv_json(ws))["error"]["code"] == -1022  # someone else's key
            await ws.send(subscribe_frame(2))  # the HMAC key still works for .signature
            assert (await recv_json(ws))["status"] == 200
    finally:
        await server.close()


async def test_duplicated_and_reordered_events(server: FakeBinanceServer,
                                               rest: BinanceRest) -> None:
    async with connect(server.ws_api_url) as ws:
        await subscribed(ws)
        server.duplicate_user_events(2)  # the NEW report and its account position
        await limit_below(rest, server, "tl-d")
        frames = await recv_until(ws, lambda fs: len(fs) == 4)
        assert frames[0] == frames[1] and frames[2] == frames[3]
        events = translate(frames)
        assert [type(e) for e in events if not isinstance(e, BalanceChanged)] == [OrderAccepted]
        server.reorder_user_events(2)
        await rest.cancel_order(SYMBOL, "tl-d")
        first, second = await recv_until(ws, lambda fs: len(fs) == 2)
        assert first["event"]["e"] == "outboundAccountPosition"
        assert second["event"]["e"] == "executionReport" and second["event"]["x"] == "CANCELED"


async def test_unknown_and_malformed_user_frames(server: FakeBinanceServer) -> None:
    tr = UserStreamTranslator("binance")
    async with connect(server.ws_api_url) as ws:
        await subscribed(ws)
        server.send_unknown(market=False)
        server.send_malformed(market=False)
        unknown, bad = await recv_until(ws, lambda fs: len(fs) == 2, raw=True)
    assert tr.translate(unknown, 0) == [] and tr.unknown["someNewEvent"] == 1
    with pytest.raises(msgspec.DecodeError):
        tr.translate(bad, 0)


async def test_disconnect_user_aborts(server: FakeBinanceServer) -> None:
    async with connect(server.ws_api_url) as ws:
        await subscribed(ws)
        assert server.disconnect_user() == 1
        with pytest.raises(ConnectionClosed) as e:
            await recv_json(ws)
        assert e.value.rcvd is None
    assert server.user_connections == []
