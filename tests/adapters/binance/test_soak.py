"""Live market making against the fake Binance under load and faults (10 s in make
test, ten minutes in make soak).

The fake's market ticks every 10 ms (trades, quotes, depth diffs); a seeded
chaos loop drops the market and user connections, opens depth gaps, answers
429 with Retry-After, fails order placements after processing them (unknown
outcomes), drops order answers, duplicates, reorders and corrupts user events.
Every few seconds the market is held still and our local book must equal the
fake's. At the end the strategy stops (cancelling its quotes), one more
reconciliation runs, and:

- every fill Binance made for us is recorded exactly once (by trade id);
- no order was ever sent twice (one POST per client order id);
- each order's state agrees with Binance's, and the position equals the fills.

`TAPELOOP_SOAK_S` changes the duration (10 s in make test, 600 s in make soak); the
seed is printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections import Counter
from decimal import Decimal

import pytest

from events.orders import Fill
from tests.adapters.binance.live import Live, until
from tests.fake_binance import FakeBinanceServer

SOAK_S = float(os.environ.get("TAPELOOP_SOAK_S", "10"))  # make soak: 600
SEED = int(os.environ.get("TAPELOOP_SOAK_SEED", "20261121"))
MM = {"id": "mm", "class": "daemon.strategies.market_maker:MarketMaker", "venue": "binance",
      "symbols": ["BTCUSDT"],
      "params": {"qty": 0.001, "half_spread_bps": 0.005, "max_position": 0.005,
                 "requote_bps": 0.02, "requote": "replace"}}
FAULTS = ("disconnect_market", "disconnect_user", "depth_gap", "rest_429", "order_5xx",
          "order_dropped", "duplicate_user", "reorder_user", "malformed")


def inject(server: FakeBinanceServer, fault: str) -> None:
    if fault == "disconnect_market":
        server.disconnect_market()
    elif fault == "disconnect_user":
        server.disconnect_user()
    elif fault == "depth_gap":
        server.depth_gap("BTCUSDT")
    elif fault == "rest_429":
        server.fail_next(429, retry_after=1)
    elif fault == "order_5xx":  # Binance placed it, then answered 503: outcome unknown
        server.fail_next(503, method="POST", path="/api/v3/order", after_processing=True)
    elif fault == "order_dropped":
        server.drop_next(method="POST", path="/api/v3/order")
    elif fault == "duplicate_user":
        server.duplicate_user_events(3)
    elif fault == "reorder_user":
        server.reorder_user_events(3)
    else:
        server.send_malformed()
        server.send_unknown()


@pytest.mark.timeout(3 * SOAK_S + 120)  # it runs SOAK_S on purpose, then checks
async def test_a_minute_of_market_making_through_faults_loses_and_doubles_nothing() -> None:
    print(f"soak: {SOAK_S:g} s, seed {SEED}", file=sys.stderr)
    rng = random.Random(SEED)
    server = FakeBinanceServer(seed=SEED, tick_interval_s=0.01)
    await server.start()
    try:
        async with Live(server, strategies=[MM]) as live:
            injected: Counter[str] = Counter()
            book_checks = 0
            end = time.monotonic() + SOAK_S
            next_book_check = time.monotonic() + 5
            while time.monotonic() < end:
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                fault = rng.choice(FAULTS)
                inject(server, fault)
                injected[fault] += 1
                if time.monotonic() >= next_book_check:
                    server.tick_interval_s = None  # hold the market still, then compare
                    await until(live.book_in_sync, timeout=15, message="book equals the fake's")
                    book_checks += 1
                    server.tick_interval_s = 0.01
                    next_book_check = time.monotonic() + 5

            # wind down: the strategy cancels its quotes; a last reconciliation
            live.node.runtime.stop()
            await live.venue.drain(10.0)
            server.tick_interval_s = None
            server.reorder_user_events(0)
            before = live.venue.reconciled
            server.disconnect_user()
            await until(lambda: live.venue.reconciled > before, timeout=20,
                        message="the final reconciliation")
            await until(lambda: not live.node.risk.holds, timeout=20, message="no hold left")

            fills = Counter(f.trade_id for f in live.of(Fill))
            theirs = Counter(str(t["id"]) for t in server.trades)
            posted = {cid: server.post_count(cid) for cid in live.node.oms.orders}
            print(f"soak: faults {dict(injected)}; {len(posted)} orders, "
                  f"{sum(theirs.values())} fills, {book_checks} book checks, "
                  f"{live.venue.reconciled} reconciliations", file=sys.stderr)
            assert fills == theirs, "every fill exactly once"
            twice = {cid: [(type(e).__name__, getattr(e, "reason", "")) for e in live.events
                           if getattr(e, "client_order_id", None) == cid]
                     for cid, n in posted.items() if n > 1}
            assert not twice, f"orders sent twice: {twice}"
            assert sum(1 for o in server.orders.values() if o.client_order_id in posted) \
                == len(server.orders), "every order at Binance is ours"
            for order in server.orders.values():
                ours = live.node.oms.orders[order.client_order_id]
                assert ours.is_open == (order.status in ("NEW", "PARTIALLY_FILLED")), \
                    (order.client_order_id, ours.state, order.status)
            # a commission in BTC comes out of the BTC moved (buy q - f, sell -(q + f))
            signed = sum((Decimal(t["qty"]) if t["isBuyer"] else -Decimal(t["qty"]))
                         - (Decimal(t["commission"]) if t["commissionAsset"] == "BTC" else 0)
                         for t in server.trades)
            assert live.node.portfolio.position("binance", "BTCUSDT", "mm").qty == signed
            assert book_checks >= int(SOAK_S // 6)
            assert len(theirs) > 0 and len(posted) > 20, "it actually traded"
    finally:
        await server.close()
