"""UserDataStream against a real local WS-API server (no mocks).

The server checks key, timestamp (recvWindow) and signature as Binance does
(params but `signature`, sorted, raw; HMAC hex or Ed25519 base64), then runs a
per-connection script pushing event frames. Every wait is on a condition under
a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from adapters.binance.reconnect import ReconnectBudgetExhausted, Reconnects
from adapters.binance.signing import Credentials
from adapters.binance.user_stream import UserStreamTranslator
from adapters.binance.user_ws import UserDataStream, WsApiError
from events.orders import Fill
from events.system import CONNECTED, DISCONNECTED, RESYNCING
from tests.adapters.binance.watched import TimerCount, Watched

VENUE = "binance-spot"
DEADLINE = 5.0
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
ED_KEY = Ed25519PrivateKey.generate()


def pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


HMAC_CREDS = Credentials(api_key=API_KEY, secret=SECRET)
ED_CREDS = Credentials(api_key=API_KEY, private_key_pem=pem(ED_KEY))

# Protocol doc §7: the first fill of a MARKET BUY.
EXECUTION_REPORT = (
    '{"subscriptionId":0,"event":{"e":"executionReport","E":1763735400125,"s":"BTCUSDT",'
    '"c":"tl-7f3a9c2e01","S":"BUY","o":"MARKET","f":"GTC","q":"0.00150000","p":"0.00000000",'
    '"P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"PARTIALLY_FILLED",'
    '"r":"NONE","i":48712039201,"l":"0.00100000","z":"0.00100000","L":"64000.00000000",'
    '"n":"0.00000100","N":"BTC","T":1763735400123,"t":5301122334,"I":112233445566,"w":false,'
    '"m":false,"M":false,"O":1763735400123,"Z":"64.00000000","Y":"64.00000000",'
    '"Q":"0.00000000","W":1763735400123,"V":"EXPIRE_MAKER"}}')
TERMINATED = '{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1763735400200}}'


def ev(n: int) -> str:
    """A distinct, valid event frame (a balanceUpdate numbered n)."""
    return (f'{{"subscriptionId":0,"event":{{"e":"balanceUpdate","E":{n},"a":"BTC",'
            f'"d":"{n}.00000000","T":{n}}}}}')


def now_ms() -> int:
    return time.time_ns() // 1_000_000


Script = Callable[[ServerConnection, int], Awaitable[None]]


async def hold(ws: ServerConnection, i: int) -> None:
    await ws.wait_closed()


def push(*frames: str, then: Script = hold) -> Script:
    async def script(ws: ServerConnection, i: int) -> None:
        for f in frames:
            await ws.send(f)
        await then(ws, i)
    return script


async def drop(ws: ServerConnection, i: int) -> None:
    await ws.close(1011, "going away")


class FakeWsApi:
    """A WS-API server for one account; `scripts[i]` runs on connection i once
    it is subscribed (the last one serves any further connections)."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.requests: list[tuple[int, dict]] = []  # (connection, request frame)
        self.close_codes: list[int | None] = []
        self.log = Watched()  # "open i" / "closed i" / anything a script records
        self.connections = 0
        self.extensions: list[str | None] = []  # what each connection offered

    def check(self, params: dict, ed25519: bool) -> tuple[int, int, str] | None:
        """None if the signed params pass, else (status, code, msg) as Binance sends."""
        if params.get("apiKey") != API_KEY:
            return 401, -2015, "Invalid API-key, IP, or permissions for action."
        server, ts, window = now_ms(), params["timestamp"], params.get("recvWindow", 5000)
        if ts >= server + 1000 or server - ts > window:
            return 400, -1021, "Timestamp for this request is outside of the recvWindow."
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
        sig = params.get("signature", "")
        with contextlib.suppress(InvalidSignature, binascii.Error):
            if ed25519:
                ED_KEY.public_key().verify(base64.b64decode(sig), payload.encode())
                return None
            if hmac.compare_digest(hmac.new(SECRET.encode(), payload.encode(),
                                            hashlib.sha256).hexdigest(), sig.lower()):
                return None
        return 400, -1022, "Signature for this request is not valid."

    async def handle(self, ws: ServerConnection) -> None:
        i = self.connections
        self.connections += 1
        assert ws.request is not None
        self.extensions.append(ws.request.headers.get("Sec-WebSocket-Extensions"))
        self.log(f"open {i}")
        try:
            with contextlib.suppress(ConnectionClosed):  # the client left mid-script
                await self._serve(ws, i)
        finally:
            await ws.wait_closed()
            self.close_codes.append(ws.close_code)
            self.log(f"closed {i}")

    async def _serve(self, ws: ServerConnection, i: int) -> None:
        logged_on = False
        async for text in ws:
            req = json.loads(text)
            self.requests.append((i, req))
            method, params = req["method"], req.get("params", {})
            error = None
            if method == "session.logon":
                error = self.check(params, ed25519=True)
                logged_on = error is None
            elif method == "userDataStream.subscribe.signature":
                error = self.check(params, ed25519=False)
            elif method == "userDataStream.subscribe" and not logged_on:
                error = (401, -2015, "Invalid API-key, IP, or permissions for action.")
            if error:
                status, code, msg = error
                await ws.send(json.dumps({"id": req["id"], "status": status,
                                          "error": {"code": code, "msg": msg}}))
                continue
            result = {} if method == "session.logon" else {"subscriptionId": 0}
            await ws.send(json.dumps({"id": req["id"], "status": 200, "result": result}))
            if method.startswith("userDataStream.subscribe"):
                await self.scripts[min(i, len(self.scripts) - 1)](ws, i)

    def methods(self) -> list[tuple[int, int, str]]:
        return [(i, r["id"], r["method"]) for i, r in self.requests]


