"""The Binance venue's order path against the fake Binance when answers go missing:
look-ups of an unknown outcome back off and alert, never resend; a "not found"
is final only once the placement can no longer arrive; -2026 (archived) ends an
order as canceled wherever it is met; lost cancels are sent again, also after a
restart; a client order id Binance would refuse never leaves the process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from adapters.binance.unresolved import RetryPolicy
from daemon.alerts import Alerts
from daemon.config import AlertsConfig
from events.orders import (
    CancelOrder,
    CancelRejected,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
)
from events.system import ACTIVE, REDUCING
from tests.adapters.binance.live import Live, until
from tests.fake_binance import FakeBinanceServer

ORDER = "/api/v3/order"
ARCHIVED_MSG = ("Order was canceled or expired with no executed qty over 90 days ago and has "
                "been archived.")


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeBinanceServer]:
    s = FakeBinanceServer(seed=13, tick_interval_s=0.01)
    await s.start()
    yield s
    await s.close()


def below(server: FakeBinanceServer, ticks: int = 50) -> str:
    """A BUY price that rests: `ticks` dollars under the best bid."""
    return str(server.book("BTCUSDT")[0][0][0] - Decimal(ticks))


async def resting(live: Live, server: FakeBinanceServer) -> str:
    cid = live.submit("BUY", "0.001", below(server))
    await until(lambda: live.node.oms.orders[cid].state == "accepted", message="accepted")
    return cid


# -- 9a: an unknown outcome --------------------------------------------------------------


async def test_an_unresolved_order_is_looked_up_with_backoff_alerted_and_never_resent(
        server: FakeBinanceServer) -> None:
    policy = RetryPolicy(first_s=0.02, max_s=0.16, alert_every_s=0.6)
    async with Live(server, venue_kwargs={"unresolved_alert_after_s": 0.3,
                                          "retry_policy": policy}) as live:
        alerts = Alerts(AlertsConfig(min_interval_s=0), live.bus, time.time_ns)
        live.venue.alert = alerts.raise_alert  # as the kernel wires it
        server.fail_next(503, method="GET", path=ORDER, n=100_000)  # Binance keeps failing
        server.drop_next(method="POST", path=ORDER)  # placed, the answer lost...
        server.lose_user_events(2)  # ...and its report: only a look-up can tell
        with capture_logs() as logs:
            cid = live.submit("BUY", "0.001", below(server))
            await until(lambda: sum(a.kind == "order_unresolved" for a in alerts.history) >= 3,
                        message="the alert, then repeated")
            assert live.node.risk.state == REDUCING, "the hold stays"
            looked = server.count("GET", ORDER)
            server.clear_faults()
            await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="found")
            await until(lambda: live.node.risk.state == ACTIVE, message="the hold released")
        assert server.post_count(cid) == 1, "never resent"
        failed = [e for e in logs if e["event"] == "binance.order_lookup_failed"]
        # one log line per look-up, at the backoff's pace: 0.02 doubling to 0.16
        assert len(failed) == looked, (len(failed), looked)
        want = [min(0.02 * 2 ** (i + 1), 0.16) for i in range(len(failed))]
        assert [e["retry_s"] for e in failed] == pytest.approx(want)
        raised = [a for a in alerts.history if a.kind == "order_unresolved"]
        assert raised[0].context["unresolved_s"] >= 0.3
        assert raised[0].context["client_order_id"] == cid
        assert "outcome unknown" in raised[0].message and "never resent" in raised[0].message
        assert all(b.ts_ns - a.ts_ns >= 0.6e9 for a, b in zip(raised, raised[1:], strict=False))
        # attempts are few: the waits before them add up to the time unresolved
        unresolved = raised[-1].context["unresolved_s"]
        assert sum(want[:raised[-1].context["attempts"] - 1]) + 0.02 <= unresolved + 1e-6
        resolved = [a for a in alerts.history if a.kind == "order_resolved"]
        assert len(resolved) == 1 and resolved[0].severity == "info"


async def test_the_user_streams_report_settles_an_unknown_placement(
        server: FakeBinanceServer) -> None:
    """Binance placed it and answered 503; look-ups fail too, but its NEW
    report arrives on the user stream: the outcome is known, the hold goes."""
    async with Live(server, venue_kwargs={"unresolved_alert_after_s": 0.3}) as live:
        server.fail_next(503, method="POST", path=ORDER, after_processing=True)
        server.fail_next(503, method="GET", path=ORDER, n=100_000)
        cid = live.submit("BUY", "0.001", below(server))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="reported")
        await until(lambda: live.node.risk.state == ACTIVE, message="the hold released")
        assert not live.alerts and server.post_count(cid) == 1


async def test_a_look_up_whose_answer_is_dropped_is_tried_again(
        server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        server.drop_next(method="POST", path=ORDER)
        server.lose_user_events(2)
        server.drop_next(method="GET", path=ORDER, n=2)
        cid = live.submit("BUY", "0.001", below(server))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="found")
        await until(lambda: live.node.risk.state == ACTIVE, message="the hold released")
        assert server.count("GET", ORDER) == 3 and server.post_count(cid) == 1


async def test_not_found_is_final_only_once_the_placement_can_no_longer_arrive(
        server: FakeBinanceServer) -> None:
    """The gateway answers 503 at once; the order reaches the engine 1.5 s
    later, well within its 3 s recvWindow. Look-ups meanwhile answer -2013:
    none of them may reject it."""
    async with Live(server, recv_window_ms=3000) as live:
        server.fail_next(503, method="POST", path=ORDER, arrives_after_s=1.5)
        cid = live.submit("BUY", "0.001", below(server))
        await until(lambda: live.of(OrderAccepted, client_order_id=cid), message="found late")
        assert not live.of(OrderRejected, client_order_id=cid)
        assert live.node.oms.orders[cid].state == "accepted" and server.post_count(cid) == 1
        await until(lambda: live.node.risk.state == ACTIVE, message="the hold released")


async def test_an_order_that_never_arrives_is_rejected_after_its_recv_window(
        server: FakeBinanceServer) -> None:
    async with Live(server, recv_window_ms=1000) as live:
        server.fail_next(503, method="POST", path=ORDER, arrives_after_s=1.5)  # too late
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        cid = live.submit("BUY", "0.001", below(server))
        rejected = await until(lambda: live.of(OrderRejected, client_order_id=cid),
                               message="rejected")
        # not before recvWindow + the clock margin (less a millisecond of rounding)
        assert loop.time() - t0 >= 1.0 + 1.0 - 0.01
        assert rejected[0].code == "-2013" and not server.orders


async def test_after_a_restart_a_placement_still_on_its_way_is_not_taken_as_never_placed(
        server: FakeBinanceServer) -> None:
    """The process dies with a placement on its way (the gateway answered 503, the
    engine gets it 1.5 s later, within its 3 s recvWindow). The next start's
    reconciliation finds no such order yet: that -2013 may not reject it."""
    async with Live(server, recv_window_ms=3000) as first:
        server.fail_next(503, method="POST", path=ORDER, arrives_after_s=1.5)
        cid = first.submit("BUY", "0.001", below(server))
        await until(lambda: server.count("POST", ORDER) >= 1, message="the placement sent")
        await first.crash()
    assert not any(o.client_order_id == cid for o in server.orders.values())
    async with Live(server, history=first.events, recv_window_ms=3000) as second:
        await until(lambda: second.node.oms.orders[cid].state == "accepted",
                    message="found once it arrived")
        assert not second.of(OrderRejected, client_order_id=cid)
        assert server.post_count(cid) == 1, "never sent again"


# -- 9b: -2026, archived -----------------------------------------------------------------


async def test_an_unknown_placement_binance_archived_ended_canceled(
        server: FakeBinanceServer) -> None:
    slow = RetryPolicy(first_s=0.5, max_s=0.5)  # time to archive it before the first look-up
    async with Live(server, venue_kwargs={"retry_policy": slow}) as live:
        server.drop_next(method="POST", path=ORDER)
        server.lose_user_events(4)  # its reports (NEW, then CANCELED) never reach us
        cid = live.submit("BUY", "0.001", below(server))
        await until(lambda: any(o.client_order_id == cid for o in server.orders.values()),
                    message="placed at Binance")
        server.cancel_behind_our_back(cid, archive=True)
        canceled = await until(lambda: live.of(OrderCanceled, client_order_id=cid),
                               message="its end")
        assert canceled[0].reason.startswith("-2026 ORDER_ARCHIVED")
        assert not live.of(OrderRejected, client_order_id=cid)
        assert live.node.oms.orders[cid].state == "canceled" and server.post_count(cid) == 1
        await until(lambda: live.node.risk.state == ACTIVE, message="the hold released")


async def test_reconciliation_ends_an_order_binance_archived(server: FakeBinanceServer) -> None:
    async with Live(server) as live:
        cid = await resting(live, server)
        before = live.venue.reconciled
        server.disconnect_user()  # its cancel happens while nobody listens
        server.cancel_behind_our_back(cid, archive=True)
        await until(lambda: live.venue.reconciled > before, message="reconciled again")
        canceled = await until(lambda: live.of(OrderCanceled, client_order_id=cid),
                               message="its end")
        assert canceled[0].reason.startswith("-2026 ORDER_ARCHIVED")
        assert live.node.oms.orders[cid].state == "canceled"
        assert not live.of(OrderRejected, client_order_id=cid)
        assert live.node.risk.state == ACTIVE


@pytest.mark.parametrize("answer", ["-2011 then the look-up", "-2026"])
async def test_a_cancel_of_an_order_binance_archived_ends_it(server: FakeBinanceServer,
                                                            answer: str) -> None:
    async with Live(server) as live:
        cid = await resting(live, server)
        server.lose_user_events(2)  # the CANCELED report and its balance update
        server.cancel_behind_our_back(cid, archive=True)
        if answer == "-2026":
            server.fail_next(400, method="DELETE", path=ORDER, code=-2026, msg=ARCHIVED_MSG)
        live.node.oms.cancel("s1", cid)
        canceled = await until(lambda: live.of(OrderCanceled, client_order_id=cid),
                               message="its end")
        assert canceled[0].reason.startswith("-2026 ORDER_ARCHIVED")
        assert live.node.oms.orders[cid].state == "canceled"
        refused = live.of(CancelRejected, client_order_id=cid)
        assert [r.code for r in refused] == (["-2011"] if answer != "-2026" else [])


# -- cancels whose answer is lost ----------------------------------------------------------


@pytest.mark.parametrize("fault", ["503 before processing", "dropped after processing"])
async def test_a_cancel_whose_answer_is_lost_is_sent_again(server: FakeBinanceServer,
                                                          fault: str) -> None:
    async with Live(server) as live:
        cid = await resting(live, server)
        if fault == "503 before processing":
            server.fail_next(503, method="DELETE", path=ORDER)
        else:
            server.drop_next(method="DELETE", path=ORDER)
        live.node.oms.cancel("s1", cid)
        await until(lambda: live.node.oms.orders[cid].state == "canceled", message="canceled")
        assert len(live.of(CancelOrder, client_order_id=cid)) == 1, "the strategy asked once"
        if fault == "503 before processing":
            assert server.count("DELETE", ORDER) == 2
            assert not live.of(CancelRejected, client_order_id=cid)


async def test_after_a_restart_a_pending_cancel_of_an_open_order_is_sent_again(
        server: FakeBinanceServer) -> None:
    async with Live(server) as first:
        cid = await resting(first, server)
        server.fail_next(503, method="DELETE", path=ORDER, n=100_000)  # never gets through
        first.node.oms.cancel("s1", cid)  # journaled...
        await until(lambda: server.count("DELETE", ORDER) >= 2, message="cancel attempts")
        await first.crash()  # ...and the process dies before Binance answered
    history = first.events
    mine = [type(e) for e in history if getattr(e, "client_order_id", "") == cid]
    assert mine.count(CancelOrder) == 1 and OrderCanceled not in mine \
        and CancelRejected not in mine, "journaled, never answered"
    server.clear_faults()
    order = next(o for o in server.orders.values() if o.client_order_id == cid)
    assert order.status == "NEW"
    async with Live(server, history=history) as second:
        await until(lambda: second.node.oms.orders[cid].state == "canceled",
                    message="canceled after the restart")
        assert order.status == "CANCELED"
        assert not second.of(CancelOrder), "the cancel is sent again, not requested again"
        assert len(second.of(OrderCanceled, client_order_id=cid)) == 1


# -- 8: client order ids Binance refuses ----------------------------------------------------


@pytest.mark.parametrize(("strategy", "why"), [
    ("s" * 35, "37 characters long, Binance allows at most 36"),
    ("mm.v2", "contains '.'"),
])
async def test_a_client_order_id_binance_would_refuse_is_rejected_here(
        server: FakeBinanceServer, strategy: str, why: str) -> None:
    async with Live(server) as live:
        cid = live.submit("BUY", "0.001", below(server), strategy=strategy)
        rejected = await until(lambda: live.of(OrderRejected, client_order_id=cid),
                               message="rejected")
        assert rejected[0].check == "venue" and why in rejected[0].reason
        assert cid in rejected[0].reason
        assert server.post_count(cid) == 0 and server.count("POST", ORDER) == 0
        assert live.node.oms.orders[cid].state == "rejected"



# -- a stopped venue ------------------------------------------------------------------------


async def test_a_stopped_venue_sends_nothing_more(server: FakeBinanceServer) -> None:
    """Once `run()` has returned (stopped, failed, the process going down), an order
    or a cancel still reaching the venue is not sent: no task outlives the venue
    (nor an HTTP session it would open again). The next start's reconciliation
    settles what the journal holds."""
    async with Live(server) as live:
        cid = await resting(live, server)
        await live.crash()
        new = live.submit("BUY", "0.001", below(server))
        live.node.oms.cancel("s1", cid)
        assert live.venue.idle, "no request started after the venue stopped"
    # Live's exit drained the venue's requests: had one started, it went out by now
    assert server.post_count(new) == 0 and server.count("DELETE", ORDER) == 0
