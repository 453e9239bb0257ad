"""A live trading node wired to the fake Binance, in-process, for the venue tests.

Real parts only: the fake exchange on a loopback port, the real bus, OMS, risk
engine, portfolio and strategy runtime of `TradingNode`, and `BinanceVenue`
speaking HTTP and websockets to the fake.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import msgspec

from adapters.binance.endpoints import resolve_endpoints
from adapters.binance.signing import Credentials
from adapters.binance.unresolved import RetryPolicy
from adapters.binance.venue import BinanceVenue
from daemon.config import Config
from daemon.node import TradingNode
from daemon.trading.api import OrderRequest
from events.base import Event
from events.bus import Bus
from events.registry import ORDER_TYPES
from replay.clock import LiveClock
from tests.conftest import until
from tests.fake_binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinanceServer

CREDS = Credentials(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET)


def config(url: str, strategies: list[dict[str, Any]] | None = None, *,
           risk: dict[str, Any] | None = None, **venue: Any) -> Config:
    """One `binance` venue on `url` trading BTCUSDT; `risk` overrides the limits."""
    return msgspec.convert({
        "venues": [{"name": "binance", "kind": "binance", "endpoints": url,
                    "taker_fee_bps": 10.0, **venue}],
        "instruments": [{"venue": "binance", "symbol": "BTCUSDT", "base": "BTC",
                         "quote": "USDT", "tick_size": 0.01, "step_size": 0.00001,
                         "min_notional": 5.0}],
        "risk": {"max_order_qty": 1.0, "max_order_notional": 100_000.0,
                 "max_position_qty": 10.0, "daily_loss_limit": 100_000.0,
                 "max_orders_per_s": 50, "price_band_pct": 10.0, **(risk or {})},
        "strategies": strategies or [],
    }, Config)


# Look-ups and resent cancels at a test's pace (the venue's default is 1 s to 30 s).
FAST_RETRY = RetryPolicy(first_s=0.02, max_s=0.16, alert_every_s=0.5)


def binance_venue(node: TradingNode, bus: Bus, **venue_kwargs: Any) -> BinanceVenue:
    """The `BinanceVenue` of `node`'s first venue, as the kernel builds it, with the
    fake's keys, look-ups at a test's pace (`FAST_RETRY`) and fast reconnects (the
    fake drops connections on purpose). `venue_kwargs` go to `BinanceVenue`."""
    v = node.config.venues[0]
    insts = [i for k, i in node.instruments.items() if k[0] == v.name]
    venue = BinanceVenue(
        v.name, insts, bus, endpoints=resolve_endpoints(v.endpoints, env={}),
        credentials=CREDS, oms=node.oms, risk=node.risk, streams=v.streams,
        stale_after_s=v.stale_after_s, recv_window_ms=v.recv_window_ms,
        **{"retry_policy": FAST_RETRY, **venue_kwargs})
    for stream in (venue.market, venue.user):
        assert stream is not None
        stream.reconnect_policy.backoff_initial = 0.05
        stream.reconnect_policy.backoff_max = 0.5
        stream.reconnect_policy.budget = 1000
    return venue


class Live:
    """`async with Live(server) as live:` a node trading on the fake.

    `history`: order events of an earlier run, folded into the OMS before the
    venue starts, as recovery folds the journal at a restart. `venue_kwargs` go
    to `BinanceVenue` (e.g. `unresolved_alert_after_s`, `retry_policy`)."""

    def __init__(self, server: FakeBinanceServer, *,
                 strategies: list[dict[str, Any]] | None = None,
                 history: list[Event] | None = None,
                 venue_kwargs: dict[str, Any] | None = None, **venue: Any) -> None:
        self.server = server
        self.config = config(server.base_url, strategies, **venue)
        self.history = history or []
        self.venue_kwargs = venue_kwargs or {}
        self.events: list[Event] = []
        self.alerts: list[tuple[str, str, dict[str, Any]]] = []
        self.bus = Bus()
        self.bus.subscribe_all(self.events.append)
        self.task: asyncio.Task[None] | None = None

    def _alert(self, kind: str, message: str, **context: Any) -> None:
        self.alerts.append((kind, message, context))

    async def __aenter__(self) -> Live:
        loop = asyncio.get_running_loop()
        self.node = TradingNode(self.config, self.bus, LiveClock(loop), replay=False)
        for event in self.history:
            if isinstance(event, ORDER_TYPES):
                self.node.oms.apply(event)  # the recovery fold
        self.venue = binance_venue(self.node, self.bus, **self.venue_kwargs)
        self.venue.alert = self._alert  # the kernel wires daemon.alerts here
        self.venue.subscribe(self.bus)
        self.node.start()
        self.task = loop.create_task(self.venue.run())
        await until(lambda: self.venue.reconciled, message="first reconciliation")
        await until(lambda: self.node.portfolio.last_price("binance", "BTCUSDT"),
                    message="a first market price")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.node.stop()
        await self.venue.drain(2.0)
        await self.crash()

    async def crash(self) -> None:
        """Stop the venue at once, as a killed process would (nothing drains)."""
        assert self.task is not None
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass

    # -- helpers ------------------------------------------------------------------

    def of(self, cls: type[Event], **match: Any) -> list[Any]:
        return [e for e in self.events if type(e) is cls
                and all(getattr(e, k) == v for k, v in match.items())]

    def submit(self, side: str, qty: str, price: str | None = None, strategy: str = "s1",
               **kw: Any) -> str:
        request = OrderRequest(
            venue="binance", symbol="BTCUSDT", side=side, qty=Decimal(qty),
            order_type="MARKET" if price is None else "LIMIT",
            price=None if price is None else Decimal(price), **kw)
        return self.node.oms.submit(strategy, request)

    def our_book(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        book = self.venue.books["BTCUSDT"].book
        return book.levels("bid"), book.levels("ask")

    def fake_book(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        bids, asks = self.server.book("BTCUSDT")
        return ([(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks])

    def book_in_sync(self) -> bool:
        sync = self.venue.books["BTCUSDT"]
        return (not sync.needs_snapshot()
                and sync.last_update_id == self.server.last_update_id("BTCUSDT")
                and self.our_book() == self.fake_book())
