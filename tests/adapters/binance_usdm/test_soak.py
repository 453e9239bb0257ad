"""Live perpetual trading against the fake Binance USD-M under faults (10 s in
make test, ten minutes in make soak).

The test places limit buys around the market and cancels some; the market
walks and crosses them (maker fills, some partial); funding is paid now and
then. A seeded chaos loop drops the market and user streams, expires the
listenKey, answers order placements 503 after acting (unknown outcomes),
answers them late, and loses user-stream frames. At the end one more
reconciliation runs, and:

- every fill the fake made is recorded exactly once (by trade id);
- no order was ever sent twice (one POST per client order id);
- each order's state agrees with the fake's, the position equals the fake's;
- every funding payment the fake made is recorded exactly once.

`TAPELOOP_SOAK_S` changes the duration (10 s in make test, 600 s in make soak);
the seed (`TAPELOOP_SOAK_SEED`) is printed.
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
from events.perp import FundingPayment
from tests.adapters.binance_usdm.live import UsdmLive
from tests.conftest import until
from tests.fake_binance.usdm import FakeUsdmServer

SOAK_S = float(os.environ.get("TAPELOOP_SOAK_S", "10"))  # make soak: 600
SEED = int(os.environ.get("TAPELOOP_SOAK_SEED", "20261206"))
FAULTS = ("disconnect_market", "disconnect_user", "expire_listen_key", "order_5xx",
          "order_late", "lose_user")
HOUR_MS = 3_600_000
WIND_DOWN_S = 90  # a minute's weight window, and the work after it
TICK = Decimal("0.1")


def inject(server: FakeUsdmServer, fault: str) -> None:
    if fault == "disconnect_market":
        server.disconnect_market()
    elif fault == "disconnect_user":
        server.disconnect_user()
    elif fault == "expire_listen_key":
        server.expire_listen_key()
    elif fault == "order_5xx":  # placed, then answered 503: outcome unknown
        server.fail_next(503)
    elif fault == "order_late":  # placed, answered after a while
        server.delay_next(0.5)
    else:
        server.lose_user_events(2)


@pytest.mark.timeout(3 * SOAK_S + 4 * WIND_DOWN_S + 60)  # runs SOAK_S on purpose, then checks
async def test_perpetual_trading_through_faults_loses_and_doubles_nothing() -> None:
    print(f"soak: {SOAK_S:g} s, seed {SEED}", file=sys.stderr)
    rng = random.Random(SEED)
    server = FakeUsdmServer(wallet=Decimal("1000000"))
    await server.start()
    try:
        async with UsdmLive(server) as live:
            injected: Counter[str] = Counter()
            funding_ms = server.now_ms() // HOUR_MS * HOUR_MS - 150 * HOUR_MS  # in the look-back
            end = time.monotonic() + SOAK_S
            next_fault = time.monotonic() + rng.uniform(0.3, 1.0)
            price = server.account.price["BTCUSDT"]
            while time.monotonic() < end:
                await asyncio.sleep(rng.uniform(0.01, 0.05))
                price += TICK * rng.choice((-2, -1, 0, 1, 2))
                server.set_price("BTCUSDT", price)
                roll = rng.random()
                if roll < 0.3 and not live.node.risk.holds:
                    below = TICK * rng.randint(0, 20)
                    live.submit("BUY", str(Decimal("0.001") * rng.randint(1, 3)),
                                str(price - below))
                elif roll < 0.4:
                    resting = [o for o in live.node.oms.open_orders() if o.venue == "usdm"]
                    if resting:
                        live.node.oms.cancel("s1", rng.choice(resting).client_order_id,
                                             reason="soak")
                elif roll < 0.45:
                    open_at_fake = [o for o in server.account.orders.values()
                                    if o["status"] in ("NEW", "PARTIALLY_FILLED")]
                    if open_at_fake:
                        o = rng.choice(open_at_fake)
                        left = Decimal(o["origQty"]) - Decimal(o["executedQty"])
                        server.fill_resting(o["clientOrderId"], "BTCUSDT",
                                            min(left, Decimal("0.001")))
                elif roll < 0.47 and server.account.qty("BTCUSDT"):
                    funding_ms += HOUR_MS
                    server.pay_funding("BTCUSDT", Decimal(rng.choice(("0.0001", "-0.0002"))),
                                       funding_ms)
                if time.monotonic() >= next_fault:
                    fault = rng.choice(FAULTS)
                    inject(server, fault)
                    injected[fault] += 1
                    next_fault = time.monotonic() + rng.uniform(0.3, 1.0)

            # wind down: the faults stop, one more reconciliation. The deadlines
            # cover a rate limit's window: a storm of reconnects can spend the
            # minute's request weight, and what is asked next waits for the next
            # minute (`binance.rate_limited` says for how long)
            server.clear_faults()
            try:
                await until(lambda: live.venue.idle, timeout=WIND_DOWN_S,
                            message="no request under way")
            except AssertionError as exc:
                v = live.venue
                raise AssertionError(
                    f"{exc}: tasks {[t.get_coro() for t in v._tasks]}, in flight "
                    f"{sorted(v.in_flight)}, unresolved {sorted(v._unresolved)}, "
                    f"cancelling {sorted(v._cancelling)}") from None
            before = live.venue.reconciled
            server.disconnect_user()
            await until(lambda: live.venue.reconciled > before, timeout=WIND_DOWN_S,
                        message="the final reconciliation")
            await until(lambda: Counter(f.trade_id for f in live.of(Fill))
                        == Counter(str(t["id"]) for t in server.account.trades),
                        timeout=WIND_DOWN_S, message="every fill recorded")
            await until(lambda: len(live.of(FundingPayment)) >= len(server.account.income),
                        timeout=WIND_DOWN_S, message="every funding payment recorded")
            fills = Counter(f.trade_id for f in live.of(Fill))
            theirs = Counter(str(t["id"]) for t in server.account.trades)
            posted = {cid: server.posts[cid] for cid in live.node.oms.orders}
            paid = sorted(p.amount for p in live.of(FundingPayment))
            print(f"soak: faults {dict(injected)}; {len(posted)} orders, "
                  f"{sum(theirs.values())} fills, {len(paid)} funding payments, "
                  f"{live.venue.reconciled} reconciliations", file=sys.stderr)
            assert fills == theirs, "every fill exactly once"
            assert not {c: n for c, n in posted.items() if n > 1}, "no order sent twice"
            for (_, cid), oid in server.account.by_cid.items():
                theirs_open = server.account.orders[oid]["status"] in ("NEW",
                                                                       "PARTIALLY_FILLED")
                assert live.node.oms.orders[cid].is_open == theirs_open, cid
            assert live.position() == server.account.qty("BTCUSDT")
            assert paid == sorted(Decimal(r["income"]) for r in server.account.income), \
                "every funding payment exactly once"
            assert len(theirs) > 0 and len(posted) > 20, "it actually traded"
    finally:
        await server.close()
