"""Random faults on a seeded schedule, for `python -m tests.fake_binance --chaos`.

Every `interval_s` (a random value in the range) one fault is injected, chosen
with `random.Random(seed)`: abort market connections, abort WS-API connections,
a depth gap, a 429 (Retry-After 1) on the next REST request, a 503 on the next
order (processed first half of the time: the order may exist), a duplicated
user event, a malformed frame. `injected` lists the names, in order.
"""

from __future__ import annotations

import asyncio
import random

from tests.fake_binance.server import FakeBinanceServer

FAULTS = ("disconnect_market", "disconnect_user", "depth_gap", "rest_429", "order_5xx",
          "duplicate_user_event", "malformed_frame")


class Chaos:
    def __init__(self, server: FakeBinanceServer, seed: int = 0,
                 interval_s: tuple[float, float] = (2.0, 6.0)) -> None:
        self.server = server
        self.rng = random.Random(f"chaos:{seed}")
        self.interval_s = interval_s
        self.injected: list[str] = []

    def inject(self, name: str) -> None:
        s = self.server
        if name == "disconnect_market":
            s.disconnect_market()
        elif name == "disconnect_user":
            s.disconnect_user()
        elif name == "depth_gap":
            for symbol in s.exchange.markets:
                s.depth_gap(symbol)
        elif name == "rest_429":
            s.fail_next(429, retry_after=1)
        elif name == "order_5xx":
            s.fail_next(503, method="POST", path="/api/v3/order",
                        after_processing=self.rng.random() < 0.5)
        elif name == "duplicate_user_event":
            s.duplicate_user_events(1)
        elif name == "malformed_frame":
            s.send_malformed()
        else:
            raise ValueError(f"unknown fault {name!r}")
        self.injected.append(name)

    async def run(self) -> None:
        """Inject faults forever (cancel to stop)."""
        lo, hi = self.interval_s
        while True:
            await asyncio.sleep(self.rng.uniform(lo, hi))  # the schedule itself
            self.inject(self.rng.choice(FAULTS))
