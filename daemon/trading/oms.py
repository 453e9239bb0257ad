"""The order manager: the only way orders enter tapeloop.

`submit` gives each order a client order id unique for ever on the account
(`"{prefix}-{strategy_id}-{n}"`: the prefix is the data directory's, n counts from 1 per
strategy), asks the risk engine, and publishes `OrderSubmitted` (or, when risk refuses,
`OrderRejected` naming the check).

State: an `OrderBook`, the pure fold of order events (daemon.trading.order_book).
Recovery folds the journal into it with `apply`; live, every new event is folded the
same way, and then the policies (daemon.trading.policies: OCO siblings, bracket
children) say what it calls for. Events the OMS publishes itself are folded the moment
they are published, so an order counts against the risk checks from its submission,
even while its `OrderSubmitted` still waits in the bus queue behind the event being
dispatched (a strategy placing three orders from one callback sees the first two).

An event the order table cannot place is quarantined by the fold; the OMS then calls
`on_quarantine` (the node halts trading and an alert goes out), and keeps running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import msgspec
import structlog

from daemon.trading.api import OrderRequest
from daemon.trading.order_book import OrderBook, Quarantined
from daemon.trading.orders import DECLARED, Order
from daemon.trading.policies import (
    OCO,
    OTO,
    CancelSibling,
    Command,
    DropChild,
    ReleaseChild,
    demands,
    net_filled,
    sweep,
)
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.orders import (
    AmendOrder,
    AmendRejected,
    CancelOrder,
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderDeclared,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)

log = structlog.get_logger("tapeloop.oms")

_T = TypeVar("_T", OrderSubmitted, OrderDeclared)

__all__ = ["OCO", "OMS", "OMSError", "OTO", "RiskGate"]

# the events whose fold can trigger a contingency policy
_CONTINGENT_TRIGGERS = (Fill, OrderCanceled, OrderExpired, OrderRejected)


class Rejection(Protocol):
    check: str
    reason: str


class RiskGate(Protocol):
    def check(self, strategy_id: str, order: OrderRequest,
              open_orders: list[Order]) -> Rejection | None: ...


class OMSError(Exception):
    """A strategy asked for something impossible (unknown order, not its own)."""


class OMS:
    def __init__(self, publish: Callable[[Event], object], now_ns: Callable[[], int],
                 risk: RiskGate | None = None, *, id_prefix: str = "",
                 instruments: Mapping[tuple[str, str], Instrument] | None = None) -> None:
        self.publish = publish
        self.now_ns = now_ns
        self.risk = risk
        self.book = OrderBook(id_prefix)
        self.instruments = dict(instruments or {})
        # what to do when the fold quarantines an event (the node halts trading)
        self.on_quarantine: Callable[[Quarantined], object] | None = None
        self._own: dict[int, Event] = {}  # published by us, folded already: skip once
        self._quarantined = 0  # entries of book.quarantine already handled

    @property
    def orders(self) -> dict[str, Order]:
        return self.book.orders

    def subscribe(self, bus: Bus) -> None:
        for cls in (OrderSubmitted, OrderDeclared, OrderRejected, OrderAccepted, OrderCanceled,
                    OrderExpired, OrderAmended, Fill, CancelOrder, CancelRejected, AmendOrder,
                    AmendRejected):
            bus.subscribe(cls, self._on_event)

    # -- the fold and the policies ------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Fold one journaled event into the state (recovery): nothing else."""
        self.book.apply(event)

    def _on_event(self, event: Event) -> None:
        if self._own.pop(id(event), None) is not None:
            return  # folded when we published it
        self.book.apply(event)
        self._react(event)

    def _react(self, event: Any) -> None:
        if len(self.book.quarantine) > self._quarantined:
            self._handle_quarantine()
        if type(event) in _CONTINGENT_TRIGGERS:
            order = self.book.orders.get(event.client_order_id)
            if order is not None and order.contingency:
                self._carry_out(demands(self.book, order, self._child_qty))

    def resume(self, quarantined_after: int = 0) -> None:
        """After recovery, before trading: complete what the folded state demands
        (contingencies a crash interrupted) and report quarantined events recorded
        after seq `quarantined_after` (the last trading-state change: a halt already
        answered earlier ones, and an operator may have resumed since)."""
        self._quarantined = sum(1 for q in self.book.quarantine if q.seq <= quarantined_after)
        if len(self.book.quarantine) > self._quarantined:
            self._handle_quarantine()
        self._carry_out(list(sweep(self.book, self._child_qty)))

    def _handle_quarantine(self) -> None:
        new = self.book.quarantine[self._quarantined:]
        self._quarantined = len(self.book.quarantine)
        if self.on_quarantine is not None:
            for entry in new:
                self.on_quarantine(entry)

    def _carry_out(self, commands: list[Command]) -> None:
        for command in commands:
            order = command.order
            if isinstance(command, CancelSibling):
                if order.is_open and not order.cancel_pending:
                    self._request_cancel(order, command.reason)
            elif order.state != DECLARED:
                continue  # done already (a command two triggers asked for)
            elif isinstance(command, ReleaseChild):
                request = self._request_of(order, command.qty)
                self._submit(order.strategy_id, order.client_order_id, request)
            elif isinstance(command, DropChild):
                self._drop(order, command.reason)

    def _child_qty(self, parent: Order) -> Decimal:
        inst = self.instruments.get((parent.venue, parent.symbol))
        if inst is None:
            return net_filled(parent, None, lambda q: q)
        return net_filled(parent, inst.base, inst.round_qty)

    def _emit(self, event: Event) -> Event:
        """Fold an event of ours now, then publish it (its dispatch skips the fold)."""
        self.book.apply(event)
        if len(self.book.quarantine) > self._quarantined:
            self._handle_quarantine()
        self._own[id(event)] = event
        try:
            self.publish(event)
        except BaseException:
            self._own.pop(id(event), None)
            raise
        return event

    # -- ids ----------------------------------------------------------------------------

    def next_client_order_id(self, strategy_id: str) -> str:
        return self.book.issue(strategy_id)

    def note_id(self, client_order_id: str) -> None:
        """Never issue `client_order_id` (or a lower number of its strategy) again."""
        self.book.note_id(client_order_id)

    def has_fill(self, venue: str, symbol: str, trade_id: str) -> bool:
        """True when this venue trade was already applied (live or folded from the
        journal): a live adapter never publishes it again."""
        return self.book.has_fill(venue, symbol, trade_id)

    def fill_applied(self, fill: Fill) -> bool:
        """Whether the OMS applied this very Fill (the portfolio's gate)."""
        return self.book.fill_applied(fill)

    # -- requests (the OrderGateway protocol) -------------------------------------------

    def submit(self, strategy_id: str, request: OrderRequest) -> str:
        client_order_id = self.next_client_order_id(strategy_id)
        self._submit(strategy_id, client_order_id, request)
        return client_order_id

    def _submit(self, strategy_id: str, client_order_id: str, request: OrderRequest) -> bool:
        now = self.now_ns()
        if self.risk is not None:
            refusal = self.risk.check(strategy_id, request, list(self.book.open.values()))
            if refusal is not None:
                self._emit(OrderRejected(
                    ts_event=now, ts_recv=now, venue=request.venue, symbol=request.symbol,
                    strategy_id=strategy_id, client_order_id=client_order_id,
                    reason=refusal.reason, check=refusal.check, side=request.side,
                    order_type=request.order_type, qty=request.qty, price=request.price,
                ))
                return False
        self._emit(_terms(OrderSubmitted, strategy_id, client_order_id, request, now))
        return True

    def submit_oco(self, strategy_id: str, a: OrderRequest, b: OrderRequest,
                   parent_order_id: str = "") -> tuple[str, str]:
        id_a = self.next_client_order_id(strategy_id)
        id_b = self.next_client_order_id(strategy_id)
        replace = msgspec.structs.replace
        self._submit(strategy_id, id_a, replace(a, contingency=OCO, linked_order_ids=(id_b,),
                                                parent_order_id=parent_order_id))
        self._submit(strategy_id, id_b, replace(b, contingency=OCO, linked_order_ids=(id_a,),
                                                parent_order_id=parent_order_id))
        return id_a, id_b

    def submit_bracket(self, strategy_id: str, entry: OrderRequest, stop: OrderRequest,
                       target: OrderRequest) -> tuple[str, str, str]:
        """Entry now; stop and target declared now (journaled, ids fixed) and submitted
        as an OCO pair once the entry has filled (see daemon.trading.policies)."""
        entry_id = self.next_client_order_id(strategy_id)
        stop_id = self.next_client_order_id(strategy_id)
        target_id = self.next_client_order_id(strategy_id)
        now = self.now_ns()
        replace = msgspec.structs.replace
        for cid, request, other in ((stop_id, stop, target_id), (target_id, target, stop_id)):
            child = replace(request, contingency=OCO, linked_order_ids=(other,),
                            parent_order_id=entry_id)
            self._emit(_terms(OrderDeclared, strategy_id, cid, child, now))
        entry = replace(entry, contingency=OTO, linked_order_ids=(stop_id, target_id))
        if not self._submit(strategy_id, entry_id, entry):
            for cid in (stop_id, target_id):  # the entry never became an order
                self._drop(self.book.orders[cid], f"parent {entry_id} refused by risk")
        return entry_id, stop_id, target_id

    def cancel(self, strategy_id: str, client_order_id: str, reason: str = "") -> None:
        order = self._own_order(strategy_id, client_order_id)
        if order is None or order.is_done:
            return  # refused by risk, or already finished: nothing to do
        if order.state == DECLARED:
            self._drop(order, reason or "canceled before its parent filled")
        elif not order.cancel_pending:
            self._request_cancel(order, reason)

    def _request_cancel(self, order: Order, reason: str) -> None:
        now = self.now_ns()
        self._emit(CancelOrder(ts_event=now, ts_recv=now, venue=order.venue,
                               symbol=order.symbol, strategy_id=order.strategy_id,
                               client_order_id=order.client_order_id, reason=reason))

    def _drop(self, order: Order, reason: str) -> None:
        """Cancel a declared order that no venue has seen (the OMS is its venue)."""
        now = self.now_ns()
        self._emit(OrderCanceled(ts_event=now, ts_recv=now, venue=order.venue,
                                 symbol=order.symbol, strategy_id=order.strategy_id,
                                 client_order_id=order.client_order_id, reason=reason))

    def amend(self, strategy_id: str, client_order_id: str, *, qty: Decimal | None = None,
              price: Decimal | None = None, trigger_price: Decimal | None = None) -> None:
        order = self._own_order(strategy_id, client_order_id)
        if order is None or not order.is_open:
            raise OMSError(f"order {client_order_id} is not open")
        now = self.now_ns()
        self._emit(AmendOrder(ts_event=now, ts_recv=now, venue=order.venue,
                              symbol=order.symbol, strategy_id=order.strategy_id,
                              client_order_id=client_order_id, qty=qty, price=price,
                              trigger_price=trigger_price))

    def cancel_all(self, strategy_id: str | None = None, symbol: str | None = None,
                   reason: str = "") -> None:
        for order in self.open_orders(strategy_id, symbol):
            self.cancel(order.strategy_id, order.client_order_id, reason)

    def open_orders(self, strategy_id: str | None = None,
                    symbol: str | None = None) -> list[Order]:
        """Orders at a venue or on their way there (submitted and not finished)."""
        if strategy_id is None and symbol is None:
            return list(self.book.open.values())  # what every order's risk check asks
        return [o for o in self.book.open.values()
                if (strategy_id is None or o.strategy_id == strategy_id)
                and (symbol is None or o.symbol == symbol)]

    def working_orders(self, strategy_id: str) -> list[Order]:
        """A strategy's unfinished orders: open ones and declared contingent ones."""
        return [o for o in self.book.orders.values()
                if o.strategy_id == strategy_id and not o.is_done]

    def children(self, strategy_id: str, parent_prefix: str) -> list[Order]:
        """A strategy's orders whose `parent_order_id` starts with `parent_prefix`,
        finished ones included, in submission order: an execution algorithm's
        journaled progress (daemon.strategies.parent). Scans every order: call it
        at a start, not per event."""
        return [o for o in self.book.orders.values()
                if o.strategy_id == strategy_id and o.parent_order_id.startswith(parent_prefix)]

    def _own_order(self, strategy_id: str, client_order_id: str) -> Order | None:
        """The order; None when risk refused the id; OMSError for an id never issued
        or another strategy's."""
        order = self.book.orders.get(client_order_id)
        if order is None:
            if self.book.issued(strategy_id, client_order_id):
                return None  # issued, then refused by risk: never an order
            raise OMSError(f"unknown order {client_order_id}")
        if order.strategy_id != strategy_id:
            raise OMSError(f"order {client_order_id} belongs to {order.strategy_id}")
        return order

    def _request_of(self, order: Order, qty: Decimal) -> OrderRequest:
        """A declared order's terms as a request of `qty` (its release)."""
        d = self.book.declared[order.client_order_id]
        return OrderRequest(
            venue=d.venue, symbol=d.symbol, side=d.side, qty=qty, order_type=d.order_type,
            price=d.price, trigger_price=d.trigger_price, time_in_force=d.time_in_force,
            expire_ts=d.expire_ts, post_only=d.post_only, reduce_only=d.reduce_only,
            trailing_offset=d.trailing_offset, parent_order_id=d.parent_order_id,
            contingency=d.contingency, linked_order_ids=tuple(d.linked_order_ids))


