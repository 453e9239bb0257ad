"""MarketDataStream against a real local `websockets` server (no mocks).

Every wait is on a condition (an asyncio.Event re-armed on each change) under a
deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from structlog.testing import capture_logs
from websockets.asyncio.server import ServerConnection, serve

from adapters.binance.market_ws import (
    MarketDataStream,
    ReconnectBudgetExhausted,
    combined_stream_url,
    is_server_shutdown,
    stream_name_of,
)
from adapters.binance.parse import StreamParser
from events.base import Event
from events.system import CONNECTED, DISCONNECTED, RESYNCING, VenueStatus
from tests.adapters.binance.watched import TimerCount, Watched
from tests.conftest import SHARED_DATA

VENUE = "binance-usdm"
NOW = 1_723_161_255_000_000_000
DEADLINE = 5.0
RECORDING = SHARED_DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"

# Documented payloads (protocol doc section 8), used when the recording is absent.
DOC_LINES = [
    b'{"stream":"bnbbtc@trade","data":{"e":"trade","E":1,"s":"BNBBTC","t":12345,'
    b'"p":"0.001","q":"100","T":1,"m":true,"M":true}}',
    b'{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT",'
    b'"b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}',
    b'{"stream":"bnbbtc@depth","data":{"e":"depthUpdate","E":2,"s":"BNBBTC","U":157,'
    b'"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}',
]
SHUTDOWN = '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1778227200000}}'

Handler = Callable[[ServerConnection, int], Awaitable[None]]


def sample_lines(n: int = 40) -> list[bytes]:
    """Real combined-stream lines from the shared recording, else documented ones."""
    if not RECORDING.exists():
        return DOC_LINES
    out: list[bytes] = []
    with gzip.open(RECORDING, "rb") as f:
        for line in f:
            _, _, body = line.strip().partition(b" ")
            if body.startswith(b'{"stream"'):
                out.append(body)
            if len(out) == n:
                break
    return out


LINES = sample_lines()


def expected(lines: list[bytes]) -> list[Event]:
    parser = StreamParser(VENUE)
    return [e for e in (parser.parse(raw, NOW) for raw in lines) if e is not None]


class FakeVenue:
    """A local combined-stream server; `handlers[i]` serves connection i (the
    last one serves any further connections)."""

    def __init__(self, handlers: list[Handler]) -> None:
        self.handlers = handlers
        self.paths: list[str] = []
        self.close_codes: list[int | None] = []
        self.log = Watched()  # "open i" / "closed i" / anything a handler records

    async def handle(self, ws: ServerConnection) -> None:
        i = len(self.paths)
        self.paths.append(ws.request.path if ws.request else "")
        self.log(f"open {i}")
        try:
            await self.handlers[min(i, len(self.handlers) - 1)](ws, i)
        finally:
            await ws.wait_closed()
            self.close_codes.append(ws.close_code)
            self.log(f"closed {i}")


@asynccontextmanager
async def venue(*handlers: Handler) -> AsyncIterator[tuple[FakeVenue, str]]:
    fake = FakeVenue(list(handlers))
    async with serve(fake.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}"


@asynccontextmanager
async def running(stream: MarketDataStream) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        stream.stop()
        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(task, return_exceptions=True)


def make_stream(url: str, sink: Watched, **kw: object) -> MarketDataStream:
    opts: dict = {"now_ns": lambda: NOW, "backoff_initial": 0.01, "backoff_max": 0.05,
                  "rng": random.Random(7)}
    opts.update(kw)
    return MarketDataStream(url, ["btcusdt@depth@0ms", "btcusdt@bookTicker",
                                  "btcusdt@trade"], VENUE, sink, **opts)


def send_then_hold(*lines: bytes | str) -> Handler:
    async def handler(ws: ServerConnection, i: int) -> None:
        for line in lines:
            await ws.send(line.decode() if isinstance(line, bytes) else line)
        await ws.wait_closed()
    return handler


def send_then_drop(*lines: bytes | str) -> Handler:
    async def handler(ws: ServerConnection, i: int) -> None:
        for line in lines:
            await ws.send(line.decode() if isinstance(line, bytes) else line)
        await ws.close(1011, "going away")
    return handler


# -- tests -------------------------------------------------------------------


def test_helpers() -> None:
    assert combined_stream_url("wss://x:9443/", ["a@trade", "b@depth"]) == \
        "wss://x:9443/stream?streams=a@trade/b@depth"
    assert is_server_shutdown(SHUTDOWN.encode())
    assert is_server_shutdown(b'{"e":"serverShutdown","E":1}')
    assert not is_server_shutdown(DOC_LINES[0])
    assert not is_server_shutdown(b'{"stream":"x@trade","data":"serverShutdown"}')
    assert stream_name_of(DOC_LINES[0]) == "bnbbtc@trade"
    assert stream_name_of(b"garbage") == ""
    with pytest.raises(ValueError):
        MarketDataStream("ws://x", [], VENUE, print)


def test_backoff_is_seeded_full_jitter() -> None:
    def delays() -> list[float]:
        s = MarketDataStream("ws://x", ["a@trade"], VENUE, print, backoff_initial=0.5,
                             backoff_max=30.0, rng=random.Random(1))
        return [s.backoff_delay(k) for k in range(12)]
    a, b = delays(), delays()
    assert a == b
    for k, d in enumerate(a):
        assert 0.0 <= d <= min(30.0, 0.5 * 2**k)


async def test_events_published_in_order_and_pings_answered() -> None:
    pong = asyncio.Event()

    async def handler(ws: ServerConnection, i: int) -> None:
        for line in LINES:
            await ws.send(line.decode())
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, DEADLINE)  # the client's pong
        pong.set()
        await ws.wait_closed()

    sink = Watched()
    want = expected(LINES)
    async with venue(handler) as (fake, url):
        stream = make_stream(url, sink)
        async with running(stream):
            await sink.wait(lambda: len(sink.market()) == len(want))
            async with asyncio.timeout(DEADLINE):
                await pong.wait()
    assert fake.paths == ["/stream?streams=btcusdt@depth@0ms/btcusdt@bookTicker/btcusdt@trade"]
    assert sink.market() == want
    assert sink.items[0] == VenueStatus(ts_event=NOW, ts_recv=NOW, venue=VENUE,
                                        status=CONNECTED)
    assert stream.messages == len(LINES) and stream.bad_messages == 0
    assert sink.statuses()[-1] == (DISCONNECTED, "stopped")
    assert fake.close_codes == [1000]


async def test_reconnects_after_drop_and_continues() -> None:
    # two distinct non-empty batches whether the recording is there or not
    first, second = (LINES[:3], LINES[3:6]) if len(LINES) >= 6 else (LINES[:2], LINES[2:])
    sink = Watched()
    async with venue(send_then_drop(*first), send_then_hold(*second)) as (fake, url):
        stream = make_stream(url, sink)
        async with running(stream):
            await sink.wait(lambda: len(sink.market()) == len(expected(first + second)))
    assert sink.market() == expected(first + second)
    assert stream.reconnects == 1
    statuses = sink.statuses()
    assert [s for s, _ in statuses] == [CONNECTED, DISCONNECTED, CONNECTED, DISCONNECTED]
    assert "1011" in statuses[1][1]
    assert len(fake.paths) == 2


async def test_malformed_and_unknown_messages_are_skipped() -> None:
    bad_fields = '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}'
    sink = Watched()
    async with venue(send_then_hold(
            "not json at all", bad_fields, '{"stream":"btcusdt@forceOrder","data":{}}',
            DOC_LINES[0])) as (fake, url):
        stream = make_stream(url, sink)
        with capture_logs() as logs:
            async with running(stream):
                await sink.wait(lambda: sink.market())
    assert sink.market() == expected([DOC_LINES[0]])
    assert stream.bad_messages == 2 and stream.messages == 4
    assert stream.unknown_messages == 1
    assert stream.reconnects == 0 and len(fake.paths) == 1
    bad = [e for e in logs if e["event"] == "binance.bad_message"]
    assert [e["stream"] for e in bad] == ["", "btcusdt@trade"]
    assert bad[1]["payload"] == bad_fields and bad[1]["log_level"] == "warning"


@pytest.mark.parametrize("field", ["p", "q"])
async def test_a_number_that_is_not_one_is_skipped_not_fatal(field: str) -> None:
    # well-formed JSON of the right types, but a price float() refuses: before, its
    # ValueError ended the stream's task (and with it a trading daemon)
    odd = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":7,'
           '"p":"0.1","q":"0.1","T":1,"m":true}}').replace(f'"{field}":"0.1"', f'"{field}":"1..2"')
    sink = Watched()
    async with venue(send_then_hold(odd, DOC_LINES[0])) as (fake, url):
        stream = make_stream(url, sink)
        with capture_logs() as logs:
            async with running(stream):
                await sink.wait(lambda: sink.market())
    assert sink.market() == expected([DOC_LINES[0]])
    assert stream.bad_messages == 1 and stream.reconnects == 0
    bad = [e for e in logs if e["event"] == "binance.bad_message"]
    assert [e["stream"] for e in bad] == ["btcusdt@trade"] and "1..2" in bad[0]["error"]


async def test_server_shutdown_notice_reconnects_promptly() -> None:
    sink = Watched()
    async with venue(send_then_hold(SHUTDOWN), send_then_hold(DOC_LINES[0])) as (fake, url):
        # A huge backoff proves the planned reconnect does not wait for it.
        stream = make_stream(url, sink, backoff_initial=60.0, backoff_max=60.0)
        async with running(stream):
            await sink.wait(lambda: sink.market())
            await fake.log.wait(lambda: "closed 0" in fake.log.items)
    assert sink.market() == expected([DOC_LINES[0]])
    assert stream.reconnects == 1
    assert (DISCONNECTED, "serverShutdown notice") in sink.statuses()
    assert fake.close_codes[0] == 1000  # the client closed the old session cleanly


async def test_session_rotated_before_24h_cut() -> None:
    sink = Watched()
    async with venue(send_then_hold(DOC_LINES[0]), send_then_hold(DOC_LINES[1])) as (fake, url):
        stream = make_stream(url, sink, max_session_s=0.2, backoff_initial=60.0)
        async with running(stream):
            await sink.wait(lambda: len(sink.market()) == 2)
    assert sink.market() == expected(DOC_LINES[:2])
    assert any(s == DISCONNECTED and "rotated" in r for s, r in sink.statuses())


async def test_stale_feed_resyncing_then_connected() -> None:
    resume = asyncio.Event()

    async def handler(ws: ServerConnection, i: int) -> None:
        await ws.send(DOC_LINES[0].decode())
        await resume.wait()
        await ws.send(DOC_LINES[1].decode())
        await ws.wait_closed()

    sink = Watched()
    async with venue(handler) as (fake, url):
        stream = make_stream(url, sink, stale_after_s=0.1)
        async with running(stream):
            await sink.wait(lambda: (RESYNCING, "stale feed: no message for 0.1 s")
                            in sink.statuses())
            resume.set()
            await sink.wait(lambda: len(sink.market()) == 2)
    assert [s for s, _ in sink.statuses()] == [CONNECTED, RESYNCING, CONNECTED, DISCONNECTED]
    assert stream.reconnects == 0


async def test_a_message_arms_no_timer() -> None:
    # The read loop's deadlines are one lazily moved timer, not a timeout around
    # each recv(): counted on the loop, a burst of messages arms a handful of
    # timers (the connection's own), not one or more per message.
    timers = TimerCount()
    burst = LINES * 10
    sink = Watched()
    async with venue(send_then_hold(*burst)) as (fake, url):
        stream = make_stream(url, sink)
        with timers.counting():
            async with running(stream):
                await sink.wait(lambda: len(sink.market()) == len(expected(burst)))
                during = timers.armed
    assert sink.market() == expected(burst)
    assert during < 20, f"{during} timers armed for {len(burst)} messages"


async def test_a_live_feed_is_never_stale() -> None:
    # messages 20 ms apart for ~0.6 s against a stale limit of 0.3 s: the limit's
    # first deadline passes while messages flow, and the timer moves on past it
    lines = (LINES * 2)[:30]

    async def handler(ws: ServerConnection, i: int) -> None:
        for line in lines:
            await ws.send(line.decode())
            await asyncio.sleep(0.02)  # the feed's pace, not a synchronisation
        await ws.wait_closed()

    sink = Watched()
    async with venue(handler) as (fake, url):
        stream = make_stream(url, sink, stale_after_s=0.3)
        async with running(stream):
            await sink.wait(lambda: len(sink.market()) == len(expected(lines)))
    assert [s for s, _ in sink.statuses()] == [CONNECTED, DISCONNECTED]


async def test_stale_again_after_resuming() -> None:
    resume = [asyncio.Event(), asyncio.Event()]

    async def handler(ws: ServerConnection, i: int) -> None:
        await ws.send(DOC_LINES[0].decode())
        for gate, line in zip(resume, DOC_LINES[1:], strict=True):
            await gate.wait()
            await ws.send(line.decode())
        await ws.wait_closed()

    sink = Watched()
    stale = (RESYNCING, "stale feed: no message for 0.1 s")
    async with venue(handler) as (fake, url):
        stream = make_stream(url, sink, stale_after_s=0.1)
        async with running(stream):
            for n, gate in enumerate(resume, start=1):
                await sink.wait(lambda n=n: sink.statuses().count(stale) == n)
                gate.set()
                await sink.wait(lambda n=n: len(sink.market()) == n + 1)
    assert sink.market() == expected(DOC_LINES)
    assert [s for s, _ in sink.statuses()] == [CONNECTED, RESYNCING, CONNECTED, RESYNCING,
                                               CONNECTED, DISCONNECTED]
    assert stream.reconnects == 0


async def test_a_stale_session_is_still_rotated() -> None:
    sink = Watched()
    async with venue(send_then_hold(DOC_LINES[0]), send_then_hold(DOC_LINES[1])) as (fake, url):
        stream = make_stream(url, sink, stale_after_s=0.05, max_session_s=0.3,
                             backoff_initial=60.0)
        async with running(stream):
            await sink.wait(lambda: len(sink.market()) == 2)
    assert sink.market() == expected(DOC_LINES[:2])
    statuses = sink.statuses()
    assert statuses[:3] == [(CONNECTED, ""), (RESYNCING, "stale feed: no message for 0.05 s"),
                            (DISCONNECTED, "session rotated after 0.3 s")]
    assert stream.reconnects == 1


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_compression_is_offered_only_when_asked(compression: str | None) -> None:
    # permessage-deflate costs ~10 µs a message to inflate: not offered by
    # default (websockets' own default offers it, and Binance accepts it)
    offered: list[str | None] = []

    async def handler(ws: ServerConnection, i: int) -> None:
        assert ws.request is not None
        offered.append(ws.request.headers.get("Sec-WebSocket-Extensions"))
        for line in LINES:
            await ws.send(line.decode())
        await ws.wait_closed()

    sink = Watched()
    async with venue(handler) as (fake, url):
        kw = {} if compression is None else {"compression": compression}
        stream = make_stream(url, sink, **kw)
        async with running(stream):
            await sink.wait(lambda: len(sink.market()) == len(expected(LINES)))
    assert sink.market() == expected(LINES)
    if compression is None:
        assert offered == [None]
    else:
        assert offered[0] is not None and "permessage-deflate" in offered[0]


async def test_reconnect_budget_exhausted_raises() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = Watched()
    stream = make_stream(f"ws://127.0.0.1:{port}", sink, reconnect_budget=3)
    with pytest.raises(ReconnectBudgetExhausted, match="reconnect budget exhausted: 3"):
        async with asyncio.timeout(DEADLINE):
            await stream.run()
    assert stream.reconnects == 3
    last = sink.items[-1]
    assert isinstance(last, VenueStatus) and last.status == DISCONNECTED
    assert "reconnect budget exhausted" in last.reason
    assert [s for s, _ in sink.statuses()] == [DISCONNECTED, DISCONNECTED]


async def test_budget_counts_only_recent_reconnects() -> None:
    sink = Watched()
    async with venue(send_then_drop(DOC_LINES[0])) as (fake, url):
        stream = make_stream(url, sink, reconnect_budget=2, budget_window_s=0.0)
        async with running(stream):
            # A zero window forgets every reconnect: the budget never runs out.
            await sink.wait(lambda: stream.reconnects >= 4 and len(sink.market()) >= 4)


async def test_cancellation_closes_cleanly() -> None:
    sink = Watched()
    async with venue(send_then_hold(DOC_LINES[0])) as (fake, url):
        stream = make_stream(url, sink)
        task = asyncio.create_task(stream.run())
        await sink.wait(lambda: sink.market())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(DEADLINE):
                await task
        await fake.log.wait(lambda: "closed 0" in fake.log.items)
    assert fake.close_codes == [1000]
    assert sink.statuses()[-1] == (DISCONNECTED, "cancelled")


async def test_stop_during_backoff_returns() -> None:
    sink = Watched()
    async with venue(send_then_drop(DOC_LINES[0])) as (fake, url):
        stream = make_stream(url, sink, backoff_initial=60.0, backoff_max=60.0)
        task = asyncio.create_task(stream.run())
        await sink.wait(lambda: stream.reconnects == 1)  # now sleeping up to 60 s
        stream.stop()
        async with asyncio.timeout(DEADLINE):
            await task  # returns, no CancelledError
    assert sink.statuses()[-1][0] == DISCONNECTED

