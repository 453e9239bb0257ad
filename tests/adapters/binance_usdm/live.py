"""A live trading node wired to the fake Binance USD-M, in-process.

Real parts only: `FakeUsdmServer` on a loopback port, the real bus, OMS, risk
engine and portfolio of `TradingNode`, and `UsdmVenue` speaking HTTP and
websockets to the fake.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import msgspec

from adapters.binance.signing import Credentials
from adapters.binance_usdm.endpoints import resolve_usdm_endpoints
from adapters.binance_usdm.venue import UsdmVenue
from daemon.config import Config
from daemon.node import TradingNode
from daemon.trading.api import OrderRequest
from events.base import Event
from events.bus import Bus
from events.orders import Fill
from events.perp import FundingPayment
from events.registry import ORDER_TYPES
from replay.clock import LiveClock
from tests.adapters.binance.live import FAST_RETRY
from tests.conftest import until
from tests.fake_binance.common import DEFAULT_API_KEY, DEFAULT_SECRET
from tests.fake_binance.usdm import FakeUsdmServer

CREDS = Credentials(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET)
STREAMS = ["bookTicker", "markPrice@1s"]


def config(url: str, *, instrument: dict[str, Any] | None = None) -> Config:
    return msgspec.convert({
        "venues": [{"name": "usdm", "kind": "binance-usdm", "endpoints": url,
                    "streams": STREAMS}],
        "instruments": [{"venue": "usdm", "symbol": "BTCUSDT", "base": "BTC",
                         "quote": "USDT", "tick_size": 0.1, "step_size": 0.001,
                         "min_notional": 100.0, "kind": "perpetual", "leverage": 5,
                         "margin_mode": "cross", **(instrument or {})}],
        "risk": {"max_order_qty": 10.0, "max_order_notional": 1_000_000.0,
                 "max_position_qty": 100.0, "daily_loss_limit": 100_000.0,
                 "max_orders_per_s": 50, "price_band_pct": 10.0},
        "strategies": [],
    }, Config)


def positions_of(node: TradingNode, venue: str):  # type: ignore[no-untyped-def]
    def positions() -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for p in node.portfolio.positions(venue=venue):
            out[p.symbol] = out.get(p.symbol, Decimal(0)) + p.qty
        return out
    return positions


class UsdmLive:
    """`async with UsdmLive(server) as live:` a node trading perpetuals on the fake.
    `history`: events of an earlier run (order events folded into the OMS and
    the portfolio, funding payments seeded), as a restart's recovery does."""

    def __init__(self, server: FakeUsdmServer, *, history: list[Event] | None = None,
                 instrument: dict[str, Any] | None = None, wait: bool = True,
                 **venue_kwargs: Any) -> None:
        self.server = server
        self.config = config(server.base, instrument=instrument)
        self.history = history or []
        self.wait = wait
        self.venue_kwargs = venue_kwargs
        self.events: list[Event] = []
        self.alerts: list[tuple[str, str]] = []
        self.bus = Bus()
        self.bus.subscribe_all(self.events.append)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> UsdmLive:
        loop = asyncio.get_running_loop()
        self.node = node = TradingNode(self.config, self.bus, LiveClock(loop), replay=False)
        for event in self.history:
            if isinstance(event, ORDER_TYPES):
                node.oms.apply(event)
            if isinstance(event, Fill):
                node.portfolio.apply(event)
        inst = self.config.instruments[0]
        insts = [i for k, i in node.instruments.items() if k[0] == "usdm"]
        self.venue = UsdmVenue(
            "usdm", insts, self.bus, endpoints=resolve_usdm_endpoints(self.server.base, {}),
            credentials=CREDS, oms=node.oms, risk=node.risk, streams=STREAMS,
            settings={inst.symbol: (inst.leverage, inst.margin_mode)},
            journal_funding=[e for e in self.history if isinstance(e, FundingPayment)],
            retry_policy=FAST_RETRY, positions=positions_of(node, "usdm"),
            **self.venue_kwargs)
        for stream in (self.venue.market, self.venue.user):
            assert stream is not None
            stream.reconnect_policy.backoff_initial = 0.05
            stream.reconnect_policy.backoff_max = 0.3
            # the fake drops connections on purpose, far faster than Binance would: the
            # soak's chaos spent the production budget (10 in 300 s) within a minute,
            # and the venue stopped as it should (as tests/adapters/binance/live.py)
            stream.reconnect_policy.budget = 1000
        self.venue.alert = lambda kind, message, **_: self.alerts.append((kind, message))
        self.venue.subscribe(self.bus)
        node.start()
        self.task = loop.create_task(self.venue.run())
        if self.wait:
            await until(lambda: self.venue.reconciled or self.task.done(),  # type: ignore[union-attr]
                        message="first reconciliation")
            if not self.task.done():  # a started venue: give it a first market price
                await until(lambda: self.server.market_ws, message="the market stream")
                self.server.set_price("BTCUSDT", self.server.account.price["BTCUSDT"])
                await until(lambda: node.portfolio.last_price("usdm", "BTCUSDT"),
                            message="a first market price")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.node.stop()
        await self.venue.drain(2.0)
        await self.crash()

    async def crash(self) -> None:
        assert self.task is not None
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - a refused start
            pass

    def of(self, cls: type[Event], **match: Any) -> list[Any]:
        return [e for e in self.events if type(e) is cls
                and all(getattr(e, k) == v for k, v in match.items())]

    def submit(self, side: str, qty: str, price: str | None = None, **kw: Any) -> str:
        return self.node.oms.submit("s1", OrderRequest(
            venue="usdm", symbol="BTCUSDT", side=side, qty=Decimal(qty),
            order_type="MARKET" if price is None else "LIMIT",
            price=None if price is None else Decimal(price), **kw))

    def position(self) -> Decimal:
        return positions_of(self.node, "usdm")().get("BTCUSDT", Decimal(0))
