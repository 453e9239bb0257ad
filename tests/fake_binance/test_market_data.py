"""The public market-data routes and derived streams the fake added for issue 11
(they answered 404 / sent nothing before): trades, aggTrades, klines, tickers,
allOrders, myTrades by time, `@ticker`, `@miniTicker`, `@kline_<i>`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from adapters.binance.rest import BinanceRest
from tests.fake_binance import FakeBinanceServer
from tests.fake_binance.conftest import recv_until

SYMBOL = "BTCUSDT"
TICKER_FIELDS = ["symbol", "priceChange", "priceChangePercent", "weightedAvgPrice",
                 "prevClosePrice", "lastPrice", "lastQty", "bidPrice", "bidQty", "askPrice",
                 "askQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume",
                 "openTime", "closeTime", "firstId", "lastId", "count"]


class Public:
    """GET on the fake's public routes: (status, body, used weight of the minute)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession()

    async def get(self, path: str, **params: Any) -> tuple[int, Any, int]:
        async with self.session.get(self.base + path, params=params) as r:
            return r.status, await r.json(), int(r.headers["x-mbx-used-weight-1m"])

    async def ok(self, path: str, **params: Any) -> Any:
        status, body, _ = await self.get(path, **params)
        assert status == 200, body
        return body

    async def error(self, path: str, **params: Any) -> int:
        status, body, _ = await self.get(path, **params)
        assert status == 400, body
        return int(body["code"])


@pytest_asyncio.fixture
async def public(server: FakeBinanceServer) -> AsyncIterator[Public]:
    client = Public(server.base_url)
    yield client
    await client.session.close()


def trade_prices(server: FakeBinanceServer) -> list[tuple[int, Decimal, Decimal]]:
    return [(t.trade_id, t.price, t.qty)
            for t in server.exchange.markets[SYMBOL].history.recent(10_000)]


async def test_trades_and_historical_trades(server: FakeBinanceServer, public: Public) -> None:
    await server.step(200)
    held = trade_prices(server)
    assert len(held) > 50
    trades = await public.ok("/api/v3/trades", symbol=SYMBOL, limit=10)
    assert [list(t) for t in trades] == [["id", "price", "qty", "quoteQty", "time",
                                          "isBuyerMaker", "isBestMatch"]] * 10
    assert [(t["id"], Decimal(t["price"]), Decimal(t["qty"])) for t in trades] == held[-10:]
    assert all(len(t["price"].partition(".")[2]) == 8 for t in trades)
    assert len(await public.ok("/api/v3/trades", symbol=SYMBOL)) == min(500, len(held))
    page = await public.ok("/api/v3/historicalTrades", symbol=SYMBOL, fromId=held[3][0],
                           limit=5)
    assert [t["id"] for t in page] == [h[0] for h in held[3:8]]
    status, _, weight = await public.get("/api/v3/trades", symbol=SYMBOL)
    status, _, weight2 = await public.get("/api/v3/trades", symbol=SYMBOL)
    assert weight2 - weight == 25


async def test_agg_trades_by_id_and_time(server: FakeBinanceServer, public: Public) -> None:
    await server.step(100)
    recent = await public.ok("/api/v3/aggTrades", symbol=SYMBOL, limit=20)
    assert [list(a) for a in recent] == [["a", "p", "q", "f", "l", "T", "m", "M"]] * 20
    assert [a["a"] for a in recent] == list(range(recent[0]["a"], recent[0]["a"] + 20))
    assert [a["f"] for a in recent] == [a["l"] for a in recent]
    page = await public.ok("/api/v3/aggTrades", symbol=SYMBOL, fromId=recent[5]["a"], limit=3)
    assert page == recent[5:8]
    start = recent[10]["T"]
    page = await public.ok("/api/v3/aggTrades", symbol=SYMBOL, startTime=start,
                           endTime=start + 3_600_000)
    assert page[0]["T"] >= start and page[-1] == recent[-1]
    assert await public.error("/api/v3/aggTrades", symbol=SYMBOL, startTime=start,
                              endTime=start + 3_600_001) == -1127
    assert await public.error("/api/v3/aggTrades", symbol=SYMBOL, fromId=1,
                              startTime=start) == -1128


