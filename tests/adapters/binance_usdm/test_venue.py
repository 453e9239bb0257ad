"""`UsdmVenue` against the fake Binance USD-M: start-up checks and settings,
orders and fills, unknown outcomes, funding (live and missed while down),
mark prices, listenKey expiry and position reconciliation."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from adapters.binance.errors import BinanceError
from adapters.binance_usdm.rest import UsdmRest
from adapters.binance_usdm.venue import usdm_order_params
from daemon.errors import EXIT_CONFIG, UserError
from events.orders import Fill, OrderAccepted, OrderRejected, OrderSubmitted
from events.perp import (
    FundingPayment,
    FundingRate,
    LeverageChanged,
    Liquidation,
    MarginModeChanged,
    MarkPrice,
)
from events.state import BalanceChanged
from tests.adapters.binance_usdm.live import CREDS, UsdmLive
from tests.conftest import until
from tests.fake_binance.usdm import FakeUsdmServer

D = Decimal
HOUR_MS = 3_600_000


@pytest.fixture
async def server():
    s = FakeUsdmServer(wallet=D("10000"))
    await s.start()
    yield s
    await s.close()


async def test_hedge_mode_is_refused_with_one_line(server):
    server.account.dual = True
    async with UsdmLive(server, wait=False) as live:
        await until(lambda: live.task.done(), message="the venue refusing to start")
        exc = live.task.exception()
    assert isinstance(exc, UserError) and exc.code == EXIT_CONFIG
    assert "\n" not in str(exc) and "hedge mode" in str(exc) and "One-way" in str(exc)
    assert server.requests[("POST", "/fapi/v1/order")] == 0


async def test_disagreeing_instrument_is_one_line(server):
    async with UsdmLive(server, wait=False, instrument={"tick_size": 0.01}) as live:
        await until(lambda: live.task.done(), message="the venue refusing to start")
        exc = live.task.exception()
    assert isinstance(exc, UserError)
    assert str(exc) == "[[instruments]] usdm:BTCUSDT: tick_size = 0.01 but Binance says 0.1"


async def test_leverage_and_margin_type_set_and_published_only_when_changed(server):
    async with UsdmLive(server, instrument={"leverage": 5, "margin_mode": "isolated"}) as live:
        assert (server.account.leverage["BTCUSDT"], server.account.margin_type["BTCUSDT"]) \
            == (5, "ISOLATED")
        assert [e.leverage for e in live.of(LeverageChanged)] == [5]
        assert [e.mode for e in live.of(MarginModeChanged)] == ["isolated"]
    async with UsdmLive(server, instrument={"leverage": 5, "margin_mode": "isolated"}) as again:
        assert again.of(LeverageChanged) == [] and again.of(MarginModeChanged) == []
    assert server.requests[("POST", "/fapi/v1/marginType")] == 1


async def test_market_order_fills_position_and_wallet_agree(server):
    async with UsdmLive(server) as live:
        live.submit("BUY", "0.010")
        await until(lambda: live.position() == D("0.010"), message="the long")
        cid = live.submit("BUY", "0.006", "59000.0")
        await until(lambda: ("BTCUSDT", cid) in server.account.by_cid,
                    message="the order resting")
        server.fill_resting(cid, "BTCUSDT", D("0.002"))  # partial
        server.set_price("BTCUSDT", D("58990.0"))  # crosses the rest
        await until(lambda: live.position() == D("0.016"), message="the limit's fills")
        assert server.account.qty("BTCUSDT") == live.position()
        fills = live.of(Fill)
        assert len({f.trade_id for f in fills}) == len(fills) == 3
        assert [f.liquidity for f in fills] == ["TAKER", "MAKER", "MAKER"]
        # the stream states the wallet, REST what is free of margin: we record both
        await until(lambda: (b := live.of(BalanceChanged, currency="USDT"))
                    and (b[-1].total, b[-1].free) == (server.account.wallet,
                                                      server.account.available()),
                    message="the wallet and available balances")
        assert live.of(BalanceChanged)[-1].free < server.account.wallet  # margin in use


async def test_reduce_only_is_passed_through(server):
    """The risk engine's perpetual checks are not the venue's: the order goes
    straight to the REST client, which must send reduceOnly=true."""
    rest = UsdmRest(server.base, CREDS)
    try:
        await rest.sync_time()
        with pytest.raises(BinanceError) as refused:  # flat: nothing to reduce
            await rest.new_order("BTCUSDT", "SELL", "MARKET", quantity=D("0.010"),
                                 reduce_only=True, new_client_order_id="r-1")
        assert refused.value.code == -2022
        await rest.new_order("BTCUSDT", "BUY", "MARKET", quantity=D("0.010"),
                             new_client_order_id="r-2")
        await rest.new_order("BTCUSDT", "SELL", "MARKET", quantity=D("0.010"),
                             reduce_only=True, new_client_order_id="r-3")
        assert server.account.qty("BTCUSDT") == 0
    finally:
        await rest.close()


def test_order_params_carry_reduce_only_and_post_only():
    base = dict(ts_event=1, ts_recv=1, venue="usdm", symbol="BTCUSDT", strategy_id="s1",
                client_order_id="s1-1", side="SELL", qty=D("0.01"))
    e = OrderSubmitted(**base, order_type="LIMIT", price=D("60000"), post_only=True,
                       reduce_only=True)
    assert usdm_order_params(e) == {"type": "LIMIT", "quantity": D("0.01"),
                                    "price": D("60000"), "time_in_force": "GTX",
                                    "reduce_only": True}
    assert usdm_order_params(OrderSubmitted(**base, order_type="MARKET")) == {
        "type": "MARKET", "quantity": D("0.01")}


async def test_insufficient_margin_is_the_venues_reject(server):
    async with UsdmLive(server) as live:
        server.account.wallet = D("100")  # margin gone behind our back
        cid = live.submit("BUY", "0.010")  # 120 USDT of margin at 5x
        await until(lambda: live.of(OrderRejected, client_order_id=cid), message="-2019")
        assert live.of(OrderRejected, client_order_id=cid)[0].code == "-2019"


async def test_unknown_outcome_is_looked_up_never_resent(server):
    async with UsdmLive(server) as live:
        server.fail_next(503)
        cid = live.submit("BUY", "0.010")
        await until(lambda: live.position() == D("0.010"), message="the fill")
        await asyncio.sleep(0)  # let a wrong resend show up in the count
        assert server.posts[cid] == 1
        assert len(live.of(Fill, client_order_id=cid)) == 1


async def test_funding_live_and_missed_while_down_once_each(server):
    now = server.now_ms() // HOUR_MS * HOUR_MS
    async with UsdmLive(server) as live:
        live.submit("BUY", "0.010")
        await until(lambda: live.position() == D("0.010"), message="the long")
        paid = server.pay_funding("BTCUSDT", D("0.0001"), now - HOUR_MS)  # cross: no symbol
        await until(lambda: live.of(FundingPayment), message="the live payment")
        (p,) = live.of(FundingPayment)
        assert (p.amount, p.currency, p.qty, p.strategy_id) == (paid, "USDT", D("0.010"), "")
        history = list(live.events)
    missed = server.pay_funding("BTCUSDT", D("-0.0002"), now)  # while we were down
    async with UsdmLive(server, history=history) as again:
        await until(lambda: again.of(FundingPayment), message="the missed payment")
        assert [x.amount for x in again.of(FundingPayment)] == [missed]
        assert sum(x.amount for x in (*live.of(FundingPayment), *again.of(FundingPayment))) \
            == paid + missed


async def test_mark_price_and_settled_rate(server):
    async with UsdmLive(server) as live:
        t = server.now_ms() + 60_000
        await until(lambda: server.market_ws, message="the market stream")
        server.push_mark("BTCUSDT", D("60010.5"), D("0.0003"), t, event_ms=t - 2000)
        server.push_mark("BTCUSDT", D("60011.5"), D("0.0001"), t + 8 * HOUR_MS, event_ms=t + 5)
        await until(lambda: live.of(FundingRate), message="the settled rate")
        (r,) = live.of(FundingRate)
        assert (r.rate, r.mark, r.funding_ts) == (0.0003, 60010.5, t * 1_000_000)
        assert len(live.of(MarkPrice)) == 2


@pytest.mark.parametrize("end", ["expired", "lapsed"])
async def test_a_listen_key_that_ended_is_replaced_and_the_missed_fill_reconciled(
        server, end):
    """`expired`: Binance says so (`listenKeyExpired`). `lapsed`: it never did, and
    the socket stays open, deaf: the keep-alive's -1125 ends the session. Either
    way a new key is taken and the fill the stream lost is reconciled. `lapsed`
    failed before: the keep-alive task died with the error unseen and the session
    went on, missing every fill until its next reconnect (up to 24 h)."""
    async with UsdmLive(server, **({"keepalive_s": 0.05} if end == "lapsed" else {})) as live:
        cid = live.submit("BUY", "0.010", "59000.0")
        await until(lambda: ("BTCUSDT", cid) in server.account.by_cid,
                    message="the order resting")
        before = live.venue.reconciled
        server.lose_user_events(10)
        server.fill_resting(cid, "BTCUSDT", D("0.004"))  # a partial fill the stream loses
        if end == "expired":
            server.expire_listen_key()
        else:
            server.listen_keys.clear()  # lapsed, announced to no one
        await until(lambda: live.venue.reconciled > before, message="reconciliation")
        await until(lambda: live.position() == D("0.004"), message="the missed fill")
        assert len(live.of(Fill, client_order_id=cid)) == 1


async def test_a_passing_position_difference_does_not_halt(server):
    """A fill still on its way when positions are read is no difference."""
    async with UsdmLive(server, position_settle_s=0.2) as live:
        reads = server.requests[("GET", "/fapi/v3/positionRisk")]
        server.account.position["BTCUSDT"] = (D("0.010"), D("60000"))  # ahead of us
        live.venue._spawn(live.venue._check_positions())
        await until(lambda: server.requests[("GET", "/fapi/v3/positionRisk")] > reads,
                    message="the first read")
        del server.account.position["BTCUSDT"]  # ... and it catches up
        await until(lambda: live.venue.idle, message="the check done")
        assert live.node.risk.state != "halted" and not live.alerts


async def test_position_difference_halts_and_alerts(server):
    async with UsdmLive(server) as live:
        live.submit("BUY", "0.010")
        await until(lambda: live.position() == D("0.010"), message="the long")
        history = list(live.events)
    server.account.position["BTCUSDT"] = (D("0.030"), D("60000"))  # changed behind our back
    async with UsdmLive(server, history=history, position_settle_s=0.05) as again:
        await until(lambda: again.node.risk.state == "halted", message="halted")
        assert again.alerts and again.alerts[0][0] == "position_diff"
        assert "Binance holds 0.030 contracts, our fills add up to 0.010" in again.alerts[0][1]


async def test_a_fill_the_stream_lost_before_a_cancel_is_recorded(server):
    """The cancel's answer reports 0.004 executed and closes the order: its fill,
    lost on the stream, is read from userTrades then (no later reconciliation
    would look at a closed order). Failed before: the fill was never recorded."""
    async with UsdmLive(server) as live:
        cid = live.submit("BUY", "0.010", "59000.0")
        await until(lambda: ("BTCUSDT", cid) in server.account.by_cid,
                    message="the order resting")
        server.lose_user_events(10)
        server.fill_resting(cid, "BTCUSDT", D("0.004"))
        live.node.oms.cancel("s1", cid, reason="test")
        await until(lambda: live.node.oms.orders[cid].is_done, message="the cancel")
        await until(lambda: live.of(Fill, client_order_id=cid), message="the lost fill")
        assert live.position() == D("0.004") == server.account.qty("BTCUSDT")
        assert live.node.oms.orders[cid].state == "canceled"


async def test_the_listen_key_is_kept_alive(server):
    async with UsdmLive(server, keepalive_s=0.05):
        await until(lambda: server.requests[("PUT", "/fapi/v1/listenKey")] >= 2,
                    message="keep-alives")


async def test_events_of_orders_not_ours_are_dropped_not_raised(server):
    """Failed before: the log line of a foreign order's event passed `event=`
    to structlog twice and raised TypeError."""
    async with UsdmLive(server) as live:
        now = live.node.clock.now_ns()
        live.venue.publish_orders([OrderAccepted(
            ts_event=now, ts_recv=now, venue="usdm", symbol="BTCUSDT", strategy_id="x",
            client_order_id="someone-else-1")])
        assert not live.of(OrderAccepted, client_order_id="someone-else-1")


async def test_a_liquidation_is_recorded_as_such_never_as_our_fill(server):
    async with UsdmLive(server) as live:
        live.submit("BUY", "0.010")
        await until(lambda: live.position() == D("0.010"), message="the long")
        fills = len(live.of(Fill))
        order = server.liquidate("BTCUSDT", D("48000.0"))
        (liq,) = await until(lambda: live.of(Liquidation), message="the liquidation")
        assert (liq.side, liq.qty, liq.price, liq.fee, liq.fee_currency, liq.strategy_id) == (
            "SELL", D("0.010"), D("48000.0"), D("0.010") * D("48000.0") * D("0.0125"),
            "USDT", "")
        assert liq.trade_id == str(server.account.trades[-1]["id"])
        assert len(live.of(Fill)) == fills
        assert order["clientOrderId"] not in live.node.oms.orders
