"""`CcxtVenue` (ccxt's own binance class) against the fake Binance: market data,
orders by our client id, fills exactly once, unknown outcomes looked up and never
resent (ccxt #2599), reconciliation at a restart, record-only."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest_asyncio

from events.market import BookSnapshot, Quote, Trade
from events.orders import AmendRejected, Fill, OrderAccepted, OrderCanceled, OrderRejected
from events.system import ACTIVE, REDUCING, TradingState, VenueStatus
from tests.adapters.ccxt.live import SYMBOL, Live
from tests.conftest import until
from tests.fake_binance import FakeBinanceServer


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeBinanceServer]:
    s = FakeBinanceServer(seed=11, tick_interval_s=0.01)
    await s.start()
    yield s
    await s.close()


def best_bid(server: FakeBinanceServer) -> Decimal:
    return server.book("BTCUSDT")[0][0][0]


def fake_trades(server: FakeBinanceServer) -> Counter[str]:
    return Counter(str(t["id"]) for t in server.trades)


async def test_market_data_flows_with_exchange_time_and_trade_ids(
        server: FakeBinanceServer) -> None:
    async with Live(server, trade=False) as live:
        await until(lambda: live.of(Trade) and live.of(Quote) and live.of(BookSnapshot),
                    message="trades, quotes and books")
        trades = live.of(Trade)
        assert all(t.trade_id and t.symbol == SYMBOL for t in trades)
        assert len({t.trade_id for t in trades}) == len(trades)  # none doubled
        assert all(t.ts_event <= t.ts_recv for t in trades)
        assert live.venue.market.status == "connected" and not live.venue.critical


async def test_a_resting_order_fills_once_then_the_position_holds_it(
        server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        bid = best_bid(server)
        cid = live.submit("BUY", "0.001", str(bid - Decimal(50)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        assert server.post_count(cid) == 1
        server.set_price("BTCUSDT", bid - Decimal(100))
        await until(lambda: live.node.oms.orders[cid].state == "filled", message="filled")
        fills = live.of(Fill, client_order_id=cid)
        assert Counter(f.trade_id for f in fills) == fake_trades(server)
        assert sum(f.qty for f in fills) == Decimal("0.001")
        assert len(live.of(OrderAccepted, client_order_id=cid)) == 1


async def test_a_market_order_fills_once_from_the_answer_and_the_stream(
        server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        cid = live.submit("BUY", "0.002")
        await until(lambda: live.node.oms.orders[cid].state == "filled", message="filled")
        fills = live.of(Fill, client_order_id=cid)
        assert Counter(f.trade_id for f in fills) == fake_trades(server)
        assert sum(f.qty for f in fills) == Decimal("0.002")


async def test_an_unknown_outcome_is_looked_up_never_resent(server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        server.fail_next(503, method="POST", path="/api/v3/order", after_processing=True)
        server.lose_user_events(2)  # and its report: the look-up must find it
        cid = live.submit("BUY", "0.001", str(best_bid(server) - Decimal(50)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        await until(lambda: live.node.risk.state == ACTIVE and live.of(TradingState),
                    message="the hold released after the look-up")
        assert server.post_count(cid) == 1
        states = [e.state for e in live.of(TradingState)]
        assert states[:1] == [REDUCING] and states[-1] == ACTIVE, states


async def test_a_placement_never_received_is_rejected_after_the_window(
        server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        server.fail_next(503, method="POST", path="/api/v3/order")  # refused before the engine
        cid = live.submit("BUY", "0.001", str(best_bid(server) - Decimal(50)))
        rejected = await until(lambda: live.of(OrderRejected, client_order_id=cid),
                               message="rejected")
        assert rejected[0].code == "not_found" and server.post_count(cid) == 1


async def test_a_refusal_is_rejected_with_ccxts_class(server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        server.exchange.balances["USDT"] = (Decimal(1), Decimal(0))
        cid = live.submit("BUY", "0.001", str(best_bid(server) - Decimal(50)))
        rejected = await until(lambda: live.of(OrderRejected, client_order_id=cid),
                               message="rejected")
        assert (rejected[0].check, rejected[0].code) == ("venue", "InsufficientFunds")


async def test_cancel_by_client_id_is_reported_once(server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        cid = live.submit("BUY", "0.001", str(best_bid(server) - Decimal(80)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        live.node.oms.cancel("s1", cid)
        await until(lambda: live.of(OrderCanceled, client_order_id=cid), message="canceled")
        await until(lambda: live.venue.idle, message="idle")
        assert len(live.of(OrderCanceled, client_order_id=cid)) == 1


async def test_a_restart_finds_the_order_in_flight_and_its_fills_once(
        server: FakeBinanceServer) -> None:
    """Killed with a placement in flight: the next start finds it by client id, never
    sends it again, and learns the fills made while it was down exactly once."""
    async with Live(server) as first:
        server.delay_next(5.0, method="POST", path="/api/v3/order")
        cid = first.submit("BUY", "0.001", str(best_bid(server) - Decimal(50)))
        await until(lambda: server.post_count(cid) == 1, message="the placement arrived")
        await first.crash()
        history = list(first.events)
    server.set_price("BTCUSDT", best_bid(server) - Decimal(100))  # it fills while we are down
    await until(lambda: fake_trades(server), message="filled at the fake")
    async with Live(server, history=history) as second:
        await until(lambda: second.node.oms.orders[cid].state == "filled", message="filled")
        assert server.post_count(cid) == 1
        fills = [e for e in history + second.events
                 if type(e) is Fill and e.client_order_id == cid]
        assert Counter(f.trade_id for f in fills) == fake_trades(server)


async def test_trades_missed_during_a_disconnect_are_backfilled_once(
        server: FakeBinanceServer) -> None:
    async with Live(server, trade=False) as live:
        await until(lambda: len(live.of(Trade)) >= 5, message="trades")
        server.disconnect_market()
        await until(lambda: live.venue.market.reconnects >= 1, message="a reconnect")
        await until(lambda: len(live.of(Trade)) >= 40, message="trades after it")
        ids = [int(t.trade_id) for t in live.of(Trade)]
        assert len(ids) == len(set(ids)), "a backfilled trade came twice"
        held = [t.trade_id for t in server.exchange.markets["BTCUSDT"].history.recent(100_000)
                if min(ids) <= t.trade_id <= max(ids)]
        assert sorted(ids) == held, ("a trade was lost in the gap", live.of(VenueStatus))


async def test_a_silent_feed_holds_trading_reducing_until_it_flows(
        server: FakeBinanceServer) -> None:
    async with Live(server, stale_after_s=0.5) as live:
        server.tick_interval_s = None  # the market goes quiet
        await until(lambda: live.node.risk.state == REDUCING, message="held on a stale feed")
        assert "stale" in live.of(TradingState)[-1].reason
        server.tick_interval_s = 0.01
        await until(lambda: live.node.risk.state == ACTIVE, message="released")


async def test_a_rate_limited_placement_is_looked_up_not_resent(
        server: FakeBinanceServer) -> None:
    """A 429 (ccxt RateLimitExceeded): Binance counts it, so it is settled by a
    look-up (here: never reached the engine, so rejected after the window)."""
    async with Live(server) as live:
        server.fail_next(429, method="POST", path="/api/v3/order", code=-1015,
                         msg="Too many new orders.")
        cid = live.submit("BUY", "0.001", str(best_bid(server) - Decimal(50)))
        rejected = await until(lambda: live.of(OrderRejected, client_order_id=cid),
                               message="rejected after the look-up")
        assert rejected[0].code == "not_found" and server.post_count(cid) == 1
        assert server.count("GET", "/api/v3/order") >= 1


async def test_fills_missed_while_the_order_stream_was_down_come_once(
        server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        bid = best_bid(server)
        cid = live.submit("BUY", "0.001", str(bid - Decimal(50)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        before = live.venue.reconciled
        server.lose_user_events(1_000)  # its fill reports are lost...
        server.set_price("BTCUSDT", bid - Decimal(100))
        await until(lambda: fake_trades(server), message="filled at the fake")
        server.clear_user_faults()
        server.disconnect_user()  # ...and the stream drops: reconciliation finds them
        await until(lambda: live.node.oms.orders[cid].state == "filled", timeout=20,
                    message="filled after reconciling")
        assert live.venue.reconciled > before
        fills = live.of(Fill, client_order_id=cid)
        assert Counter(f.trade_id for f in fills) == fake_trades(server)


async def test_without_order_watches_fills_come_by_polling_once(
        server: FakeBinanceServer) -> None:
    """An exchange ccxt cannot watch orders on: a reconciliation pass every poll_s."""
    live = Live(server, poll_s=0.1)
    live.has_override = {"watchOrders": False, "watchMyTrades": False}
    async with live:
        bid = best_bid(server)
        cid = live.submit("BUY", "0.001", str(bid - Decimal(50)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        server.set_price("BTCUSDT", bid - Decimal(100))
        await until(lambda: live.node.oms.orders[cid].state == "filled", message="filled")
        await until(lambda: live.venue.reconciled >= 5, message="polls after the fill")
        fills = live.of(Fill, client_order_id=cid)
        assert Counter(f.trade_id for f in fills) == fake_trades(server)
        assert not server.user_connections, "no order stream was opened"
        assert not live.alerts, "a poll's news is no difference to alert on"


async def test_an_amend_on_binance_is_refused_not_a_cancel_replace(
        server: FakeBinanceServer) -> None:
    """ccxt's binance edit_order is a cancel-replace: a new order under a new id, which
    our order's client id would not follow; so no request, an AmendRejected."""
    async with Live(server) as live:
        cid = live.submit("BUY", "0.001", str(best_bid(server) - Decimal(80)))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="accepted")
        live.node.oms.amend("s1", cid, price=best_bid(server) - Decimal(90))
        refused = await until(lambda: live.of(AmendRejected, client_order_id=cid),
                              message="amend refused")
        assert "cancel and place anew" in refused[0].reason
        assert server.count("POST", "/api/v3/order/cancelReplace") == 0
        assert live.node.oms.orders[cid].is_open