@asynccontextmanager
async def ws_api(*scripts: Script) -> AsyncIterator[tuple[FakeWsApi, str]]:
    fake = FakeWsApi(list(scripts))
    async with serve(fake.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}/ws-api/v3"


class Client:
    """The caller's side: one ordered record of events, subscriptions and statuses."""

    def __init__(self) -> None:
        self.seen = Watched()
        self.gate: asyncio.Event | None = None  # when set, on_subscribed waits for it

    def on_event(self, raw: bytes, ts_recv: int) -> None:
        assert ts_recv > 0
        self.seen(("event", raw.decode()))

    async def on_subscribed(self, n: int) -> None:
        self.seen(("subscribed", n))
        if self.gate is not None:
            await self.gate.wait()
        self.seen(("reconciled", n))

    def events(self) -> list[str]:
        return [x for kind, x in self.seen.items if kind == "event"]

    def sessions(self) -> list[int]:
        return [x for kind, x in self.seen.items if kind == "subscribed"]

    def statuses(self) -> list[tuple[str, str]]:
        return [(e.status, e.reason) for kind, e in self.seen.items if kind == "status"]

    def make(self, url: str, creds: Credentials = HMAC_CREDS, **kw: object) -> UserDataStream:
        opts: dict = {"backoff_initial": 0.01, "backoff_max": 0.05, "seed": 7, **kw}
        return UserDataStream(url, creds, VENUE, self.on_event, self.on_subscribed,
                              lambda e: self.seen(("status", e)), **opts)


@asynccontextmanager
async def running(stream: UserDataStream) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        stream.stop()
        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(task, return_exceptions=True)


# -- tests -------------------------------------------------------------------


