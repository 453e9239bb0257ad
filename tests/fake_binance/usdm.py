"""`FakeUsdmServer`: the fake Binance's USD-M futures side on its own port.

    server = FakeUsdmServer(wallet=Decimal("10000"))
    base = await server.start()                  # "http://127.0.0.1:PORT"
    server.set_price("BTCUSDT", Decimal("60000"))
    server.pay_funding("BTCUSDT", Decimal("0.0001"), funding_ms)

REST under `/fapi` (time, exchangeInfo, leverageBracket, depth, order
POST/GET/DELETE by client order id, openOrders, userTrades, positionRisk v3,
balance v3, symbolConfig, leverage, marginType, positionSide/dual, income,
listenKey), combined market streams at `/stream?streams=` (bookTicker,
markPrice) and the user stream at `/ws/<listenKey>`. The account is
`usdm_engine.UsdmAccount`. Signed requests are checked (HMAC, recvWindow).

Faults: `fail_next(status, n, after_acting=True)` answers 5xx after an order
request acted (an unknown outcome), `delay_next(s)` answers late (after
acting: a client timeout), `disconnect_user()` / `disconnect_market()` drop
streams, `expire_listen_key()` sends `listenKeyExpired` and drops the stream,
`lose_user_events(n)` drops the next frames (fills then arrive only by REST).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections import Counter
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from adapters.binance_usdm.exchange_info import perpetual_instruments
from tests.adapters.binance_usdm import samples
from tests.fake_binance.common import (
    BAD_KEY,
    BAD_SIGNATURE,
    DEFAULT_API_KEY,
    DEFAULT_SECRET,
    ApiError,
    check_timestamp,
    dumps,
)
from tests.fake_binance.usdm_engine import UsdmAccount

ZERO = Decimal(0)


class FakeUsdmServer:
    def __init__(self, api_key: str = DEFAULT_API_KEY, secret: str = DEFAULT_SECRET, *,
                 wallet: Decimal = Decimal("10000"),
                 prices: dict[str, Decimal] | None = None, min_notional: str = "100") -> None:
        """`min_notional`: BTCUSDT's MIN_NOTIONAL (Binance's is 100 USDT)."""
        self.api_key, self.secret = api_key, secret
        self.info = samples.exchange_info(samples.perp_symbol(notional=min_notional),
                                          samples.perp_symbol("ETHUSDT", base="ETH",
                                                              tick="0.01"))
        self.brackets = samples.leverage_brackets(BTCUSDT=samples.BTC_BRACKETS,
                                                  ETHUSDT=samples.BTC_BRACKETS)
        insts = {i.symbol: i for i in perpetual_instruments(self.info, self.brackets, "fake")}
        self.account = UsdmAccount(
            insts, prices or {"BTCUSDT": Decimal("60000.0"), "ETHUSDT": Decimal("3000.00")},
            wallet, self.now_ms)
        self.requests: Counter[tuple[str, str]] = Counter()
        self.posts: Counter[str] = Counter()  # order POSTs per client order id
        self.listen_keys: set[str] = set()
        self.user_ws: list[web.WebSocketResponse] = []
        self.market_ws: list[tuple[web.WebSocketResponse, set[str]]] = []
        self._fail: list[int] = []
        self._delay: list[float] = []
        self._lose = 0
        self._key_no = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.base = ""

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/fapi/{path:.*}", self._rest)
        app.router.add_get("/stream", self._market)
        app.router.add_get("/ws/{key}", self._user)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.base

    async def close(self) -> None:
        self._closing.set()
        for ws in [*self.user_ws, *(w for w, _ in self.market_ws)]:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def now_ms() -> int:
        return time.time_ns() // 1_000_000

    # -- driving the market and the account -------------------------------------------

    def set_price(self, symbol: str, price: Decimal) -> None:
        self.account.set_price(symbol, price)
        self._market_send(f"{symbol.lower()}@bookTicker", {
            "e": "bookTicker", "u": self.now_ms(), "s": symbol, "b": str(price), "B": "1",
            "a": str(self.account.ask(symbol)), "A": "1", "T": self.now_ms(),
            "E": self.now_ms()})
        self.flush()

    def push_mark(self, symbol: str, mark: Decimal, rate: Decimal, next_funding_ms: int,
                  event_ms: int | None = None) -> None:
        self.account.mark[symbol] = mark
        e = self.now_ms() if event_ms is None else event_ms
        for name in (f"{symbol.lower()}@markPrice@1s", f"{symbol.lower()}@markPrice"):
            self._market_send(name, {"e": "markPriceUpdate", "E": e, "s": symbol,
                                     "p": str(mark), "i": str(mark), "P": str(mark),
                                     "r": str(rate), "T": next_funding_ms})

    def pay_funding(self, symbol: str, rate: Decimal, funding_ms: int) -> Decimal:
        amount = self.account.pay_funding(symbol, rate, funding_ms)
        self.flush()
        return amount

    def liquidate(self, symbol: str, price: Decimal) -> dict[str, Any]:
        order = self.account.liquidate(symbol, price)
        self.flush()
        return order

    def fill_resting(self, client_order_id: str, symbol: str, qty: Decimal) -> None:
        self.account.fill_resting(client_order_id, symbol, qty)
        self.flush()

    # -- faults -------------------------------------------------------------------------

    def fail_next(self, status: int = 503, n: int = 1) -> None:
        self._fail += [status] * n

    def delay_next(self, seconds: float, n: int = 1) -> None:
        self._delay += [seconds] * n

    def lose_user_events(self, n: int = 1) -> None:
        self._lose += n

    def clear_faults(self) -> None:
        """No more failed, late or lost answers and frames."""
        self._fail.clear()
        self._delay.clear()
        self._lose = 0

    def disconnect_user(self) -> int:
        n = len(self.user_ws)
        for ws in self.user_ws:
            asyncio.get_running_loop().create_task(ws.close())
        return n

    def disconnect_market(self) -> int:
        n = len(self.market_ws)
        for ws, _ in self.market_ws:
            asyncio.get_running_loop().create_task(ws.close())
        return n

    def expire_listen_key(self) -> None:
        for key in list(self.listen_keys):
            self._user_send({"e": "listenKeyExpired", "E": self.now_ms(), "listenKey": key})
        self.listen_keys.clear()

    # -- fan-out ------------------------------------------------------------------------

    def flush(self) -> None:
        out, self.account.outbox = self.account.outbox, []
        for frame in out:
            if self._lose > 0:
                self._lose -= 1
                continue
            self._user_send(frame)

    def _user_send(self, frame: dict[str, Any]) -> None:
        text = dumps(frame)
        for ws in list(self.user_ws):
            if not ws.closed:
                asyncio.get_running_loop().create_task(ws.send_str(text))

    def _market_send(self, stream: str, data: dict[str, Any]) -> None:
        text = dumps({"stream": stream, "data": data})
        for ws, names in list(self.market_ws):
            if stream in names and not ws.closed:
                asyncio.get_running_loop().create_task(ws.send_str(text))

    async def _market(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        entry = (ws, set(request.query.get("streams", "").split("/")))
        self.market_ws.append(entry)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self.market_ws.remove(entry)
        return ws

    async def _user(self, request: web.Request) -> web.WebSocketResponse:
        if request.match_info["key"] not in self.listen_keys:
            raise web.HTTPBadRequest(text="invalid listenKey")
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self.user_ws.append(ws)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self.user_ws.remove(ws)
        return ws

    # -- REST ---------------------------------------------------------------------------

    def _check(self, request: web.Request, query: str, signed: bool) -> dict[str, str]:
        params = dict(request.query)
        if signed or request.headers.get("X-MBX-APIKEY") is not None:
            if request.headers.get("X-MBX-APIKEY") != self.api_key:
                raise BAD_KEY
        if signed:
            payload, _, signature = query.rpartition("&signature=")
            want = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not signature or not hmac.compare_digest(want, signature.lower()):
                raise BAD_SIGNATURE
            check_timestamp(self.now_ms(), params.get("timestamp"), params.get("recvWindow"))
        return params

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/fapi/" + request.match_info["path"]
        self.requests[(request.method, path)] += 1
        query = request.query_string
        public = path in ("/fapi/v1/time", "/fapi/v1/exchangeInfo", "/fapi/v1/depth",
                          "/fapi/v1/listenKey")
        try:
            params = self._check(request, query, signed=not public)
            if path == "/fapi/v1/listenKey" and request.headers.get("X-MBX-APIKEY") is None:
                raise BAD_KEY
            body = self._answer(request.method, path, params)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.status)
        if request.method in ("POST", "DELETE") and path == "/fapi/v1/order":
            self.flush()
            if self._delay:  # answered late, or never if the server closes first
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self._delay.pop(0))
            if self._fail:
                status = self._fail.pop(0)
                return web.json_response({"code": -1000, "msg": "An unknown error occured "
                                          "while processing the request."}, status=status)
        return web.Response(text=body if isinstance(body, str) else json.dumps(body),
                            content_type="application/json")

    def _answer(self, method: str, path: str, p: dict[str, str]) -> Any:
        a = self.account
        key = (method, path)
        if key == ("GET", "/fapi/v1/time"):
            return {"serverTime": self.now_ms()}
        if key == ("GET", "/fapi/v1/exchangeInfo"):
            return self.info.decode()
        if key == ("GET", "/fapi/v1/leverageBracket"):
            return self.brackets.decode()
        if key == ("GET", "/fapi/v1/depth"):
            s = p["symbol"]
            return {"lastUpdateId": 1, "E": self.now_ms(), "T": self.now_ms(),
                    "bids": [[str(a.price[s]), "1"]], "asks": [[str(a.ask(s)), "1"]]}
        if key == ("POST", "/fapi/v1/order"):
            self.posts[p.get("newClientOrderId", "")] += 1
            return a.place(p)
        if key == ("GET", "/fapi/v1/order"):
            return dict(a.find(p))
        if key == ("DELETE", "/fapi/v1/order"):
            return a.cancel(p)
        if key == ("GET", "/fapi/v1/openOrders"):
            return [dict(o) for o in a.orders.values() if o["status"] in ("NEW",
                    "PARTIALLY_FILLED") and p.get("symbol") in (None, o["symbol"])]
        if key == ("GET", "/fapi/v1/userTrades"):
            rows = [t for t in a.trades if t["symbol"] == p["symbol"]]
            if "orderId" in p:
                rows = [t for t in rows if t["orderId"] == int(p["orderId"])]
            if "fromId" in p:
                rows = [t for t in rows if t["id"] >= int(p["fromId"])]
            return rows[: int(p.get("limit", 500))]
        if key == ("GET", "/fapi/v3/positionRisk"):
            return [{"symbol": s, "positionSide": "BOTH", "positionAmt": str(q),
                     "entryPrice": str(e), "markPrice": str(a.mark[s]),
                     "unRealizedProfit": "0", "marginAsset": "USDT"}
                    for s, (q, e) in a.position.items()]
        if key == ("GET", "/fapi/v3/balance"):
            return [{"accountAlias": "fake", "asset": "USDT", "balance": str(a.wallet),
                     "crossWalletBalance": str(a.wallet),
                     "availableBalance": str(a.available())}]
        if key == ("GET", "/fapi/v1/symbolConfig"):
            return [{"symbol": s, "marginType": a.margin_type[s], "isAutoAddMargin": "false",
                     "leverage": a.leverage[s], "maxNotionalValue": "1000000"}
                    for s in a.instruments if p.get("symbol") in (None, s)]
        if key == ("POST", "/fapi/v1/leverage"):
            s, lev = p["symbol"], int(p["leverage"])
            if not 1 <= lev <= a.instruments[s].max_leverage:
                raise ApiError(400, -4028, f"Leverage {lev} is not valid")
            a.leverage[s] = lev
            self._user_send({"e": "ACCOUNT_CONFIG_UPDATE", "E": self.now_ms(),
                             "T": self.now_ms(), "ac": {"s": s, "l": lev}})
            return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": s}
        if key == ("POST", "/fapi/v1/marginType"):
            s, mt = p["symbol"], p["marginType"]
            if a.margin_type[s] == mt:
                raise ApiError(400, -4046, "No need to change margin type.")
            a.margin_type[s] = mt
            return {"code": 200, "msg": "success"}
        if key == ("GET", "/fapi/v1/positionSide/dual"):
            return {"dualSidePosition": a.dual}
        if key == ("POST", "/fapi/v1/positionSide/dual"):
            a.dual = p["dualSidePosition"] == "true"
            return {"code": 200, "msg": "success"}
        if key == ("GET", "/fapi/v1/income"):
            start = int(p.get("startTime", 0))
            return [r for r in a.income if r["time"] >= start
                    and p.get("incomeType") in (None, r["incomeType"])][: int(p.get("limit", 100))]
        if key == ("POST", "/fapi/v1/listenKey"):
            if not self.listen_keys:
                self._key_no += 1
                self.listen_keys.add(f"fake-listen-key-{self._key_no}")
            return {"listenKey": next(iter(self.listen_keys))}
        if key == ("PUT", "/fapi/v1/listenKey"):
            if not self.listen_keys:
                raise ApiError(400, -1125, "This listenKey does not exist.")
            return {}
        raise ApiError(404, -1000, f"no route {method} {path} in the fake")


async def _serve(port: int, tick_s: float) -> None:
    """`python -m tests.fake_binance.usdm --port 8991`: the fake on a fixed port,
    its prices walking one tick at a time and a mark every second."""
    import random

    server = FakeUsdmServer()
    await server.start(port)
    print(f"fake Binance USD-M on {server.base}", flush=True)
    rng = random.Random(0)
    try:
        while True:
            await asyncio.sleep(tick_s)
            for symbol, inst in server.account.instruments.items():
                price = server.account.price[symbol] + inst.tick_size * rng.choice((-1, 1))
                server.set_price(symbol, price)
                nxt = (server.now_ms() // 3_600_000 + 1) * 3_600_000
                server.push_mark(symbol, price, Decimal("0.0001"), nxt)
    finally:
        await server.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the fake Binance USD-M")
    parser.add_argument("--port", type=int, default=8991)
    parser.add_argument("--tick-s", type=float, default=0.5)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.tick_s))
