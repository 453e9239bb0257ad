"""An order's request leaves from the bus handler that sees its `OrderSubmitted`
(no event-loop turn in between), except while its intent awaits the commit of a
`grouped()` block: then it goes from its task, after the commit. The real venue,
OMS, risk and REST client, with the HTTP exchange itself replaced at `_attempt`
(the hand-off to the transport, as in bench/bench_tick_to_order.py)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from adapters.binance.parse import StreamParser
from adapters.binance.rest import BinanceRest
from adapters.binance.signing import Credentials
from adapters.binance.venue import BinanceVenue
from bench.bench_tick_to_order import _config, _endpoints, _trade_frame
from daemon.node import TradingNode
from daemon.trading.api import OrderRequest
from events.bus import Bus
from events.orders import OrderSubmitted
from events.state import BalanceChanged
from replay.clock import LiveClock
from tests.conftest import until


class _Wired:
    """The bench's wiring: a bus whose journal hook makes every `OrderSubmitted`
    critical and counts the commits; each send records (client id, commits so far,
    whether the bus was dispatching)."""

    def __init__(self) -> None:
        self.commits = 0
        self.sends: list[tuple[str, int, bool]] = []
        self.bus = Bus(journal=lambda e: type(e) is OrderSubmitted, commit=self._commit)
        wired = self

        class LastInch(BinanceRest):
            async def _attempt(self, method: str, path: str, query: str, headers: Any,
                               weight: int, is_order: bool) -> tuple[int, Any, bytes, int, int]:
                cid = query.partition("newClientOrderId=")[2].partition("&")[0]
                wired.sends.append((cid, wired.commits, wired.bus._dispatching))
                await asyncio.sleep(0)  # an answer takes a loop turn at least
                body = (b'{"symbol":"BTCUSDT","orderId":1,"orderListId":-1,"clientOrderId":"%s",'
                        b'"transactTime":1763735400123,"price":"1.00","origQty":"0.001",'
                        b'"executedQty":"0","cummulativeQuoteQty":"0","status":"EXPIRED",'
                        b'"timeInForce":"IOC","type":"LIMIT","side":"BUY","fills":[]}'
                        % cid.encode())
                return 200, {}, body, 0, 0

        loop = asyncio.get_running_loop()
        self.node = TradingNode(_config(1), self.bus, LiveClock(loop), replay=False)
        inst = [i for k, i in self.node.instruments.items() if k[0] == "binance"]
        self.venue = BinanceVenue("binance", inst, self.bus, endpoints=_endpoints(1),
                                  credentials=Credentials(api_key="k", secret="s"),
                                  oms=self.node.oms, risk=self.node.risk, streams=["trade"])
        self.venue.rest = LastInch(self.venue.endpoints.rest, Credentials(api_key="k", secret="s"))
        self.venue.subscribe(self.bus)
        self.node.risk.unblock_venue("binance")
        now = time.time_ns()
        self.bus.publish(BalanceChanged(ts_event=now, ts_recv=now, venue="binance",
                                        currency="USDT", total=Decimal(10**9),
                                        free=Decimal(10**9)))
        self.bus.publish(StreamParser("binance").parse(_trade_frame(0), now))  # the mark

    def _commit(self) -> None:
        self.commits += 1

    def submit(self) -> str:
        return self.node.oms.submit("chase", OrderRequest(
            venue="binance", symbol="BTCUSDT", side="BUY", qty=Decimal("0.001"),
            order_type="LIMIT", price=Decimal("63500.00"), time_in_force="IOC"))

    async def settle(self) -> None:
        await until(lambda: not self.venue._tasks, message="the requests' tasks end")


async def test_an_order_is_sent_from_the_handler_after_its_commit() -> None:
    w = _Wired()
    cid = w.submit()  # outside a dispatch: committed at once, then delivered
    assert w.sends == [(cid, 1, True)], "sent inside the OrderSubmitted dispatch"
    await w.settle()


async def test_an_order_placed_from_a_dispatch_is_sent_inside_it_after_the_commit() -> None:
    w = _Wired()
    placed: list[str] = []
    w.bus.subscribe(BalanceChanged, lambda e: placed.append(w.submit()))
    now = time.time_ns()
    w.bus.publish(BalanceChanged(ts_event=now, ts_recv=now, venue="binance", currency="BTC",
                                 total=Decimal(1), free=Decimal(1)))
    assert w.sends == [(placed[0], 1, True)]
    await w.settle()


async def test_an_intent_awaiting_its_groups_commit_is_sent_only_after_the_group() -> None:
    w = _Wired()
    with w.bus.grouped():
        cid = w.submit()  # delivered at once, durable only when the group ends
        assert w.bus.awaiting_commit
        assert w.sends == [], "nothing leaves before the group's commit"
    assert w.commits == 1
    await until(lambda: w.sends, message="sent from its task")
    assert w.sends == [(cid, 1, False)]
    await w.settle()