async def test_hmac_subscribe_delivers_frames_in_order() -> None:
    frames = [EXECUTION_REPORT, ev(1), '{"id":99,"status":200,"result":{}}', ev(2)]
    client = Client()
    translator = UserStreamTranslator(VENUE)
    async with ws_api(push(*frames)) as (fake, url):
        stream = client.make(url)
        async with running(stream):
            await client.seen.wait(lambda: len(client.events()) == 3)
    assert client.events() == [EXECUTION_REPORT, ev(1), ev(2)]  # the stray reply is not an event
    # Reconciliation runs between "resyncing" and "connected", before any event.
    assert [kind for kind, _ in client.seen.items][:5] == [
        "status", "subscribed", "reconciled", "status", "event"]
    assert fake.methods() == [(0, 1, "userDataStream.subscribe.signature")]
    params = fake.requests[0][1]["params"]
    assert sorted(params) == ["apiKey", "recvWindow", "signature", "timestamp"]
    assert params["recvWindow"] == 5000 and len(params["signature"]) == 64
    assert client.statuses() == [(RESYNCING, "subscribed, reconciling (session 1)"),
                                 (CONNECTED, "live (session 1)"), (DISCONNECTED, "stopped")]
    assert (stream.sessions, stream.subscription_id, stream.reconnects) == (1, 0, 0)
    assert stream.messages == 5 and stream.bad_messages == 0
    assert fake.close_codes == [1000]
    assert fake.extensions == [None]  # no permessage-deflate offered (market_ws's doc)
    fills = translator.translate(EXECUTION_REPORT.encode(), 1)
    assert [type(f) for f in fills] == [Fill]


async def test_ed25519_logs_on_then_subscribes() -> None:
    client = Client()
    async with ws_api(push(ev(1), ev(2))) as (fake, url):
        stream = client.make(url, ED_CREDS)
        async with running(stream):
            await client.seen.wait(lambda: len(client.events()) == 2)
    assert fake.methods() == [(0, 1, "session.logon"), (0, 2, "userDataStream.subscribe")]
    assert "params" not in fake.requests[1][1]
    assert client.events() == [ev(1), ev(2)] and client.sessions() == [1]


@pytest.mark.parametrize(("creds", "code", "name"), [
    (Credentials(api_key=API_KEY, secret="not-the-secret"), -1022, "INVALID_SIGNATURE"),
    (Credentials(api_key="K" * 64, secret=SECRET), -2015, "REJECTED_MBX_KEY"),
    (Credentials(api_key=API_KEY, private_key_pem=pem(Ed25519PrivateKey.generate())),
     -1022, "INVALID_SIGNATURE"),
])
async def test_rejected_credentials_are_fatal(creds: Credentials, code: int, name: str) -> None:
    client = Client()
    async with ws_api(push(ev(1))) as (fake, url):
        stream = client.make(url, creds)
        with capture_logs() as logs:
            with pytest.raises(WsApiError) as info:
                async with asyncio.timeout(DEADLINE):
                    await stream.run()
    assert info.value.code == code and info.value.category == "auth"
    assert fake.connections == 1 and stream.reconnects == 0 and client.sessions() == []
    status, reason = client.statuses()[-1]
    assert status == DISCONNECTED and str(code) in reason and name in reason
    sig = fake.requests[-1][1]["params"]["signature"]
    for text in [repr(logs), reason, repr(stream), repr(info.value)]:
        assert sig not in text and SECRET not in text and creds.api_key not in text


async def test_drop_reconnects_and_resubscribes() -> None:
    client = Client()
    async with ws_api(push(ev(1), ev(2), then=drop), push(ev(3))) as (fake, url):
        stream = client.make(url)
        async with running(stream):
            await client.seen.wait(lambda: len(client.events()) == 3)
    assert client.events() == [ev(1), ev(2), ev(3)]
    assert client.sessions() == [1, 2]
    assert [i for i, _, _ in fake.methods()] == [0, 1]
    assert (stream.reconnects, stream.sessions) == (1, 2)
    kinds = [s for s, _ in client.statuses()]
    assert kinds == [RESYNCING, CONNECTED, DISCONNECTED, RESYNCING, CONNECTED, DISCONNECTED]
    assert "1011" in client.statuses()[2][1]


