"""The `Strategy` base class: hooks a strategy overrides, actions it calls.

A strategy is a plain synchronous object driven by the `StrategyRuntime`
(daemon.strategies.runtime): it never touches the network, reads time only
from `self.clock`, and reaches the trading core only through the
`OrderGateway` and `PortfolioView` protocols (daemon.trading.api) lent to it in
a `StrategyContext`. The same code therefore runs live, in paper and in replay.

Params: a subclass declares `Params`, a frozen msgspec Struct with
`forbid_unknown_fields=True`; the runtime validates `config.params` into it
(`loader.validate_params`) and a mistake is one line naming
`strategies[<id>].params.<key>`. Without `Params`, `self.params` is the raw dict.

Quantities given as float are taken exactly (`to_decimal`: 0.1 is one tenth)
and rounded DOWN to the instrument's step. Prices go to the tick in the
order's favour, never worse than asked (`Instrument.round_order_price`, done
cheaper to the same digits by daemon.strategies.grid): a BUY
limit or stop trigger rounds down, a SELL up (a protective stop may so fire
up to one tick sooner, never later); a trailing offset rounds down to the
tick. A quantity that rounds to zero (or a BUY price or an offset below one
tick) raises ValueError (a strategy bug, which the runtime turns into
`StrategyStatus(failed)`), never a silent zero order.

Params that must fit the instruments (a size below the step can never be
ordered) are checked before the strategy is built, by `check_params(params,
instruments)`: `check-config` and `run` refuse such a config with one line naming
`$.strategies[i].params.<key>`, instead of a strategy that dies at start.

The base class also follows its own orders' lifecycle events, so a strategy
can ask `is_open(client_order_id)` / `has_open_orders()` without waiting on the
OMS (e.g. "don't signal again while my last order is in flight").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from daemon.config import StrategyConfig
from daemon.logging import get_logger
from daemon.strategies.grid import Grid
from daemon.trading.api import (
    BUY,
    LIMIT,
    MARKET,
    SELL,
    STOP_LIMIT,
    STOP_MARKET,
    OrderGateway,
    OrderRequest,
    OrderView,
    PortfolioView,
    Position,
)
from events.instruments import Instrument, to_decimal
from events.market import Bar, BookDelta, BookSnapshot, Quote, Trade
from events.orders import (
    Fill,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)
from events.system import Timer

if TYPE_CHECKING:
    from replay.clock import Clock

__all__ = [
    "Strategy",
    "StrategyContext",
]

Number = Decimal | float | int | str


class StrategyContext:
    """What the runtime lends one strategy: the core's views and the timer/stop
    callbacks (which the runtime implements, so it can cancel a strategy's timers
    when it stops or fails)."""

    __slots__ = (
        "clock",
        "gateway",
        "portfolio",
        "instruments",
        "params",
        "set_timer",
        "cancel_timer",
        "request_stop",
        "order_venue",
    )

    def __init__(
        self,
        *,
        clock: Clock,
        gateway: OrderGateway,
        portfolio: PortfolioView,
        instruments: Mapping[tuple[str, str], Instrument],
        params: Any,
        set_timer: Callable[[str, int, int], None],
        cancel_timer: Callable[[str], None],
        request_stop: Callable[[str], None],
        order_venue: str | None = None,
    ) -> None:
        self.clock = clock
        self.gateway = gateway
        self.portfolio = portfolio
        self.instruments = instruments
        self.params = params
        self.set_timer = set_timer  # (name, deadline_ns, every_ns or 0)
        self.cancel_timer = cancel_timer
        self.request_stop = request_stop
        # where its orders go: its venue, or that venue's simulated twin when
        # the strategy is configured `paper = true` (market data still comes
        # from its venue)
        self.order_venue = order_venue


# --- the base class ------------------------------------------------------------------


class _Order(msgspec.Struct, eq=False, gc=False):
    """The base class's own view of one of its orders: enough to know when it is done.
    (Built in C and not tracked by the collector: strings and Decimals only.)"""

    symbol: str
    side: str  # an amend rounds its prices in this side's favour
    qty: Decimal
    filled: Decimal = Decimal(0)


_TERMINAL = (OrderRejected, OrderCanceled, OrderExpired)


class Strategy:
    """Base of every strategy. Override the hooks you need (all optional, all sync).

    Hooks: `on_start`, `on_stop`, `on_trade(Trade)`, `on_quote(Quote)`,
    `on_book(BookDelta | BookSnapshot)`, `on_bar(Bar)`, `on_order(event)` (every
    lifecycle event of its own orders except fills), `on_fill(Fill)`,
    `on_timer(Timer)`; optional persistence `get_state()` / `set_state(state)`.
    Only the market-data hooks a class overrides are routed to it, so an unused
    hook costs nothing.
    """

    # A frozen msgspec Struct (forbid_unknown_fields=True) describing `params`.
    Params: ClassVar[type[msgspec.Struct] | None] = None
    # Type `get_state()` returns, to decode the state file into (plain JSON if None).
    State: ClassVar[type | None] = None

    @classmethod
    def check_params(
        cls, params: Any, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        """What of `params` (validated into `Params`, or the raw dict) cannot work on
        `instruments` (`{symbol: Instrument}`, its configured symbols): the first
        problem as (param key, message), or None. Runs before the strategy is built,
        in `check-config` and at every start. A minimum notional needs a price, so it
        is the risk check's, order by order; the step is not."""
        return None

    @staticmethod
    def qty_problem(qty: Number, instruments: Mapping[str, Instrument]) -> str | None:
        """Why an order of `qty` cannot be placed on one of `instruments` (it rounds
        down to 0 at the step, or is too large for the grid), or None."""
        q = to_decimal(qty)
        for symbol, inst in instruments.items():
            try:
                rounded = inst.round_qty(q)
            except ArithmeticError:  # more steps than Decimal's 28 digits hold
                return f"{q} is too large for {symbol}'s step {inst.step_size}"
            if rounded <= 0:
                return f"{q} rounds down to 0 at {symbol}'s step {inst.step_size}"
        return None

    @classmethod
    def parent_problem(cls, params: Any, instruments: Mapping[str, Instrument],
                       sizes: tuple[str, ...] = ("total_qty",)) -> tuple[str, str] | None:
        """For a parent-order algorithm (twap, vwap, iceberg, sor): its `symbol` param
        (default: its first symbol) is one of its own, and each param in `sizes` is an
        order that instrument can take; the (key, problem) of the first that is not."""
        symbol = params.symbol or next(iter(instruments))
        inst = instruments.get(symbol)
        if inst is None:
            return "symbol", f"{symbol!r} is not one of its symbols {list(instruments)}"
        for key in sizes:
            if problem := cls.qty_problem(getattr(params, key), {symbol: inst}):
                return key, problem
        return None

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        self.config = config
        self.ctx = ctx
        self.id = config.id
        # orders, positions and instruments are those of the venue it trades on
        # (the paper twin for a paper strategy); market data comes from config.venue
        self.venue = ctx.order_venue or config.venue
        self.symbols: tuple[str, ...] = tuple(config.symbols)
        self.params: Any = ctx.params
        self.log = get_logger("tapeloop.strategy", strategy_id=config.id)
        self._orders: dict[str, _Order] = {}
        # Events for an id the gateway has not returned yet (it answered synchronously).
        self._early: dict[str, list[Any]] = {}
        self._submitting = 0
        self._grids: dict[str, Grid] = {}  # symbol -> its rounding

    # -- hooks ----------------------------------------------------------------------

    def on_start(self) -> None: ...
    def on_stop(self) -> None: ...
    def on_trade(self, trade: Trade) -> None: ...
    def on_quote(self, quote: Quote) -> None: ...
    def on_book(self, book: BookDelta | BookSnapshot) -> None: ...
    def on_bar(self, bar: Bar) -> None: ...
    def on_order(self, event: Any) -> None: ...
    def on_fill(self, fill: Fill) -> None: ...
    def on_timer(self, timer: Timer) -> None: ...

    def get_state(self) -> Any:
        """State to save to `state_file` on stop (msgspec-encodable); None saves nothing."""
        return None

    def set_state(self, state: Any) -> None:
        """Restore what `get_state` returned (decoded as `State`, or plain JSON)."""

    # -- read access ------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def portfolio(self) -> PortfolioView:
        return self.ctx.portfolio

    def now_ns(self) -> int:
        return self.ctx.clock.now_ns()

    def instrument(self, symbol: str | None = None) -> Instrument:
        """The instrument of `symbol` (default: the first configured symbol)."""
        symbol = symbol or self.symbols[0]
        try:
            return self.ctx.instruments[(self.venue, symbol)]
        except KeyError:
            raise ValueError(
                f"{self.id}: no instrument {symbol!r} on venue {self.venue!r}"
            ) from None

    def position(self, symbol: str | None = None) -> Position:
        """This strategy's own position in `symbol` (default: the first symbol)."""
        return self.ctx.portfolio.position(self.venue, symbol or self.symbols[0], self.id)

    def open_orders(self, symbol: str | None = None) -> list[OrderView]:
        """Its open orders as the OMS sees them."""
        return self.ctx.gateway.open_orders(self.id, symbol)

    def is_open(self, client_order_id: str | None) -> bool:
        """True while an order it sent is not yet filled, rejected, canceled or expired."""
        return client_order_id is not None and client_order_id in self._orders

    def filled_qty(self, client_order_id: str) -> Decimal:
        """How much of an open order has filled so far (0 for an unknown or done one)."""
        order = self._orders.get(client_order_id)
        return Decimal(0) if order is None else order.filled

    def has_open_orders(self, symbol: str | None = None) -> bool:
        if symbol is None:
            return bool(self._orders)
        return any(o.symbol == symbol for o in self._orders.values())

    # -- actions ----------------------------------------------------------------------

    def order_request(
        self, side: str, symbol: str, qty: Number, *, price: Number | None = None, **kw: Any
    ) -> OrderRequest:
        """An OrderRequest on the instrument's grid. Without `order_type`: LIMIT if
        `price` is given, STOP_* if `trigger_price` is, else MARKET."""
        return self._request(side, symbol, qty, price, kw)

    def buy(self, symbol: str, qty: Number, *, price: Number | None = None, **kw: Any) -> str:
        """Buy `qty` (market; `price=` makes it a limit). Returns the client order id."""
        return self._send(self._request(BUY, symbol, qty, price, kw))

    def sell(self, symbol: str, qty: Number, *, price: Number | None = None, **kw: Any) -> str:
        """Sell `qty` (market; `price=` makes it a limit). Returns the client order id."""
        return self._send(self._request(SELL, symbol, qty, price, kw))

    def submit(self, request: OrderRequest) -> str:
        """Send a ready-made request; returns its client order id (also on a risk refusal,
        which arrives as `OrderRejected` in `on_order`)."""
        self._check_request(request)
        return self._send(request)

    def _request(self, side: str, symbol: str, qty: Number, price: Number | None,
                 kw: dict[str, Any]) -> OrderRequest:
        if side != BUY and side != SELL:
            raise ValueError(f"{self.id}: side must be BUY or SELL, got {side!r}")
        grid = self._grid_for(symbol)
        if not ("trigger_price" in kw or "trailing_offset" in kw or "order_type" in kw):
            # a market or limit order: the terms it leaves at their defaults not passed
            return OrderRequest(
                venue=self.venue, symbol=symbol, side=side, qty=self._round_qty(grid, qty),
                order_type=MARKET if price is None else LIMIT,
                price=None if price is None else self._round_price(grid, price, side), **kw)
        trigger = kw.pop("trigger_price", None)
        offset = kw.pop("trailing_offset", None)
        order_type = kw.pop("order_type", None)
        if order_type is None:
            if trigger is not None:
                order_type = STOP_MARKET if price is None else STOP_LIMIT
            else:
                order_type = MARKET if price is None else LIMIT
        return OrderRequest(
            venue=self.venue,
            symbol=symbol,
            side=side,
            qty=self._round_qty(grid, qty),
            order_type=order_type,
            price=None if price is None else self._round_price(grid, price, side),
            trigger_price=None if trigger is None else self._round_price(grid, trigger, side),
            trailing_offset=None if offset is None else self._round_offset(grid.inst, offset),
            **kw,
        )

    def _send(self, request: OrderRequest) -> str:
        """Submit a request already checked (built by `_request`, or by `submit`)."""
        self._submitting += 1
        try:
            cid = self.ctx.gateway.submit(self.id, request)
        finally:
            self._submitting -= 1
        self._track(cid, request)
        return cid

    def bracket(
        self,
        side: str,
        symbol: str,
        qty: Number,
        *,
        stop_price: Number,
        target_price: Number,
        price: Number | None = None,
    ) -> tuple[str, str, str]:
        """Entry (market, or limit at `price`), then once it fills a protective stop
        (STOP_MARKET at `stop_price`) and a target (LIMIT at `target_price`) as an OCO
        pair, both reduce-only. Returns (entry, stop, target) ids."""
        exit_side = SELL if side == BUY else BUY
        entry = self.order_request(side, symbol, qty, price=price)
        stop = self.order_request(
            exit_side, symbol, entry.qty, trigger_price=stop_price, reduce_only=True
        )
        target = self.order_request(
            exit_side, symbol, entry.qty, price=target_price, reduce_only=True
        )
        for request in (entry, stop, target):
            self._check_request(request)
        self._submitting += 1
        try:
            ids = self.ctx.gateway.submit_bracket(self.id, entry, stop, target)
        finally:
            self._submitting -= 1
        for cid, request in zip(ids, (entry, stop, target), strict=True):
            self._track(cid, request)
        return ids

    def oco(self, a: OrderRequest, b: OrderRequest) -> tuple[str, str]:
        """Two orders; a fill of one cancels the other (build them with `order_request`)."""
        self._check_request(a)
        self._check_request(b)
        self._submitting += 1
        try:
            ids = self.ctx.gateway.submit_oco(self.id, a, b)
        finally:
            self._submitting -= 1
        self._track(ids[0], a)
        self._track(ids[1], b)
        return ids

    def cancel(self, client_order_id: str) -> None:
        self.ctx.gateway.cancel(self.id, client_order_id)

    def amend(
        self,
        client_order_id: str,
        *,
        qty: Number | None = None,
        price: Number | None = None,
        trigger_price: Number | None = None,
    ) -> None:
        """Change an open order's qty and/or prices (None keeps it), on the grid
        (prices in the order's favour, as `order_request` rounds them)."""
        order: _Order | OrderView | None = self._orders.get(client_order_id)
        if order is None:  # not tracked here (sent through the gateway itself?)
            order = next((v for v in self.ctx.gateway.open_orders(self.id)
                          if v.client_order_id == client_order_id), None)
        if order is None:  # not open: the gateway refuses it in its own words
            self.ctx.gateway.amend(
                self.id, client_order_id, qty=None if qty is None else to_decimal(qty),
                price=None if price is None else to_decimal(price),
                trigger_price=None if trigger_price is None else to_decimal(trigger_price))
            return
        side = order.side
        grid = self._grid_for(order.symbol)
        self.ctx.gateway.amend(
            self.id,
            client_order_id,
            qty=None if qty is None else self._round_qty(grid, qty),
            price=None if price is None else self._round_price(grid, price, side),
            trigger_price=None
            if trigger_price is None
            else self._round_price(grid, trigger_price, side),
        )

    def cancel_all(self, symbol: str | None = None) -> int:
        """Cancel every open order (of `symbol`, if given); returns how many."""
        orders = self.ctx.gateway.open_orders(self.id, symbol)
        for order in orders:
            self.ctx.gateway.cancel(self.id, order.client_order_id)
        return len(orders)

    def set_timer(
        self, name: str, *, at_ns: int | None = None, every_ns: int | None = None
    ) -> None:
        """Call `on_timer` at `at_ns`, and/or every `every_ns` (first at `at_ns`, else
        one period from now). A timer of the same name is replaced."""
        if every_ns is not None and every_ns <= 0:
            raise ValueError(f"{self.id}: timer {name!r}: every_ns must be positive")
        if at_ns is None:
            if every_ns is None:
                raise ValueError(f"{self.id}: timer {name!r}: give at_ns and/or every_ns")
            at_ns = self.now_ns() + every_ns
        self.ctx.set_timer(name, at_ns, every_ns or 0)

    def cancel_timer(self, name: str) -> None:
        self.ctx.cancel_timer(name)

    def stop(self, reason: str = "") -> None:
        """Stop this strategy (e.g. an execution algorithm that is done): the runtime
        calls `on_stop`, saves state and publishes `StrategyStatus(stopped)`."""
        self.ctx.request_stop(reason)

    # -- internals (the runtime calls these) ---------------------------------------------

    def _instrument_for(self, symbol: str) -> Instrument:
        if symbol not in self.symbols:
            raise ValueError(
                f"{self.id}: symbol {symbol!r} is not one of its symbols {list(self.symbols)}"
            )
        return self.instrument(symbol)

    def _grid_for(self, symbol: str) -> Grid:
        """The rounding of one of its symbols (daemon.strategies.grid), made again
        when the node's instrument for it is replaced."""
        grid = self._grids.get(symbol)
        if grid is None or grid.inst is not self.ctx.instruments.get(grid.key):
            grid = self._grids[symbol] = Grid(self._instrument_for(symbol), (self.venue, symbol))
        return grid

    def _round_qty(self, grid: Grid, qty: Number) -> Decimal:
        rounded = grid.qty(qty)
        if rounded <= 0:
            raise ValueError(
                f"{self.id}: quantity {qty} rounds down to 0 on {grid.inst.symbol}'s step "
                f"{grid.inst.step_size}"
            )
        return rounded

    def _round_price(self, grid: Grid, price: Number, side: str) -> Decimal:
        try:
            return grid.order_price(price, side)
        except ValueError as exc:
            raise ValueError(f"{self.id}: {exc}") from None

    def _round_offset(self, inst: Instrument, offset: Number) -> Decimal:
        try:
            return inst.round_offset(to_decimal(offset))
        except ValueError as exc:
            raise ValueError(f"{self.id}: {exc}") from None

    def _check_request(self, request: OrderRequest) -> None:
        if request.venue != self.venue:
            raise ValueError(f"{self.id}: order for venue {request.venue!r}, not {self.venue!r}")
        self._instrument_for(request.symbol)

    def _track(self, cid: str, request: OrderRequest) -> _Order | None:
        order = self._orders[cid] = _Order(request.symbol, request.side, request.qty)
        if self._early:
            for event in self._early.pop(cid, ()):
                self._apply_order_event(event)
            return self._orders.get(cid)
        return order

    def _adopt_open_orders(self) -> None:
        """Track the orders the OMS still holds for it (after a restart), declared
        contingent ones (a bracket's protection waiting for its entry) included."""
        gateway = self.ctx.gateway
        working = getattr(gateway, "working_orders", None)
        views = working(self.id) if working is not None else gateway.open_orders(self.id)
        for view in views:
            order = _Order(view.symbol, view.side, view.qty)
            order.filled = view.filled_qty
            self._orders[view.client_order_id] = order

    def _apply_order_event(self, event: Any) -> None:
        cid = event.client_order_id
        order = self._orders.get(cid)
        if order is None:
            if self._submitting:
                self._early.setdefault(cid, []).append(event)
            return
        cls = event.__class__
        if cls is Fill:
            order.filled += event.qty
            done = order.filled >= order.qty
        elif cls is OrderAmended or cls is OrderSubmitted:
            # amended; or a bracket leg submitted sized to what its entry filled
            order.qty = event.qty
            done = order.filled >= order.qty
        else:
            done = cls in _TERMINAL
        if done:
            # (a bracket's legs end with their own events: the OMS cancels them when
            # the entry dies unfilled)
            del self._orders[cid]
