"""The Binance market-data stream end to end in tapeloop's process: the USD-M
recording's 93,953 combined-stream messages (depth, bookTicker, trade, markPrice),
sent back to back by a websockets server in a child process (its sending is on the
other core, as a venue's is on another machine), received by `MarketDataStream`
(websockets' client, the stream's read loop and its deadlines, `StreamParser`) and
published to a sink that only counts. Gives messages per second from the first
message to the last (best and median of the rounds) and this process's CPU time per
message: what a live feed costs before anything subscribes to it.

    python -m bench.bench_market_ws  # TAPELOOP_BENCH_WS_MESSAGES=2000: the first 2,000
"""

from __future__ import annotations

import asyncio
import gzip
import os
import statistics
import subprocess
import sys
import time

from bench.common import REPO, SHARED_DATA, emit, reference_call_ns

RECORDING = SHARED_DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"
ROUNDS = 5


def _bodies(limit: int) -> list[bytes]:
    out: list[bytes] = []
    with gzip.open(RECORDING, "rb") as f:
        for line in f:
            _, _, body = line.rstrip(b"\n").partition(b" ")
            if body.startswith(b'{"stream"'):
                out.append(body)
                if len(out) == limit:
                    break
    return out


async def _serve(limit: int) -> None:
    """The child: every connection gets the recording (its first `limit`
    messages), then is held open until the parent closes our stdin."""
    from websockets.asyncio.server import ServerConnection, serve

    texts = [body.decode() for body in _bodies(limit)]

    async def feed(ws: ServerConnection) -> None:
        for text in texts:
            await ws.send(text)
        await ws.wait_closed()

    async with serve(feed, "127.0.0.1", 0, max_queue=None) as server:
        print(server.sockets[0].getsockname()[1], len(texts), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def _round(port: int, n: int) -> tuple[float, float]:
    """(wall s, this process's CPU s) from the first message to the n-th."""
    from adapters.binance.market_ws import MarketDataStream
    from events.system import VenueStatus

    done = asyncio.Event()
    count = [0]
    marks: list[float] = []

    def sink(event: object) -> None:
        if type(event) is VenueStatus:
            return  # the stream's own: connected, then disconnected when stopped
        count[0] += 1
        if count[0] == 1 or count[0] == n:
            marks.extend((time.perf_counter(), time.process_time()))
            if count[0] == n:
                done.set()

    # the streams named here only make the URL: the fake sends the recording's
    stream = MarketDataStream(f"ws://127.0.0.1:{port}", ["btcusdt@trade"], "binance-usdm",
                              sink)
    task = asyncio.create_task(stream.run())
    await done.wait()
    stream.stop()
    await task
    return marks[2] - marks[0], marks[3] - marks[1]


def main() -> None:
    if not RECORDING.exists():
        emit("binance_market_ws", skipped=f"{RECORDING} not found")
        return
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(_serve(int(sys.argv[2])))
        return
    import uvloop

    from daemon.logging import configure_logging

    configure_logging("warning", stream=sys.stderr)
    limit = os.environ.get("TAPELOOP_BENCH_WS_MESSAGES", "0")
    child = subprocess.Popen([sys.executable, "-m", "bench.bench_market_ws", "serve", limit],
                             cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        port, n = map(int, child.stdout.readline().split())
        runs = [uvloop.run(_round(port, n)) for _ in range(ROUNDS)]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    rates = sorted(n / wall for wall, _ in runs)
    cpu_us = sorted(cpu / n * 1e6 for _, cpu in runs)
    emit("binance_market_ws", messages=n, rounds=ROUNDS,
         msgs_per_s=round(rates[-1]), median_msgs_per_s=round(statistics.median(rates)),
         cpu_us_per_msg=round(cpu_us[0], 2),
         median_cpu_us_per_msg=round(statistics.median(cpu_us), 2),
         ref_call_ns=reference_call_ns())


if __name__ == "__main__":
    main()