async def test_frames_during_reconciliation_are_delivered_after_it_in_order() -> None:
    # More frames than websockets' receive queue holds (16): the pong only
    # comes back if the client keeps reading while on_subscribed is blocked.
    frames = [ev(n) for n in range(1, 101)]

    async def flood_then_ping(ws: ServerConnection, i: int) -> None:
        for f in frames:
            await ws.send(f)
        pong = await ws.ping(b"still there?")
        await asyncio.wait_for(pong, DEADLINE)
        fake.log("pong")
        await ws.wait_closed()

    client = Client()
    client.gate = asyncio.Event()
    async with ws_api(flood_then_ping) as (fake, url):
        stream = client.make(url)
        async with running(stream):
            await fake.log.wait(lambda: "pong" in fake.log.items)
            assert stream.messages == 1 + len(frames)  # all read...
            assert client.events() == []  # ...none delivered yet
            assert client.statuses() == [(RESYNCING, "subscribed, reconciling (session 1)")]
            client.gate.set()
            await client.seen.wait(lambda: len(client.events()) == len(frames))
            assert client.statuses()[-1] == (CONNECTED, "live (session 1)")
    assert client.seen.items[1:3] == [("subscribed", 1), ("reconciled", 1)]
    assert client.events() == frames


async def test_event_stream_terminated_resubscribes_promptly() -> None:
    client = Client()
    async with ws_api(push(ev(1), TERMINATED), push(ev(2))) as (fake, url):
        # A huge backoff proves the resubscription does not wait for it.
        stream = client.make(url, backoff_initial=60.0, backoff_max=60.0)
        async with running(stream):
            await client.seen.wait(lambda: len(client.events()) == 3)
            await fake.log.wait(lambda: "closed 0" in fake.log.items)
    assert client.events() == [ev(1), TERMINATED, ev(2)]
    assert client.sessions() == [1, 2]
    assert (DISCONNECTED, "eventStreamTerminated") in client.statuses()
    assert fake.close_codes[0] == 1000  # the client closed the old session cleanly


async def test_malformed_frames_skipped_counted_connection_kept() -> None:
    translator = UserStreamTranslator(VENUE)
    translated = Watched()
    bad_fields = '{"subscriptionId":0,"event":{"e":"executionReport","s":"BTCUSDT"}}'

    def on_event(raw: bytes, ts: int) -> None:
        for e in translator.translate(raw, ts):
            translated(e)

    script = push("not json at all", "[1,2]", bad_fields, EXECUTION_REPORT)
    async with ws_api(script) as (fake, url):
        stream = UserDataStream(url, HMAC_CREDS, VENUE, on_event, lambda n: asyncio.sleep(0),
                                lambda e: None, backoff_initial=0.01)
        with capture_logs() as logs:
            async with running(stream):
                await translated.wait(lambda: translated.items)
    assert [type(e) for e in translated.items] == [Fill]
    assert stream.bad_messages == 3 and stream.messages == 5
    assert stream.reconnects == 0 and fake.connections == 1
    bad = [e for e in logs if e["event"] == "binance.bad_message"]
    assert [e["payload"] for e in bad] == ["not json at all", "[1,2]", bad_fields]
    assert all(e["log_level"] == "warning" for e in bad)


async def test_clock_error_resyncs_then_retries() -> None:
    offset = [-10_000]  # the client's clock is 10 s behind the server's
    resyncs = Watched()

    async def on_clock_error() -> None:
        offset[0] = 0
        resyncs("resync")

    client = Client()
    async with ws_api(push(ev(1))) as (fake, url):
        stream = client.make(url, now_ms=lambda: now_ms() + offset[0],
                             on_clock_error=on_clock_error)
        async with running(stream):
            await client.seen.wait(lambda: client.events() == [ev(1)])
    assert resyncs.items == ["resync"]
    assert [i for i, _, _ in fake.methods()] == [0, 1]
    assert client.sessions() == [1] and stream.reconnects == 1
    first = client.statuses()[0]
    assert first[0] == DISCONNECTED and "-1021" in first[1]