async def test_a_cancel_lost_with_the_process_is_sent_again_at_the_restart(
        server: FakeBinanceServer) -> None:
    async with Live(server) as first:
        cid = first.submit("BUY", "0.001", str(best_bid(server) - Decimal(80)))
        await until(lambda: first.of(OrderAccepted, client_order_id=cid), message="accepted")
        server.fail_next(503, n=1000, method="DELETE", path="/api/v3/order")  # none reach it
        first.node.oms.cancel("s1", cid)
        await until(lambda: server.count("DELETE", "/api/v3/order") >= 1, message="sent")
        await first.crash()
        history = list(first.events)
    assert server.orders and all(o.status == "NEW" for o in server.orders.values())
    server.clear_faults()
    async with Live(server, history=history) as second:
        await until(lambda: second.of(OrderCanceled, client_order_id=cid),
                    message="the cancel sent again and done")
        assert second.node.oms.orders[cid].state == "canceled"


async def test_an_order_unresolved_too_long_raises_an_alert_then_resolves(
        server: FakeBinanceServer) -> None:
    async with Live(server, unresolved_alert_after_s=0.1) as live:
        server.fail_next(503, method="POST", path="/api/v3/order", after_processing=True)
        server.fail_next(503, n=1000, method="GET", path="/api/v3/order")  # look-ups fail
        server.lose_user_events(2)
        cid = live.submit("BUY", "0.001", str(best_bid(server) - Decimal(50)))
        await until(lambda: [a for a in live.alerts if a[0] == "order_unresolved"],
                    message="the alert")
        assert live.node.risk.state == REDUCING
        assert "never resent" in live.alerts[0][1] and server.post_count(cid) == 1
        server.clear_faults()
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="found")
        await until(lambda: [a for a in live.alerts if a[0] == "order_resolved"],
                    message="the all-clear")
        assert server.post_count(cid) == 1
