"""Tick-to-order latency through the live Binance path, in one process.

A websockets server on 127.0.0.1 sends Binance combined-stream trade frames,
one at a time. Each goes through the real path: `MarketDataStream` (decode,
parse) -> the bus with its journal hook (the Trade is journaled) -> the
strategy runtime -> a strategy that answers every trade with an IOC limit buy
-> the OMS and the risk engine (every check) -> `OrderSubmitted` (journaled)
-> `BinanceVenue` -> `BinanceRest.new_order` (parameters, timestamp, HMAC
signature, rate limiter) -> the moment the signed request is handed to the
HTTP transport. That last inch is replaced: the request is not sent, the
venue gets Binance's documented answer for an expired IOC at once, and the
server sends the next frame. Latency = transport hand-off time - the time the
frame left the websocket library (`ts_recv`), both `time.time_ns()`.

Journal: fsync "never" for the main figure (the OS gets the bytes), and
`fsync_policy = critical` (the order is on disk before it is sent) on a few
thousand orders, wired as the daemon wires it (group commit: `Journal.stage`, the
bus's `write` before an intent is dispatched and `Bus.durable` just before its
request leaves, see events.bus), beside this disk's own floor for that: one
`fdatasync` of a 200-byte write to a file preallocated as the journal's segments
are (`disk_fdatasync_floor`, in the same temporary directory). The durable line
says how many fdatasyncs each order cost, the floor's p99 and whether its target
(floor p99 + 100 µs) is met; `durable_excess_p50_us` is what the durable path
adds over the non-durable one beyond the disk's floor. To explain it, the durable
line also gives the journal's own fdatasyncs timed in the run
(`journal_fdatasync_p50_us`/`_p99_us`, to read against the floor's), each
order's latency less the fdatasync time inside it (`beyond_fdatasync_*`, to read
against the non-durable line). The target's floor is sampled between the run's
own orders (every other one, outside their windows: `floor_*`): this virtual
disk's p99 moves several-fold from one minute to the next (0.28 then 2.9 ms in
two runs a minute apart), so a floor measured before the run says little about
the disk the run had; the floor line's is given beside it
(`floor_before_p99_us`, `target_met_by_floor_before`). Sampled between orders, the
floor's p50 is ~180-200 µs where the floor line's tight loop gives ~120: a
fdatasync costs more when the thread did other work before it (its CPU idled, its
caches went cold), and the journal's own fdatasyncs cost what the interleaved
floor's do. Two durable lines:
`sync_wait = "block"` (the shipped default: the plain call), then `"spin"` (the
fdatasync on a thread of its own while the loop's thread spins, see
`events.disk_sync`).

Tick-to-wire (`tick_to_wire`, after the non-durable run): the same path, but the
REST client sends each request for real, through its own HTTP transport, to a
server on a thread of its own (`WireServer`) that answers as Binance does; the
latency ends when the request's first bytes reach that server's socket, stamped by
the kernel (`SO_TIMESTAMPNS`), so it holds the transport's own cost and the moment
the loop actually writes (uvloop writes at the end of the loop's turn). Two lines:
`http = "lean"` (adapters.binance.http1, what the daemon sends with) and
`"aiohttp"` (aiohttp's client, a session handed in), on `N_WIRE` orders each.

Order of the runs: the disk settled (`os.sync`), its floor, `machine_jitter`,
the durable runs, then the non-durable run, which leaves tens of
MB for the disk to write back (run before the durable ones, it moved the floor's
p99 from 0.3 to 2.5-3 ms). `machine_jitter` (bench.common): a fixed piece of plain
Python about as long as an order's path, timed 20,000 times; its p99 over its p50
is this machine's own tail for work that never changes: read the tick-to-order
p99s against it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection, serve

from bench.common import emit, machine_jitter, reference_call_ns
from daemon.strategies.base import Strategy
from events.market import Trade

N_ORDERS = 100_000
N_CRITICAL = 3_000
N_WIRE = 20_000
WARMUP = 2_000


class Chaser(Strategy):
    """Answers every trade with an IOC limit buy 1% under it (which expires)."""

    def on_trade(self, trade: Trade) -> None:
        self.buy(trade.symbol, "0.001", price=trade.price * 0.99, time_in_force="IOC")


def _config(port: int) -> Any:
    from daemon.config import Config

    return msgspec.convert({
        "venues": [{"name": "binance", "kind": "binance", "endpoints": f"http://127.0.0.1:{port}",
                    "streams": ["trade"]}],
        "instruments": [{"venue": "binance", "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT",
                         "tick_size": 0.01, "step_size": 0.00001, "min_notional": 5.0}],
        "risk": {"max_order_qty": 1.0, "max_order_notional": 1e9, "max_position_qty": 1e6,
                 "daily_loss_limit": 1e9, "max_orders_per_s": 1e9, "price_band_pct": 50.0},
        "strategies": [{"id": "chase", "class": "bench.bench_tick_to_order:Chaser",
                        "venue": "binance", "symbols": ["BTCUSDT"]}],
    }, Config)


def _trade_frame(i: int) -> bytes:
    ms = 1_763_735_400_000 + i
    price = f"{64000 + (i % 100) / 100:.2f}"
    return (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,'
            b'"p":"%s","q":"0.00100000","T":%d,"m":true,"M":true}}'
            % (ms, i, price.encode(), ms))


async def measure(n: int, fsync: str, *, warmup: int = WARMUP,
                  on_open: Callable[[Any, Any], None] | None = None,
                  on_send: Callable[[str], None] | None = None,
                  syncs: SyncTimes | None = None,
                  sync_wait: str = "block",
                  floor: list[int] | None = None,
                  wire: str | None = None) -> tuple[list[int], int]:
    """Latencies (ns) of `n` orders after `warmup`, and the fdatasyncs the journal
    did for those `n`. `wire`: the REST client's own transport sends each request
    to a `WireServer` ("lean": its own HTTP client, as the daemon runs it;
    "aiohttp": aiohttp's, with a session handed in), and the latency ends when the
    request's bytes reach the server's socket (the kernel's receive stamp), instead
    of at the hand-off to the transport. `on_open(bus, journal)` sees the wiring before the first
    frame; `on_send(client_order_id)` runs at the hand-off (tests use both);
    `syncs` collects the journal's own fdatasync times (see `SyncTimes`);
    `floor` collects the disk's floor (`disk_floor`'s write and fdatasync, ns)
    sampled between every other pair of orders after the warm-up, on a file beside
    the journal's: the same disk at the same moments."""
    from adapters.binance.rest import BinanceRest
    from adapters.binance.signing import Credentials
    from adapters.binance.venue import BinanceVenue
    from daemon.kernel import tune_gc
    from daemon.node import TradingNode
    from events.journal import JournalPolicy
    from events.state import BalanceChanged
    from events.store import EventStore
    from replay.clock import LiveClock

    loop = asyncio.get_running_loop()
    ack = asyncio.Event()
    latencies: list[int] = []
    last_recv = [0]

    class LastInchRest(BinanceRest):
        async def _attempt(self, method: str, path: str, query: str, headers: Any,
                           weight: int, is_order: bool) -> tuple[int, Any, bytes, int, int]:
            self.limiter.note_sent(weight, is_order, self._now_ns())
            latencies.append(time.time_ns() - last_recv[0])
            cid = query.partition("newClientOrderId=")[2].partition("&")[0]
            if len(latencies) == warmup:
                fsyncs_at_warmup[0] = journal.fsyncs
                if syncs is not None:
                    syncs.calls.clear()
            if syncs is not None:
                syncs.sent()
            if on_send is not None:
                on_send(cid)
            body = (b'{"symbol":"BTCUSDT","orderId":%d,"orderListId":-1,"clientOrderId":"%s",'
                    b'"transactTime":1763735400123,"price":"1.00","origQty":"0.001",'
                    b'"executedQty":"0","cummulativeQuoteQty":"0","status":"EXPIRED",'
                    b'"timeInForce":"IOC","type":"LIMIT","side":"BUY","fills":[]}'
                    % (len(latencies), cid.encode()))
            ack.set()
            return 200, {}, body, 0, 0

    class WireRest(BinanceRest):
        async def _attempt(self, method: str, path: str, query: str, headers: Any,
                           weight: int, is_order: bool) -> tuple[int, Any, bytes, int, int]:
            try:
                return await super()._attempt(method, path, query, headers, weight, is_order)
            finally:
                latencies.append(wire_server.last_stamp_ns - last_recv[0])
                ack.set()

    async def feed(ws: ServerConnection) -> None:
        for i in range(n + warmup):
            if probe is not None and i > warmup and i & 1:
                probe.sample()  # outside any order's window: before its frame leaves
            ack.clear()
            await ws.send(_trade_frame(i), text=True)
            await ack.wait()
        done.set()

    done = asyncio.Event()
    fsyncs_at_warmup = [0]
    with tempfile.TemporaryDirectory(prefix="tapeloop-bench-") as tmp:
        store = EventStore.open_writer(tmp)
        journal = store.open_journal(JournalPolicy(fsync=fsync, sync_wait=sync_wait))
        probe = FloorProbe(os.path.join(tmp, "floor"), n, floor) if floor is not None else None
        if syncs is not None:
            syncs.install()
        from events.bus import Bus

        bus = Bus(next_seq=journal.next_seq, journal=journal.stage, commit=journal.commit,
                  write=journal.flush)
        if on_open is not None:
            on_open(bus, journal)
        async with serve(feed, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            config = _config(port)
            node = TradingNode(config, bus, LiveClock(loop), replay=False)
            inst = [i for k, i in node.instruments.items() if k[0] == "binance"]
            venue = BinanceVenue("binance", inst, bus, endpoints=_endpoints(port),
                                 credentials=Credentials(api_key="k", secret="s"),
                                 oms=node.oms, risk=node.risk, streams=["trade"])
            # An account whose order-rate limits are out of the way (Binance's
            # default, 100 orders per 10 s, would pace this loop): the limiter
            # is still consulted before and after every request.
            from adapters.binance.exchange_info import RateLimit
            from adapters.binance.ratelimit import RateLimiter

            roomy = RateLimiter([RateLimit("REQUEST_WEIGHT", "MINUTE", 1, 10**9),
                                 RateLimit("ORDERS", "SECOND", 10, 10**9),
                                 RateLimit("ORDERS", "DAY", 1, 10**9)])
            if wire is None:
                venue.rest = LastInchRest(venue.endpoints.rest,
                                          Credentials(api_key="k", secret="s"), limiter=roomy)
            else:
                import aiohttp

                wire_server = WireServer()
                session = aiohttp.ClientSession() if wire == "aiohttp" else None
                venue.rest = WireRest(wire_server.url, Credentials(api_key="k", secret="s"),
                                      limiter=roomy, session=session)
            venue.subscribe(bus)
            node.risk.unblock_venue("binance")  # no reconciliation in a bench
            bus.subscribe(Trade, lambda t: last_recv.__setitem__(0, t.ts_recv))
            if syncs is not None:
                bus.subscribe(Trade, syncs.received)
            now = time.time_ns()
            bus.publish(BalanceChanged(ts_event=now, ts_recv=now, venue="binance",
                                       currency="USDT", total=Decimal(10**12),
                                       free=Decimal(10**12)))
            node.start()
            tune_gc()  # as the daemon does once it is ready
            market = loop.create_task(venue.market.run())
            await done.wait()
            venue.market.stop()
            await market
            for task in list(venue._tasks):
                await task
            if wire is not None:
                await venue.rest.close()
                if session is not None:
                    await session.close()
                wire_server.close()
        fsyncs = journal.fsyncs - fsyncs_at_warmup[0]
        if syncs is not None:
            syncs.uninstall()
            del syncs.in_window[:warmup]
        journal.close()
        store.close()
        if probe is not None:
            probe.close()
    return latencies[warmup:], fsyncs


# Linux's SO_TIMESTAMPNS (asm-generic/socket.h), which Python's socket module does
# not name: the kernel stamps each received packet with the wall clock, in ns
_SO_TIMESTAMPNS = 35


class WireServer:
    """An HTTP/1.1 server on 127.0.0.1, on a thread of its own, that answers every
    request with Binance's answer for an expired IOC order, and stamps when each
    request's first bytes reached its socket: the kernel's receive time
    (`SO_TIMESTAMPNS`, the wall clock, as `time.time_ns()`), so the thread's own
    wake-up is not counted. On loopback that is the moment the client's send ran."""

    def __init__(self) -> None:
        import socket
        import threading

        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.last_stamp_ns = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="wire-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import socket
        import struct

        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf, n = b"", 0
            with conn:
                while True:
                    try:
                        data, anc, _, _ = conn.recvmsg(65536, 64)
                    except OSError:
                        break
                    if not data:
                        break
                    if not buf:  # a request's first bytes
                        for level, kind, raw in anc:
                            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                                sec, nsec = struct.unpack("qq", raw[:16])
                                self.last_stamp_ns = sec * 1_000_000_000 + nsec
                    buf += data
                    while b"\r\n\r\n" in buf:
                        head, _, buf = buf.partition(b"\r\n\r\n")
                        n += 1
                        cid = head.partition(b"newClientOrderId=")[2].partition(b"&")[0]
                        body = (b'{"symbol":"BTCUSDT","orderId":%d,"orderListId":-1,'
                                b'"clientOrderId":"%s","transactTime":1763735400123,'
                                b'"price":"1.00","origQty":"0.001","executedQty":"0",'
                                b'"cummulativeQuoteQty":"0","status":"EXPIRED",'
                                b'"timeInForce":"IOC","type":"LIMIT","side":"BUY","fills":[]}'
                                % (n, cid))
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def close(self) -> None:
        self._stop = True
        self._listener.close()


class FloorProbe:
    """`disk_floor`'s write and fdatasync, one at a time (`sample`), into `out` (ns):
    a file preallocated as a journal segment is, `size`-byte writes in order."""

    def __init__(self, path: str, n: int, out: list[int], size: int = 200) -> None:
        from events.journal import JournalPolicy

        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        os.posix_fallocate(self.fd, 0, max(JournalPolicy().segment_max_bytes, n * size + 4096))
        os.fsync(self.fd)
        self.out, self.payload, self.offset = out, b"x" * size, 0

    def sample(self) -> None:
        t0 = time.perf_counter_ns()
        os.pwrite(self.fd, self.payload, self.offset)
        os.fdatasync(self.fd)
        self.out.append(time.perf_counter_ns() - t0)
        self.offset += len(self.payload)

    def close(self) -> None:
        os.close(self.fd)


class SyncTimes:
    """The journal's own fdatasyncs during a run, timed where they reach the disk
    (`events.journal._datasync`): every call (`calls`, ns) and, per order, the
    fdatasync time inside its latency window, from its trade's delivery to its
    send (`in_window`, ns: the intent's commit). Latency minus that is what the
    durable path costs beyond its disk."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.in_window: list[int] = []
        self._window = 0
        self._real: Callable[[int], None] | None = None

    def install(self) -> None:
        import events.journal as journal_mod

        self._real = real = journal_mod._datasync
        calls = self.calls

        def timed(fd: int) -> None:
            t0 = time.perf_counter_ns()
            real(fd)
            took = time.perf_counter_ns() - t0
            calls.append(took)
            self._window += took

        journal_mod._datasync = timed

    def uninstall(self) -> None:
        import events.journal as journal_mod

        assert self._real is not None
        journal_mod._datasync = self._real

    def received(self, _trade: Trade) -> None:
        self._window = 0

    def sent(self) -> None:
        self.in_window.append(self._window)


def _endpoints(port: int) -> Any:
    from adapters.binance.endpoints import resolve_endpoints

    return resolve_endpoints(f"http://127.0.0.1:{port}", env={})


def _pct(sorted_ns: list[int], q: float) -> float:
    return round(sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000, 1)


def disk_floor(n: int = N_CRITICAL, size: int = 200, *, prealloc: str = "fallocate"
               ) -> list[int]:
    """This disk's own floor for a durable write: a `size`-byte write then
    `fdatasync`, `n` times, in the same temporary directory the journal uses, to
    a file made as a journal segment is (`posix_fallocate` of the default
    `segment_max_bytes`), or ("zeros") one written full of zeros first; ns each."""

    from events.journal import JournalPolicy

    with tempfile.TemporaryDirectory(prefix="tapeloop-bench-") as tmp:
        path = os.path.join(tmp, "floor")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if prealloc == "zeros":
                os.write(fd, bytes(n * size + 4096))
            else:
                os.posix_fallocate(fd, 0, max(JournalPolicy().segment_max_bytes,
                                              n * size + 4096))
            os.fsync(fd)
            payload = b"x" * size
            out = []
            for i in range(n):
                t0 = time.perf_counter_ns()
                os.pwrite(fd, payload, i * size)
                os.fdatasync(fd)
                out.append(time.perf_counter_ns() - t0)
        finally:
            os.close(fd)
    return out


def main() -> None:
    import gc

    from daemon.logging import configure_logging

    configure_logging("warning", stream=sys.stderr)  # stdout is the bench's JSON lines

    try:
        import uvloop
        run = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    n_orders = int(os.environ.get("TAPELOOP_BENCH_ORDERS", N_ORDERS))
    n_critical = int(os.environ.get("TAPELOOP_BENCH_CRITICAL", N_CRITICAL))
    if os.environ.get(_NEVER_ONLY):
        _never(run, n_orders)
        return
    # What earlier work left for the disk (the benches before this one wrote and
    # deleted whole stores: writeback, and discards on a `discard` mount) is
    # flushed first; a non-durable run leaves tens of MB of its own, so it comes
    # last. Measured the other way round here, the floor's own p99 went from
    # 0.3 to 2.5-3 ms right after the 100 k non-durable orders.
    os.sync()
    # the floor first: the durable lines are stated against it
    floor = sorted(disk_floor(n_critical))
    zeros = sorted(disk_floor(n_critical, prealloc="zeros"))
    emit("disk_fdatasync_floor", writes=len(floor), bytes=200, prealloc="fallocate",
         p50_us=_pct(floor, 0.50), p90_us=_pct(floor, 0.90), p99_us=_pct(floor, 0.99),
         max_us=round(floor[-1] / 1000, 1), zero_filled_p50_us=_pct(zeros, 0.50),
         zero_filled_p99_us=_pct(zeros, 0.99), ref_call_ns=reference_call_ns())
    floor_p99 = _pct(floor, 0.99)
    # the machine's own tail for a fixed piece of Python, to read the p99s against
    emit("machine_jitter", **machine_jitter(), ref_call_ns=reference_call_ns())
    durable: list[dict[str, object]] = []
    # the shipped way to wait for the disk (blocking), then the spinning one beside it
    for wait in ("block", "spin"):
        os.sync()
        gc.collect()
        syncs = SyncTimes()
        beside: list[int] = []  # the floor, sampled between this run's orders
        t0 = time.perf_counter()
        got, fsyncs = run(measure(n_critical, "critical", syncs=syncs, sync_wait=wait,
                                  floor=beside))
        wall = time.perf_counter() - t0
        lat = sorted(got)
        calls = sorted(syncs.calls)
        # each order's latency less the fdatasync inside it: the code's share, to
        # read against the non-durable p50/p99
        beyond = sorted(g - w for g, w in zip(got, syncs.in_window, strict=True))
        beside.sort()
        target = round(_pct(beside, 0.99) + 100, 1)
        durable.append(dict(
            fsync_policy="critical", orders=len(lat), p50_us=_pct(lat, 0.50),
            p90_us=_pct(lat, 0.90), p99_us=_pct(lat, 0.99), p999_us=_pct(lat, 0.999),
            max_us=round(lat[-1] / 1000, 1), round_trips_per_s=round(len(lat) / wall),
            fdatasyncs_per_order=round(fsyncs / len(lat), 2), sync_wait=wait,
            # the target's floor: sampled between this run's orders (the disk's
            # tail moves from minute to minute: the floor line's, measured before,
            # is beside it)
            floor_p50_us=_pct(beside, 0.50), floor_p99_us=_pct(beside, 0.99),
            floor_samples=len(beside), target_p99_us=target,
            target_met=_pct(lat, 0.99) <= target,
            # and against the floor line's, measured in a loop doing nothing else
            floor_before_p99_us=floor_p99,
            target_met_by_floor_before=_pct(lat, 0.99) <= floor_p99 + 100,
            # the journal's own fdatasyncs in this run, beside the floor's
            journal_fdatasync_p50_us=_pct(calls, 0.50),
            journal_fdatasync_p99_us=_pct(calls, 0.99),
            beyond_fdatasync_p50_us=_pct(beyond, 0.50),
            beyond_fdatasync_p99_us=_pct(beyond, 0.99), ref_call_ns=reference_call_ns()))
    p50_never = _never(run, n_orders)
    # to the wire: the request's bytes on the server's socket, through the REST
    # client's own transport (the daemon's), then aiohttp's beside it
    for transport in ("lean", "aiohttp"):
        _wire(run, int(os.environ.get("TAPELOOP_BENCH_WIRE", N_WIRE)), transport)
    for figures in durable:
        excess = round(float(str(figures["p50_us"])) - p50_never
                       - float(str(figures["floor_p50_us"])), 1)
        emit("tick_to_order", **figures, code=_code(), durable_excess_p50_us=excess)
    if _code() == "native":
        # the same run with the order path as source, beside it (a process of its own:
        # what runs compiled is decided as it starts)
        subprocess.run([sys.executable, "-m", "bench.bench_tick_to_order"], check=True,
                       env={**os.environ, "TAPELOOP_NATIVE": "0", _NEVER_ONLY: "1"})


_NEVER_ONLY = "TAPELOOP_BENCH_NEVER_ONLY"


def _wire(run: Callable[[Any], Any], n_orders: int, transport: str) -> None:
    """Tick-to-wire (fsync "never"): the non-durable path through the REST client's
    real transport to a `WireServer`, until the request's bytes reach its socket."""
    import gc

    gc.collect()
    t0 = time.perf_counter()
    got, _ = run(measure(n_orders, "never", wire=transport))
    wall = time.perf_counter() - t0
    lat = sorted(got)
    emit("tick_to_wire", fsync_policy="never", code=_code(), http=transport,
         orders=len(lat), p50_us=_pct(lat, 0.50), p90_us=_pct(lat, 0.90),
         p99_us=_pct(lat, 0.99), p999_us=_pct(lat, 0.999), max_us=round(lat[-1] / 1000, 1),
         round_trips_per_s=round(len(lat) / wall), ref_call_ns=reference_call_ns())


def _code() -> str:
    """How the order path runs: "native" (compiled, events/native.py) or "source"."""
    import events.bus
    from events.native import is_native

    return "native" if is_native(events.bus) else "source"


def _never(run: Callable[[Any], Any], n_orders: int) -> float:
    """The non-durable run (fsync "never"): emits its line, returns its p50 (µs)."""
    import gc

    gc.collect()
    t0 = time.perf_counter()
    got, fsyncs = run(measure(n_orders, "never"))
    wall = time.perf_counter() - t0
    lat = sorted(got)
    emit("tick_to_order", fsync_policy="never", code=_code(), orders=len(lat),
         p50_us=_pct(lat, 0.50), p90_us=_pct(lat, 0.90), p99_us=_pct(lat, 0.99),
         p999_us=_pct(lat, 0.999), max_us=round(lat[-1] / 1000, 1),
         round_trips_per_s=round(len(lat) / wall),
         fdatasyncs_per_order=round(fsyncs / len(lat), 2), target_p99_us=100,
         target_met=_pct(lat, 0.99) < 100, ref_call_ns=reference_call_ns())
    return _pct(lat, 0.50)


if __name__ == "__main__":
    sys.exit(main())