async def test_failed_reconciliation_retries_the_session() -> None:
    calls = Watched()

    async def on_subscribed(n: int) -> None:
        calls(n)
        if n == 1:
            raise RuntimeError("REST down")

    got = Watched()
    async with ws_api(push(ev(1))) as (fake, url):
        stream = UserDataStream(url, HMAC_CREDS, VENUE, lambda raw, ts: got(raw.decode()),
                                on_subscribed, lambda e: None, backoff_initial=0.01)
        async with running(stream):
            await calls.wait(lambda: calls.items == [1, 2])
            await got.wait(lambda: ev(1) in got.items)  # from session 2 at least
    assert stream.reconnects == 1 and fake.connections == 2


async def test_request_timeout_and_session_rotation() -> None:
    async def silent(ws: ServerConnection) -> None:
        await ws.wait_closed()  # never replies

    client = Client()
    async with serve(silent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        stream = client.make(f"ws://127.0.0.1:{port}", request_timeout_s=0.05)
        async with running(stream):
            await client.seen.wait(lambda: stream.reconnects >= 1)
    assert "no reply to userDataStream.subscribe.signature within 0.05 s" in \
        client.statuses()[0][1]

    client = Client()
    async with ws_api(push(ev(1)), push(ev(2))) as (fake, url):
        stream = client.make(url, max_session_s=0.2, backoff_initial=60.0)
        async with running(stream):
            await client.seen.wait(lambda: len(client.events()) == 2)
    assert client.sessions() == [1, 2]
    assert any(s == DISCONNECTED and "rotated" in r for s, r in client.statuses())


async def test_waiting_for_a_frame_arms_no_timer() -> None:
    # The session's end is one loop timer, not a timeout around each wait for a
    # frame: counted on the loop, frames delivered one at a time (each sent once
    # the one before was delivered, so every frame is waited for) arm a handful
    # of timers (the connection's own), not one per frame.
    frames = [ev(n) for n in range(1, 61)]
    client = Client()

    async def one_at_a_time(ws: ServerConnection, i: int) -> None:
        for n, frame in enumerate(frames, start=1):
            await ws.send(frame)
            await client.seen.wait(lambda n=n: len(client.events()) == n)
        await ws.wait_closed()

    timers = TimerCount()
    async with ws_api(one_at_a_time) as (fake, url):
        stream = client.make(url)
        async with running(stream):
            await client.seen.wait(lambda: client.sessions() == [1])
            with timers.counting():
                await client.seen.wait(lambda: len(client.events()) == len(frames))
    assert client.events() == frames
    # the test's own waits arm one timeout each (Watched.wait): 60 of them
    armed = timers.armed
    assert armed - len(frames) < 20, f"{armed} timers armed for {len(frames)} frames"


async def test_a_live_frame_is_delivered_as_it_is_read() -> None:
    # Once live, a frame with nothing queued before it goes to on_event from the
    # task that read it: no event-loop turn to the delivery task first (a resting
    # order's fill reaches its strategy sooner). Frames of the reconciliation
    # still wait for it, in order.
    client = Client()
    client.gate = asyncio.Event()
    readers: list[str] = []
    on_event = client.on_event

    def noting(raw: bytes, ts_recv: int) -> None:
        task = asyncio.current_task()
        readers.append(task.get_name() if task is not None else "")
        on_event(raw, ts_recv)

    client.on_event = noting  # type: ignore[method-assign]
    live = asyncio.Event()

    async def script(ws: ServerConnection, i: int) -> None:
        await ws.send(ev(1))  # during the reconciliation: buffered
        await live.wait()
        for n in (2, 3, 4):
            await ws.send(ev(n))
            await client.seen.wait(lambda n=n: len(client.events()) == n)
        await ws.wait_closed()

    async with ws_api(script) as (fake, url):
        stream = client.make(url)
        async with running(stream):
            await client.seen.wait(lambda: client.sessions() == [1])
            client.gate.set()
            await client.seen.wait(lambda: (CONNECTED, "live (session 1)") in client.statuses())
            live.set()
            await client.seen.wait(lambda: len(client.events()) == 4)
    assert client.events() == [ev(1), ev(2), ev(3), ev(4)]
    assert readers[1:] == ["binance-user-ws-reader"] * 3
    assert readers[0] != "binance-user-ws-reader"  # the buffered one: after reconciling


async def test_on_event_raising_on_a_live_frame_still_propagates() -> None:
    client = Client()

    def broken(raw: bytes, ts_recv: int) -> None:
        raise RuntimeError("a bug in the caller")

    client.on_event = broken  # type: ignore[method-assign]
    async with ws_api(push(ev(1))) as (fake, url):
        stream = client.make(url)
        task = asyncio.create_task(stream.run())
        with pytest.raises(RuntimeError, match="a bug in the caller"):
            async with asyncio.timeout(DEADLINE):
                await task
    assert stream.reconnects == 0


async def test_reconnect_budget_exhausted_raises() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client()
    stream = client.make(f"ws://127.0.0.1:{port}/ws-api/v3", reconnect_budget=3)
    with pytest.raises(ReconnectBudgetExhausted, match="reconnect budget exhausted: 3"):
        async with asyncio.timeout(DEADLINE):
            await stream.run()
    assert stream.reconnects == 3
    status, reason = client.statuses()[-1]
    assert status == DISCONNECTED and "reconnect budget exhausted" in reason


def test_reconnects_policy() -> None:
    clock = [0.0]
    policy = Reconnects(backoff_initial=0.5, backoff_max=4.0, budget=2, window_s=10.0,
                        seed=1, clock=lambda: clock[0])
    delays = [policy.next_delay() for _ in range(6)]
    same_seed = Reconnects(backoff_initial=0.5, backoff_max=4.0, seed=1)
    assert delays == [same_seed.delay(k) for k in range(6)]  # seeded: reproducible
    assert all(0 <= d <= min(4.0, 0.5 * 2**k) for k, d in enumerate(delays))
    policy.reset()
    assert policy.attempt == 0
    policy.spend("a")
    clock[0] = 5.0
    policy.spend("b")
    with pytest.raises(ReconnectBudgetExhausted, match=r"2 reconnects in 10 s \(last: c\)"):
        policy.spend("c")
    clock[0] = 10.0  # "a" left the window
    policy.spend("c")
    assert policy.recent() == 2


@pytest.mark.parametrize("when", ["live", "reconciling", "backoff", "cancelled"])
async def test_stop_returns_cleanly_and_cancel_propagates(when: str) -> None:
    client = Client()
    if when == "reconciling":
        client.gate = asyncio.Event()  # never set: stop() interrupts on_subscribed
    script = push(ev(1), then=drop) if when == "backoff" else push(ev(1))
    async with ws_api(script) as (fake, url):
        stream = client.make(url, backoff_initial=60.0, backoff_max=60.0)
        task = asyncio.create_task(stream.run())
        if when == "backoff":
            await client.seen.wait(lambda: stream.reconnects == 1)  # sleeping up to 60 s
        else:
            await client.seen.wait(lambda: client.sessions() == [1])
        if when == "cancelled":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                async with asyncio.timeout(DEADLINE):
                    await task
        else:
            stream.stop()
            async with asyncio.timeout(DEADLINE):
                await task  # returns, no CancelledError
        await fake.log.wait(lambda: "closed 0" in fake.log.items)
    assert client.statuses()[-1] == (DISCONNECTED, "cancelled" if when == "cancelled"
                                     else "stopped")
    if when != "backoff":
        assert fake.close_codes == [1000]  # a normal close handshake
