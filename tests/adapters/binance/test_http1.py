"""The lean HTTP/1.1 client (adapters.binance.http1) against real sockets on 127.0.0.1:
a server written byte by byte (every way an answer can be framed, split anywhere),
aiohttp's own server, in the clear and over TLS, and the REST client's request on
the server's socket before its first step returns. On asyncio's loop and uvloop's."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.binance.eager import start_now, step_then_task
from adapters.binance.http1 import (
    Http1Client,
    HttpConnectionError,
    HttpProtocolError,
    HttpRequestError,
)
from tests.tls import self_signed

uvloop = pytest.importorskip("uvloop")

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
DEADLINE_S = 10.0


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    factory = LOOPS[request.param]

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(asyncio.wait_for(coro, DEADLINE_S))

    return run


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A server on 127.0.0.1 that answers each connection with `script`; keeps the
    request heads it read and counts connections."""

    def __init__(self, script: Script | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.heads: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def read_head(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        return head

    def keep_alive(self, *answers: bytes) -> RawServer:
        """Answers each request on a connection with the next of `answers`."""

        async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for answer in answers:
                await self.read_head(reader)
                writer.write(answer)
                await writer.drain()
            await reader.read()  # until the client closes

        self.script = script
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        assert self.script is not None
        try:
            await self.script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert)
    return context


def client_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    """Trusts the test's certificate, and checks the host name as the default does."""
    return ssl.create_default_context(cafile=str(cert[0]))


def test_a_kept_alive_connection_carries_every_request_and_the_heads_are_http(run) -> None:
    async def main() -> None:
        async with RawServer().keep_alive(OK, OK, OK) as server:
            host = server.url.removeprefix("http://")
            client = Http1Client(server.url + "/")
            for _ in range(3):
                status, headers, body = await client.request(
                    "POST", "/api/v3/order", "symbol=BTCUSDT&signature=ab",
                    {"X-MBX-APIKEY": "key"}, 5.0)
                assert (status, body) == (200, b'{"a":1}')
                assert headers["content-type"] == "application/json"
            await client.close()
        assert server.connections == 1 and client.connects == 1
        assert server.heads[0] == (
            b"POST /api/v3/order?symbol=BTCUSDT&signature=ab HTTP/1.1\r\nHost: "
            + host.encode() + b"\r\nUser-Agent: tapeloop\r\nAccept: */*\r\n"
            b"X-MBX-APIKEY: key\r\nContent-Length: 0\r\n\r\n")

    run(main())


FRAMINGS = {
    "length": (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", True),
    "chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", True),
    "chunked_trailers": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"b\r\nhello world\r\n0\r\nX-Trailer: 1\r\n\r\n", True),
    "interim_then_length": (b"HTTP/1.1 100 Continue\r\n\r\n"
                            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", True),
    "close_header": (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 11\r\n\r\n"
                     b"hello world", False),
    "http10": (b"HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nhello world", False),
    "http10_keep_alive": (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                          b"Content-Length: 11\r\n\r\nhello world", True),
}


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_every_framing_gives_the_body_and_says_whether_the_connection_is_kept(
        run, framing: str) -> None:
    answer, kept = FRAMINGS[framing]

    async def main() -> None:
        async with RawServer().keep_alive(answer, answer) as server:
            client = Http1Client(server.url)
            for _ in range(2):
                status, _, body = await client.request("GET", "/x", "", {}, 5.0)
                assert (status, body) == (200, b"hello world")
            await client.close()
        assert server.connections == (1 if kept else 2)

    run(main())


def test_a_body_delimited_by_the_close_is_read_to_the_close(run) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with RawServer(script) as server:
            client = Http1Client(server.url)
            for _ in range(2):  # a new connection each time: the last one was closed
                assert (await client.request("GET", "/", "", {}, 5.0))[2] == \
                    b"part one, part two"
            await client.close()
        assert server.connections == 2

    run(main())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(framing=st.sampled_from(sorted(FRAMINGS)),
       cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=12))
def test_an_answer_split_anywhere_reads_the_same(framing: str, cuts: list[int]) -> None:
    """However the answer's bytes are cut into reads, the same status and body."""
    answer, _ = FRAMINGS[framing]
    pieces, rest = [], answer
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for piece in pieces:
            if piece:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0)
        await reader.read()

    async def main() -> None:
        async with RawServer(script) as server:
            client = Http1Client(server.url)
            status, _, body = await client.request("GET", "/", "", {}, 5.0)
            await client.close()
        assert (status, body) == (200, b"hello world"), f"pieces {pieces!r}"

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(main(), DEADLINE_S))