async def test_klines(server: FakeBinanceServer, public: Public) -> None:
    await server.step(100)
    rows = await public.ok("/api/v3/klines", symbol=SYMBOL, interval="1m")
    held = server.exchange.markets[SYMBOL].history.recent(10_000)
    assert sum(r[8] for r in rows) == len(held)
    assert sum(Decimal(r[5]) for r in rows) == sum(t.qty for t in held)
    assert Decimal(rows[-1][4]) == held[-1].price
    assert all(len(r) == 12 and isinstance(r[0], int) and isinstance(r[1], str) for r in rows)
    assert await public.ok("/api/v3/uiKlines", symbol=SYMBOL, interval="1m") == rows
    assert await public.error("/api/v3/klines", symbol=SYMBOL, interval="7m") == -1120
    assert await public.error("/api/v3/klines", symbol=SYMBOL) == -1102
    assert await public.error("/api/v3/klines", symbol=SYMBOL, interval="1m",
                              limit="x") == -1100
    assert await public.error("/api/v3/klines", symbol="NOPE", interval="1m") == -1121


async def test_tickers(server: FakeBinanceServer, public: Public) -> None:
    await server.step(60)
    server.crowd_trades(SYMBOL, Decimal("64000.00"), Decimal("0.01"), 3)
    held = server.exchange.markets[SYMBOL].history.recent(10_000)
    status, one, w1 = await public.get("/api/v3/ticker/24hr", symbol=SYMBOL)
    assert list(one) == TICKER_FIELDS
    assert one["count"] == len(held) and one["lastId"] == held[-1].trade_id
    assert Decimal(one["volume"]) == sum(t.qty for t in held)
    assert Decimal(one["lastPrice"]) == Decimal("64000.00")
    (bid, bid_qty), (ask, ask_qty) = server.book()[0][0], server.book()[1][0]
    assert (Decimal(one["bidPrice"]), Decimal(one["askQty"])) == (bid, ask_qty)
    assert one["closeTime"] - one["openTime"] == 86_400_000

    def timeless(tickers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in t.items() if k not in ("openTime", "closeTime")}
                for t in tickers]
    status, many, w2 = await public.get("/api/v3/ticker/24hr", symbols='["BTCUSDT"]')
    assert timeless(many) == timeless([one]) and w2 - w1 == 2
    status, every, w3 = await public.get("/api/v3/ticker/24hr")
    assert timeless(every) == timeless([one]) and w3 - w2 == 80
    mini = await public.ok("/api/v3/ticker/24hr", symbol=SYMBOL, type="MINI")
    assert list(mini) == ["symbol", "openPrice", "highPrice", "lowPrice", "lastPrice",
                          "volume", "quoteVolume", "openTime", "closeTime", "firstId",
                          "lastId", "count"]
    assert await public.ok("/api/v3/ticker/price", symbol=SYMBOL) == {
        "symbol": SYMBOL, "price": "64000.00000000"}
    assert await public.ok("/api/v3/ticker/bookTicker", symbols='["BTCUSDT"]') == [{
        "symbol": SYMBOL, "bidPrice": f"{bid:.8f}", "bidQty": f"{bid_qty:.8f}",
        "askPrice": f"{ask:.8f}", "askQty": f"{ask_qty:.8f}"}]
    assert await public.error("/api/v3/ticker/24hr", symbol=SYMBOL,
                              symbols='["BTCUSDT"]') == -1128
    assert await public.error("/api/v3/ticker/price", symbols='["NOPE"]') == -1121
    assert await public.error("/api/v3/ticker/price", symbols="BTCUSDT") == -1100
    avg = await public.ok("/api/v3/avgPrice", symbol=SYMBOL)
    assert avg["mins"] == 5 and Decimal(avg["price"]) > 0


async def test_futures_exchange_info_lists_nothing(public: Public) -> None:
    for path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
        assert (await public.ok(path))["symbols"] == []


