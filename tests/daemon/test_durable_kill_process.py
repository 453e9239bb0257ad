"""`tapeloop run` against the fake Binance, placing an order on every quote (group
commit, preallocated segments: the shipped durable path, its commit's wait blocking or
spinning), SIGKILLed at seeded random
moments: every order Binance ever received has its intent (`OrderSubmitted`) in the
journal the next start recovers. Rerun a failure with TAPELOOP_SEED=<seed>."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import msgspec
import pytest

from daemon.strategies.base import Strategy
from events.market import Quote
from events.orders import OrderSubmitted
from tests.adapters.binance.live import until
from tests.daemon.test_live_binance_process import INSTRUMENT, recorded, start
from tests.fake_binance import FakeBinanceServer

KILLS = 3

CONFIG = """\
[daemon]
control = "127.0.0.1:0"

[journal]
sync_wait = "{sync_wait}"

[[venues]]
name = "binance"
kind = "binance"
endpoints = "{url}"

{instrument}min_notional = 5.0

[risk]
max_order_qty = 0.01
max_order_notional = 10_000.0
max_position_qty = 1.0
daily_loss_limit = 1_000.0
max_orders_per_s = 1000
price_band_pct = 50.0

[[strategies]]
id = "chase"
class = "tests.daemon.test_durable_kill_process:QuoteChaser"
venue = "binance"
symbols = ["BTCUSDT"]
"""


class ChaserParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    below: float = 0.03


class QuoteChaser(Strategy):
    """An IOC buy under the bid on every quote: it expires, so orders keep coming."""

    Params = ChaserParams

    def on_quote(self, quote: Quote) -> None:
        self.buy(quote.symbol, 0.001, price=quote.bid * (1 - self.params.below),
                 time_in_force="IOC")


@pytest.mark.parametrize("sync_wait", ["block", "spin"])
async def test_no_order_at_the_venue_lacks_its_intent_after_a_kill_9(tmp_path: Path,
                                                                    sync_wait: str) -> None:
    seed = int(os.environ.get("TAPELOOP_SEED", random.randrange(2**32)))
    print(f"seed={seed}")
    rng = random.Random(seed)
    server = FakeBinanceServer(seed=seed % 1000, tick_interval_s=0.01)
    await server.start()
    config, data, log = tmp_path / "live.toml", tmp_path / "data", tmp_path / "daemon.log"
    config.write_text(CONFIG.format(url=server.base_url, instrument=INSTRUMENT,
                                    sync_wait=sync_wait))
    try:
        for kill in range(KILLS):
            # Binance holds every answer: the orders stay in flight, so nothing but the
            # commit before the send (the flush window is 200 ms) can have recorded them
            server.delay_next(30.0, n=10**6, method="POST", path="/api/v3/order")
            proc = await start(config, data, log)
            try:
                sent = len(server.rest.post_counts)
                target = sent + rng.randint(1, 5)  # the kill lands as the last one arrives
                await until(lambda: len(server.rest.post_counts) >= target, timeout=60,  # noqa: B023
                            message=f"{target} orders at the fake Binance (run {kill})")
            finally:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                server.clear_faults()
            at_venue = set(server.rest.post_counts)
            intents = {e.client_order_id for e in recorded(data, OrderSubmitted)}
            missing = sorted(at_venue - intents)
            assert not missing, (f"run {kill}: {len(missing)} orders reached Binance without "
                                 f"their intent in the journal: {missing[:5]}")
    finally:
        await server.close()
