"""The contract every venue kind passes (the `adapters.venue.Venue` port).

The eventsourcing library's habit: one abstract suite per port, run against
every implementation. `VenueContract` holds the tests; a concrete class per kind
(tests/venues/test_<kind>.py) gives them its `new_case` fixture: a `VenueCase`
built from a real `[[venues]]` config by the real factory
(`daemon.venues.make_venue`) beside the real trading node, exactly as the kernel
builds it (daemon/wiring.py). A new kind is one more file with one fixture.

What every venue promises: it is a `Venue`; it runs and becomes `ready` within a
deadline; `status()` reports a state the control API counts as up once ready,
with reconciliation passes where it reconciles; cancelling `run()` stops it with
no task left behind; the market events it publishes carry its name. A trading
venue also answers a submitted order with an ack or a rejection, and a cancel
ends an accepted order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from adapters.venue import SIMULATED, Venue, VenueState
from daemon.config import Config
from daemon.metrics import UP_STATES
from daemon.node import TradingNode
from daemon.trading.api import OrderRequest
from daemon.venues import make_venue
from events.base import Event
from events.bus import Bus
from events.market import Quote, Trade
from events.orders import OrderAccepted, OrderCanceled, OrderRejected
from events.registry import MARKET_TYPES
from events.system import VenueStatus
from replay.clock import LiveClock
from tests.conftest import until

STRATEGY = "contract"
RISK = {"max_order_qty": 10.0, "max_order_notional": 1_000_000.0, "max_position_qty": 10.0,
        "daily_loss_limit": 1_000_000.0, "max_orders_per_s": 50, "price_band_pct": 20.0}


def contract_config(venue: dict[str, Any], *, tick: float = 0.01, step: float = 0.00001,
                    risk: dict[str, Any] | None = None, symbol: str = "BTCUSDT") -> Config:
    """One venue named `venue["name"]` trading `symbol` (BTC against USDT), with room
    in the risk limits for the contract's orders."""
    return msgspec.convert({
        "venues": [venue],
        "instruments": [{"venue": venue["name"], "symbol": symbol, "base": "BTC",
                         "quote": "USDT", "tick_size": tick, "step_size": step,
                         "min_notional": 5.0}],
        "risk": {**RISK, **(risk or {})},
    }, Config)


@dataclass
class VenueCase:
    """One venue kind under test, built and wired as the kernel does.

    `trading`: orders on it are answered (by the exchange or a simulated account);
    `feeds`: it publishes market data of its own; `reconciles`: its status counts
    reconciliation passes with an exchange (a trading one is ready after the
    first); `critical`: what `Venue.critical` must say; `ready_within_s`: the
    deadline for `ready`; `market`: for a venue with no feed of its own, publishes
    the market data another venue would (the simulated account answers requests
    on market events); `disconnect`: for a venue with connections, drops every
    one of them at the exchange's end."""

    config: Config
    trading: bool
    feeds: bool
    reconciles: bool
    critical: bool
    ready_within_s: float = 10.0
    symbol: str = "BTCUSDT"  # as the venue names it (a ccxt venue: "BTC/USDT")
    market: Callable[[VenueCase], None] | None = None
    disconnect: Callable[[], object] | None = None
    bus: Bus = field(init=False)
    node: TradingNode = field(init=False)
    venue: Venue = field(init=False)
    events: list[Event] = field(init=False, default_factory=list)
    alerts: list[tuple[str, str]] = field(init=False, default_factory=list)
    task: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.bus = Bus()
        self.bus.subscribe_all(self.events.append)
        self.node = TradingNode(self.config, self.bus, LiveClock(asyncio.get_running_loop()),
                                replay=False)
        vcfg = self.config.venues[0]
        self.venue = make_venue(vcfg, self.config, self.bus, self.node)
        self.venue.subscribe(self.bus)
        self.venue.alert = lambda kind, message, **_: self.alerts.append((kind, message))

    @property
    def name(self) -> str:
        return self.config.venues[0].name

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.venue.run())

    async def start_ready(self) -> None:
        """Run it, wait until ready, then start the node (opening balances) as the
        kernel starts strategies only then."""
        self.start()
        await self.until(lambda: self.venue.ready, self.ready_within_s, "ready")
        self.node.start()

    async def until(self, predicate: Callable[[], Any], timeout: float = 10.0,
                    message: str = "condition") -> Any:
        """`until`, publishing the market data a venue without a feed needs meanwhile."""
        def moved() -> Any:
            if self.market is not None:
                self.market(self)
            return predicate()
        return await until(moved, timeout, message)

    async def stop(self) -> None:
        """Cancel `run()`; it must end cancelled, not with an error."""
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    async def submit_resting(self) -> str:
        """A limit buy resting below the market (inside the risk band), once there
        is a market; its client order id."""
        last = await self.until(lambda: self.node.portfolio.last_price(self.name, self.symbol),
                                message="a first market price")
        inst = self.node.instruments[(self.name, self.symbol)]
        price = inst.round_price(Decimal(str(last)) * Decimal("0.97"))
        return self.node.oms.submit(STRATEGY, OrderRequest(
            venue=self.name, symbol=self.symbol, side="BUY", qty=Decimal("0.001"),
            order_type="LIMIT", price=price))

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def of(self, cls: type[Event], **match: Any) -> list[Any]:
        return [e for e in self.events if type(e) is cls
                and all(getattr(e, k) == v for k, v in match.items())]


