"""The dashboard's live feed: `GET /stream`, server-sent events.

On connect: one `hello` event (the recent equity curve, the recent fills and a
snapshot); then a `snapshot` event every `interval_s` (status, positions,
open orders: the venue and strategy states and equity with them) and a `fill`
event as each fill happens.

Work: one bus subscription to Fill (never a market event); a timer that reads
equity once per `interval_s` for the curve and builds one snapshot per tick
only while someone watches, serialized once for every client. A client that
cannot keep up (its queue full) is dropped; its browser reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import structlog
from aiohttp import web

from daemon.api.routes import Routes
from daemon.api.views import dumps, fill_view

log = structlog.get_logger("tapeloop.control")

_QUEUE = 256
_Message = bytes | None  # None: the server is closing


class Stream:
    """`attach()` on start (subscribes, starts the timer), `detach()` on close."""

    def __init__(self, kernel: Any, routes: Routes, *, interval_s: float = 1.0,
                 history: int = 3600, recent_fills: int = 50) -> None:
        self.kernel = kernel
        self.routes = routes
        self.interval_s = interval_s
        self.equity: deque[tuple[int, str]] = deque(maxlen=history)  # (unix ms, equity)
        self.fills: deque[dict[str, Any]] = deque(maxlen=recent_fills)
        self._clients: set[asyncio.Queue[_Message]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._subscribed: tuple[type, Any] | None = None

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/stream", self.handle)

    def attach(self) -> None:
        from events.orders import Fill

        self.kernel.bus.subscribe(Fill, self._on_fill)
        self._subscribed = (Fill, self._on_fill)
        self._timer = asyncio.get_running_loop().create_task(self._tick_forever(),
                                                             name="control-stream")

    async def detach(self) -> None:
        if self._subscribed is not None:
            with contextlib.suppress(ValueError):
                self.kernel.bus.unsubscribe(*self._subscribed)
            self._subscribed = None
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        for queue in list(self._clients):
            self._send(queue, None)

    # -- what is sent -----------------------------------------------------------------------

    def _on_fill(self, event: Any) -> None:
        view = fill_view(event)
        self.fills.append(view)
        if self._clients:
            message = _event("fill", view)
            for queue in list(self._clients):
                self._send(queue, message)

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.routes.status()}
        if self.kernel.node is not None:
            out["positions"] = self.routes.positions()["positions"]
            out["orders"] = self.routes.orders()["orders"]
        return out

    def sample(self) -> None:
        """One point of the equity curve (nothing while the node is starting)."""
        node = self.kernel.node
        if node is not None:
            self.equity.append((time.time_ns() // 1_000_000, str(node.portfolio.equity())))

    async def _tick_forever(self) -> None:
        while True:
            try:
                self.sample()
                if self._clients:
                    message = _event("snapshot", {**self.snapshot(),
                                                  "equity_point": list(self.equity)[-1:]})
                    for queue in list(self._clients):
                        self._send(queue, message)
            except Exception:  # a view failing must not end the feed: say so, go on
                log.exception("control.stream_failed")
            await asyncio.sleep(self.interval_s)

    def _send(self, queue: asyncio.Queue[_Message], message: _Message) -> None:
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:  # a slow client: drop it, its browser reconnects
            self._clients.discard(queue)
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(None)

    # -- the handler ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        queue: asyncio.Queue[_Message] = asyncio.Queue(maxsize=_QUEUE)
        hello = {**self.snapshot(), "equity": list(self.equity), "fills": list(self.fills)}
        await response.write(b"retry: 2000\n" + _event("hello", hello))
        self._clients.add(queue)
        try:
            while (message := await queue.get()) is not None:
                await response.write(message)
        except ConnectionResetError:  # the browser went away
            pass
        finally:
            self._clients.discard(queue)
        return response


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {dumps(data)}\n\n".encode()