def _terms(cls: type[_T], strategy_id: str, client_order_id: str, request: OrderRequest,
           now: int) -> _T:
    """The event `cls` (OrderSubmitted, OrderDeclared) of `request`'s terms."""
    if not (request.expire_ts or request.post_only or request.reduce_only
            or request.parent_order_id or request.contingency or request.linked_order_ids
            or request.trailing_offset is not None):
        # a plain order (the order path's): the same event, the terms it leaves at
        # their defaults not passed (a call with 16 keywords or more costs msgspec
        # about five times as much as one with 15)
        return cls(
            ts_event=now, ts_recv=now, venue=request.venue, symbol=request.symbol,
            strategy_id=strategy_id, client_order_id=client_order_id, side=request.side,
            order_type=request.order_type, qty=request.qty, price=request.price,
            trigger_price=request.trigger_price, time_in_force=request.time_in_force,
        )
    return cls(
        ts_event=now, ts_recv=now, venue=request.venue, symbol=request.symbol,
        strategy_id=strategy_id, client_order_id=client_order_id, side=request.side,
        order_type=request.order_type, qty=request.qty, price=request.price,
        trigger_price=request.trigger_price, time_in_force=request.time_in_force,
        expire_ts=request.expire_ts, post_only=request.post_only,
        reduce_only=request.reduce_only, trailing_offset=request.trailing_offset,
        parent_order_id=request.parent_order_id, contingency=request.contingency,
        linked_order_ids=list(request.linked_order_ids),
    )
