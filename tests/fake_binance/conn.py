"""One server-side websocket connection with an ordered outgoing queue.

Producers (the engine's fan-out, fault injection) call `send()` synchronously;
a writer task sends the frames in queue order, so events reach a client in the
order they happened. `close()` sends a close frame after what is queued;
`abort()` drops the TCP connection with no close handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

log = logging.getLogger("fake_binance")

_CLOSE = object()
_ids = itertools.count(1)


class Connection:
    """A websocket client of the fake; `kind` is "market" or "user"."""

    def __init__(self, request: web.Request, kind: str, heartbeat_s: float | None) -> None:
        self.id = next(_ids)
        self.kind = kind
        self.path = request.path_qs
        self.ws = web.WebSocketResponse(heartbeat=heartbeat_s, autoping=True)
        self._transport = request.transport
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._closing = False
        self.open = True
        self.done = asyncio.Event()
        self.sent = 0  # frames written

    def send(self, text: str) -> None:
        """Queue one text frame (dropped once the connection is closing)."""
        if self.open and not self._closing:
            self._queue.put_nowait(text)

    def close(self) -> None:
        """Send what is queued, then a close frame (1001 going away)."""
        if self.open and not self._closing:
            self._closing = True
            self._queue.put_nowait(_CLOSE)

    def abort(self) -> None:
        """Drop the connection at once: no close frame, queued frames lost."""
        self.open = False
        if self._transport is not None:
            self._transport.abort()

    async def serve(self, request: web.Request,
                    on_text: Callable[[Connection, str], Awaitable[None] | None]
                    ) -> web.WebSocketResponse:
        """Run the connection: read text frames into `on_text` until it ends."""
        await self.ws.prepare(request)
        writer = asyncio.create_task(self._write_loop())
        log.info("%s connection %d opened: %s", self.kind, self.id, self.path)
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    result = on_text(self, msg.data)
                    if result is not None:
                        await result
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.open = False
            if self._closing and not writer.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer, 2.0)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            self.done.set()
            log.info("%s connection %d closed", self.kind, self.id)
        return self.ws

    async def _write_loop(self) -> None:
        while True:
            item = await self._queue.get()
            if item is _CLOSE:
                await self.ws.close(code=1001, message=b"going away")
                return
            try:
                await self.ws.send_str(item)  # type: ignore[arg-type]
            except (ConnectionError, RuntimeError):
                return
            self.sent += 1
