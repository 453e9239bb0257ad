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
  is not one) is logged (`binance.bad_message`) and skipped, never fatal;
- permessage-deflate (RFC 7692, which Binance accepts) is not offered unless
  `compression="deflate"` asks for it: inflating a message cost ~10 µs of CPU
  on the AMD VM (`bench.bench_market_ws`: 23-30 against 14-15 µs a message in
  all), spent between its arrival and its parse. A server never compresses what
  the client did not offer. The user data streams do not offer it either
  (`reconnect.NO_COMPRESSION`).

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
from adapters.binance.reconnect import (
    NO_COMPRESSION,
    ReconnectBudgetExhausted,
    Reconnects,
    Stoppable,
)
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


class _Deadlines:
    """A session's two deadlines on one loop timer: the feed is stale once no
    message came for `stale_after_s` (`resyncing` is published, once), and the
    session ends at `session_end` (its task is cancelled where it awaits recv(),
    and `_read` makes that `_SessionEnd`). A message only notes its time
    (`last`); the timer, when it fires before the stale deadline that time now
    gives, moves itself there. So a message costs no timer, and the timer fires
    at most once per `stale_after_s` of a live feed."""

    __slots__ = ("stream", "loop", "task", "session_end", "cancelling", "last", "stale",
                 "ended", "_timer")

    def __init__(self, stream: MarketDataStream, loop: asyncio.AbstractEventLoop,
                 task: asyncio.Task[None], session_end: float) -> None:
        self.stream, self.loop, self.task = stream, loop, task
        self.session_end = session_end
        self.cancelling = task.cancelling()  # cancels already requested are not ours
        self.last = loop.time()
        self.stale = False
        self.ended = False
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        due = self.session_end if self.stale else min(
            self.session_end, self.last + self.stream.stale_after_s)
        self._timer = self.loop.call_at(due, self._fire)

    def _fire(self) -> None:
        now = self.loop.time()
        if now >= self.session_end:
            self._timer = None
            self.ended = True
            self.task.cancel()
            return
        went_stale = not self.stale and now >= self.last + self.stream.stale_after_s
        self.stale = self.stale or went_stale
        # armed again first (early: a message came since it was set; stale: for the
        # session's end), so a failing status publish leaves the deadlines running
        self._arm()
        if went_stale:
            self.stream._set_status(
                RESYNCING, f"stale feed: no message for {self.stream.stale_after_s:g} s")

    def resumed(self) -> None:
        """A message after the feed went stale."""
        self.stale = False
        self.stream._set_status(CONNECTED, "feed resumed")
        self.close()
        self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


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
        compression: str | None = NO_COMPRESSION,
    ) -> None:
        """`parser`: how messages become events (USD-M's adds markPrice);
        `compression`: "deflate" offers permessage-deflate (a thin link's choice)."""
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
        self.compression = compression

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
                           close_timeout=self.close_timeout,
                           compression=self.compression) as ws:
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
        # The deadlines are one loop timer moved lazily (`_Deadlines`), not a
        # timeout per message: `asyncio.timeout_at` around each recv() cost
        # ~10 µs a message here, half of it between a frame's arrival and its
        # parse. recv() is cancel-safe in websockets' asyncio implementation:
        # the session's end cancels it and loses no frame.
        task = asyncio.current_task()
        assert task is not None
        deadlines = _Deadlines(self, loop, task, session_end)
        try:
            while True:
                try:
                    raw = await ws.recv(decode=False)
                except asyncio.CancelledError:
                    if deadlines.ended and task.uncancel() <= deadlines.cancelling:
                        raise _SessionEnd(
                            f"session rotated after {self.max_session_s:g} s") from None
                    raise
                deadlines.last = loop.time()
                if deadlines.stale:
                    deadlines.resumed()
                if self._on_message(raw):
                    raise _SessionEnd("serverShutdown notice")
        finally:
            deadlines.close()

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