def sim_market(price: float) -> Callable[[VenueCase], None]:
    """A market around `price` for a venue with no feed: a quote and a trade."""
    def publish(case: VenueCase) -> None:
        now = case.node.clock.now_ns()
        case.bus.publish(Quote(ts_event=now, ts_recv=now, venue=case.name, symbol=case.symbol,
                               bid=price - 0.5, ask=price + 0.5, bid_size=1.0, ask_size=1.0))
        case.bus.publish(Trade(ts_event=now, ts_recv=now, venue=case.name, symbol=case.symbol,
                               price=price, size=0.01))
    return publish


class VenueContract:
    """The contract suite; a subclass per kind provides the `new_case` fixture
    (a `VenueCase`, not started)."""

    @pytest_asyncio.fixture
    async def case(self, new_case: VenueCase) -> AsyncIterator[VenueCase]:
        yield new_case
        await new_case.close()  # a failed test leaves nothing running

    async def test_it_is_a_venue_named_as_configured(self, case: VenueCase) -> None:
        assert isinstance(case.venue, Venue)
        assert case.venue.name == case.name
        assert case.venue.critical is case.critical
        state = case.venue.status()
        assert isinstance(state, VenueState)
        assert (state.reconciled is not None) is case.reconciles
        assert state.reconnects == 0
        if not case.reconciles:
            assert case.venue.ready  # nothing to wait for

    async def test_it_becomes_ready_within_the_deadline_and_reports_itself_up(
            self, case: VenueCase) -> None:
        await case.start_ready()
        state = await until(lambda: (s := case.venue.status()).status in UP_STATES and s,
                            case.ready_within_s, "an up status")
        assert state.reconnects >= 0
        if case.reconciles and case.trading:  # ready means reconciled once
            assert state.reconciled is not None and state.reconciled >= 1
        if not case.feeds and not case.trading:
            assert state.status == SIMULATED
        rendered = state.as_dict()
        assert rendered["status"] == state.status and rendered["reconnects"] == state.reconnects
        assert ("reconciled" in rendered) is case.reconciles
        await case.stop()

    async def test_a_cancel_stops_it_with_no_task_left_behind(self, case: VenueCase) -> None:
        me = asyncio.current_task()
        before = {t for t in asyncio.all_tasks() if not t.done()}
        await case.start_ready()
        # at work, not merely started: up, and its market data flowing
        await case.until(lambda: case.venue.status().status in UP_STATES and (
            not case.feeds or any(type(e) in MARKET_TYPES for e in case.events)),
            case.ready_within_s, "at work")
        if case.trading:  # and a placement in flight when it is cancelled
            await case.submit_resting()
        await case.stop()
        assert case.task is not None and case.task.cancelled()

        def ours() -> set[asyncio.Task[Any]]:
            # a loopback server's own tasks (the fake exchange) may outlive a
            # connection briefly; the venue's may not outlive run()
            return {t for t in asyncio.all_tasks() if not t.done() and t is not me
                    and t not in before and not _server_side(t)}
        assert not ours(), ours()
        if case.feeds:  # it says it went away
            assert case.venue.status().status not in UP_STATES

    async def test_after_its_connections_drop_it_reconnects_and_says_so(
            self, case: VenueCase) -> None:
        if case.disconnect is None:
            pytest.skip("no connection of its own")
        await case.start_ready()
        await until(lambda: case.venue.status().status in UP_STATES, case.ready_within_s,
                    "up")
        before = case.venue.status()
        case.disconnect()
        # counted, and up again; a trading venue reconciles again before it trades on
        # (it may have missed fills and order ends while it was away)
        after = await until(
            lambda: (s := case.venue.status()).reconnects > before.reconnects
            and s.status in UP_STATES and (not (case.reconciles and case.trading)
                                           or (s.reconciled or 0) > (before.reconciled or 0))
            and s, 3 * case.ready_within_s,
            f"reconnected (before: {before}; status now: {case.venue.status()})")
        assert after.status in UP_STATES
        assert case.venue.ready
        await case.stop()

    async def test_market_events_carry_its_name(self, case: VenueCase) -> None:
        if not case.feeds:
            pytest.skip("no market data of its own")
        await case.start_ready()
        await case.until(lambda: sum(type(e) in MARKET_TYPES for e in case.events) >= 3,
                         message="market events")
        await case.stop()
        market = [e for e in case.events if type(e) in MARKET_TYPES]
        assert {e.venue for e in market} == {case.name}  # type: ignore[attr-defined]
        assert {e.symbol for e in market} == {case.symbol}  # type: ignore[attr-defined]
        statuses = case.of(VenueStatus)
        assert statuses and {e.venue for e in statuses} == {case.name}

    async def test_an_order_is_answered_and_a_cancel_ends_it(self, case: VenueCase) -> None:
        if not case.trading:
            pytest.skip("not a trading venue")
        await case.start_ready()
        cid = await case.submit_resting()
        await case.until(lambda: case.of(OrderAccepted, client_order_id=cid)
                         or case.of(OrderRejected, client_order_id=cid), message="an answer")
        assert case.of(OrderAccepted, client_order_id=cid), case.of(OrderRejected)
        case.node.oms.cancel(STRATEGY, cid, reason="contract")
        await case.until(lambda: case.node.oms.orders[cid].is_done, message="the cancel")
        assert len(case.of(OrderCanceled, client_order_id=cid)) == 1
        assert case.node.oms.orders[cid].state == "canceled"
        await case.stop()


def _server_side(task: asyncio.Task[Any]) -> bool:
    """A task of a loopback server in the test (the fake exchange's handlers)."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return "fake_binance" in filename or "aiohttp/web_protocol" in filename
