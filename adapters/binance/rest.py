"""Binance Spot REST client: signed requests, server time, limits and the
error reactions of shared/binance-spot-protocol.md §2-§6.

What it decides (and nothing more):
- Time: `timestamp` = local clock + an offset learnt by `sync_time()`. Each
  sample estimates the offset as `serverTime - (sent + received) / 2` (the
  server is assumed to read its clock half-way through the round trip); the
  offset is the median of `samples` such estimates, so one slow round trip
  cannot skew it.
- Signing: params go in a fixed order, then `timestamp`, then `recvWindow`,
  percent-encoded and signed by `signing.sign_rest`; everything (signature
  last) travels in the query string, the API key in `X-MBX-APIKEY`.
- Limits: before each attempt it sleeps `limiter.delay_before(...)`, counts
  the request with `note_sent`, and feeds every response to `note_response`.
  While the limiter says the IP is banned (an earlier 418) requests are
  refused locally with a `banned` BinanceError, without touching the network.
- Errors: non-2xx -> `BinanceError.from_response`. -1021 -> re-sync the clock
  once and retry once. 429 -> wait Retry-After (through the limiter) and
  retry, for non-order requests only. 418 -> raise. An order placement whose
  outcome is unknown (timeout, dropped connection, 5xx, -1007) is NEVER
  resent: `UnknownOutcome(client_order_id)` is raised and the caller resolves
  it with `get_order(symbol, client_order_id)`.

Responses are decoded with msgspec into plain dicts/lists; prices and
quantities stay the strings Binance sent (parse them to Decimal where used).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import structlog
from yarl import URL

from adapters.binance.errors import BinanceError
from adapters.binance.exchange_info import (
    RateLimit,
    instruments_from_exchange_info,
    rate_limits_from_exchange_info,
)
from adapters.binance.http1 import Http1Client
from adapters.binance.order_query import decimal_text, new_order_query
from adapters.binance.ratelimit import RateLimiter
from adapters.binance.signing import Credentials, Signer, rest_payload, sign_rest
from events.instruments import Instrument

__all__ = ["BinanceRest", "UnknownOutcome", "decimal_text"]

log = structlog.get_logger("tapeloop.binance.rest")

_MS_NS = 1_000_000
_SECOND_NS = 1_000_000_000

# Request weights, protocol doc §3.
W_TIME = 1
W_EXCHANGE_INFO = 20
W_ORDER = 1  # POST/DELETE order (0 when successful since 2026-04-02; count 1)
W_GET_ORDER = 4
W_OPEN_ORDERS = 6
W_OPEN_ORDERS_ALL = 80
W_ACCOUNT = 20
W_MY_TRADES = 20
W_MY_TRADES_BY_ORDER = 5


def depth_weight(limit: int) -> int:
    """GET /api/v3/depth weight by `limit` (protocol doc section 3/8)."""
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


class UnknownOutcome(BinanceError):
    """An order placement whose result we cannot know (timeout, dropped
    connection, 5xx, -1007). It was NOT resent: query the order by
    `client_order_id` to learn whether it exists. `status` is 0 when no HTTP
    response arrived."""

    def __init__(self, client_order_id: str, status: int = 0, code: int | None = None,
                 msg: str = "", timestamp_ms: int | None = None) -> None:
        self.client_order_id = client_order_id
        # the request's `timestamp` (server clock): Binance refuses it once
        # `recvWindow` has passed since, so a later "not found" is final
        self.timestamp_ms = timestamp_ms
        super().__init__(status, code, msg)
        self.category = "unknown"

    def __str__(self) -> str:
        return f"order {self.client_order_id!r}: outcome unknown ({super().__str__()})"


def _default_now_ms() -> int:
    return time.time_ns() // 1_000_000


class BinanceRest:
    """Async client for the Binance Spot REST endpoints the adapter needs."""

    TIME_PATH = "/api/v3/time"  # USD-M's client (adapters.binance_usdm.rest) serves /fapi

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None,
        *,
        session: aiohttp.ClientSession | None = None,
        recv_window_ms: int = 5000,
        now_ms: Callable[[], int] = _default_now_ms,
        limiter: RateLimiter | None = None,
        timeout_s: float = 10.0,
        max_retry_after: int = 3,
    ) -> None:
        if not 0 < recv_window_ms <= 60000:
            raise ValueError(f"recv_window_ms must be in (0, 60000], got {recv_window_ms}")
        self.base_url = base_url.rstrip("/")
        # None: public endpoints only (a record-only venue); a signed call raises.
        self._credentials = credentials
        self._signer: Signer | None = credentials.signer() if credentials else None
        # the headers of a request that carries the key (`_attempt` copies them)
        self._key_headers = {"X-MBX-APIKEY": credentials.api_key} if credentials else {}
        # A session handed in carries every request (aiohttp's client); else the
        # lean keep-alive client does (adapters.binance.http1): an order's request
        # is on the socket in the step that signed it.
        self._session = session  # its owner closes it
        self._http: Http1Client | None = None
        self.recv_window_ms = recv_window_ms
        self.now_ms = now_ms
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.timeout_s = timeout_s
        self.max_retry_after = max_retry_after
        self.offset_ms = 0  # server clock - local clock, from sync_time()
        # called right before every request leaves, signed and all: the venue's
        # `Bus.durable`, so a request sent from inside the dispatch of its intent
        # goes out only once the intent is on disk (events.bus)
        self.before_send: Callable[[], object] | None = None

    # --- lifecycle -----------------------------------------------------------

    async def close(self) -> None:
        """Close this client's HTTP connections (a session handed in stays open)."""
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    async def __aenter__(self) -> BinanceRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def own_transport(self) -> bool:
        """True when the lean client carries the requests (no session handed in):
        a request's first step then needs no task (`eager.step_then_task`)."""
        return self._session is None

    # --- clock -----------------------------------------------------------------

    def server_time_ms(self) -> int:
        """Our best estimate of the server's clock now."""
        return self.now_ms() + self.offset_ms

    def _now_ns(self) -> int:
        return self.server_time_ms() * _MS_NS

    async def sync_time(self, samples: int = 3) -> int:
        """Learn the server-clock offset from `samples` GET `TIME_PATH` round
        trips: each gives `serverTime - midpoint(sent, received)`; the offset
        is their median. Returns (and stores) the offset in ms."""
        offsets: list[float] = []
        for _ in range(max(samples, 1)):
            await self._wait_for_limits(W_TIME, False)
            status, headers, raw, sent, received = await self._attempt(
                "GET", self.TIME_PATH, "", {}, W_TIME, False
            )
            if not 200 <= status < 300:
                raise BinanceError.from_response(status, raw)
            server = int(msgspec.json.decode(raw)["serverTime"])
            offsets.append(server - (sent + received) / 2)
        self.offset_ms = round(statistics.median(offsets))
        return self.offset_ms

    # --- transport -------------------------------------------------------------

    def _note(self, status: int, headers: Mapping[str, str], now_ns: int) -> None:
        self.limiter.note_response(status, headers, now_ns)

    async def _wait_for_limits(self, weight: int, is_order: bool) -> None:
        """Return once the limiter lets this request go now. The caller must
        stamp, sign and send (`_attempt`) without awaiting anything else first,
        so no other request takes the slot and the timestamp is fresh: a
        request signed before a long wait would be refused (-1021) and sent
        again."""
        while (delay := self._limit_delay(weight, is_order)) > 0:
            if delay >= _SECOND_NS:  # a stall an operator would otherwise not see
                log.info("binance.rate_limited", base=self.base_url, weight=weight,
                         order=is_order, wait_s=round(delay / _SECOND_NS, 3))
            await asyncio.sleep(delay / _SECOND_NS)

    def _limit_delay(self, weight: int, is_order: bool) -> int:
        """The limiter's wait (ns) for this request now; BinanceError while banned."""
        now = self._now_ns()
        if self.limiter.banned(now):
            left = (self.limiter.banned_until_ns - now) / _SECOND_NS
            raise BinanceError(418, -1003, f"IP banned for another {left:.3f}s (not sent)")
        return self.limiter.delay_before(weight, is_order, now)

    async def _attempt(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        weight: int,
        is_order: bool,
    ) -> tuple[int, Mapping[str, str], bytes, int, int]:
        """One HTTP exchange, right after `_wait_for_limits` returned: status,
        headers, body, and local send/receive times in ms. Transport errors
        propagate."""
        resp_headers: Mapping[str, str]
        if self._session is None:
            http = self._http
            if http is None:
                http = self._http = Http1Client(self.base_url)
            self.limiter.note_sent(weight, is_order, self._now_ns())
            sent = self.now_ms()
            status, resp_headers, raw = await http.request(method, path, query, headers,
                                                           self.timeout_s)
        else:
            url = URL(f"{self.base_url}{path}" + (f"?{query}" if query else ""), encoded=True)
            self.limiter.note_sent(weight, is_order, self._now_ns())
            sent = self.now_ms()
            async with self._session.request(
                method, url, headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as resp:
                raw = await resp.read()
                status, resp_headers = resp.status, resp.headers
        received = self.now_ms()
        self._note(status, resp_headers, self._now_ns())
        return status, resp_headers, raw, sent, received

    async def _request(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] | str = (),
        *,
        signed: bool,
        weight: int,
        is_order: bool = False,
        client_order_id: str | None = None,
        decode: bool = True,
        keyed: bool = False,
    ) -> Any:
        """`params`: pairs, or the query they make already percent-encoded
        (`rest_payload`'s). `keyed`: send the API key unsigned (USD-M's
        listenKey requests)."""
        clock_retried = False
        busy_retries = 0
        signer = self._signer
        headers: Mapping[str, str] = {}
        if signed or keyed:
            if self._credentials is None or (signed and signer is None):
                raise BinanceError(0, None, f"{method} {path} needs API credentials (none loaded)")
            headers = self._key_headers
        encoded = params if isinstance(params, str) else rest_payload(params)
        while True:
            # Wait for the limiter before stamping, so a long wait cannot eat
            # the recvWindow; nothing is awaited between this and the send (and
            # nothing at all when the limiter lets it go now, the usual case).
            # One clock reading serves the limiter and the timestamp.
            stamp = self.now_ms() + self.offset_ms
            now_ns = stamp * _MS_NS
            limiter = self.limiter
            if now_ns < limiter.banned_until_ns \
                    or limiter.delay_before(weight, is_order, now_ns) > 0:
                await self._wait_for_limits(weight, is_order)  # raises while banned
                stamp = self.server_time_ms()
            if signed:
                assert signer is not None
                # timestamp and recvWindow are digits: appended as they are, the
                # query is what percent-encoding all the pairs together gives
                stamped = f"timestamp={stamp}&recvWindow={self.recv_window_ms}"
                query = sign_rest(signer, f"{encoded}&{stamped}" if encoded else stamped)
            else:
                query = encoded
            if self.before_send is not None:
                self.before_send()
            try:
                status, _, raw, _, _ = await self._attempt(
                    method, path, query, headers, weight, is_order
                )
            except (TimeoutError, aiohttp.ClientError) as e:
                if client_order_id is not None:
                    raise UnknownOutcome(client_order_id, 0, None, f"{type(e).__name__}: {e}",
                                         timestamp_ms=stamp) from e
                raise
            if 200 <= status < 300:
                return msgspec.json.decode(raw) if decode else raw
            err = BinanceError.from_response(status, raw)
            if err.category == "clock" and signed and not clock_retried:
                clock_retried = True
                await self.sync_time()
                continue
            if client_order_id is not None and err.category == "unknown":
                raise UnknownOutcome(client_order_id, err.status, err.code, err.msg,
                                     timestamp_ms=stamp)
            if (err.category == "retry_after" and status == 429 and not is_order
                    and busy_retries < self.max_retry_after):
                busy_retries += 1
                continue  # the limiter now holds Retry-After; the next wait honours it
            raise err

    # --- endpoints -------------------------------------------------------------

    async def exchange_info(
        self, venue: str = "binance"
    ) -> tuple[list[Instrument], list[RateLimit]]:
        """GET /api/v3/exchangeInfo -> (instruments, rate limits)."""
        raw = await self._request("GET", "/api/v3/exchangeInfo", signed=False,
                                  weight=W_EXCHANGE_INFO, decode=False)
        return instruments_from_exchange_info(raw, venue), rate_limits_from_exchange_info(raw)

    async def new_order(
        self,
        symbol: str,
        side: str,
        type: str,
        *,
        quantity: Decimal | None = None,
        quote_order_qty: Decimal | None = None,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        time_in_force: str | None = None,
        new_client_order_id: str,
        new_order_resp_type: str = "RESULT",
        self_trade_prevention_mode: str | None = None,
    ) -> dict[str, Any]:
        """POST /api/v3/order. Raises BinanceError on a reject and
        UnknownOutcome when the order may or may not exist (never resent)."""
        if new_order_resp_type not in ("ACK", "RESULT", "FULL"):
            raise ValueError(f"newOrderRespType must be ACK, RESULT or FULL: {new_order_resp_type}")
        if not new_client_order_id:
            raise ValueError("new_client_order_id is required: it resolves unknown outcomes")
        query = new_order_query(
            symbol, side, type, time_in_force=time_in_force, quantity=quantity,
            quote_order_qty=quote_order_qty, price=price, stop_price=stop_price,
            new_client_order_id=new_client_order_id, new_order_resp_type=new_order_resp_type,
            self_trade_prevention_mode=self_trade_prevention_mode)
        return await self.place_order(query, new_client_order_id)

    def place_order(self, query: str, client_order_id: str) -> Coroutine[Any, Any, Any]:
        """POST /api/v3/order of an order's query as `order_query` writes it (no
        timestamp, no signature), to await: what `new_order` sends, for a caller
        that has the query already. `client_order_id` must be the query's."""
        # a plain function returning `_request`'s coroutine: no coroutine of its own
        # in an order's first step
        return self._request("POST", "/api/v3/order", query, signed=True, weight=W_ORDER,
                             is_order=True, client_order_id=client_order_id)

    async def cancel_order(self, symbol: str, orig_client_order_id: str) -> dict[str, Any]:
        """DELETE /api/v3/order by client order id (-2011 if not open/unknown)."""
        params = [("symbol", symbol), ("origClientOrderId", orig_client_order_id)]
        return await self._request("DELETE", "/api/v3/order", params, signed=True,
                                   weight=W_ORDER)

    async def get_order(self, symbol: str, orig_client_order_id: str) -> dict[str, Any]:
        """GET /api/v3/order by client order id (-2013 if it does not exist)."""
        params = [("symbol", symbol), ("origClientOrderId", orig_client_order_id)]
        return await self._request("GET", "/api/v3/order", params, signed=True,
                                   weight=W_GET_ORDER)

    async def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """GET /api/v3/openOrders, for one symbol or (weight 80) all."""
        params = [("symbol", symbol)] if symbol else []
        weight = W_OPEN_ORDERS if symbol else W_OPEN_ORDERS_ALL
        return await self._request("GET", "/api/v3/openOrders", params, signed=True,
                                   weight=weight)

    async def account(self) -> dict[str, Any]:
        """GET /api/v3/account."""
        return await self._request("GET", "/api/v3/account", (), signed=True, weight=W_ACCOUNT)

    async def depth(self, symbol: str, limit: int = 1000) -> bytes:
        """GET /api/v3/depth: the raw snapshot (parse with `parse_depth_snapshot`)."""
        return await self._request("GET", "/api/v3/depth", [("symbol", symbol),
                                   ("limit", str(limit))], signed=False,
                                   weight=depth_weight(limit), decode=False)

    async def my_trades(
        self, symbol: str, from_id: int | None = None, limit: int | None = None,
        order_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """GET /api/v3/myTrades for `symbol` (or one order's, `order_id`): at most
        `limit` trades (Binance: 500 by default, 1000 at most), those from trade id
        `from_id` on, or without it the most recent ones. Page with `fromId`
        (`reconcile.order_trades`) to read them all."""
        params = [("symbol", symbol)]
        if order_id is not None:
            params.append(("orderId", str(order_id)))
        if from_id is not None:
            params.append(("fromId", str(from_id)))
        if limit is not None:
            params.append(("limit", str(limit)))
        return await self._request(
            "GET", "/api/v3/myTrades", params, signed=True,
            weight=W_MY_TRADES if order_id is None else W_MY_TRADES_BY_ORDER)

