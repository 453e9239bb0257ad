"""Fakes of the trading core for strategy tests (the real OMS/portfolio are separate).

`FakeGateway` implements `OrderGateway`: it records every request, assigns ids
`"{strategy_id}-{n}"` as the OMS does, answers on the bus (so answers arrive in
`seq` order, after the event being dispatched), and can fill market orders at
once at the last traded/bar/quote price. Limit orders rest until canceled.
`FakePortfolio` implements `PortfolioView`: exact Decimal positions from fills.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from daemon.config import StrategyConfig
from daemon.trading.api import BUY, MARKET, OrderRequest, Position
from events.bus import Bus
from events.instruments import Instrument, to_decimal
from events.market import Bar, Quote, Trade
from events.orders import Fill, OrderAccepted, OrderAmended, OrderCanceled, OrderRejected
from replay.clock import Clock

OPEN_STATES = ("accepted", "partially_filled")


def instrument(symbol: str = "BTCUSDT", venue: str = "sim", tick: str = "0.01",
               step: str = "0.00001") -> Instrument:
    return Instrument(venue=venue, symbol=symbol, base=symbol[:3], quote=symbol[3:],
                      tick_size=Decimal(tick), step_size=Decimal(step))


def strategy_config(id: str = "s1", cls: str = "daemon.strategies.sma_cross:SmaCross",
                    symbols: tuple[str, ...] = ("BTCUSDT",), venue: str = "sim",
                    bar_interval: str | None = None, params: dict[str, Any] | None = None,
                    **kw: Any) -> StrategyConfig:
    return StrategyConfig(id=id, class_=cls, venue=venue, symbols=list(symbols),
                          bar_interval=bar_interval, params=params or {}, **kw)


class FakeOrder:
    def __init__(self, cid: str, strategy_id: str, request: OrderRequest) -> None:
        self.client_order_id = cid
        self.strategy_id = strategy_id
        self.venue = request.venue
        self.symbol = request.symbol
        self.side = request.side
        self.order_type = request.order_type
        self.qty = request.qty
        self.filled_qty = Decimal(0)
        self.price = request.price
        self.trigger_price = request.trigger_price
        self.state = "accepted"
        self.request = request


class FakeGateway:
    def __init__(self, bus: Bus, clock: Clock, *, fill_market: bool = True,
                 reject: bool = False) -> None:
        self.bus = bus
        self.clock = clock
        self.fill_market = fill_market
        self.reject = reject
        self.orders: dict[str, FakeOrder] = {}
        self.submitted: list[tuple[str, OrderRequest]] = []
        self.submitted_at: list[int] = []  # the clock at each submit
        self.cancels: list[str] = []
        self.amends: list[tuple[str, dict[str, Any]]] = []
        self.last: dict[tuple[str, str], float] = {}
        self._n: dict[str, int] = {}
        bus.subscribe(Trade, lambda e: self.last.__setitem__((e.venue, e.symbol), e.price))
        bus.subscribe(Bar, lambda e: self.last.__setitem__((e.venue, e.symbol), e.close))
        bus.subscribe(Quote, self._on_quote)

    def _on_quote(self, q: Quote) -> None:
        self.last[(q.venue, q.symbol)] = (q.bid + q.ask) / 2

    def _stamp(self) -> dict[str, int]:
        now = self.clock.now_ns()
        return {"ts_event": now, "ts_recv": now}

    def submit(self, strategy_id: str, request: OrderRequest) -> str:
        n = self._n[strategy_id] = self._n.get(strategy_id, 0) + 1
        cid = f"{strategy_id}-{n}"
        self.submitted.append((strategy_id, request))
        self.submitted_at.append(self.clock.now_ns())
        ids = dict(venue=request.venue, symbol=request.symbol, strategy_id=strategy_id,
                   client_order_id=cid)
        if self.reject:
            self.bus.publish(OrderRejected(**self._stamp(), **ids, reason="test", check="x"))
            return cid
        order = self.orders[cid] = FakeOrder(cid, strategy_id, request)
        self.bus.publish(OrderAccepted(**self._stamp(), **ids, venue_order_id=cid))
        if request.order_type == MARKET and self.fill_market:
            price = self.last.get((request.venue, request.symbol))
            assert price is not None, "fake gateway: no price to fill at"
            order.filled_qty = request.qty
            order.state = "filled"
            self.bus.publish(Fill(**self._stamp(), **ids, trade_id=f"t{cid}", side=request.side,
                                  qty=request.qty, price=to_decimal(price), fee=Decimal(0),
                                  fee_currency="USDT", liquidity="TAKER"))
        return cid

    def submit_bracket(self, strategy_id: str, entry: OrderRequest, stop: OrderRequest,
                       target: OrderRequest) -> tuple[str, str, str]:
        return (self.submit(strategy_id, entry), self.submit(strategy_id, stop),
                self.submit(strategy_id, target))

    def submit_oco(self, strategy_id: str, a: OrderRequest,
                   b: OrderRequest) -> tuple[str, str]:
        return self.submit(strategy_id, a), self.submit(strategy_id, b)

    def cancel(self, strategy_id: str, client_order_id: str) -> None:
        self.cancels.append(client_order_id)
        order = self.orders.get(client_order_id)
        if order is not None and order.state in OPEN_STATES:
            order.state = "canceled"
            self.bus.publish(OrderCanceled(**self._stamp(), venue=order.venue,
                                           symbol=order.symbol, strategy_id=strategy_id,
                                           client_order_id=client_order_id))

    def amend(self, strategy_id: str, client_order_id: str, *, qty: Decimal | None = None,
              price: Decimal | None = None, trigger_price: Decimal | None = None) -> None:
        self.amends.append((client_order_id, {"qty": qty, "price": price}))
        order = self.orders[client_order_id]
        order.qty = qty if qty is not None else order.qty
        order.price = price if price is not None else order.price
        self.bus.publish(OrderAmended(**self._stamp(), venue=order.venue, symbol=order.symbol,
                                      strategy_id=strategy_id, client_order_id=client_order_id,
                                      qty=order.qty, price=order.price))

    def open_orders(self, strategy_id: str | None = None,
                    symbol: str | None = None) -> list[FakeOrder]:
        return [o for o in self.orders.values() if o.state in OPEN_STATES
                and strategy_id in (None, o.strategy_id) and symbol in (None, o.symbol)]

    def fill(self, cid: str, qty: Decimal | None = None, price: Decimal | None = None) -> None:
        """Fill (part of) a resting order, as a venue would."""
        order = self.orders[cid]
        qty = order.qty - order.filled_qty if qty is None else qty
        order.filled_qty += qty
        order.state = "filled" if order.filled_qty >= order.qty else "partially_filled"
        self.bus.publish(Fill(**self._stamp(), venue=order.venue, symbol=order.symbol,
                              strategy_id=order.strategy_id, client_order_id=cid,
                              trade_id=f"t{cid}-{order.filled_qty}", side=order.side, qty=qty,
                              price=price or order.price or Decimal(1), fee=Decimal(0),
                              fee_currency="USDT", liquidity="MAKER"))


class FakePortfolio:
    def __init__(self, bus: Bus) -> None:
        self.qty: dict[tuple[str, str, str], Decimal] = {}
        self.fills: list[Fill] = []
        bus.subscribe(Fill, self._on_fill)

    def _on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)
        key = (fill.venue, fill.symbol, fill.strategy_id)
        signed = fill.qty if fill.side == BUY else -fill.qty
        self.qty[key] = self.qty.get(key, Decimal(0)) + signed

    def seed(self, venue: str, symbol: str, strategy_id: str, qty: Decimal) -> None:
        self.qty[(venue, symbol, strategy_id)] = qty

    def position(self, venue: str, symbol: str, strategy_id: str | None = None) -> Position:
        if strategy_id is None:
            qty = sum((q for (v, s, _), q in self.qty.items() if (v, s) == (venue, symbol)),
                      Decimal(0))
        else:
            qty = self.qty.get((venue, symbol, strategy_id), Decimal(0))
        return Position(venue=venue, symbol=symbol, strategy_id=strategy_id or "", qty=qty)

    def balance(self, venue: str, currency: str) -> Decimal:
        return Decimal(0)

    def last_price(self, venue: str, symbol: str) -> Decimal | None:
        return None

    def equity(self, venue: str | None = None) -> Decimal:
        return Decimal(0)
