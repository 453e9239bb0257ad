"""A lean HTTP/1.1 client for the REST requests of a venue: what an order's request
needs from HTTP, and nothing more, so the request is on the socket in the step that
decided to send it.

aiohttp's `ClientSession.request` costs 60-80 µs of Python on the 2-core VM of the
README before the request's first byte is written (URL and header objects, the
connector's bookkeeping, its tracing hooks, the request writer's tasks): as much
again as the whole path from the trade's frame to the signed request. Here a
request on a kept-alive connection is one `transport.write` of bytes built by one
%-format and one `send` on the socket, in the caller's step; the answer is parsed
from the socket's data as it arrives, into a future.

It owns its sockets rather than going through an asyncio transport: uvloop's
transports hold a small write until the end of the loop's turn (after every other
callback that turn runs), and the TLS transport on top of them too, where a `send`
on a non-blocking socket puts the bytes on the wire now. A write the socket cannot
take whole waits for it to be writable (`add_writer`); reads come through
`add_reader`. TLS is the `ssl` module's, over memory BIOs (what asyncio's own TLS
transport does).

What it does:
- HTTP/1.1 with keep-alive to one origin (`http://` or `https://host[:port][/prefix]`;
  TLS with the system's trust store, as aiohttp's default), one request at a time per
  connection; a request while every connection is busy opens another. Idle
  connections are kept (at most `max_idle`) for `keepalive_s` (15 s, aiohttp's
  default), then dropped rather than reused: a server may have closed them.
- Answers: `Content-Length`, chunked, or (no length, `Connection: close`) the body
  up to the close; 1xx interim answers are skipped; a connection that says
  `Connection: close`, or has bytes left over, is not reused.
- Failures are `aiohttp.ClientError`s, as the REST clients already handle them: a
  connection that cannot be made, or that breaks or closes before the whole answer,
  raises `HttpConnectionError`; an answer that is not HTTP raises `HttpProtocolError`
  (the connection is closed either way); a request that would read as another one
  (a space, CR or LF in its target or headers) raises `HttpRequestError`, unsent.
  `timeout_s` bounds the whole exchange, connecting included, and raises
  `TimeoutError`, as `aiohttp.ClientTimeout(total=)` does. Nothing is ever sent
  twice: a request that may have reached the server is the caller's to resolve (an
  order's `UnknownOutcome`).

It never asks for a compressed answer, follows no redirect and sends no cookie:
Binance's REST API needs none of them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict

__all__ = ["Http1Client", "HttpConnectionError", "HttpProtocolError", "HttpRequestError"]

MAX_HEAD_BYTES = 64 * 1024  # an answer's status line and headers
MAX_BODY_BYTES = 256 * 1024 * 1024  # exchangeInfo of every symbol is ~20 MB
_BODYLESS_METHODS = frozenset({"GET", "HEAD"})


class HttpConnectionError(aiohttp.ClientConnectionError):
    """The connection could not be made, or broke or closed before the whole answer."""


class HttpRequestError(aiohttp.ClientError, ValueError):
    """A request this client refuses to write, as it would read as another request (a
    space, CR or LF where none may be): nothing was sent."""


class HttpProtocolError(aiohttp.ClientResponseError):
    """The server's answer is not HTTP/1.x as this client reads it."""

    def __init__(self, message: str) -> None:
        super().__init__(None, (), message=message)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.message


Answer = tuple[int, CIMultiDict[str], bytes]


