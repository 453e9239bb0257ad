"""The USD-M user data stream: a listenKey websocket kept alive and reopened.

Per session: `POST /fapi/v1/listenKey`, connect to `<streams>/ws/<listenKey>`,
then `on_subscribed(session_no)` is awaited (the venue reconciles over REST)
while a reader task keeps reading the socket into a queue, so nothing that
arrives meanwhile is lost or reordered; then frames are delivered in arrival
order. `PUT /fapi/v1/listenKey` every `keepalive_s` (Binance: valid 60 min). A
frame for which `on_frame` returns True (`listenKeyExpired`) ends the session;
the next one takes a fresh key and reconciles again. So does a keep-alive answered
-1125 (the key lapsed and its `listenKeyExpired` never came: the socket may stay
open with nothing more on it); a keep-alive that fails otherwise is logged and
the next one tried. Drops and errors reconnect
with backoff within the reconnect budget (`adapters.binance.reconnect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from adapters.binance.errors import BinanceError
from adapters.binance.reconnect import NO_COMPRESSION, Reconnects, Stoppable
from adapters.binance_usdm.endpoints import KEEPALIVE_S, UsdmEndpoints
from events.base import Event
from events.system import CONNECTED, RESYNCING

log = structlog.get_logger("tapeloop.binance_usdm.user_ws")

_END = b""  # the reader's "socket closed" marker in the queue
_LAPSED = bytes(bytearray(b"lapsed"))  # the keep-alive's "the key is gone" marker (an
# object of its own: `is` never matches a frame)
LISTEN_KEY_GONE = -1125  # "This listenKey does not exist."


class ListenKeyStream(Stoppable):
    """See the module docstring."""

    def __init__(self, endpoints: UsdmEndpoints, rest: Any, venue: str,
                 on_frame: Callable[[bytes, int], bool],
                 on_subscribed: Callable[[int], Awaitable[None]],
                 publish: Callable[[Event], object], *, now_ns: Callable[[], int] = time.time_ns,
                 keepalive_s: float = KEEPALIVE_S, reconnect_budget: int = 1000,
                 budget_window_s: float = 300.0) -> None:
        self.endpoints, self.rest, self.venue = endpoints, rest, venue
        self.on_frame, self.on_subscribed = on_frame, on_subscribed
        self.publish, self.now_ns = publish, now_ns
        self.keepalive_s = keepalive_s
        self.reconnect_policy = Reconnects(backoff_initial=0.2, backoff_max=5.0,
                                           budget=reconnect_budget, window_s=budget_window_s)
        self.status = ""
        self.reconnects = 0
        self.sessions = 0
        self._ws: Any = None

    def _describe(self) -> tuple[str, str]:
        return "user stream", f"{self.endpoints.streams}/ws/<listenKey>"

    def disconnect(self) -> None:
        """Close the current socket (a test's or an operator's nudge)."""
        if self._ws is not None:
            asyncio.get_running_loop().create_task(self._ws.close())

    async def run(self) -> None:
        self._task = asyncio.current_task()
        while True:
            worked = False
            try:
                worked = await self._session()
                reason = "listenKey expired"
            except asyncio.CancelledError:
                if self._own_cancel():
                    return
                raise
            except (WebSocketException, OSError, BinanceError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self._session_ended(reason, worked=worked)
            await self._wait_to_reconnect(reason, planned=False)

    async def _session(self) -> bool:
        key = await self.rest.listen_key()
        queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
        async with connect(self.endpoints.user_stream(key), open_timeout=10,
                           close_timeout=2, compression=NO_COMPRESSION) as ws:
            self._ws = ws

            async def read() -> None:
                try:
                    async for msg in ws:
                        raw = msg.encode() if isinstance(msg, str) else msg
                        queue.put_nowait((raw, self.now_ns()))
                finally:
                    queue.put_nowait((_END, 0))

            async def keepalive() -> None:
                while True:
                    await asyncio.sleep(self.keepalive_s)
                    try:
                        await self.rest.keepalive()
                    except BinanceError as exc:
                        if exc.code == LISTEN_KEY_GONE:
                            # the key lapsed and its listenKeyExpired never came: the
                            # socket may stay open, but nothing more comes on it
                            queue.put_nowait((_LAPSED, 0))
                            return
                        log.warning("binance_usdm.keepalive_failed", venue=self.venue,
                                    error=str(exc))
                    except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                        # the key is valid for 60 minutes: the next keep-alive may pass
                        log.warning("binance_usdm.keepalive_failed", venue=self.venue,
                                    error=repr(exc))

            reader = asyncio.create_task(read())
            pinger = asyncio.create_task(keepalive())
            try:
                self.sessions += 1
                self._set_status(RESYNCING, f"user stream open, reconciling "
                                            f"(session {self.sessions})")
                await self.on_subscribed(self.sessions)
                self._set_status(CONNECTED, f"user stream live (session {self.sessions})")
                while True:
                    raw, ts = await queue.get()
                    if raw is _END:
                        raise ConnectionError("user stream closed")
                    if raw is _LAPSED:
                        raise ConnectionError("listenKey lapsed (keep-alive answered -1125)")
                    if self.on_frame(raw, ts):
                        return True
            finally:
                self._ws = None
                for task in (reader, pinger):
                    task.cancel()
                for task in (reader, pinger):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
