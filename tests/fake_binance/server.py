"""`FakeBinanceServer`: REST, market streams and the WS-API on one loopback port.

    server = FakeBinanceServer(seed=7, tick_interval_s=None)
    base = await server.start()          # "http://127.0.0.1:PORT"
    await server.step(10)                # advance the market deterministically
    ...
    await server.close()

Routes: `/api/v3/...` (`rest.RestApi`), `/stream`, `/ws`, `/ws/<name>`
(`streams.MarketStreams`), `/ws-api/v3` (`ws_api.WsApi`). State lives in one
`engine.Exchange`; after every REST request and every market step `flush()`
sends what the engine produced (market messages to stream subscribers, user
events to WS-API subscriptions), so REST already shows a fill when its
executionReport is queued.

Keys: `api_key`/`secret` is an HMAC key. `ed25519_public_key_pem` adds an
Ed25519 key named `ed25519_api_key` (default: `api_key`, which then becomes
an Ed25519 key instead of HMAC). Both REST and WS-API verify either kind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from collections import deque
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.fake_binance.common import DEFAULT_API_KEY, DEFAULT_SECRET, RATE_LIMITS, dumps
from tests.fake_binance.conn import Connection
from tests.fake_binance.engine import Exchange
from tests.fake_binance.orders import Order
from tests.fake_binance.rest import Fault, RestApi
from tests.fake_binance.streams import MarketConnection, MarketStreams
from tests.fake_binance.ws_api import UserConnection, WsApi

log = logging.getLogger("fake_binance")


class FakeBinanceServer:
    """A complete fake Binance Spot venue; see the module docstring and the package's."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, secret: str = DEFAULT_SECRET, *,
                 seed: int = 0, symbols: list[dict[str, Any]] | None = None,
                 balances: dict[str, tuple[Decimal, Decimal]] | None = None,
                 start_prices: dict[str, Decimal] | None = None, levels: int = 20,
                 spread_ticks: int = 1, trade_probability: float = 0.6, move_ticks: int = 1,
                 tick_interval_s: float | None = 0.05, heartbeat_s: float | None = 20.0,
                 ed25519_api_key: str | None = None,
                 ed25519_public_key_pem: bytes | None = None, skew_ms: int = 0) -> None:
        self.api_key, self.secret = api_key, secret
        self.skew_ms = skew_ms
        self.heartbeat_s = heartbeat_s
        self._keys: dict[str, tuple[str, Any]] = {api_key: ("hmac", secret)}
        if ed25519_public_key_pem is not None:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key
            self._keys[ed25519_api_key or api_key] = (
                "ed25519", load_pem_public_key(ed25519_public_key_pem))
        self.exchange = Exchange(symbols=symbols, balances=balances, seed=seed,
                                 clock=self.now_ms, start_prices=start_prices, levels=levels,
                                 spread_ticks=spread_ticks, trade_probability=trade_probability,
                                 move_ticks=move_ticks)
        self._closing = asyncio.Event()
        self.rest = RestApi(self.exchange, now_ms=self.now_ms, verify=self.verify,
                            key_kind=self.key_kind, flush=self.flush, closing=self._closing)
        self.streams = MarketStreams(lambda: self.exchange.markets, lambda: self.heartbeat_s)
        self.ws_api = WsApi(now_ms=self.now_ms, verify=self.verify, key_kind=self.key_kind,
                            add_weight=self.rest.add_weight, heartbeat_s=lambda: self.heartbeat_s,
                            rate_limits=RATE_LIMITS)
        # The user events published, in order (the last 100000), before fault injection.
        self.user_events: deque[dict[str, Any]] = deque(maxlen=100_000)
        self._dup_left = 0
        self._lose_left = 0
        self._reorder_left = 0
        self._reorder_buf: list[str] = []
        self._tick_interval_s = tick_interval_s
        self._ticker: asyncio.Task[None] | None = None
        self._old_tickers: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- lifecycle ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.rest.middleware])
        self.rest.add_routes(app)
        self.streams.add_routes(app)
        self.ws_api.add_routes(app)
        return app

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Listen on `host:port` (0 = any free port); returns the base URL."""
        self._runner = web.AppRunner(self.app(), shutdown_timeout=0.5, access_log=None,
                                     handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.base_url = f"http://{host}:{self._runner.addresses[0][1]}"
        self._start_ticker()
        log.info("listening on %s", self.base_url)
        return self.base_url

    async def close(self) -> None:
        """Stop ticking, close every websocket (1001, then abort), stop the server."""
        self._closing.set()  # wakes delayed REST handlers
        self.rest.close()
        self._stop_ticker()
        for task in self._old_tickers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._old_tickers.clear()
        conns: list[Connection] = [*self.streams.connections, *self.ws_api.connections]
        for conn in conns:
            conn.close()
        if conns:
            waits = [asyncio.ensure_future(c.done.wait()) for c in conns]
            _, pending = await asyncio.wait(waits, timeout=1.0)
            for w in pending:
                w.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for conn in conns:
            if not conn.done.is_set():
                conn.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def ws_api_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/ws-api/v3"

    @property
    def stream_url(self) -> str:
        """Base for market streams: append `/stream?streams=...` or `/ws/<name>`."""
        return self.base_url.replace("http://", "ws://", 1)

    # --- the market clock -------------------------------------------------------------

    @property
    def tick_interval_s(self) -> float | None:
        return self._tick_interval_s

    @tick_interval_s.setter
    def tick_interval_s(self, value: float | None) -> None:
        """None stops the background ticker (use `step()`); a number (re)starts it."""
        self._tick_interval_s = value
        self._stop_ticker()
        if self._runner is not None:
            self._start_ticker()

    def _start_ticker(self) -> None:
        if self._tick_interval_s is not None and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_loop(self._tick_interval_s))

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._old_tickers.append(self._ticker)
            self._ticker = None

    async def _tick_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)  # the market's pace, not a synchronisation
            self._step_once()

    def _step_once(self) -> None:
        self.exchange.tick()
        self.flush()

    async def step(self, n: int = 1) -> None:
        """Advance the market `n` steps now (their messages are queued on return)."""
        for _ in range(n):
            self._step_once()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.skew_ms

    # --- keys ------------------------------------------------------------------------

    def key_kind(self, api_key: str) -> str | None:
        """"hmac", "ed25519", or None for an unknown key."""
        entry = self._keys.get(api_key)
        return entry[0] if entry else None

    def verify(self, api_key: str, payload: str, signature: str) -> bool:
        kind, material = self._keys.get(api_key, ("", None))
        if kind == "hmac":
            want = hmac.new(material.encode(), payload.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(want, signature.lower())
        if kind == "ed25519":
            try:
                material.verify(base64.b64decode(signature, validate=True), payload.encode())
            except Exception:  # InvalidSignature, bad base64
                return False
            return True
        return False

    # --- fan-out -----------------------------------------------------------------------

    def flush(self) -> None:
        """Send what the engine produced since the last flush."""
        self.streams.broadcast(self.exchange.drain_market())
        for event in self.exchange.drain_user():
            self.user_events.append(event)
            self._publish_user(dumps(event))

    def _publish_user(self, text: str) -> None:
        if self._reorder_left > 0:
            self._reorder_buf.append(text)
            self._reorder_left -= 1
            if self._reorder_left == 0:
                burst, self._reorder_buf = self._reorder_buf[::-1], []
                for t in burst:
                    self._send_user(t)
            return
        self._send_user(text)

    def _send_user(self, text: str) -> None:
        if self._lose_left > 0:
            self._lose_left -= 1
            return
        copies = 1
        if self._dup_left > 0:
            self._dup_left -= 1
            copies = 2
        for _ in range(copies):
            self.ws_api.push(text)

    # --- state for tests ---------------------------------------------------------------

    @property
    def orders(self) -> dict[int, Order]:
        return self.exchange.orders

    @property
    def trades(self) -> list[dict[str, Any]]:
        return self.exchange.trades

    @property
    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        return self.exchange.balances

    @property
    def requests(self) -> deque[tuple[str, str]]:
        return self.rest.requests

    @property
    def user_connections(self) -> list[UserConnection]:
        return self.ws_api.connections

    @property
    def market_connections(self) -> list[MarketConnection]:
        return self.streams.connections

    def book(self, symbol: str = "BTCUSDT") -> tuple[list[tuple[Decimal, Decimal]],
                                                     list[tuple[Decimal, Decimal]]]:
        """(bids, asks) of the authoritative book, (price, qty) best first."""
        return self.exchange.markets[symbol].book()

    def last_update_id(self, symbol: str = "BTCUSDT") -> int:
        return self.exchange.markets[symbol].update_id

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.rest.requests if r == (method, path))

    def post_count(self, client_order_id: str) -> int:
        """POST /api/v3/order requests that carried this newClientOrderId (faults too)."""
        return self.rest.post_counts[client_order_id]

    def set_price(self, symbol: str, best_bid: Decimal) -> None:
        """Move a market so its best bid is `best_bid` (resting orders are not filled
        by the move itself, only by later crowd trades)."""
        self.exchange.set_price(symbol, best_bid)
        self.flush()

    def crowd_trades(self, symbol: str, price: Decimal, qty: Decimal, n: int) -> None:
        """`n` crowd trades of `qty` at `price`, filling the resting orders they reach."""
        self.exchange.crowd_trades(symbol, price, qty, n)
        self.flush()

    def cancel_behind_our_back(self, client_order_id: str, symbol: str = "BTCUSDT", *,
                               archive: bool = False) -> Order:
        """Cancel an open order at Binance as another client would (its reports go
        out like any others); `archive` then archives it as 90 days would."""
        order = self.exchange.find(symbol, client_order_id=client_order_id)
        assert order is not None, client_order_id
        self.exchange.cancel(order, f"other{order.order_id}")
        if archive:
            self.exchange.archive(order)
        self.flush()
        return order

    # --- fault injection -------------------------------------------------------------

    def fail_next(self, status: int, *, n: int = 1, retry_after: float | str | None = None,
                  method: str | None = None, path: str | None = None,
                  after_processing: bool = False, code: int | None = None,
                  msg: str = "", arrives_after_s: float | None = None) -> None:
        """The next `n` matching REST requests answer `status` (with Binance's
        error body `code`/`msg` when given). `arrives_after_s`: an order placement
        answered so reaches the engine that much later (if still within its
        recvWindow then), as a request queued behind a failing gateway may."""
        ra = None if retry_after is None else str(retry_after)
        self.rest.faults.append(Fault("status", n, method, path, status=status, code=code,
                                      msg=msg, retry_after=ra,
                                      after_processing=after_processing,
                                      arrives_after_s=arrives_after_s))
        log.info("fault: next %d REST %s %s -> %d", n, method or "*", path or "*", status)

    def delay_next(self, seconds: float, *, n: int = 1, method: str | None = None,
                   path: str | None = None) -> None:
        self.rest.faults.append(Fault("delay", n, method, path, seconds=seconds))
        log.info("fault: next %d REST %s %s delayed %.3fs", n, method or "*", path or "*",
                 seconds)

    def clear_faults(self) -> None:
        """Forget every REST fault not used yet."""
        self.rest.faults.clear()

    def drop_next(self, *, n: int = 1, method: str | None = None,
                  path: str | None = None) -> None:
        self.rest.faults.append(Fault("drop", n, method, path))
        log.info("fault: next %d REST %s %s dropped", n, method or "*", path or "*")

    def disconnect_market(self, n: int | None = None) -> int:
        """Abort `n` (default all) market-stream connections; returns how many."""
        k = self.streams.disconnect(n)
        log.info("fault: aborted %d market connection(s)", k)
        return k

    def disconnect_user(self) -> int:
        """Abort every WS-API connection; returns how many."""
        k = self.ws_api.disconnect()
        log.info("fault: aborted %d WS-API connection(s)", k)
        return k

    def depth_gap(self, symbol: str = "BTCUSDT", skip: int = 3) -> None:
        """The next depthUpdate of `symbol` skips `skip` update ids (hidden changes)."""
        self.exchange.markets[symbol].request_gap(skip)
        log.info("fault: depth gap on %s", symbol)

    def send_malformed(self, *, market: bool = True, user: bool = True) -> None:
        """A truncated JSON frame on market connections and/or user subscriptions."""
        if market:
            self.streams.send_malformed()
        if user:
            self.ws_api.send_malformed()
        log.info("fault: malformed frame (market=%s user=%s)", market, user)

    def send_unknown(self, *, market: bool = True, user: bool = True) -> None:
        """An unknown stream message / an unknown user event type (`someNewEvent`)."""
        if market:
            self.streams.send_unknown(self.now_ms())
        if user:
            self.ws_api.send_unknown()
        log.info("fault: unknown message (market=%s user=%s)", market, user)

    def lose_user_events(self, n: int = 1) -> None:
        """The next `n` user events never reach any subscriber (lost in transit)."""
        self._lose_left += n
        log.info("fault: lose the next %d user event(s)", n)

    def duplicate_user_events(self, n: int = 1) -> None:
        """Each of the next `n` user events is sent twice."""
        self._dup_left += n
        log.info("fault: duplicate the next %d user event(s)", n)

    def reorder_user_events(self, n: int = 2) -> None:
        """Hold the next `n` user events, then send them in reverse order at once
        (they stay held until `n` events have been produced)."""
        self._reorder_left = n
        log.info("fault: reverse the next %d user event(s)", n)

    def clear_user_faults(self) -> None:
        """Deliver user events as they come again: no more lost, duplicated or
        reordered ones (events held for a reversal are lost)."""
        self._dup_left = self._lose_left = self._reorder_left = 0
        self._reorder_buf = []
        log.info("fault: user events flow normally again")

    def server_shutdown(self) -> None:
        """`serverShutdown` on every market connection, then close them (1001)."""
        self.streams.server_shutdown(self.now_ms())
        log.info("fault: serverShutdown sent to market connections")
