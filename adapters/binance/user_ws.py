"""The Binance user data stream over the WebSocket API (protocol doc §2, §7).

`UserDataStream` keeps one WS-API connection subscribed to the account's user
data stream and hands every event frame, raw, to `on_event(raw, ts_recv_ns)`
(the caller runs `UserStreamTranslator` on it). listenKey streams are retired
and not supported.

Subscribing, per connection (request ids are 1, 2, ... on each connection):
- HMAC key: `userDataStream.subscribe.signature` with apiKey, timestamp,
  recvWindow and the WS-API signature (`sign_ws`: params sorted, raw);
- Ed25519 key: `session.logon` (same signed params), then a plain
  `userDataStream.subscribe`.
Each request waits up to `request_timeout_s` for the reply with its id. A
reply with `status != 200` raises `WsApiError` (a `BinanceError`):
- key or signature refused (`auth`: -2015, -2014, -1022, HTTP 401): fatal —
  `VenueStatus(disconnected)` naming the error is published and `run()`
  raises it; no reconnect loop on bad credentials;
- -1021 (timestamp outside recvWindow): `on_clock_error()` is awaited (resync
  the server clock) before the next attempt;
- 429/418: the next attempt waits at least until `error.data.retryAfter`;
- anything else: reconnect with backoff.

Reconciliation without losing events. After each successful subscription
`on_subscribed(session_no)` is awaited (1 for the first session, then 2, 3,
...; the caller reconciles open orders and balances over REST there). A reader
task keeps reading the socket the whole time — so pings are answered and the
server is never back-pressured — and events arriving meanwhile are buffered;
once `on_subscribed` returns they are delivered in arrival order, then live
events follow: a live frame with nothing queued before it is delivered by the
reader as it arrives, not one event-loop turn later. Nothing received is
dropped or reordered, including frames that arrived before a drop: they are
delivered before the drop is handled.
`ts_recv` is always the arrival time, not the delivery time. The buffer is
unbounded while `on_subscribed` runs (user data is low-rate). If
`on_subscribed` raises, the buffered frames are still delivered, the failure
is logged (`binance.user_stream.reconcile_failed`) and the session is retried
like a dropped connection.

Frames: replies (they carry an `id`) are routed to their request, never
delivered. Everything else that is JSON is delivered. `eventStreamTerminated`
is delivered too, then ends the session; the stream resubscribes promptly (no
backoff). A frame that is not JSON (or not a JSON object) is logged as
`binance.bad_message` (truncated; it is server text, never our key or
signature) and skipped, counted in `bad_messages`; so is a frame for which
`on_event` raises `msgspec.DecodeError`/`ValidationError` (the translator's
"malformed payload"). Other exceptions from `on_event` propagate.

Connection upkeep mirrors `MarketDataStream`: websockets answers (and sends)
pings; sessions are rotated after `max_session_s`, before Binance's 24 h cut;
drops reconnect with full-jitter backoff within a reconnect budget
(`reconnect.Reconnects`; past it `ReconnectBudgetExhausted`); `stop()` or
cancelling `run()` closes with a normal close handshake.

`VenueStatus` (published on changes): `resyncing` once subscribed while
`on_subscribed` runs, `connected` when live, `disconnected` with the reason on
every loss, on a fatal error and on stop. Secrets are never logged or put in a
status reason: errors carry only the server's code and message.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from adapters.binance.errors import BinanceError
from adapters.binance.reconnect import (
    NO_COMPRESSION,
    ReconnectBudgetExhausted,
    Reconnects,
    Stoppable,
)
from adapters.binance.signing import Credentials, sign_ws
from events.base import Event
from events.system import CONNECTED, DISCONNECTED, RESYNCING

__all__ = ["ReconnectBudgetExhausted", "UserDataStream", "WsApiError"]

log = structlog.get_logger("tapeloop.binance.user_ws")

BAD_PAYLOAD_CHARS = 200  # how much of a malformed payload goes into the log
SUBSCRIBE_SIGNATURE = "userDataStream.subscribe.signature"
SUBSCRIBE = "userDataStream.subscribe"
LOGON = "session.logon"
TERMINATED = b"eventStreamTerminated"


def _local_ms() -> int:
    return time.time_ns() // 1_000_000


class WsApiError(BinanceError):
    """A WS-API reply with `status != 200`. `retry_after_ms` is the epoch-ms
    `error.data.retryAfter` of a 429/418, when given."""

    def __init__(self, method: str, status: int, code: int | None, msg: str,
                 retry_after_ms: int | None = None) -> None:
        self.method = method
        self.retry_after_ms = retry_after_ms
        super().__init__(status, code, msg)

    def __str__(self) -> str:
        code = "" if self.code is None else f" {self.code} {self.name}"
        text = f": {self.msg}" if self.msg else ""
        return f"Binance WS-API {self.method} status {self.status}{code} [{self.category}]{text}"


class _Error(msgspec.Struct, gc=False):
    code: int | None = None
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")


class _Frame(msgspec.Struct, gc=False):
    id: int | str | None = None
    status: int = 0
    result: msgspec.Raw = msgspec.Raw(b"")
    error: _Error | None = None
    event: msgspec.Raw = msgspec.Raw(b"")


class _RetryAfter(msgspec.Struct, gc=False):
    retryAfter: int | None = None


class _Subscribed(msgspec.Struct, gc=False):
    subscriptionId: int | None = None


class _Head(msgspec.Struct, gc=False):
    e: str = ""


_frame = msgspec.json.Decoder(_Frame)
_head = msgspec.json.Decoder(_Head)
_subscribed = msgspec.json.Decoder(_Subscribed)
_retry_after = msgspec.json.Decoder(_RetryAfter)
_encode = msgspec.json.Encoder().encode


def _is_terminated(frame: _Frame, raw: bytes) -> bool:
    if TERMINATED not in raw or not frame.event:
        return False
    try:
        return _head.decode(frame.event).e == "eventStreamTerminated"
    except msgspec.DecodeError:
        return False


class _SessionEnd(Exception):
    """A session ended on purpose (rotation, eventStreamTerminated): no backoff."""


class _SessionFailed(Exception):
    """A session failed for a reason that is neither a socket nor a venue error."""


class _Connection:
    """One WS-API connection: a reader task routes replies to their requests
    and queues every other frame, with its arrival time, for delivery."""

    def __init__(self, ws: ClientConnection, owner: UserDataStream) -> None:
        self.ws = ws
        self.owner = owner
        self.frames: deque[tuple[bytes, int, bool]] = deque()  # raw, ts_recv, terminated
        self.error: BaseException | None = None  # why reading stopped
        self._changed = asyncio.Event()
        self.expired = False  # the session's end came (`expire`)
        # delivering (`UserDataStream._deliver`): a frame with none queued before it
        # goes to `on_event` from the reader itself (see `_read`)
        self.live = False
        self._waiters: dict[int, asyncio.Future[_Frame]] = {}
        self._next_id = 0
        self.reader = asyncio.create_task(self._read(), name="binance-user-ws-reader")

    async def _read(self) -> None:
        owner = self.owner
        try:
            while True:
                # recv() only pulls from websockets' own buffer; reading it
                # continuously keeps the socket drained while nobody delivers.
                raw = await self.ws.recv(decode=False)
                ts = owner.now_ns()
                owner.messages += 1
                try:
                    frame = _frame.decode(raw)
                except msgspec.DecodeError as exc:
                    owner._bad_message(raw, exc)
                    continue
                if frame.id is not None:
                    waiter = self._waiters.pop(frame.id, None)  # type: ignore[arg-type]
                    if waiter is not None and not waiter.done():
                        waiter.set_result(frame)
                    else:
                        log.debug("binance.unexpected_reply", venue=owner.venue,
                                  id=frame.id, status=frame.status)
                    continue
                terminated = _is_terminated(frame, raw)
                if self.live and not self.frames and not terminated:
                    # Live, and every frame before it delivered: delivered here,
                    # not one loop turn later by the delivery task (a resting
                    # order's fill reaches its strategy sooner). What `on_event`
                    # raises ends the reading, and `next_frame` raises it.
                    owner._emit(raw, ts)
                    continue
                self.frames.append((raw, ts, terminated))
                self._changed.set()
        except Exception as exc:  # a drop (ConnectionClosed) or a bug: either ends the session
            self.error = exc
        finally:
            err = self.error or ConnectionError("reader stopped")
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(err)
            self._waiters.clear()
            self._changed.set()

    async def request(self, method: str, params: dict[str, Any] | None,
                      timeout_s: float) -> msgspec.Raw:
        """Send one request and return its `result`; raise `WsApiError` on a
        non-200 reply, TimeoutError without a reply in time."""
        if self.error is not None:
            raise self.error
        self._next_id += 1
        rid = self._next_id
        waiter: asyncio.Future[_Frame] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = waiter
        try:
            body: dict[str, Any] = {"id": rid, "method": method}
            if params:
                body["params"] = params
            await self.ws.send(_encode(body).decode())
            try:
                async with asyncio.timeout(timeout_s):
                    reply = await waiter
            except TimeoutError:
                raise TimeoutError(f"no reply to {method} within {timeout_s:g} s") from None
        finally:
            self._waiters.pop(rid, None)
        if reply.status != 200:
            err = reply.error or _Error()
            retry_after = None
            if err.data:
                try:
                    retry_after = _retry_after.decode(err.data).retryAfter
                except msgspec.DecodeError:
                    pass
            raise WsApiError(method, reply.status, err.code, err.msg, retry_after)
        return reply.result

    def expire(self) -> None:
        """The session's end: `next_frame` raises TimeoutError once the queue is
        empty. One loop timer per session calls it (`UserDataStream._deliver`):
        waiting for a frame arms none (`asyncio.timeout_at` around each wait cost
        ~10 µs a frame, its exit between a frame's arrival and its delivery)."""
        self.expired = True
        self._changed.set()

    async def next_frame(self) -> tuple[bytes, int, bool]:
        """The next queued frame; once the queue is empty, the reader's error, or
        TimeoutError after `expire()`."""
        while not self.frames:
            if self.error is not None:
                raise self.error
            if self.reader.done():
                raise ConnectionError("reader stopped")
            if self.expired:
                raise TimeoutError("the session's end")
            self._changed.clear()
            await self._changed.wait()
        return self.frames.popleft()

    async def close(self) -> None:
        self.reader.cancel()
        await asyncio.wait([self.reader])  # never raises the reader's CancelledError
        # A normal close (1000): the context manager alone would send 1011 on
        # any exception.
        await self.ws.close()


class UserDataStream(Stoppable):
    """The account's user data stream over the WS API; see the module docstring.

    Counters: `messages` (frames received, replies included), `bad_messages`
    (skipped), `reconnects`, `sessions` (successful subscriptions) and
    `subscription_id` (of the current session, None before the first).
    """

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        venue: str,
        on_event: Callable[[bytes, int], object],
        on_subscribed: Callable[[int], Awaitable[None]],
        publish: Callable[[Event], object],
        *,
        now_ms: Callable[[], int] = _local_ms,
        now_ns: Callable[[], int] = time.time_ns,
        on_clock_error: Callable[[], Awaitable[None]] | None = None,
        recv_window_ms: int = 5000,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        reconnect_budget: int = 10,
        budget_window_s: float = 300.0,
        max_session_s: float = 23.5 * 3600,
        request_timeout_s: float = 10.0,
        seed: int = 0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
    ) -> None:
        if not 0 < recv_window_ms <= 60000:
            raise ValueError(f"recv_window_ms must be in (0, 60000], got {recv_window_ms}")
        self.url = url
        self.venue = venue
        self.on_event = on_event
        self.on_subscribed = on_subscribed
        self.publish = publish
        self.now_ms = now_ms  # server-time adjusted, for request timestamps
        self.now_ns = now_ns  # local, for ts_recv and status events
        self.on_clock_error = on_clock_error
        self.recv_window_ms = recv_window_ms
        self.max_session_s = max_session_s
        self.request_timeout_s = request_timeout_s
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.reconnect_policy = Reconnects(
            backoff_initial=backoff_initial, backoff_max=backoff_max,
            budget=reconnect_budget, window_s=budget_window_s, seed=seed)

        self._api_key = credentials.api_key
        self._kind = credentials.kind
        self._signer = credentials.signer()

        self.messages = 0
        self.bad_messages = 0
        self.reconnects = 0
        self.sessions = 0
        self.subscription_id: int | None = None
        self.status = ""  # last published VenueStatus.status, "" before the first

        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"UserDataStream(url={self.url!r}, venue={self.venue!r}, key={self._kind})"

    # -- lifecycle ---------------------------------------------------------

    async def run(self) -> None:
        """Stream until `stop()` (returns) or cancellation (raises CancelledError).

        Raises `WsApiError` when the key or signature is refused, and
        `ReconnectBudgetExhausted` when reconnects exceed the budget.
        """
        self._task = asyncio.current_task()
        try:
            while not self._stopping:
                await self._attempt()
        except asyncio.CancelledError:
            # Forced: a stop during a backoff (already disconnected) is still announced.
            self._set_status(DISCONNECTED, "stopped" if self._stopping else "cancelled",
                             force=True)
            if self._own_cancel():  # swallow only the cancellation stop() requested
                return
            raise
        finally:
            self._task = None
        if self.status:
            self._set_status(DISCONNECTED, "stopped")

    # -- internals ---------------------------------------------------------

    async def _attempt(self) -> None:
        """One session, then whatever its end calls for before the next one."""
        sessions_before = self.sessions
        planned = False
        clock_error = False
        not_before_ms: int | None = None
        try:
            await self._session()
            reason = "connection ended"
        except _SessionEnd as end:
            reason, planned = str(end), True
        except WsApiError as exc:
            if exc.category == "auth":
                self._set_status(DISCONNECTED, f"credentials rejected: {exc}", force=True)
                log.error("binance.user_stream.auth_failed", venue=self.venue,
                          code=exc.code, error=exc.msg)
                raise
            reason = str(exc)
            clock_error = exc.category == "clock"
            not_before_ms = exc.retry_after_ms
        except _SessionFailed as exc:
            reason = str(exc)
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if self._stopping:
            return
        self._session_ended(reason, worked=self.sessions > sessions_before)
        if clock_error and self.on_clock_error is not None:
            try:
                await self.on_clock_error()
            except Exception as exc:  # noqa: BLE001 - the backoff and budget bound retries
                log.warning("binance.user_stream.clock_resync_failed", venue=self.venue,
                            error=f"{type(exc).__name__}: {exc}")
        not_before_s = 0.0 if not_before_ms is None else (not_before_ms - self.now_ms()) / 1000
        await self._wait_to_reconnect(reason, planned=planned, not_before_s=not_before_s)

    def _describe(self) -> tuple[str, str]:
        return "user data stream", self.url

    def _signed(self) -> dict[str, str | int]:
        return sign_ws(self._signer, {"apiKey": self._api_key, "timestamp": self.now_ms(),
                                      "recvWindow": self.recv_window_ms})

    async def _subscribe(self, conn: _Connection) -> int | None:
        t = self.request_timeout_s
        if self._kind == "hmac":
            result = await conn.request(SUBSCRIBE_SIGNATURE, self._signed(), t)
        else:
            await conn.request(LOGON, self._signed(), t)
            result = await conn.request(SUBSCRIBE, None, t)
        try:
            return _subscribed.decode(result).subscriptionId if result else None
        except msgspec.DecodeError:
            return None

    async def _session(self) -> None:
        """One connection: subscribe, reconcile, deliver until it ends (raises)."""
        loop = asyncio.get_running_loop()
        async with connect(self.url, open_timeout=self.open_timeout,
                           close_timeout=self.close_timeout,
                           compression=NO_COMPRESSION) as ws:
            session_end = loop.time() + self.max_session_s
            conn = _Connection(ws, self)
            try:
                self.subscription_id = await self._subscribe(conn)
                self.sessions += 1
                n = self.sessions
                log.info("binance.user_stream.subscribed", venue=self.venue, session=n,
                         subscription_id=self.subscription_id, key=self._kind)
                self._set_status(RESYNCING, f"subscribed, reconciling (session {n})")
                try:
                    await self.on_subscribed(n)
                except Exception as exc:  # noqa: BLE001 - retried as a failed session
                    log.warning("binance.user_stream.reconcile_failed", venue=self.venue,
                                session=n, error=f"{type(exc).__name__}: {exc}")
                    self._drain_buffered(conn)
                    raise _SessionFailed(
                        f"reconciliation failed: {type(exc).__name__}: {exc}") from exc
                self._set_status(CONNECTED, f"live (session {n})")
                await self._deliver(conn, loop, session_end)
            finally:
                await conn.close()

    async def _deliver(self, conn: _Connection, loop: asyncio.AbstractEventLoop,
                       session_end: float) -> None:
        end = loop.call_at(session_end, conn.expire)
        conn.live = True
        try:
            while True:
                try:
                    raw, ts, terminated = await conn.next_frame()
                except TimeoutError:
                    raise _SessionEnd(
                        f"session rotated after {self.max_session_s:g} s") from None
                self._emit(raw, ts)
                if terminated:
                    raise _SessionEnd("eventStreamTerminated")
        finally:
            conn.live = False  # nothing reaches on_event once delivering has stopped
            end.cancel()

    def _drain_buffered(self, conn: _Connection) -> None:
        while conn.frames:
            raw, ts, _ = conn.frames.popleft()
            self._emit(raw, ts)

    def _emit(self, raw: bytes, ts: int) -> None:
        try:
            self.on_event(raw, ts)
        except msgspec.DecodeError as exc:  # includes ValidationError
            self._bad_message(raw, exc)

    def _bad_message(self, raw: bytes, exc: Exception) -> None:
        self.bad_messages += 1
        log.warning("binance.bad_message", venue=self.venue, stream="user", error=str(exc),
                    payload=raw[:BAD_PAYLOAD_CHARS].decode("utf-8", "replace"))
