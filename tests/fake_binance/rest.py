"""The REST API `/api/v3/...` of the fake, with request accounting and fault injection.

Follows protocol doc §2-§6:
- SIGNED endpoints check `X-MBX-APIKEY` (-2015, HTTP 401), then the signature
  over the raw, still percent-encoded query string + body with `signature=`
  removed (-1022; HMAC hex, or Ed25519 base64 for an Ed25519 key), then
  `timestamp` against the server clock and `recvWindow` (-1021, both messages).
- Every response carries `x-mbx-used-weight-1m` (and legacy `x-mbx-used-weight`);
  successful orders also `x-mbx-order-count-10s` / `-1d`. Depth weighs 5/25/50/250
  by limit; the weights of the other routes are in `rest_market` (public market
  data) and `rest_account` (account queries), which this module wires in.
- Orders go through `engine.Exchange`; unknown order -> -2013 on query, -2011 on cancel;
  an archived order (`Exchange.archive`) -> -2026 on query, -2011 on cancel.
- `newClientOrderId` must match `^[a-zA-Z0-9-_]{1,36}$` whole (a trailing newline
  too is refused): -1100 with Binance's text otherwise.
- A route the fake does not serve answers 404, as an unknown path at Binance.
- Limits (`limits.RateLimits`): a request past this minute's REQUEST_WEIGHT
  gets 429 -1003, an order past the 10 s ORDERS count 429 -1015, both with
  `Retry-After`.

Fault injection (each applies to the next `n` matching /api requests, FIFO;
websocket upgrades never consume a fault):
- `fail_next(status, ...)`: answer with `status` (429/418 with Retry-After, 5xx...;
  `code`/`msg` give a 4xx answer Binance's error body). With `arrives_after_s`
  (order placements only) the answer goes out at once and the order reaches
  the engine that much later, where Binance checks `recvWindow` again: one
  arriving too late is refused there and never exists.
  With `after_processing=True` the request is processed first (an order is
  recorded) and the error replaces the real answer.
- `delay_next(seconds, ...)`: process, then hold the response (slow venue).
- `drop_next(...)`: process, then drop the connection without a response.
`requests` records (method, path) of everything received (the last million),
websocket upgrades and faults included; `post_counts[client id]` counts
POST /api/v3/order and /api/v3/order/cancelReplace per `newClientOrderId`.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fake_binance.common import (
    BAD_KEY,
    BAD_SIGNATURE,
    RATE_LIMITS,
    ApiError,
    check_timestamp,
    d8,
    mandatory,
)
from tests.fake_binance.engine import Exchange
from tests.fake_binance.limits import RateLimits
from tests.fake_binance.orders import ORDER_TYPES, STOP_TYPES, Order
from tests.fake_binance.rest_account import AccountQueries, my_trades_page
from tests.fake_binance.rest_market import MarketData
from tests.fake_binance.rest_other import PATHS as OTHER_PATHS
from tests.fake_binance.rest_other import OtherApis
from tests.fake_binance.rest_replace import CancelReplace

__all__ = ["Fault", "RestApi", "depth_weight", "my_trades_page"]

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_CLIENT_ID = re.compile(r"[a-zA-Z0-9-_]{1,36}")  # fullmatch: `$` would allow a final "\n"
ORDER_PATH = "/api/v3/order"
REPLACE_PATH = "/api/v3/order/cancelReplace"

_WEIGHTS = {
    ("GET", "/api/v3/time"): 1, ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20, ("POST", ORDER_PATH): 1, ("DELETE", ORDER_PATH): 1,
    ("POST", "/api/v3/order/test"): 1, ("GET", ORDER_PATH): 4, ("GET", "/api/v3/account"): 20,
    ("DELETE", "/api/v3/openOrders"): 1,
}


def depth_weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


@dataclass
class Fault:
    kind: str  # "status" | "delay" | "drop"
    remaining: int
    method: str | None
    path: str | None
    status: int = 0
    code: int | None = None
    msg: str = ""
    retry_after: str | None = None
    after_processing: bool = False
    seconds: float = 0.0
    arrives_after_s: float | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path == path)


class RestApi:
    """The /api/v3 routes. `verify(api_key, payload, signature)` and `key_kind(api_key)`
    come from the server (they know the configured keys)."""

    def __init__(self, exchange: Exchange, *, now_ms: Callable[[], int],
                 verify: Callable[[str, str, str], bool], key_kind: Callable[[str], str | None],
                 flush: Callable[[], None], closing: asyncio.Event) -> None:
        self.exchange = exchange
        self._now_ms = now_ms
        self._verify = verify
        self._key_kind = key_kind
        self._flush = flush
        self._closing = closing
        self.requests: deque[tuple[str, str]] = deque(maxlen=1_000_000)
        self.post_counts: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.limits = RateLimits(now_ms)
        self._late: list[asyncio.TimerHandle] = []  # placements still on their way in
        self.market = MarketData(self)
        self.account = AccountQueries(self)
        self.other = OtherApis(self)
        self.replace = CancelReplace(self)

    def now_ms(self) -> int:
        return self._now_ms()

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v3/ping", self._ping)
        r.add_get("/api/v3/time", self._time)
        r.add_get("/api/v3/exchangeInfo", self._exchange_info)
        r.add_get("/api/v3/depth", self._depth)
        r.add_post(ORDER_PATH, self._new_order)
        r.add_post("/api/v3/order/test", self._test_order)
        r.add_delete(ORDER_PATH, self._cancel_order)
        r.add_get(ORDER_PATH, self._get_order)
        r.add_delete("/api/v3/openOrders", self._cancel_all)
        self.market.add_routes(app)
        self.account.add_routes(app)
        self.other.add_routes(app)
        self.replace.add_routes(app)

    # --- accounting -------------------------------------------------------------

    def add_weight(self, weight: int) -> int:
        """Count `weight` in this minute's window; returns the window's total."""
        return self.limits.add_weight(weight)

    def headers(self, order_counted: bool = False) -> dict[str, str]:
        return self.limits.headers(order_counted)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for f in self.faults:
            if f.matches(method, path):
                f.remaining -= 1
                if f.remaining <= 0:
                    self.faults.remove(f)
                return f
        return None

    def _error(self, status: int, code: int, msg: str,
               headers: dict[str, str]) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)

    # --- middleware -------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        method, path = request.method, request.path
        self.requests.append((method, path))
        if not path.startswith(("/api/", *OTHER_PATHS)):
            return await handler(request)  # websocket upgrades: no weight, no faults
        if method == "POST" and path in (ORDER_PATH, REPLACE_PATH):
            raw = request.raw_path.partition("?")[2] + "&" + (await request.text())
            cid = dict(parse_qsl(raw, keep_blank_values=True)).get("newClientOrderId")
            if cid:
                self.post_counts[cid] += 1
        self.add_weight(self._weight_of(request))
        limited = self._over_limit(method, path)
        if limited is not None:
            return limited
        fault = self._take_fault(method, path)
        if fault is not None and fault.kind == "status" and not fault.after_processing:
            if fault.arrives_after_s is not None and (method, path) == ("POST", ORDER_PATH):
                await self._arrive_later(request, fault.arrives_after_s)
            return self._fault_response(fault)
        try:
            resp = await handler(request)
        except ApiError as e:
            resp = self._error(e.status, e.code, e.msg, self.headers())
        finally:
            self._flush()
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

    async def _arrive_later(self, request: web.Request, delay_s: float) -> None:
        """Let this placement reach the engine `delay_s` from now (see `fail_next`)."""
        try:
            p = await self.params(request, signed=True)
            args = self.order_args(p)
        except ApiError:
            return  # refused on the way in: it never reaches the engine
        self._late.append(asyncio.get_running_loop().call_later(
            delay_s, self._arrive, args, p["timestamp"], p.get("recvWindow")))

    def _arrive(self, args: dict[str, Any], timestamp: str, recv_window: str | None) -> None:
        try:
            # Binance checks recvWindow again just before the matching engine.
            check_timestamp(self._now_ms(), timestamp, recv_window)
            self.exchange.place(**args)
        except ApiError:
            return  # too late, or refused by the engine: no order, no trace
        finally:
            self._flush()

    def close(self) -> None:
        """Forget the placements still on their way in."""
        for handle in self._late:
            handle.cancel()
        self._late.clear()

    def _over_limit(self, method: str, path: str) -> web.Response | None:
        if not path.startswith("/api/"):
            return None  # sapi counts apart
        refused = self.limits.over(method == "POST" and path in (ORDER_PATH, REPLACE_PATH))
        if refused is None:
            return None
        error, retry_after = refused
        return self._error(error.status, error.code, error.msg,
                           {**self.headers(), "Retry-After": retry_after})

    def _weight_of(self, request: web.Request) -> int:
        method, path, q = request.method, request.path, request.query
        if path == "/api/v3/depth":
            try:
                return depth_weight(int(q.get("limit", "100")))
            except ValueError:
                return 5
        for part in (self.market, self.account, self.other, self.replace):
            weight = part.weight_of(method, path, q)
            if weight is not None:
                return weight
        return _WEIGHTS.get((method, path), 1)

    def _fault_response(self, fault: Fault) -> web.Response:
        headers = self.headers()
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.status == 429:
            return self._error(429, -1003, "Too much request weight used; current limit is "
                               "6000 request weight per 1 MINUTE.", headers)
        if fault.status == 418:
            until = self._now_ms() + int(float(fault.retry_after or 120) * 1000)
            return self._error(418, -1003, f"Way too much request weight used; IP banned "
                               f"until {until}.", headers)
        if fault.status >= 500:
            return web.Response(status=fault.status, text="Internal error; unable to process "
                                "your request. Please try again.", headers=headers)
        if fault.code is not None:
            return self._error(fault.status, fault.code, fault.msg, headers)
        return self._error(fault.status, -1000, "An unknown error occurred.", headers)

    # --- parsing and security ---------------------------------------------------

    async def params(self, request: web.Request, signed: bool) -> dict[str, str]:
        raw_query = request.raw_path.partition("?")[2]
        raw_body = (await request.read()).decode()  # cached: the middleware read it too
        params = dict(parse_qsl(raw_body, keep_blank_values=True))
        params.update(parse_qsl(raw_query, keep_blank_values=True))  # query wins
        if not signed:
            return params
        key = request.headers.get("X-MBX-APIKEY", "")
        if self._key_kind(key) is None:
            raise BAD_KEY

        def strip(s: str) -> str:
            return "&".join(p for p in s.split("&") if p and not p.startswith("signature="))

        if not self._verify(key, strip(raw_query) + strip(raw_body), params.get("signature", "")):
            raise BAD_SIGNATURE
        if "timestamp" not in params:
            raise mandatory("timestamp")
        check_timestamp(self._now_ms(), params["timestamp"], params.get("recvWindow"))
        return params

    def symbol_of(self, params: dict[str, str]) -> str:
        symbol = params.get("symbol")
        if not symbol:
            raise mandatory("symbol")
        if symbol not in self.exchange.rules:
            raise ApiError(400, -1121, "Invalid symbol.")
        return symbol

    def ok(self, body: Any, order_counted: bool = False) -> web.Response:
        return web.json_response(body, headers=self.headers(order_counted))

    @staticmethod
    def _decimal(params: dict[str, str], name: str, required: bool) -> Decimal | None:
        value = params.get(name)
        if value is None or value == "":
            if required:
                raise mandatory(name)
            return None
        if not _DECIMAL.match(value):
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                       "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
        return Decimal(value)

    # --- public endpoints ---------------------------------------------------------

    async def _ping(self, request: web.Request) -> web.Response:
        return self.ok({})

    async def _time(self, request: web.Request) -> web.Response:
        return self.ok({"serverTime": self._now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return self.ok({"timezone": "UTC", "serverTime": self._now_ms(),
                         "rateLimits": RATE_LIMITS, "exchangeFilters": [],
                         "symbols": self.exchange.symbols})

    async def _depth(self, request: web.Request) -> web.Response:
        p = await self.params(request, signed=False)
        market = self.exchange.markets[self.symbol_of(p)]
        try:
            limit = int(p.get("limit") or 100)
        except ValueError:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'limit'.") from None
        if not 1 <= limit <= 5000:
            raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        bids, asks = market.book(limit)
        return self.ok({"lastUpdateId": market.update_id,
                         "bids": [[d8(px), d8(q)] for px, q in bids],
                         "asks": [[d8(px), d8(q)] for px, q in asks]})

    # --- orders ------------------------------------------------------------------

    def order_args(self, p: dict[str, str]) -> dict[str, Any]:
        symbol = self.symbol_of(p)
        side, otype = p.get("side", ""), p.get("type", "")
        if side not in ("BUY", "SELL"):
            raise mandatory("side")
        if otype not in ORDER_TYPES:
            raise mandatory("type")
        tif = p.get("timeInForce")
        if otype in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT") and tif not in (
                "GTC", "IOC", "FOK"):
            raise mandatory("timeInForce")
        qty = self._decimal(p, "quantity", required=otype != "MARKET")
        quote_qty = self._decimal(p, "quoteOrderQty", required=False)
        if otype == "MARKET" and (qty is None) == (quote_qty is None):
            raise mandatory("quantity")
        price = self._decimal(p, "price", required=otype in (
            "LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"))
        stop = self._decimal(p, "stopPrice", required=otype in STOP_TYPES)
        cid = p.get("newClientOrderId") or f"fake{self.exchange.next_order_id}"
        if not _CLIENT_ID.fullmatch(cid):
            raise ApiError(400, -1100, "Illegal characters found in parameter 'newClientOrderId'; "
                                       "legal range is '^[a-zA-Z0-9-_]{1,36}$'.")
        return dict(symbol=symbol, side=side, type=otype, time_in_force=tif or "GTC",
                    quantity=qty, quote_order_qty=quote_qty, price=price, stop_price=stop,
                    client_order_id=cid,
                    stp_mode=p.get("selfTradePreventionMode") or "EXPIRE_MAKER")

    async def _new_order(self, request: web.Request) -> web.Response:
        p = await self.params(request, signed=True)
        args = self.order_args(p)
        resp_type = p.get("newOrderRespType") or (
            "FULL" if args["type"] in ("LIMIT", "MARKET") else "ACK")
        order, fills = self.exchange.place(**args)
        self.count_order()
        return self.ok(self.placed_body(order, fills, resp_type), order_counted=True)

    def count_order(self) -> None:
        self.limits.count_order()

    @staticmethod
    def placed_body(order: Order, fills: list[dict[str, Any]], resp_type: str) -> dict[str, Any]:
        """The answer to a placement, by `newOrderRespType` (ACK, RESULT, FULL)."""
        body = order.result_view(order.time)
        if resp_type == "ACK":
            body = {k: body[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId",
                                         "transactTime")}
        elif resp_type == "FULL":
            body["fills"] = fills
        return body

    async def _test_order(self, request: web.Request) -> web.Response:
        p = await self.params(request, signed=True)
        args = self.order_args(p)
        args.pop("time_in_force")
        args.pop("stp_mode")
        self.exchange.validate(**args)
        return self.ok({})

    def find_order(self, symbol: str, p: dict[str, str]) -> Order | None:
        cid = p.get("origClientOrderId")
        if "orderId" in p:
            try:
                order = self.exchange.find(symbol, order_id=int(p["orderId"]))
            except ValueError:
                raise mandatory("orderId") from None
            if order is not None and cid is not None and order.client_order_id != cid:
                raise ApiError(400, -2039, "Client order ID is not correct for this order ID.")
            return order
        if not cid:
            raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                                       "but both were empty/null!")
        return self.exchange.find(symbol, client_order_id=cid)

    @staticmethod
    def cancel_body(order: Order, cancel_id: str, now: int) -> dict[str, Any]:
        v = order.rest_view()
        body = {k: v[k] for k in ("symbol", "orderId", "orderListId", "price", "origQty",
                                  "executedQty", "cummulativeQuoteQty", "status", "timeInForce",
                                  "type", "side", "selfTradePreventionMode")}
        body.update(origClientOrderId=order.client_order_id, transactTime=now,
                    clientOrderId=cancel_id)
        return body

    async def _cancel_order(self, request: web.Request) -> web.Response:
        p = await self.params(request, signed=True)
        symbol = self.symbol_of(p)
        try:
            order = self.find_order(symbol, p)
        except ApiError as e:
            if e.code == -1102:
                raise
            order = None
        if order is None:
            raise ApiError(400, -2011, "Unknown order sent.")
        cancel_id = p.get("newClientOrderId") or f"cancel{order.order_id}"
        self.exchange.cancel(order, cancel_id)
        return self.ok(self.cancel_body(order, cancel_id, order.update_time))

    async def _cancel_all(self, request: web.Request) -> web.Response:
        p = await self.params(request, signed=True)
        symbol = self.symbol_of(p)
        out = []
        for order in self.exchange.open_orders(symbol):
            cancel_id = f"cancel{order.order_id}"
            self.exchange.cancel(order, cancel_id)
            out.append(self.cancel_body(order, cancel_id, order.update_time))
        if not out:
            raise ApiError(400, -2011, "Unknown order sent.")
        return self.ok(out)

    async def _get_order(self, request: web.Request) -> web.Response:
        p = await self.params(request, signed=True)
        order = self.find_order(self.symbol_of(p), p)
        if order is None:
            raise ApiError(400, -2013, "Order does not exist.")
        if order.archived:
            raise ApiError(400, -2026, "Order was canceled or expired with no executed qty "
                                       "over 90 days ago and has been archived.")
        return self.ok(order.rest_view())
