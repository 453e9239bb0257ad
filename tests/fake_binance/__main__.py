"""Run the fake Binance until SIGTERM/SIGINT.

    python -m tests.fake_binance --port 8990 --seed 7 [--api-key K --secret S]
                                 [--tick-ms 50] [--chaos] [--host 127.0.0.1]

The first stdout line is exactly `fake-binance listening on http://127.0.0.1:PORT`
(flushed); nothing else goes to stdout. Logs go to stderr. `--port 0` picks a
free port. `--tick-ms 0` stops the market clock. Exit status 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from tests.fake_binance.chaos import Chaos
from tests.fake_binance.common import DEFAULT_API_KEY, DEFAULT_SECRET
from tests.fake_binance.server import FakeBinanceServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.fake_binance",
                                description="A fake Binance Spot exchange on loopback.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8990)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--api-key", default=DEFAULT_API_KEY)
    p.add_argument("--secret", default=DEFAULT_SECRET)
    p.add_argument("--tick-ms", type=float, default=50.0,
                   help="market step interval in ms (0: no automatic steps)")
    p.add_argument("--heartbeat-s", type=float, default=20.0)
    p.add_argument("--move-ticks", type=int, default=100,
                   help="scale of each price move in ticks (volatility; 100 moves BTCUSDT "
                        "about as much per second as the real market on a calm day)")
    p.add_argument("--chaos", action="store_true", help="inject a random fault every few s")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    server = FakeBinanceServer(args.api_key, args.secret, seed=args.seed,
                               tick_interval_s=args.tick_ms / 1000 if args.tick_ms > 0 else None,
                               heartbeat_s=args.heartbeat_s or None,
                               move_ticks=max(1, args.move_ticks))
    url = await server.start(port=args.port, host=args.host)
    print(f"fake-binance listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    chaos = asyncio.create_task(Chaos(server, args.seed).run()) if args.chaos else None
    try:
        await stop.wait()
    finally:
        if chaos is not None:
            chaos.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chaos
        await server.close()
    logging.getLogger("fake_binance").info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