async def test_all_orders_and_my_trades_by_time(server: FakeBinanceServer,
                                                rest: BinanceRest) -> None:
    bid = server.book()[0][0][0]
    ids = []
    for i in range(6):
        placed = await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                                      price=bid - 100 - i, time_in_force="GTC",
                                      new_client_order_id=f"all-{i}")
        ids.append(placed["orderId"])
    server.cancel_behind_our_back("all-5", archive=True)
    server.crowd_trades(SYMBOL, bid - 102, Decimal("0.01"), 1)  # fills all-0..all-2

    async def all_orders(**params: Any) -> list[dict[str, Any]]:
        query = [("symbol", SYMBOL), *((k, str(v)) for k, v in params.items())]
        body = await rest._request("GET", "/api/v3/allOrders", query, signed=True, weight=20)
        assert isinstance(body, list)
        return body
    every = await all_orders()
    assert [o["orderId"] for o in every] == ids[:5]  # the archived one is gone
    assert [o["status"] for o in every] == ["FILLED"] * 3 + ["NEW"] * 2
    assert [o["orderId"] for o in await all_orders(orderId=ids[2], limit=2)] == ids[2:4]
    assert [o["orderId"] for o in await all_orders(limit=2)] == ids[3:5]
    fills = await rest.my_trades(SYMBOL)
    assert len(fills) == 3
    since = await rest._request("GET", "/api/v3/myTrades",
                                [("symbol", SYMBOL), ("startTime", str(fills[1]["time"]))],
                                signed=True, weight=20)
    assert [t["id"] for t in since] == [t["id"] for t in fills if t["time"] >= fills[1]["time"]]


@pytest.mark.parametrize("stream", ["btcusdt@ticker", "btcusdt@miniTicker", "btcusdt@kline_1m"])
async def test_derived_streams(server: FakeBinanceServer, stream: str) -> None:
    async with connect(f"{server.stream_url}/stream?streams={stream}") as ws:
        await server.step(3)
        server.crowd_trades(SYMBOL, Decimal("64123.45"), Decimal("0.01"), 1)
        frames = await recv_until(ws, lambda fs: any(
            f["data"].get("c", f["data"].get("k", {}).get("c")) == "64123.45000000"
            for f in fs))
    data = frames[-1]["data"]
    assert frames[-1]["stream"] == stream
    held = server.exchange.markets[SYMBOL].history.recent(10_000)
    if stream.endswith("@ticker"):
        assert data["e"] == "24hrTicker" and data["n"] == len(held)
        assert data["L"] == held[-1].trade_id and Decimal(data["v"]) == sum(t.qty for t in held)
    elif stream.endswith("@miniTicker"):
        assert list(data) == ["e", "E", "s", "c", "o", "h", "l", "v", "q"]
    else:
        k = data["k"]
        assert data["e"] == "kline" and k["i"] == "1m" and k["x"] is False
        inside = [t for t in held if t.time >= k["t"]]
        assert k["n"] == len(inside) and Decimal(k["v"]) == sum(t.qty for t in inside)
        assert k["T"] == k["t"] + 59_999



async def test_a_kline_is_sent_closed_when_the_next_one_opens(server: FakeBinanceServer) -> None:
    price = Decimal("64000.00")
    async with connect(f"{server.stream_url}/ws/btcusdt@kline_1m") as ws:
        server.crowd_trades(SYMBOL, price, Decimal("0.01"), 2)
        first = await recv_until(ws, lambda fs: any(f["k"]["n"] >= 2 for f in fs))
        server.skew_ms += 60_000  # the market's clock reaches the next minute
        server.crowd_trades(SYMBOL, price + 1, Decimal("0.02"), 1)
        frames = await recv_until(ws, lambda fs: any(f["k"]["t"] > first[-1]["k"]["t"]
                                                     for f in fs))
    closed, current = frames[-2]["k"], frames[-1]["k"]
    assert (closed["t"], closed["x"], closed["n"]) == (first[-1]["k"]["t"], True, 2)
    assert Decimal(closed["v"]) == Decimal("0.02") and Decimal(closed["c"]) == price
    assert (current["t"], current["x"], current["n"]) == (closed["t"] + 60_000, False, 1)
    assert Decimal(current["o"]) == price + 1


async def test_all_mini_tickers(server: FakeBinanceServer) -> None:
    async with connect(f"{server.stream_url}/stream?streams=!miniTicker@arr") as ws:
        server.crowd_trades(SYMBOL, Decimal("64123.45"), Decimal("0.01"), 1)
        frames = await recv_until(ws, lambda fs: len(fs) >= 1)
    assert frames[0]["stream"] == "!miniTicker@arr"
    assert [(m["e"], m["s"], m["c"]) for m in frames[0]["data"]] == [
        ("24hrMiniTicker", SYMBOL, "64123.45000000")]
