"""The live Binance venue against the fake Binance: orders, fills, unknown outcomes,
rejections, the local book through gaps and disconnects, and fills missed while
the user stream was down arriving exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest_asyncio

from events.orders import (
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
)
from events.system import ACTIVE, REDUCING, TradingState
from tests.adapters.binance.live import Live, until
from tests.fake_binance import FakeBinanceServer


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeBinanceServer]:
    s = FakeBinanceServer(seed=11, tick_interval_s=0.01)
    await s.start()
    yield s
    await s.close()


def best_bid(server: FakeBinanceServer) -> Decimal:
    return server.book("BTCUSDT")[0][0][0]


def our_fake_trades(server: FakeBinanceServer) -> Counter[str]:
    return Counter(str(t["id"]) for t in server.trades)


async def test_reconciles_first_then_a_resting_order_fills_when_the_market_crosses(
        server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        assert live.node.risk.check("s1", _probe()) is None  # unblocked after reconciling
        bid = best_bid(server)
        cid = live.submit("BUY", "0.001", str(bid - Decimal(50)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        assert server.post_count(cid) == 1
        server.set_price("BTCUSDT", bid - Decimal(100))  # the crowd now trades through us
        await until(lambda: live.node.oms.orders[cid].state == "filled", message="filled")
        fills = live.of(Fill, client_order_id=cid)
        assert Counter(f.trade_id for f in fills) == our_fake_trades(server)
        assert sum(f.qty for f in fills) == Decimal("0.001")
        assert all(f.liquidity == "MAKER" and f.fee_currency == "BTC" for f in fills)
        # the commission came out of the BTC received: the position is what was credited
        received = Decimal("0.001") - sum(f.fee for f in fills)
        await until(lambda: live.node.portfolio.position("binance", "BTCUSDT", "s1").qty
                    == received < Decimal("0.001"), message="position")


async def test_a_market_order_fills_once_from_the_response_and_the_stream(
        server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        cid = live.submit("BUY", "0.002")
        await until(lambda: live.node.oms.orders[cid].state == "filled", message="filled")
        # the executionReports follow the REST answer: give them time to arrive
        await until(lambda: live.venue.translator.dropped["trade"] >= 1, message="stream dup")
        fills = live.of(Fill, client_order_id=cid)
        assert Counter(f.trade_id for f in fills) == our_fake_trades(server)
        assert all(f.liquidity == "TAKER" for f in fills)
        assert len(live.of(OrderAccepted, client_order_id=cid)) == 1


async def test_an_unknown_outcome_is_looked_up_never_resent(server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        server.drop_next(method="POST", path="/api/v3/order")  # placed, answer lost
        server.lose_user_events(2)  # and its NEW report: the look-up must find it
        bid = best_bid(server)
        cid = live.submit("BUY", "0.001", str(bid - Decimal(50)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        await until(lambda: live.node.risk.state == ACTIVE and live.of(TradingState),
                    message="the hold released after the lookup")
        assert server.post_count(cid) == 1
        assert server.count("GET", "/api/v3/order") >= 1
        states = [e.state for e in live.of(TradingState)]
        assert states[:1] == [REDUCING] and states[-1] == ACTIVE, states
        reasons = [e.reason for e in live.of(TradingState)]
        assert f"order {cid} on binance: outcome unknown" in reasons[0]


async def test_an_order_binance_never_received_is_rejected_after_lookup(
        server: FakeBinanceServer) -> None:
    # "not found" is final once recvWindow (+1 s) has passed: keep that short
    async with Live(server, recv_window_ms=1000) as live:
        server.fail_next(503, method="POST", path="/api/v3/order")  # refused before processing
        bid = best_bid(server)
        cid = live.submit("BUY", "0.001", str(bid - Decimal(50)))
        rejected = await until(lambda: live.of(OrderRejected, client_order_id=cid),
                               message="rejected")
        assert rejected[0].code == "-2013" and server.post_count(cid) == 1
        assert live.node.oms.orders[cid].state == "rejected"


async def test_binance_refusals_carry_its_code(server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        # a withdrawal nobody told us about: Binance, not our risk checks, refuses
        server.exchange.balances["USDT"] = (Decimal(1), Decimal(0))
        cid = live.submit("BUY", "0.001", str(best_bid(server) - Decimal(50)))
        rejected = await until(lambda: live.of(OrderRejected, client_order_id=cid),
                               message="rejected")
        assert (rejected[0].check, rejected[0].code) == ("venue", "-2010")
        assert "insufficient balance" in rejected[0].reason


async def test_cancel_reaches_binance_and_is_reported_once(server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        bid = best_bid(server)
        cid = live.submit("BUY", "0.001", str(bid - Decimal(80)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        live.node.oms.cancel("s1", cid)
        await until(lambda: live.of(OrderCanceled, client_order_id=cid), message="canceled")
        await until(lambda: live.venue.translator.dropped["stale"] >= 1, message="stream dup")
        assert len(live.of(OrderCanceled, client_order_id=cid)) == 1
        assert next(o for o in server.orders.values()
                    if o.client_order_id == cid).status == "CANCELED"


async def test_the_book_follows_the_fake_through_gaps_and_disconnects(
        server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        for fault in (server.depth_gap, server.disconnect_market, server.server_shutdown,
                      server.depth_gap):
            fault()
            await server.step(3)
            server.tick_interval_s = None  # hold the market still to compare
            await until(live.book_in_sync, message=f"book in sync after {fault.__name__}")
            server.tick_interval_s = 0.01
        sync = live.venue.books["BTCUSDT"]
        # every fault forced a fresh snapshot (a gap found while synced, or a
        # reconnect); a gap met while already resyncing is absorbed by that resync
        assert sync.gaps >= 1 and sync.snapshots >= 4, (sync.gaps, sync.snapshots)


async def test_fills_missed_while_the_user_stream_was_down_arrive_once(
        server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        bid = best_bid(server)
        cid = live.submit("BUY", "0.001", str(bid - Decimal(50)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        before = live.venue.reconciled
        server.duplicate_user_events(4)
        server.disconnect_user()
        server.set_price("BTCUSDT", bid - Decimal(100))
        await server.step(20)  # the order fills while nobody listens
        await until(lambda: live.venue.reconciled > before, message="reconciled again")
        await until(lambda: live.node.oms.orders[cid].state == "filled", message="filled")
        fills = live.of(Fill, client_order_id=cid)
        assert Counter(f.trade_id for f in fills) == our_fake_trades(server)


def _probe() -> object:
    from daemon.trading.api import OrderRequest

    return OrderRequest(venue="binance", symbol="BTCUSDT", side="BUY", qty=Decimal("0.001"),
                        order_type="LIMIT", price=Decimal("60000"))


async def test_binance_moving_a_symbol_to_cancel_only_stops_new_orders() -> None:
    import json

    from tests.adapters.binance.samples import DOC_EXCHANGE_INFO

    info = {**json.loads(DOC_EXCHANGE_INFO)["symbols"][0], "status": "CANCEL_ONLY"}
    server = FakeBinanceServer(seed=3, tick_interval_s=0.01, symbols=[info])
    await server.start()
    try:
        async with Live(server) as live:  # the config says the symbol trades
            cid = live.submit("BUY", "0.001", str(best_bid(server) - Decimal(50)))
            rejected = live.of(OrderRejected, client_order_id=cid)
            assert rejected and "not tradable (status cancel_only)" in rejected[0].reason.lower()
            assert server.post_count(cid) == 0
    finally:
        await server.close()


async def test_a_fill_the_stream_lost_before_a_cancel_is_recorded(
        server: FakeBinanceServer) -> None:
    """The cancel's answer (no `fills`) reports an execution we never heard of
    and closes the order: its trades are read then, since no reconciliation
    looks at a closed order again. Failed before: the partial fill was lost."""
    async with Live(server) as live:
        price = best_bid(server) - Decimal(80)
        cid = live.submit("BUY", "0.002", str(price))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        server.lose_user_events(10)
        server.crowd_trades("BTCUSDT", price, Decimal("0.001"), 1)  # a partial fill, lost
        live.node.oms.cancel("s1", cid)
        await until(lambda: live.node.oms.orders[cid].is_done, message="the cancel")
        await until(lambda: live.of(Fill, client_order_id=cid), message="the lost fill")
        assert live.node.oms.orders[cid].filled_qty == Decimal("0.001")
