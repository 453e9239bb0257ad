"""The order manager: the only way orders enter tapeloop.

`submit` gives each order a deterministic client order id
(`"{strategy_id}-{n}"`, n counting from 1 per strategy), asks the risk engine,
and publishes `OrderSubmitted` (or, when risk refuses, `OrderRejected` naming
the check). The OMS's own state is a fold over bus events: it learns of an order
from the `OrderSubmitted` it published, exactly as it does when recovery replays
the journal through `apply`, so restart and live share one code path and a
resend after a crash finds the order by its id instead of doubling it.

Contingencies: OCO (a fill of either leg cancels the other) and brackets (an
entry whose fill submits its stop and target as an OCO pair).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import msgspec
import structlog

from daemon.trading.api import OrderRequest
from daemon.trading.orders import (
    ACCEPT,
    AMEND,
    CANCEL,
    EXPIRE,
    REJECT,
    IllegalTransition,
    Order,
)
from events.base import Event
from events.bus import Bus
from events.orders import (
    AmendOrder,
    AmendRejected,
    CancelOrder,
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)

log = structlog.get_logger("tapeloop.oms")

OCO = "OCO"
OTO = "OTO"


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
                 risk: RiskGate | None = None) -> None:
        self.publish = publish
        self.now_ns = now_ns
        self.risk = risk
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}
        self._counters: dict[str, int] = {}
        # entry client id -> (stop, target) requests, submitted when the entry fills
        self._brackets: dict[str, tuple[OrderRequest, OrderRequest]] = {}
        self._seen_fills: set[tuple[str, str]] = set()
        # submitted, not yet dispatched (a strategy acting from inside a handler)
        self._in_flight: dict[str, OrderSubmitted] = {}

    def subscribe(self, bus: Bus) -> None:
        for cls, handler in self._handlers().items():
            bus.subscribe(cls, handler)

    def _handlers(self) -> dict[type[Event], Callable[[Any], None]]:
        return {
            OrderSubmitted: self._on_submitted,
            OrderRejected: self._on_rejected,
            OrderAccepted: self._on_accepted,
            OrderCanceled: self._on_canceled,
            OrderExpired: self._on_expired,
            OrderAmended: self._on_amended,
            Fill: self._on_fill,
            CancelOrder: self._on_cancel_requested,
            CancelRejected: self._on_cancel_rejected,
            AmendRejected: self._on_amend_rejected,
        }

    def apply(self, event: Event) -> None:
        """Fold one journaled event into the state (recovery)."""
        handler = self._handlers().get(type(event))
        if handler is not None:
            handler(event)

    # -- ids --------------------------------------------------------------------

    def next_client_order_id(self, strategy_id: str) -> str:
        n = self._counters.get(strategy_id, 0) + 1
        self._counters[strategy_id] = n
        return f"{strategy_id}-{n}"

    def note_id(self, client_order_id: str) -> None:
        """Never issue `client_order_id` (or a lower number of its strategy) again."""
        self._note_id(client_order_id)

    def _note_id(self, client_order_id: str) -> None:
        strategy_id, _, n = client_order_id.rpartition("-")
        if n.isdigit() and int(n) > self._counters.get(strategy_id, 0):
            self._counters[strategy_id] = int(n)

    # -- requests (the OrderGateway protocol) -----------------------------------

    def submit(self, strategy_id: str, request: OrderRequest) -> str:
        client_order_id = self.next_client_order_id(strategy_id)
        self._submit(strategy_id, client_order_id, request)
        return client_order_id

    def _submit(self, strategy_id: str, client_order_id: str, request: OrderRequest) -> None:
        now = self.now_ns()
        if self.risk is not None:
            refusal = self.risk.check(strategy_id, request, self.open_orders())
            if refusal is not None:
                self.publish(OrderRejected(
                    ts_event=now, ts_recv=now, venue=request.venue, symbol=request.symbol,
                    strategy_id=strategy_id, client_order_id=client_order_id,
                    reason=refusal.reason, check=refusal.check, side=request.side,
                    order_type=request.order_type, qty=request.qty, price=request.price,
                ))
                return
        self._in_flight[client_order_id] = submitted = OrderSubmitted(
            ts_event=now, ts_recv=now, venue=request.venue, symbol=request.symbol,
            strategy_id=strategy_id, client_order_id=client_order_id, side=request.side,
            order_type=request.order_type, qty=request.qty, price=request.price,
            trigger_price=request.trigger_price, time_in_force=request.time_in_force,
            expire_ts=request.expire_ts, post_only=request.post_only,
            reduce_only=request.reduce_only, trailing_offset=request.trailing_offset,
            parent_order_id=request.parent_order_id, contingency=request.contingency,
            linked_order_ids=list(request.linked_order_ids),
        )
        self.publish(submitted)

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
        """Entry now; stop and target (an OCO pair) once the entry has filled.
        The ids of all three are fixed now so the strategy can follow them."""
        entry_id = self.next_client_order_id(strategy_id)
        stop_id = self.next_client_order_id(strategy_id)
        target_id = self.next_client_order_id(strategy_id)
        self._brackets[entry_id] = (
            msgspec.structs.replace(stop, contingency=OCO, linked_order_ids=(target_id,),
                                    parent_order_id=entry_id),
            msgspec.structs.replace(target, contingency=OCO, linked_order_ids=(stop_id,),
                                    parent_order_id=entry_id),
        )
        self._submit(strategy_id, entry_id, msgspec.structs.replace(
            entry, contingency=OTO, linked_order_ids=(stop_id, target_id)))
        return entry_id, stop_id, target_id

    def cancel(self, strategy_id: str, client_order_id: str, reason: str = "") -> None:
        order = self._own_open(strategy_id, client_order_id)
        if order is None or getattr(order, "cancel_pending", False):
            return  # already closed or a cancel is on its way: nothing to do
        now = self.now_ns()
        self.publish(CancelOrder(ts_event=now, ts_recv=now, venue=order.venue,
                                 symbol=order.symbol, strategy_id=order.strategy_id,
                                 client_order_id=client_order_id, reason=reason))

    def amend(self, strategy_id: str, client_order_id: str, *, qty: Decimal | None = None,
              price: Decimal | None = None, trigger_price: Decimal | None = None) -> None:
        order = self._own_open(strategy_id, client_order_id)
        if order is None:
            raise OMSError(f"order {client_order_id} is not open")
        now = self.now_ns()
        self.publish(AmendOrder(ts_event=now, ts_recv=now, venue=order.venue,
                                symbol=order.symbol, strategy_id=order.strategy_id,
                                client_order_id=client_order_id, qty=qty, price=price,
                                trigger_price=trigger_price))

    def cancel_all(self, strategy_id: str | None = None, symbol: str | None = None,
                   reason: str = "") -> None:
        for order in self.open_orders(strategy_id, symbol):
            self.cancel(order.strategy_id, order.client_order_id, reason)

    def open_orders(self, strategy_id: str | None = None,
                    symbol: str | None = None) -> list[Order]:
        return [o for o in self._open.values()
                if (strategy_id is None or o.strategy_id == strategy_id)
                and (symbol is None or o.symbol == symbol)]

    def _own_open(self, strategy_id: str, client_order_id: str) -> Any:
        """The open order (or, while its `OrderSubmitted` still waits in the bus
        queue, that event: a cancel published now is dispatched after it); None
        when closed, or refused by risk; OMSError for an id never issued."""
        order = self.orders.get(client_order_id)
        if order is None:
            pending = self._in_flight.get(client_order_id)
            if pending is not None and pending.strategy_id == strategy_id:
                return pending
            sid, _, n = client_order_id.rpartition("-")
            if sid == strategy_id and n.isdigit() and int(n) <= self._counters.get(sid, 0):
                return None  # issued, then refused by risk: never an open order
            raise OMSError(f"unknown order {client_order_id}")
        if order.strategy_id != strategy_id:
            raise OMSError(f"order {client_order_id} belongs to {order.strategy_id}")
        return order if order.is_open else None

    # -- the fold ------------------------------------------------------------------

    def _on_submitted(self, e: OrderSubmitted) -> None:
        self._in_flight.pop(e.client_order_id, None)
        if e.client_order_id in self.orders:
            return  # the same intent seen twice (a recovered journal replayed): one order
        self._note_id(e.client_order_id)
        order = Order(
            client_order_id=e.client_order_id, strategy_id=e.strategy_id, venue=e.venue,
            symbol=e.symbol, side=e.side, order_type=e.order_type, qty=e.qty, price=e.price,
            trigger_price=e.trigger_price, time_in_force=e.time_in_force,
            post_only=e.post_only, reduce_only=e.reduce_only, contingency=e.contingency,
            linked_order_ids=tuple(e.linked_order_ids), parent_order_id=e.parent_order_id,
            ts_submitted=e.ts_event,
        )
        self.orders[e.client_order_id] = order
        self._open[e.client_order_id] = order

    def _order(self, e: Any) -> Order | None:
        order = self.orders.get(e.client_order_id)
        if order is None:
            log.warning("oms.unknown_order", event=type(e).__name__,
                        client_order_id=e.client_order_id, venue=e.venue)
        return order

    def _move(self, e: Any, trigger: str) -> Order | None:
        order = self._order(e)
        if order is None:
            return None
        order.apply(trigger)
        order.ts_last = e.ts_event
        if not order.is_open:
            self._closed(order)
        return order

    def _on_rejected(self, e: OrderRejected) -> None:
        if e.client_order_id not in self.orders:
            self._note_id(e.client_order_id)  # refused by risk: never an open order
            self._brackets.pop(e.client_order_id, None)
            return
        self._move(e, REJECT)

    def _on_accepted(self, e: OrderAccepted) -> None:
        order = self._order(e)
        if order is None:
            return
        if order.state != "submitted":
            return  # a late or repeated acknowledgement changes nothing
        self._move(e, ACCEPT)
        order.venue_order_id = e.venue_order_id

    def _on_canceled(self, e: OrderCanceled) -> None:
        order = self._order(e)
        if order is not None and order.is_open:
            self._move(e, CANCEL)

    def _on_expired(self, e: OrderExpired) -> None:
        order = self._order(e)
        if order is not None and order.is_open:
            self._move(e, EXPIRE)

    def _on_amended(self, e: OrderAmended) -> None:
        order = self._move(e, AMEND)
        if order is not None:
            order.qty = e.qty
            if e.price is not None:
                order.price = e.price
            if e.trigger_price is not None:
                order.trigger_price = e.trigger_price

    def _on_cancel_requested(self, e: CancelOrder) -> None:
        order = self.orders.get(e.client_order_id)
        if order is not None:
            order.cancel_pending = True

    def _on_cancel_rejected(self, e: CancelRejected) -> None:
        order = self.orders.get(e.client_order_id)
        if order is not None:
            order.cancel_pending = False
        log.info("oms.cancel_rejected", client_order_id=e.client_order_id, reason=e.reason)

    def _on_amend_rejected(self, e: AmendRejected) -> None:
        log.info("oms.amend_rejected", client_order_id=e.client_order_id, reason=e.reason)

    def has_fill(self, venue: str, trade_id: str) -> bool:
        """True when a fill with this venue trade id was already applied (live
        or folded from the journal): a live adapter never publishes it again."""
        return (venue, trade_id) in self._seen_fills

    def _on_fill(self, e: Fill) -> None:
        key = (e.venue, e.trade_id)
        if key in self._seen_fills:
            return  # a venue repeating itself: one execution, one fill
        self._seen_fills.add(key)
        order = self._order(e)
        if order is None:
            return
        try:
            order.add_fill(e.qty, e.price)
        except IllegalTransition:
            log.error("oms.illegal_fill", client_order_id=e.client_order_id, state=order.state,
                      qty=str(e.qty))
            raise
        order.ts_last = e.ts_event
        if not order.is_open:
            self._closed(order)
        if order.contingency == OCO:
            for other in order.linked_order_ids:
                linked = self.orders.get(other)
                if linked is not None and linked.is_open:
                    self.cancel(linked.strategy_id, other,
                                reason=f"OCO: {order.client_order_id} filled")
        if order.state == "filled" and order.client_order_id in self._brackets:
            stop, target = self._brackets.pop(order.client_order_id)
            stop_id, target_id = order.linked_order_ids
            self._submit(order.strategy_id, stop_id, stop)
            self._submit(order.strategy_id, target_id, target)

    def _closed(self, order: Order) -> None:
        self._open.pop(order.client_order_id, None)
        if order.state != "filled":
            self._brackets.pop(order.client_order_id, None)
