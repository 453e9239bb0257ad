"""A live trading node on a `CcxtVenue`: ccxt's own `binance` class pointed at the
fake Binance, in-process, for the venue tests. Real parts only: the fake exchange
on a loopback port, ccxt.pro speaking HTTP and websockets to it, the real bus,
OMS, risk engine and portfolio of `TradingNode`."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import msgspec

from adapters.binance.unresolved import RetryPolicy
from adapters.ccxt.venue import CcxtVenue
from daemon.config import Config
from daemon.node import TradingNode
from daemon.trading.api import OrderRequest
from events.base import Event
from events.bus import Bus
from events.registry import ORDER_TYPES
from replay.clock import LiveClock
from tests.ccxt_client.fake_exchange import ccxt_binance
from tests.conftest import until
from tests.fake_binance import FakeBinanceServer

SYMBOL = "BTC/USDT"
FAST_RETRY = RetryPolicy(first_s=0.02, max_s=0.16, alert_every_s=0.5)


def config(url: str, **venue: Any) -> Config:
    return msgspec.convert({
        "venues": [{"name": "bn", "kind": "ccxt", "exchange": "binance",
                    "urls": {"*": url}, **venue}],
        "instruments": [{"venue": "bn", "symbol": SYMBOL, "base": "BTC", "quote": "USDT",
                         "tick_size": 0.01, "step_size": 0.00001, "min_notional": 5.0}],
        "risk": {"max_order_qty": 1.0, "max_order_notional": 100_000.0,
                 "max_position_qty": 10.0, "daily_loss_limit": 100_000.0,
                 "max_orders_per_s": 50, "price_band_pct": 10.0},
    }, Config)


class Live:
    """`async with Live(server) as live:` a node trading on the fake through ccxt.
    `history`: order events of an earlier run folded into the OMS first (a restart)."""

    def __init__(self, server: FakeBinanceServer, *, history: list[Event] | None = None,
                 trade: bool = True, **venue_kwargs: Any) -> None:
        self.server = server
        self.config = config(server.base_url, trade=trade)
        self.history = history or []
        self.trade = trade
        self.venue_kwargs = {"retry_policy": FAST_RETRY, "not_found_final_s": 1.0,
                             **venue_kwargs}
        self.events: list[Event] = []
        self.alerts: list[tuple[str, str, dict[str, Any]]] = []
        self.bus = Bus()
        self.bus.subscribe_all(self.events.append)
        self.task: asyncio.Task[None] | None = None
        self.has_override: dict[str, bool] = {}  # e.g. an exchange without watchOrders

    async def __aenter__(self) -> Live:
        loop = asyncio.get_running_loop()
        self.node = TradingNode(self.config, self.bus, LiveClock(loop), replay=False)
        for event in self.history:
            if isinstance(event, ORDER_TYPES):
                self.node.oms.apply(event)
        self.exchange = ccxt_binance(self.server.base_url,
                                     **({} if self.trade else {"api_key": None}))
        await self.exchange.load_markets()
        self.exchange.has = {**self.exchange.has, **self.has_override}
        insts = [i for k, i in self.node.instruments.items() if k[0] == "bn"]
        self.venue = CcxtVenue("bn", insts, self.bus, exchange=self.exchange,
                               oms=self.node.oms, risk=self.node.risk, trade=self.trade,
                               **self.venue_kwargs)
        self.venue.market.backoff.backoff_initial = 0.05
        self.venue.market.backoff.backoff_max = 0.5
        self.venue.alert = lambda kind, message, **c: self.alerts.append((kind, message, c))
        self.venue.subscribe(self.bus)
        self.node.start()
        self.task = loop.create_task(self.venue.run())
        if self.trade:
            await until(lambda: self.venue.reconciled, message="first reconciliation")
        await until(lambda: self.node.portfolio.last_price("bn", SYMBOL),
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

    def of(self, cls: type[Event], **match: Any) -> list[Any]:
        return [e for e in self.events if type(e) is cls
                and all(getattr(e, k) == v for k, v in match.items())]

    def submit(self, side: str, qty: str, price: str | None = None, strategy: str = "s1") -> str:
        request = OrderRequest(
            venue="bn", symbol=SYMBOL, side=side, qty=Decimal(qty),
            order_type="MARKET" if price is None else "LIMIT",
            price=None if price is None else Decimal(price))
        return self.node.oms.submit(strategy, request)