@pytest.mark.parametrize("answer, error", [
    (b"SPDY/3 200 OK\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HttpProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly this much", HttpConnectionError),
    (b"HTTP/1.1 200 OK\r\n", HttpConnectionError),
    (b"", HttpConnectionError),
])
def test_an_answer_that_breaks_raises_a_client_error_and_the_connection_is_dropped(
        run, answer: bytes, error: type[Exception]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()  # and the connection ends there

    async def main() -> None:
        async with RawServer(script) as server:
            client = Http1Client(server.url)
            with pytest.raises(error):
                await client.request("POST", "/api/v3/order", "a=1", {}, 5.0)
            assert not client._idle
            await client.close()

    run(main())


def test_no_answer_within_the_timeout_raises_timeout_error_and_drops_the_connection(
        run) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # never answers

    async def main() -> None:
        async with RawServer(script) as server:
            client = Http1Client(server.url)
            with pytest.raises(TimeoutError):
                await client.request("GET", "/", "", {}, 0.2)
            assert not client._idle and not client._open  # closed, not kept
            await client.close()

    run(main())


def test_a_request_started_with_no_task_connects_and_times_out_in_its_own_task(run) -> None:
    """How the venue sends an order (`eager.step_then_task`): the first step runs
    with no task. With no idle connection the connect and its timeout are awaited
    in the task; on a kept-alive connection the request is written in the step and
    the answer's deadline needs no task either: an answer that never comes is a
    TimeoutError and the connection is dropped, and the caller is never cancelled."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_head(reader)
        writer.write(OK)
        await writer.drain()
        await server.read_head(reader)
        await reader.read()  # the second request gets no answer

    server = RawServer(script)

    async def main() -> None:
        async with server:
            client = Http1Client(server.url)
            task = step_then_task(client.request("GET", "/first", "", {}, 5.0))
            assert client.connects == 0  # the connection is opened by the task
            assert (await task)[0] == 200 and client.connects == 1 and client._idle
            task = step_then_task(client.request("GET", "/second", "", {}, 0.2))
            assert not client._idle  # taken, the request written in the step
            with pytest.raises(TimeoutError):
                await task
            assert not client._idle and not client._open
            await asyncio.sleep(0.3)  # a timeout bound to the caller would cancel it here
            await client.close()
        assert [h.split(b" ")[1] for h in server.heads] == [b"/first", b"/second"]

    run(main())


def test_a_server_that_closed_an_idle_connection_gets_the_next_request_on_a_new_one(
        run) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        writer.close()  # without saying so: the client learns it from the close

    async def main() -> None:
        async with RawServer(script) as server:
            client = Http1Client(server.url)
            await client.request("GET", "/", "", {}, 5.0)
            deadline = asyncio.get_running_loop().time() + 5
            while client._idle and client._idle[0].usable:  # the close reaches the client
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.005)
            assert (await client.request("GET", "/", "", {}, 5.0))[0] == 200
            await client.close()
        assert server.connections == 2

    run(main())


def test_an_idle_connection_past_keepalive_is_not_reused(run) -> None:
    async def main() -> None:
        async with RawServer().keep_alive(OK, OK) as server:
            client = Http1Client(server.url, keepalive_s=0.0)
            await client.request("GET", "/", "", {}, 5.0)
            await client.request("GET", "/", "", {}, 5.0)
            await client.close()
        assert client.connects == 2

    run(main())


def test_concurrent_requests_each_get_a_connection_and_come_back_to_the_pool(run) -> None:
    async def main() -> None:
        async with RawServer().keep_alive(OK, OK) as server:
            client = Http1Client(server.url)
            answers = await asyncio.gather(*(client.request("GET", "/", "", {}, 5.0)
                                             for _ in range(3)))
            assert [a[0] for a in answers] == [200] * 3
            assert len(client._idle) == 3
            await asyncio.gather(*(client.request("GET", "/", "", {}, 5.0) for _ in range(3)))
            await client.close()
        assert client.connects == 3

    run(main())


def test_a_refused_connection_raises_a_client_connection_error(run) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        client = Http1Client(f"http://127.0.0.1:{port}")
        with pytest.raises(HttpConnectionError, match="cannot connect"):
            await client.request("GET", "/", "", {}, 5.0)

    run(main())


@pytest.mark.parametrize("path, headers", [
    ("/a b", {}), ("/a\r\nX: 1", {}), ("/", {"X-MBX-APIKEY": "key\r\nX-Evil: 1"}),
])
def test_a_request_that_would_be_another_request_is_refused_unsent(path: str,
                                                                  headers: dict[str, str]) -> None:
    client = Http1Client("http://127.0.0.1:1")
    with pytest.raises(HttpRequestError):
        client.head("GET", path, "", headers)
    client.head("GET", "/", "a=1", {})  # a clean one of that path is made meanwhile
    with pytest.raises(HttpRequestError):
        client.head("GET", path, "a=1", headers)
    for query in ("a=1 HTTP/1.1\r\nX: 1", "a=\n"):
        with pytest.raises(HttpRequestError):
            client.head("GET", "/", query, {})


def test_a_refused_placement_is_an_unknown_outcome_as_any_transport_error(run) -> None:
    """What the client refuses to write is an aiohttp.ClientError like any transport
    failure: the REST client makes it the placement's UnknownOutcome (looked up, never
    resent), not an exception its order task would die of."""
    from adapters.binance.rest import BinanceRest, UnknownOutcome
    from adapters.binance.signing import Credentials

    assert issubclass(HttpRequestError, aiohttp.ClientError)

    async def main() -> None:
        rest = BinanceRest("http://127.0.0.1:1", Credentials(api_key="k", secret="s"))
        with pytest.raises(UnknownOutcome):
            await rest.place_order("symbol=BTC USDT&newClientOrderId=c1", "c1")
        assert rest._http is not None and rest._http.connects == 0  # nothing was sent
        await rest.close()

    run(main())


def test_a_head_is_the_same_bytes_however_often_it_is_made() -> None:
    client = Http1Client("https://example.test:8443/prefix/")
    first = client.head("DELETE", "/api/v3/order", "a=1", {"X-MBX-APIKEY": "k"})
    assert first == (b"DELETE /prefix/api/v3/order?a=1 HTTP/1.1\r\nHost: example.test:8443"
                     b"\r\nUser-Agent: tapeloop\r\nAccept: */*\r\nX-MBX-APIKEY: k\r\n"
                     b"Content-Length: 0\r\n\r\n")
    assert client.head("DELETE", "/api/v3/order", "a=1", {"X-MBX-APIKEY": "k"}) == first
    assert client.head("DELETE", "/api/v3/order", "a=1", {"X-MBX-APIKEY": "j"}) != first
    assert client.head("GET", "/api/v3/time", "", {}) == (
        b"GET /prefix/api/v3/time HTTP/1.1\r\nHost: example.test:8443\r\n"
        b"User-Agent: tapeloop\r\nAccept: */*\r\n\r\n")


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_aiohttp_servers_answers_read_as_aiohttps_client_reads_them(
        run, tls: bool, cert: tuple[Path, Path]) -> None:
    """Against aiohttp's server (what the fake venues run), in the clear and over TLS:
    JSON, a large chunked body, an error status with headers, and DELETE."""
    big = b"x" * 300_000

    async def order(request: web.Request) -> web.Response:
        return web.json_response({"method": request.method, "q": request.query_string},
                                 headers={"X-MBX-USED-WEIGHT-1M": "7"})

    async def large(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(0, len(big), 70_000):
            await resp.write(big[i:i + 70_000])
        await resp.write_eof()
        return resp

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=429, body=b'{"code":-1003}', headers={"Retry-After": "3"})

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/api/v3/order", order)
        app.router.add_get("/large", large)
        app.router.add_get("/refuse", refuse)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0,
                           ssl_context=server_tls(cert) if tls else None)
        await site.start()
        port = runner.addresses[0][1]
        client = Http1Client(f"{'https' if tls else 'http'}://127.0.0.1:{port}",
                             ssl_context=client_tls(cert) if tls else None)
        try:
            for method in ("POST", "DELETE", "GET"):
                status, headers, body = await client.request(method, "/api/v3/order",
                                                             "s=1&t=2", {}, 5.0)
                assert status == 200 and headers["x-mbx-used-weight-1m"] == "7"
                assert json.loads(body) == {"method": method, "q": "s=1&t=2"}
            assert (await client.request("GET", "/large", "", {}, 5.0))[2] == big
            status, headers, body = await client.request("GET", "/refuse", "", {}, 5.0)
            assert (status, headers["Retry-After"], body) == (429, "3", b'{"code":-1003}')
            assert client.connects == 1
        finally:
            await client.close()
            await runner.cleanup()

    run(main())


@pytest.mark.parametrize("starter", [start_now, step_then_task],
                         ids=["start_now", "step_then_task"])
def test_an_order_request_is_on_the_socket_when_its_first_step_returns(run, starter) -> None:
    """Sent from a bus handler (`eager.step_then_task`, as the venue does on this
    transport, or `eager.start_now`) on a kept-alive connection, the REST client's
    request has reached the server's socket before the handler returns: no loop turn
    between deciding and sending."""
    from adapters.binance.rest import BinanceRest
    from adapters.binance.signing import Credentials

    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        rest = BinanceRest(f"http://127.0.0.1:{port}", Credentials(api_key="k", secret="s"))
        loop = asyncio.get_running_loop()
        first = rest.server_time_ms  # any request: the first one opens the connection
        accept = loop.run_in_executor(None, listener.accept)
        warm = asyncio.ensure_future(rest._request("GET", "/api/v3/ping", signed=False,
                                                   weight=1))
        conn, _ = await accept
        conn.settimeout(5)
        ping = await loop.run_in_executor(None, conn.recv, 65536)  # the loop runs meanwhile
        assert ping.startswith(b"GET /api/v3/ping ")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        assert await warm == {}
        (connection,) = rest._http._idle  # type: ignore[union-attr]
        task = starter(rest.place_order("symbol=BTCUSDT&side=BUY&type=MARKET"
                                          "&quantity=1&newClientOrderId=c1", "c1"))
        assert connection._answer is not None  # written, its answer awaited
        conn.setblocking(False)
        got = conn.recv(65536)  # here already: no await since start_now, on either loop
        assert got.startswith(b"POST /api/v3/order?symbol=BTCUSDT&side=BUY")
        assert b"&signature=" in got and b"X-MBX-APIKEY: k\r\n" in got
        conn.setblocking(True)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        assert await task == {}
        assert first() > 0
        await rest.close()
        conn.close()
        listener.close()

    run(main())


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_over_tls_every_framing_reads_and_a_kept_alive_connection_is_reused(
        run, framing: str, cert: tuple[Path, Path]) -> None:
    answer, kept = FRAMINGS[framing]

    async def main() -> None:
        async with RawServer(tls=server_tls(cert)).keep_alive(answer, answer, answer) as server:
            client = Http1Client(server.url, ssl_context=client_tls(cert))
            for _ in range(3):
                status, _, body = await client.request("POST", "/api/v3/order", "a=1",
                                                       {"X-MBX-APIKEY": "k"}, 5.0)
                assert (status, body) == (200, b"hello world")
            await client.close()
        assert server.connections == (1 if kept else 3)
        assert server.heads[0].startswith(b"POST /api/v3/order?a=1 HTTP/1.1\r\n")

    run(main())


def test_over_tls_a_body_delimited_by_the_close_is_read_to_the_close(
        run, cert: tuple[Path, Path]) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 200_000)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        async with RawServer(script, tls=server_tls(cert)) as server:
            client = Http1Client(server.url, ssl_context=client_tls(cert))
            assert (await client.request("GET", "/", "", {}, 5.0))[2] == b"y" * 200_000
            await client.close()

    run(main())


def test_over_tls_a_certificate_the_client_does_not_trust_is_refused_before_any_request(
        run, cert: tuple[Path, Path], tmp_path: Path) -> None:
    other = client_tls(self_signed(tmp_path, "another"))  # trusts another certificate

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def main() -> None:
        async with RawServer(script, tls=server_tls(cert)) as server:
            for context in (other, ssl.create_default_context()):
                client = Http1Client(server.url, ssl_context=context)
                with pytest.raises(HttpConnectionError, match="cannot connect"):
                    await client.request("POST", "/api/v3/order", "a=1", {}, 5.0)
                await client.close()
        assert server.heads == []

    run(main())
