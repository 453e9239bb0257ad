"""A small, faithful fake of the Binance Spot REST API on loopback (aiohttp).

Follows shared/binance-spot-protocol.md §2-§6:
- SIGNED endpoints check `X-MBX-APIKEY` (-2015, HTTP 401), then the HMAC over
  the raw, still percent-encoded query string + body with `signature=`
  removed (-1022), then `timestamp` against the fake's clock and `recvWindow`
  (-1021, both messages). `skew_ms` moves the fake's clock.
- Orders live in memory. LIMIT/LIMIT_MAKER/STOP* rest as NEW; MARKET fills
  at once at `market_price[symbol]` and makes a trade. A `newClientOrderId`
  of a still-open order -> -2010 "Duplicate order sent."; unknown order ->
  -2013 on query, -2011 on cancel.
- Every response carries `x-mbx-used-weight-1m`; successful orders also
  `x-mbx-order-count-10s` / `-1d`.

Fault injection (each applies to the next `n` matching requests, FIFO):
- `fail_next(status, ...)`: answer with `status` (429/418 with Retry-After,
  5xx...). With `after_processing=True` the request is processed first (an
  order is recorded) and the error replaces the real answer.
- `delay_next(seconds, ...)`: process, then hold the response (slow venue).
- `drop_next(...)`: process, then drop the connection without a response.

`requests` records (method, path) of everything received, faults included.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.adapters.binance.samples import DOC_EXCHANGE_INFO

# Protocol doc §5: its BTCUSDT symbol and rate limits.
_DOC = json.loads(DOC_EXCHANGE_INFO)
_BTCUSDT: dict[str, Any] = _DOC["symbols"][0]
RATE_LIMITS: list[dict[str, Any]] = _DOC["rateLimits"]

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_CLIENT_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
_SIDES = {"BUY", "SELL"}
_TYPES = {"LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
          "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"}
_OPEN = {"NEW", "PARTIALLY_FILLED", "PENDING_NEW"}

_WEIGHTS = {
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("POST", "/api/v3/order"): 1,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/myTrades"): 20,
}


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _d8(value: Decimal) -> str:
    return f"{value:.8f}"


def _mandatory(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                "or malformed.")


@dataclass
class _Fault:
    kind: str  # "status" | "delay" | "drop"
    remaining: int
    method: str | None
    path: str | None
    status: int = 0
    retry_after: str | None = None
    after_processing: bool = False
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path == path)


@dataclass
class FakeBinance:
    api_key: str
    secret: str
    skew_ms: int = 0
    symbols: list[dict[str, Any]] = field(default_factory=lambda: [_BTCUSDT])
    market_price: dict[str, Decimal] = field(
        default_factory=lambda: {"BTCUSDT": Decimal("64000.00")})
    balances: dict[str, tuple[Decimal, Decimal]] = field(
        default_factory=lambda: {"BTC": (Decimal("1"), Decimal(0)),
                                 "USDT": (Decimal("100000"), Decimal(0))})

    def __post_init__(self) -> None:
        self.orders: dict[int, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self._faults: list[_Fault] = []
        self._next_order_id = 48712039201
        self._next_trade_id = 5301122334
        self._weight_window = (0, 0)  # (minute start ms, used)
        self._orders_10s = (0, 0)
        self._orders_1d = (0, 0)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- lifecycle ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/api/v3/ping", self._ping)
        r.add_get("/api/v3/time", self._time)
        r.add_get("/api/v3/exchangeInfo", self._exchange_info)
        r.add_post("/api/v3/order", self._new_order)
        r.add_delete("/api/v3/order", self._cancel_order)
        r.add_get("/api/v3/order", self._get_order)
        r.add_get("/api/v3/openOrders", self._open_orders)
        r.add_get("/api/v3/account", self._account)
        r.add_get("/api/v3/myTrades", self._my_trades)
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        self._closing.set()  # wakes delayed handlers
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- clock, faults, counters ----------------------------------------------

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.skew_ms

    def fail_next(self, status: int, *, n: int = 1, retry_after: float | str | None = None,
                  method: str | None = None, path: str | None = None,
                  after_processing: bool = False) -> None:
        ra = None if retry_after is None else str(retry_after)
        self._faults.append(_Fault("status", n, method, path, status=status, retry_after=ra,
                                   after_processing=after_processing))

    def delay_next(self, seconds: float, *, n: int = 1, method: str | None = None,
                   path: str | None = None) -> None:
        self._faults.append(_Fault("delay", n, method, path, seconds=seconds))

    def drop_next(self, *, n: int = 1, method: str | None = None,
                  path: str | None = None) -> None:
        self._faults.append(_Fault("drop", n, method, path))

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r == (method, path))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for f in self._faults:
            if f.matches(method, path):
                f.remaining -= 1
                if f.remaining <= 0:
                    self._faults.remove(f)
                return f
        return None

    def _bump(self, window: tuple[int, int], size_ms: int, add: int) -> tuple[int, int]:
        start = self.now_ms() // size_ms * size_ms
        used = window[1] if window[0] == start else 0
        return start, used + add

    def _headers(self, order_counted: bool) -> dict[str, str]:
        h = {"x-mbx-used-weight-1m": str(self._weight_window[1]),
             "x-mbx-used-weight": str(self._weight_window[1])}
        if order_counted:
            h["x-mbx-order-count-10s"] = str(self._orders_10s[1])
            h["x-mbx-order-count-1d"] = str(self._orders_1d[1])
        return h

    @staticmethod
    def _error(status: int, code: int, msg: str, headers: dict[str, str]) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)

    # --- middleware: accounting, faults, errors ---------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        method, path = request.method, request.path
        self.requests.append((method, path))
        weight = _WEIGHTS.get((method, path), 1)
        if path == "/api/v3/openOrders":
            weight = 6 if "symbol=" in request.raw_path else 80
        self._weight_window = self._bump(self._weight_window, 60_000, weight)
        fault = self._take_fault(method, path)
        if fault is not None and fault.kind == "status" and not fault.after_processing:
            return self._fault_response(fault)
        try:
            resp = await handler(request)
        except ApiError as e:
            resp = self._error(e.status, e.code, e.msg, self._headers(False))
        if fault is None:
            return resp
        if fault.kind == "status":
            return self._fault_response(fault)
        if fault.kind == "delay":
            try:
                await asyncio.wait_for(self._closing.wait(), fault.seconds)
            except TimeoutError:
                pass
            return resp
        # drop: the work is done (an order is recorded) but no answer is sent.
        assert request.transport is not None
        request.transport.abort()
        raise ConnectionResetError("fake dropped the connection")

    def _fault_response(self, fault: _Fault) -> web.Response:
        headers = self._headers(False)
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.status == 429:
            return self._error(429, -1003, "Too much request weight used; current limit is "
                               "6000 request weight per 1 MINUTE.", headers)
        if fault.status == 418:
            until = self.now_ms() + int(float(fault.retry_after or 120) * 1000)
            return self._error(418, -1003, f"Way too much request weight used; IP banned "
                               f"until {until}.", headers)
        if fault.status >= 500:
            return web.Response(status=fault.status, text="Internal error; unable to process "
                                "your request. Please try again.", headers=headers)
        return self._error(fault.status, -1000, "An unknown error occurred.", headers)

    # --- request parsing and security ------------------------------------------

    async def _params(self, request: web.Request, signed: bool) -> dict[str, str]:
        raw_query = request.raw_path.partition("?")[2]
        raw_body = (await request.read()).decode() if request.can_read_body else ""
        params = dict(parse_qsl(raw_body, keep_blank_values=True))
        params.update(parse_qsl(raw_query, keep_blank_values=True))  # query wins
        if not signed:
            return params
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        sig = params.get("signature", "")

        def strip(s: str) -> str:
            return "&".join(p for p in s.split("&") if p and not p.startswith("signature="))

        payload = strip(raw_query) + strip(raw_body)
        want = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig.lower()):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        try:
            ts = int(params["timestamp"])
            recv = Decimal(params.get("recvWindow", "5000"))
        except (KeyError, ValueError, ArithmeticError):
            raise _mandatory("timestamp") from None
        if not 0 < recv <= 60000:
            raise ApiError(400, -1131, "recvWindow must be less than 60000")
        server = self.now_ms()
        if ts >= server + 1000:
            raise ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the "
                                       "server's time.")
        if server - ts > recv:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    def _symbol(self, params: dict[str, str]) -> str:
        symbol = params.get("symbol")
        if not symbol:
            raise _mandatory("symbol")
        if symbol not in {s["symbol"] for s in self.symbols}:
            raise ApiError(400, -1121, "Invalid symbol.")
        return symbol

    def _ok(self, body: Any, order_counted: bool = False) -> web.Response:
        return web.json_response(body, headers=self._headers(order_counted))

    # --- public endpoints --------------------------------------------------------

    async def _ping(self, request: web.Request) -> web.Response:
        return self._ok({})

    async def _time(self, request: web.Request) -> web.Response:
        return self._ok({"serverTime": self.now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return self._ok({"timezone": "UTC", "serverTime": self.now_ms(),
                         "rateLimits": RATE_LIMITS, "exchangeFilters": [],
                         "symbols": self.symbols})

    # --- orders --------------------------------------------------------------------

    def _decimal(self, params: dict[str, str], name: str, required: bool) -> Decimal | None:
        value = params.get(name)
        if value is None or value == "":
            if required:
                raise _mandatory(name)
            return None
        if not _DECIMAL.match(value):
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                       "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
        return Decimal(value)

    def _find(self, symbol: str, params: dict[str, str]) -> dict[str, Any] | None:
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
            if order is None or order["symbol"] != symbol:
                return None
            cid = params.get("origClientOrderId")
            if cid is not None and order["clientOrderId"] != cid:
                raise ApiError(400, -2039, "Client order ID is not correct for this order ID.")
            return order
        cid = params.get("origClientOrderId")
        if not cid:
            raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                                       "but both were empty/null!")
        found = [o for o in self.orders.values()
                 if o["symbol"] == symbol and o["clientOrderId"] == cid]
        return found[-1] if found else None  # the latest one reusing the id

    async def _new_order(self, request: web.Request) -> web.Response:
        p = await self._params(request, signed=True)
        symbol = self._symbol(p)
        side, otype = p.get("side", ""), p.get("type", "")
        if side not in _SIDES:
            raise _mandatory("side")
        if otype not in _TYPES:
            raise _mandatory("type")
        tif = p.get("timeInForce")
        needs_tif = otype in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
        if needs_tif and tif not in ("GTC", "IOC", "FOK"):
            raise _mandatory("timeInForce")
        qty = self._decimal(p, "quantity", required=otype != "MARKET")
        quote_qty = self._decimal(p, "quoteOrderQty", required=False)
        if otype == "MARKET" and (qty is None) == (quote_qty is None):
            raise _mandatory("quantity")
        price = self._decimal(p, "price", required=otype in (
            "LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"))
        stop = self._decimal(p, "stopPrice", required=otype.startswith(("STOP", "TAKE")))
        cid = p.get("newClientOrderId") or f"fake{self._next_order_id}"
        if not _CLIENT_ID.match(cid):
            raise ApiError(400, -1100, "Illegal characters found in parameter 'newClientOrderId'; "
                                       "legal range is '^[a-zA-Z0-9-_]{1,36}$'.")
        resp_type = p.get("newOrderRespType") or ("FULL" if otype in ("LIMIT", "MARKET")
                                                  else "ACK")
        if any(o["clientOrderId"] == cid and o["status"] in _OPEN for o in self.orders.values()):
            raise ApiError(400, -2010, "Duplicate order sent.")

        now = self.now_ms()
        self._orders_10s = self._bump(self._orders_10s, 10_000, 1)
        self._orders_1d = self._bump(self._orders_1d, 86_400_000, 1)
        order_id = self._next_order_id
        self._next_order_id += 1
        order: dict[str, Any] = {
            "symbol": symbol, "orderId": order_id, "orderListId": -1, "clientOrderId": cid,
            "price": _d8(price or Decimal(0)), "origQty": _d8(qty or Decimal(0)),
            "executedQty": _d8(Decimal(0)), "cummulativeQuoteQty": _d8(Decimal(0)),
            "status": "NEW", "timeInForce": tif or "GTC", "type": otype, "side": side,
            "stopPrice": _d8(stop or Decimal(0)), "icebergQty": _d8(Decimal(0)),
            "time": now, "updateTime": now, "isWorking": not otype.startswith(("STOP", "TAKE")),
            "workingTime": now, "origQuoteOrderQty": _d8(quote_qty or Decimal(0)),
            "selfTradePreventionMode": p.get("selfTradePreventionMode", "EXPIRE_MAKER"),
        }
        fills: list[dict[str, Any]] = []
        if otype == "MARKET":
            px = self.market_price[symbol]
            fill_qty = qty if qty is not None else (quote_qty or Decimal(0)) / px
            fill_qty = fill_qty.quantize(Decimal("0.00000001"))
            commission = (fill_qty * Decimal("0.001")).quantize(Decimal("0.00000001"))
            trade_id = self._next_trade_id
            self._next_trade_id += 1
            fills.append({"price": _d8(px), "qty": _d8(fill_qty), "commission": _d8(commission),
                          "commissionAsset": "BTC", "tradeId": trade_id})
            order.update(executedQty=_d8(fill_qty), cummulativeQuoteQty=_d8(fill_qty * px),
                         status="FILLED", origQty=_d8(qty or fill_qty))
            self.trades.append({
                "symbol": symbol, "id": trade_id, "orderId": order_id, "orderListId": -1,
                "price": _d8(px), "qty": _d8(fill_qty), "quoteQty": _d8(fill_qty * px),
                "commission": _d8(commission), "commissionAsset": "BTC", "time": now,
                "isBuyer": side == "BUY", "isMaker": False, "isBestMatch": True})
        self.orders[order_id] = order

        body: dict[str, Any] = {"symbol": symbol, "orderId": order_id, "orderListId": -1,
                                "clientOrderId": cid, "transactTime": now}
        if resp_type in ("RESULT", "FULL"):
            for k in ("price", "origQty", "executedQty", "origQuoteOrderQty",
                      "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
                      "workingTime", "selfTradePreventionMode"):
                body[k] = order[k]
            if stop is not None:
                body["stopPrice"] = order["stopPrice"]
        if resp_type == "FULL":
            body["fills"] = fills
        return self._ok(body, order_counted=True)

    async def _cancel_order(self, request: web.Request) -> web.Response:
        p = await self._params(request, signed=True)
        symbol = self._symbol(p)
        try:
            order = self._find(symbol, p)
        except ApiError as e:
            if e.code == -1102:
                raise
            order = None
        if order is None or order["status"] not in _OPEN:
            raise ApiError(400, -2011, "Unknown order sent.")
        now = self.now_ms()
        order.update(status="CANCELED", updateTime=now)
        body = {k: order[k] for k in ("symbol", "orderId", "orderListId", "price", "origQty",
                                      "executedQty", "cummulativeQuoteQty", "status",
                                      "timeInForce", "type", "side",
                                      "selfTradePreventionMode")}
        body.update(origClientOrderId=order["clientOrderId"], transactTime=now,
                    clientOrderId=p.get("newClientOrderId") or f"cancel{order['orderId']}")
        return self._ok(body)

    async def _get_order(self, request: web.Request) -> web.Response:
        p = await self._params(request, signed=True)
        order = self._find(self._symbol(p), p)
        if order is None:
            raise ApiError(400, -2013, "Order does not exist.")
        return self._ok(order)

    async def _open_orders(self, request: web.Request) -> web.Response:
        p = await self._params(request, signed=True)
        symbol = self._symbol(p) if "symbol" in p else None
        return self._ok([o for o in self.orders.values()
                         if o["status"] in _OPEN and symbol in (None, o["symbol"])])

    async def _account(self, request: web.Request) -> web.Response:
        await self._params(request, signed=True)
        return self._ok({
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000",
                                "buyer": "0.00000000", "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False,
            "updateTime": self.now_ms(), "accountType": "SPOT",
            "balances": [{"asset": a, "free": _d8(f), "locked": _d8(lk)}
                         for a, (f, lk) in self.balances.items()],
            "permissions": ["SPOT"], "uid": 354937868})

    async def _my_trades(self, request: web.Request) -> web.Response:
        p = await self._params(request, signed=True)
        symbol = self._symbol(p)
        from_id = int(p["fromId"]) if p.get("fromId") else None
        limit = min(int(p.get("limit") or 500), 1000)
        out = [t for t in self.trades if t["symbol"] == symbol
               and (from_id is None or t["id"] >= from_id)
               and ("orderId" not in p or t["orderId"] == int(p["orderId"]))]
        return self._ok(out[:limit])