class Http1Client:
    """Keep-alive HTTP/1.1 connections to the origin of `base_url` (see the module doc)."""

    def __init__(self, base_url: str, *, keepalive_s: float = 15.0, max_idle: int = 8,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self.prefix = parts.path.rstrip("/")
        host = parts.netloc.rpartition("@")[2]  # never a userinfo in the Host header
        self._fixed = f"Host: {host}\r\nUser-Agent: tapeloop\r\nAccept: */*\r\n"
        self.keepalive_s = keepalive_s
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._closed = False
        self.connects = 0  # connections made: a test's view of keep-alive
        # (method, path, *headers) -> (the head before the query, after it)
        self._heads: dict[tuple[object, ...], tuple[str, str]] = {}

    def head(self, method: str, path: str, query: str, headers: Mapping[str, str]) -> bytes:
        """The request's bytes: request line and headers (no body). A space, CR or
        LF in the target, or a CR or LF in a header, would make it another
        request: HttpRequestError, nothing sent."""
        if " " in query or "\r" in query or "\n" in query:
            raise HttpRequestError(
                f"{method} {path}: the request's query holds a space, CR or LF")
        key = (method, path, *headers.items())
        cached = self._heads.get(key)
        if cached is None:
            cached = self._heads[key] = self._head_parts(method, path, headers)
        start, rest = cached
        return f"{start}?{query}{rest}".encode("latin-1") if query \
            else f"{start}{rest}".encode("latin-1")

    def _head_parts(self, method: str, path: str, headers: Mapping[str, str]
                    ) -> tuple[str, str]:
        """What comes before and after the query: the same for every request of one
        method, path and headers."""
        target = f"{self.prefix}{path}"
        if " " in target or "\r" in target or "\n" in target or "?" in target:
            raise HttpRequestError(
                f"{method} {path}: the request's path holds a space, CR, LF or ?")
        lines = [f" HTTP/1.1\r\n{self._fixed}"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise HttpRequestError(f"{method} {path}: header {name!r} holds a CR or LF")
            lines.append(f"{name}: {value}\r\n")
        lines.append("\r\n" if method in _BODYLESS_METHODS else "Content-Length: 0\r\n\r\n")
        if len(self._heads) >= 64:  # a few paths in practice: never without bound
            self._heads.clear()
        return f"{method} {target}", "".join(lines)

    async def request(self, method: str, path: str, query: str, headers: Mapping[str, str],
                      timeout_s: float) -> Answer:
        """One exchange: (status, headers, body); TimeoutError when the whole of it
        takes over `timeout_s`. On a kept-alive connection the request is written
        before this first yields, and nothing before that yield needs a task
        (`eager.step_then_task`): a connection to open is awaited after a yield."""
        if self._closed:
            raise HttpConnectionError("the HTTP client is closed")
        data = self.head(method, path, query, headers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn = self._take(loop)
        if conn is None:
            await asyncio.sleep(0)  # from here on in the task, which the timeout cancels
            async with asyncio.timeout_at(deadline):
                conn = await self._connect(loop)
        answer = conn.send(data)
        # the answer's deadline fails the answer itself (and drops the connection):
        # a timer of the loop's, with no task to cancel
        timer = loop.call_at(deadline, conn.time_out, timeout_s)
        try:
            result = await answer
        except BaseException:
            conn.close()
            raise
        finally:
            timer.cancel()
        if conn.reusable and not self._closed and len(self._idle) < self.max_idle:
            conn.idle_since = loop.time()
            self._idle.append(conn)
        else:
            conn.close()
        return result

    def _take(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        """The most recently used idle connection still worth using, or None."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable and loop.time() - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        try:
            conn = await _Connection.open(loop, self.host, self.port, self._ssl, self._open)
        except OSError as exc:  # refused, unreachable, name not found, TLS refused
            raise HttpConnectionError(
                f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc!r}"
            ) from exc
        self.connects += 1
        if self._closed:  # closed while this connected
            conn.close()
            raise HttpConnectionError("the HTTP client is closed")
        return conn

    async def close(self) -> None:
        """Close every connection; a request under way fails with HttpConnectionError."""
        self._closed = True
        self._idle.clear()
        for conn in list(self._open):
            conn.close()


class _Connection:
    """One connection, on a socket of its own: one request at a time, written with
    `send` now, its answer parsed as the bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 tls: ssl.SSLObject | None, incoming: ssl.MemoryBIO | None,
                 outgoing: ssl.MemoryBIO | None, registry: set[_Connection]) -> None:
        self._loop, self._sock, self._fd = loop, sock, sock.fileno()
        self._tls, self._incoming, self._outgoing = tls, incoming, outgoing
        self._registry = registry
        registry.add(self)
        self._unsent = bytearray()  # what the socket has not taken yet
        self._answer: asyncio.Future[Answer] | None = None
        self._buf = bytearray()
        self._status = 0
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._length = -1  # the body's length; -1 chunked or to the close
        self._chunked = False
        self._keep = False
        self._head_done = False
        self._body = bytearray()
        self._chunk_left = -1  # in a chunked body: bytes left of this chunk (+CRLF)
        self.reusable = False
        self.usable = True
        self.idle_since = 0.0
        loop.add_reader(self._fd, self._on_readable)

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, host: str, port: int,
                   context: ssl.SSLContext | None, registry: set[_Connection]) -> _Connection:
        """Connect (the first address that answers), then the TLS handshake."""
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, address)
                tls = incoming = outgoing = None
                if context is not None:
                    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
                    await _handshake(loop, sock, tls, incoming, outgoing)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return cls(loop, sock, tls, incoming, outgoing, registry)
        raise error

    # -- the socket's side ----------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        eof = not data
        if self._tls is not None:
            assert self._incoming is not None and self._outgoing is not None
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()
            plain = bytearray()
            try:
                while chunk := self._tls.read(262144):
                    plain += chunk
                eof = True  # read() gives b"" once the peer said close_notify
            except ssl.SSLWantReadError:
                eof = False
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # closed, cleanly or not
                eof = True
            except ssl.SSLError as exc:
                self._lost(exc)
                return
            if self._outgoing.pending:  # what TLS itself must answer (a key update)
                self._write(self._outgoing.read())
            data = bytes(plain)
        if data:
            self._received(data)
        if eof and self.usable:
            self._eof()

    def _on_writable(self) -> None:
        try:
            n = self._sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        del self._unsent[:n]
        if not self._unsent:
            self._loop.remove_writer(self._fd)

    def _write(self, data: bytes) -> None:
        if self._unsent:  # behind what waits already
            self._unsent += data
            return
        try:
            n = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self._lost(exc)
            return
        if n < len(data):
            self._unsent += data[n:]
            self._loop.add_writer(self._fd, self._on_writable)

    def _received(self, data: bytes) -> None:
        answer = self._answer
        if answer is None or answer.done():
            self._fail(HttpProtocolError("bytes from the server with no request waiting"))
            return
        self._buf += data
        try:
            self._parse()
        except HttpProtocolError as exc:
            self._fail(exc)

    def _eof(self) -> None:
        """The server closed its side."""
        answer = self._answer
        if answer is not None and not answer.done():
            if self._head_done and self._length < 0 and not self._chunked:
                self._body += self._buf  # a body delimited by the close
                self._buf.clear()
                self.usable = False
                self._finish(keep=False)
            else:
                self._fail(HttpConnectionError(
                    "the server closed the connection before the whole answer"))
        self.close()

    def _lost(self, exc: Exception) -> None:
        self._fail(HttpConnectionError(f"the connection broke: {exc}"))

    # -- the client's side ----------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[Answer]:
        """Write a request now; the future gets its answer."""
        if not self.usable or (self._answer is not None and not self._answer.done()):
            raise RuntimeError("a connection carries one request at a time, while open")
        self._answer = answer = self._loop.create_future()
        self.reusable = False
        self._head_done = False
        self._body = bytearray()
        if self._tls is not None:
            assert self._outgoing is not None
            try:
                self._tls.write(data)
            except ssl.SSLError as exc:  # the session broke (the answer says so)
                self._lost(exc)
                return answer
            data = self._outgoing.read()
        self._write(data)
        return answer

    def time_out(self, timeout_s: float) -> None:
        """The request's deadline passed: its answer fails with TimeoutError, and the
        connection closes (what is left of the answer could not be told apart)."""
        self._fail(TimeoutError(f"no answer within {timeout_s:g} s"))

    def close(self) -> None:
        """Close the socket; an answer still awaited fails with HttpConnectionError."""
        if self._fd < 0:
            return
        self.usable = False
        self._loop.remove_reader(self._fd)
        if self._unsent:
            self._loop.remove_writer(self._fd)
        self._fd = -1
        self._sock.close()
        self._registry.discard(self)
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(HttpConnectionError("the connection was closed"))

    # -- parsing --------------------------------------------------------------------------

    def _parse(self) -> None:
        buf = self._buf
        while not self._head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise HttpProtocolError(f"an answer's head is over {MAX_HEAD_BYTES} bytes")
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[:end + 4]
            self._read_head(head)
        if self._chunked:
            self._read_chunks()
        elif self._length >= 0:
            need = self._length - len(self._body)
            self._body += buf[:need]
            del buf[:need]
            if len(self._body) == self._length:
                self._finish(keep=self._keep)
        else:  # to the close
            self._body += buf
            buf.clear()
            if len(self._body) > MAX_BODY_BYTES:
                raise HttpProtocolError(f"an answer's body is over {MAX_BODY_BYTES} bytes")

    def _read_head(self, head: str) -> None:
        status_line, _, rest = head.partition("\r\n")
        version, _, tail = status_line.partition(" ")
        code = tail[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise HttpProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        status = int(code)
        headers: CIMultiDict[str] = CIMultiDict()
        for line in rest.split("\r\n") if rest else ():
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise HttpProtocolError(f"not an HTTP header line: {line[:80]!r}")
            headers.add(name, value.strip())
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            return
        connection = headers.get("Connection", "").lower()
        self._keep = connection != "close" if version == "HTTP/1.1" \
            else connection == "keep-alive"
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length = headers.get("Content-Length")
        if self._chunked:
            self._length, self._chunk_left = -1, -1
        elif status in (204, 304):
            self._length = 0
        elif length is not None:
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                raise HttpProtocolError(f"Content-Length {length[:40]!r} is not a size "
                                        f"this client reads")
            self._length = int(length)
        else:
            self._length, self._keep = -1, False  # to the close
        self._status, self._headers, self._head_done = status, headers, True

    def _read_chunks(self) -> None:
        buf = self._buf
        while True:
            if self._chunk_left < 0:  # at a chunk's size line
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise HttpProtocolError("a chunk's size line is too long")
                    return
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise HttpProtocolError(f"not a chunk size: {size_text[:20]!r}") from None
                if size < 0 or len(self._body) + size > MAX_BODY_BYTES:
                    raise HttpProtocolError("a chunked body over the size this client reads")
                del buf[:end + 2]
                if size == 0:  # the last chunk: then trailers, up to an empty line
                    end = -2 if buf.startswith(b"\r\n") else buf.find(b"\r\n\r\n")
                    if end == -1:  # not all here yet: read the size line again then
                        buf[:0] = b"0\r\n"
                        return
                    del buf[:end + 4]
                    self._finish(keep=self._keep)
                    return
                self._chunk_left = size + 2
            take = min(self._chunk_left - 2, len(buf)) if self._chunk_left > 2 else 0
            self._body += buf[:take]
            del buf[:take]
            self._chunk_left -= take
            if self._chunk_left == 2:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise HttpProtocolError("a chunk does not end with CRLF")
                del buf[:2]
                self._chunk_left = -1
            elif not buf:
                return

    def _finish(self, *, keep: bool) -> None:
        answer = self._answer
        body, self._body = bytes(self._body), bytearray()
        self.reusable = keep and not self._buf and self.usable
        if answer is not None and not answer.done():
            answer.set_result((self._status, self._headers, body))

    def _fail(self, exc: Exception) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(exc)
        self.close()


async def _handshake(loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: ssl.SSLObject,
                     incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:
    """The TLS handshake over the BIOs (certificate and host name checked by the
    context): SSLError, an OSError, when it fails."""
    while True:
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        if outgoing.pending:
            await loop.sock_sendall(sock, outgoing.read())
        if done:
            return
        data = await loop.sock_recv(sock, 65536)
        if not data:
            raise ConnectionResetError("the server closed the connection in the TLS handshake")
        incoming.write(data)
