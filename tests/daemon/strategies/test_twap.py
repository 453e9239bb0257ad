"""Twap on a ReplayClock: even slices by timer, the remainder in the last, catch-up
of what did not fill, and a clean stop when done."""

from __future__ import annotations

from decimal import Decimal

from daemon.trading.api import BUY, IOC, LIMIT, MARKET, SELL
from events.market import Quote, Trade
from tests.daemon.strategies.conftest import World
from tests.daemon.strategies.fakes import instrument, strategy_config

S = 10**9
T0 = 1_700_000_000 * S


def trades(start: int, stop: int, every: int) -> list[Trade]:
    return [Trade(ts_event=t, ts_recv=t, venue="sim", symbol="BTCUSDT", price=100.0, size=1.0)
            for t in range(start, stop, every)]


def twap(world: World, **params: object) -> None:
    world.runtime.add(strategy_config("twap", "daemon.strategies.twap:Twap",
                                      params={"side": "BUY", "total_qty": 1.0,
                                              "duration": "10m", "slices": 3, **params}))
    world.runtime.start()


def test_even_slices_remainder_last_then_stop() -> None:
    world = World([instrument(step="0.001")])
    twap(world)
    world.feed(trades(T0 + 7 * S, T0 + 15 * 60 * S, 30 * S))
    gw = world.gateway
    assert [(t - (T0 + 7 * S)) // S for t in gw.submitted_at] == [0, 200, 400]
    assert [(r.side, r.order_type, r.qty) for _, r in gw.submitted] == [
        (BUY, MARKET, Decimal("0.333")), (BUY, MARKET, Decimal("0.333")),
        (BUY, MARKET, Decimal("0.334"))]
    assert world.portfolio.position("sim", "BTCUSDT", "twap").qty == Decimal(1)
    assert world.statuses("twap") == [("twap", "running"), ("twap", "stopped")]
    assert world.clock.pending() == 0


def test_limit_children_at_the_touch_catch_up_what_did_not_fill() -> None:
    world = World([instrument(step="0.001")])
    twap(world, side="SELL", order_type="limit")
    gw = world.gateway
    q = [Quote(ts_event=T0 + t * S, ts_recv=T0 + t * S, venue="sim", symbol="BTCUSDT",
               bid=99.5, ask=100.5, bid_size=1.0, ask_size=1.0) for t in range(0, 900, 50)]
    world.feed(q[:4])  # 0..150 s: slice 0
    (_, first), = gw.submitted
    assert (first.side, first.order_type, first.time_in_force, first.price, first.qty) == (
        SELL, LIMIT, IOC, Decimal("99.50"), Decimal("0.333"))
    gw.cancel("twap", "twap-1")  # the IOC found nothing: canceled unfilled
    world.feed(q[4:8])  # slice 1 at 200 s owes two slices' worth
    assert gw.submitted[1][1].qty == Decimal("0.666")
    gw.fill("twap-2", Decimal("0.5"))
    world.feed(q[8:])  # slice 2: total - filled - still open = 1 - 0.5 - 0.166
    assert gw.submitted[2][1].qty == Decimal("0.334")
    assert world.runtime.status("twap") == "running"  # children still open
    gw.fill("twap-2")
    gw.fill("twap-3")
    assert world.runtime.status("twap") == "stopped"
    assert world.portfolio.position("sim", "BTCUSDT", "twap").qty == Decimal(-1)


def test_single_slice() -> None:
    world = World([instrument(step="0.001")])
    twap(world, slices=1)
    world.feed(trades(T0, T0 + 60 * S, 10 * S))
    assert [r.qty for _, r in world.gateway.submitted] == [Decimal(1)]
    assert world.runtime.status("twap") == "stopped"
