"""The Binance market-data websocket: one combined-stream connection kept alive.

`MarketDataStream` owns a connection to `{url}/stream?streams=a/b/c`, turns each
message into an event with `StreamParser` and hands it to `publish`. Around
that it keeps the connection honest (protocol doc section 8):

- pings are answered by `websockets` itself (and it pings the server, so a dead
  peer is noticed);
- a session is rotated proactively after `max_session_s`, before Binance's 24 h
  cut, and promptly on a `serverShutdown` notice; planned rotations wait no
  backoff;
- on a drop or an error it reconnects with exponential backoff and full
  jitter, at most `reconnect_budget` times per `budget_window_s`; past that it
  publishes `VenueStatus(disconnected)` and raises `ReconnectBudgetExhausted`
  so the supervisor decides (the policy lives in `reconnect.Reconnects`);
- if no message arrives for `stale_after_s` it publishes `resyncing` once, and
  `connected` again when messages resume;
- a malformed payload (bad JSON, a missing or mistyped field, a number that
  is not one) is logged (`binance.bad_message`) and skipped, never fatal.

`publish` is called synchronously, in order, from the connection task: there
is no queue here to overflow. `VenueStatus` is published on every status
change. `stop()` or cancelling the task closes the socket with a close
handshake; cancellation is always propagated.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from adapters.binance.parse import StreamParser
from adapters.binance.reconnect import ReconnectBudgetExhausted, Reconnects, Stoppable
from events.base import Event
from events.system import CONNECTED, DISCONNECTED, RESYNCING

log = structlog.get_logger("tapeloop.binance.market_ws")

MAX_STREAMS = 1024  # per connection, protocol doc section 8
BAD_PAYLOAD_CHARS = 200  # how much of a malformed payload goes into the log

_STREAM_NAME = re.compile(rb'"stream"\s*:\s*"([^"]{0,200})"')


__all__ = [
    "MAX_STREAMS",
    "MarketDataStream",
    "ReconnectBudgetExhausted",  # re-exported from reconnect.py
    "combined_stream_url",
    "is_server_shutdown",
    "stream_name_of",
]


class _ShutdownProbe(msgspec.Struct):
    stream: str = ""  # combined stream: "!serverShutdown"
    e: str = ""  # raw stream: {"e":"serverShutdown","E":...}


_probe = msgspec.json.Decoder(_ShutdownProbe)


def is_server_shutdown(raw: bytes) -> bool:
    """True for a `serverShutdown` notice, combined or raw. Cheap on other messages:
    the decode only runs when the bytes mention it."""
    if b"serverShutdown" not in raw:
        return False
    try:
        probe = _probe.decode(raw)
    except msgspec.DecodeError:
        return False
    return probe.stream == "!serverShutdown" or probe.e == "serverShutdown"


def stream_name_of(raw: bytes) -> str:
    """The `stream` of a combined-stream message, best effort (for logging bad ones)."""
    m = _STREAM_NAME.search(raw, 0, 512)
    return m.group(1).decode("utf-8", "replace") if m else ""


def combined_stream_url(url: str, streams: list[str]) -> str:
    return f"{url.rstrip('/')}/stream?streams={'/'.join(streams)}"


class _SessionEnd(Exception):
    """A planned end of a session (rotation); `reason` says which."""


class MarketDataStream(Stoppable):
    """One combined-stream connection with reconnects; see the module docstring.

    Counters for metrics: `messages` (frames received), `bad_messages`
    (malformed, skipped), `reconnects`, and `unknown_messages` (streams or
    control messages the parser does not map to events).
    """

    def __init__(
        self,
        url: str,
        streams: list[str],
        venue: str,
        publish: Callable[[Event], object],
        *,
        now_ns: Callable[[], int] = time.time_ns,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        reconnect_budget: int = 10,
        budget_window_s: float = 300.0,
        stale_after_s: float = 10.0,
        max_session_s: float = 23.5 * 3600,
        rng: random.Random | None = None,
        seed: int = 0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        parser: StreamParser | None = None,
    ) -> None:
        """`parser`: how messages become events (USD-M's adds markPrice)."""
        if not streams:
            raise ValueError("MarketDataStream: no streams given")
        if len(streams) > MAX_STREAMS:
            raise ValueError(f"MarketDataStream: {len(streams)} streams, Binance allows "
                             f"{MAX_STREAMS} per connection")
        self.endpoint = combined_stream_url(url, streams)
        self.streams = list(streams)
        self.venue = venue
        self.publish = publish
        self.now_ns = now_ns
        self.reconnect_policy = Reconnects(
            backoff_initial=backoff_initial, backoff_max=backoff_max,
            budget=reconnect_budget, window_s=budget_window_s, rng=rng, seed=seed)
        self.stale_after_s = stale_after_s
        self.max_session_s = max_session_s
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout

        self.messages = 0
        self.bad_messages = 0
        self.reconnects = 0
        self.status = ""  # last published VenueStatus.status, "" before the first

        self._parser = parser or StreamParser(venue)
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def unknown_messages(self) -> int:
        return self._parser.unknown

    # -- lifecycle ---------------------------------------------------------

    async def run(self) -> None:
        """Stream until `stop()` (returns) or cancellation (raises CancelledError).

        Raises `ReconnectBudgetExhausted` when reconnects exceed the budget.
        """
        self._task = asyncio.current_task()
        try:
            while not self._stopping:
                received_before = self.messages
                planned = False
                try:
                    await self._session()
                    reason = "connection ended"
                except _SessionEnd as end:
                    reason, planned = str(end), True
                except (OSError, TimeoutError, WebSocketException) as exc:
                    reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                if self._stopping:
                    break
                self._session_ended(reason, worked=self.messages > received_before)
                await self._wait_to_reconnect(reason, planned=planned)
        except asyncio.CancelledError:
            self._set_status(DISCONNECTED, "stopped" if self._stopping else "cancelled")
            if self._own_cancel():  # swallow only the cancellation stop() requested
                return
            raise
        finally:
            self._task = None
        if self.status:
            self._set_status(DISCONNECTED, "stopped")

    def backoff_delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**attempt)]."""
        return self.reconnect_policy.delay(attempt)

    # -- internals ---------------------------------------------------------

    def _describe(self) -> tuple[str, str]:
        return "market data", self.endpoint

    async def _session(self) -> None:
        """One connection until it drops (raises) or is rotated (`_SessionEnd`)."""
        loop = asyncio.get_running_loop()
        async with connect(self.endpoint, open_timeout=self.open_timeout,
                           close_timeout=self.close_timeout) as ws:
            try:
                self._set_status(CONNECTED)
                log.info("binance.connected", venue=self.venue, endpoint=self.endpoint)
                session_end = loop.time() + self.max_session_s
                await self._read(ws, loop, session_end)
            finally:
                # A normal close (1000) for rotations, stop() and cancellation:
                # the context manager alone would send 1011 on any exception.
                await ws.close()

    async def _read(self, ws: ClientConnection, loop: asyncio.AbstractEventLoop,
                    session_end: float) -> None:
        stale = False
        last_message = loop.time()
        while True:
            deadline = session_end if stale else min(session_end,
                                                      last_message + self.stale_after_s)
            # recv() is cancel-safe in websockets' asyncio implementation: a
            # timeout loses no frame.
            with_deadline = asyncio.timeout_at(deadline)
            try:
                async with with_deadline:
                    raw = await ws.recv(decode=False)
            except TimeoutError:
                if not with_deadline.expired():
                    raise
                if loop.time() >= session_end:
                    raise _SessionEnd(
                        f"session rotated after {self.max_session_s:g} s") from None
                stale = True
                self._set_status(
                    RESYNCING, f"stale feed: no message for {self.stale_after_s:g} s")
                continue
            last_message = loop.time()
            if stale:
                stale = False
                self._set_status(CONNECTED, "feed resumed")
            if self._on_message(raw):
                raise _SessionEnd("serverShutdown notice")

    def _on_message(self, raw: bytes) -> bool:
        """Publish the message's event; True when it is a serverShutdown notice."""
        self.messages += 1
        try:
            event = self._parser.parse(raw, self.now_ns())
        # ValueError: a price or size that is a string but not a number ("1..2")
        except (msgspec.DecodeError, ValueError) as exc:
            self.bad_messages += 1
            log.warning("binance.bad_message", venue=self.venue, stream=stream_name_of(raw),
                        error=str(exc),
                        payload=raw[:BAD_PAYLOAD_CHARS].decode("utf-8", "replace"))
            return False
        if event is not None:
            self.publish(event)
            return False
        return is_server_shutdown(raw)
