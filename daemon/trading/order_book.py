"""The OMS's state as a pure fold of order events: `OrderBook.apply(event)`.

Owns every order the account ever had (`Order` records driven by the transition table
in `daemon.trading.orders`), which open ones are at (or on their way to) a venue, the
venue trades applied to them, the client-order-id counters, and the quarantine.

`apply` is the one fold: the live OMS calls it for each new event, recovery calls it for
each journaled event, and it does nothing else. It publishes nothing, sends nothing and
never raises on an event: an event the table cannot place (a fill for an unknown order,
a fill that would overfill, an acknowledgement of a declared order, a client order id
submitted twice...) is *quarantined*: logged with the event, kept in `quarantine`, and
otherwise ignored. What to do about it (halt trading) is the OMS's policy, not the
fold's.

Fills are applied once per venue trade: the key is (venue, symbol, trade id), since
venues number trades per symbol (Binance does). `fill_seq(venue, symbol, trade_id)` is
the seq of the one `Fill` event applied for that trade: the portfolio applies exactly
the fills the OMS applied (`OrderBook.fill_applied`), so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog

from daemon.trading.orders import (
    ACCEPT,
    AMEND,
    CANCEL,
    CANCEL_REJECT,
    CANCEL_REQUEST,
    DECLARED,
    EXPIRE,
    OPEN_STATES,
    REJECT,
    RELEASE,
    SUBMITTED,
    IllegalTransition,
    Order,
)
from events.base import Event
from events.orders import (
    BUY,
    SELL,
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
    OrderTerms,
)

log = structlog.get_logger("tapeloop.oms")

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An event the order table could not place, and why."""

    seq: int
    event_type: str
    client_order_id: str
    reason: str


class OrderBook:
    """Every order, folded from events (see the module doc)."""

    def __init__(self, id_prefix: str = "") -> None:
        self.id_prefix = id_prefix
        self.orders: dict[str, Order] = {}
        self.open: dict[str, Order] = {}  # at a venue or on the way: what risk counts
        self.counters: dict[str, int] = {}  # strategy id -> highest n issued
        self.fills: dict[tuple[str, str, str], int] = {}  # (venue, symbol, trade) -> seq
        self.quarantine: list[Quarantined] = []
        self.declared: dict[str, OrderDeclared] = {}  # contingent orders' full terms
        # the id `issue` gave last: counted already, so its fold skips `note_id`
        self._issued_last = ""
        self._fold: dict[type, Callable[[Any], None]] = {
            OrderSubmitted: self._submitted,
            OrderDeclared: self._declared,
            OrderRejected: self._rejected,
            OrderAccepted: self._accepted,
            OrderCanceled: self._canceled,
            OrderExpired: self._expired,
            OrderAmended: self._amended,
            Fill: self._fill,
            CancelOrder: self._cancel_requested,
            CancelRejected: self._cancel_rejected,
            AmendOrder: self._noop,
            AmendRejected: self._amend_rejected,
        }

    # -- ids ----------------------------------------------------------------------------

    def client_order_id(self, strategy_id: str, n: int) -> str:
        prefix = self.id_prefix
        return f"{prefix}-{strategy_id}-{n}" if prefix else f"{strategy_id}-{n}"

    def issue(self, strategy_id: str) -> str:
        """A new client order id for `strategy_id` (the next number), counted."""
        n = self.counters.get(strategy_id, 0) + 1
        self.counters[strategy_id] = n
        prefix = self.id_prefix  # (client_order_id, inlined: this is per order)
        cid = f"{prefix}-{strategy_id}-{n}" if prefix else f"{strategy_id}-{n}"
        self._issued_last = cid
        return cid

    def parse_id(self, client_order_id: str) -> tuple[str, int] | None:
        """(strategy id, n) of one of our client order ids; None for any other
        (another data directory's prefix, a foreign order)."""
        rest = client_order_id
        if self.id_prefix:
            head = f"{self.id_prefix}-"
            if not rest.startswith(head):
                return None
            rest = rest[len(head):]
        strategy_id, _, n = rest.rpartition("-")
        if not strategy_id or not n.isdigit():
            return None
        return strategy_id, int(n)

    def note_id(self, client_order_id: str) -> None:
        """Never issue `client_order_id` (or a lower number of its strategy) again."""
        if client_order_id == self._issued_last:
            return  # counted when issued (counters only grow): parsing it changes nothing
        parsed = self.parse_id(client_order_id)
        if parsed is not None and parsed[1] > self.counters.get(parsed[0], 0):
            self.counters[parsed[0]] = parsed[1]

    def issued(self, strategy_id: str, client_order_id: str) -> bool:
        """Whether we issued this id to `strategy_id` (as an order, or refused by risk)."""
        parsed = self.parse_id(client_order_id)
        return (parsed is not None and parsed[0] == strategy_id
                and parsed[1] <= self.counters.get(strategy_id, 0))

    # -- the fold -----------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Fold one order event into the state (anything else is ignored)."""
        fold = self._fold.get(type(event))
        if fold is not None:
            fold(event)

    def fill_applied(self, fill: Fill) -> bool:
        """Whether this very `Fill` event (by seq) is the one applied for its trade."""
        return self.fills.get((fill.venue, fill.symbol, fill.trade_id)) == fill.seq

    def has_fill(self, venue: str, symbol: str, trade_id: str) -> bool:
        return (venue, symbol, trade_id) in self.fills

    def _quarantine(self, e: Any, reason: str) -> None:
        entry = Quarantined(e.seq, type(e).__name__, getattr(e, "client_order_id", ""), reason)
        self.quarantine.append(entry)
        log.error("oms.quarantined", seq=e.seq, event_type=entry.event_type,
                  client_order_id=entry.client_order_id, reason=reason, payload=repr(e))

    def _new(self, e: OrderTerms, state: str) -> Order:
        # positional, in `Order`'s field order: a call with 16 keywords or more costs
        # msgspec about five times as much
        return Order(
            e.client_order_id, e.strategy_id, e.venue, e.symbol, e.side, e.order_type, e.qty,
            e.price, e.trigger_price, e.time_in_force, e.post_only, e.reduce_only,
            e.contingency, tuple(e.linked_order_ids), e.parent_order_id, e.ts_event, state,
            _ZERO, _ZERO, "", False, e.ts_event)

    def _track(self, order: Order) -> None:
        state = order.state
        if self.declared and state != DECLARED:
            self.declared.pop(order.client_order_id, None)
        if state in OPEN_STATES:  # order.is_open
            self.open[order.client_order_id] = order
        else:
            self.open.pop(order.client_order_id, None)

    def _submitted(self, e: OrderSubmitted) -> None:
        order = self.orders.get(e.client_order_id)
        if order is not None:
            if order.state != DECLARED:
                self._quarantine(e, f"client order id {e.client_order_id} submitted twice")
                return
            order.apply(RELEASE)  # a contingent order, sized now
            order.qty, order.price, order.trigger_price = e.qty, e.price, e.trigger_price
            order.ts_submitted = order.ts_last = e.ts_event
        else:
            if e.client_order_id != self._issued_last:  # (else counted when issued)
                self.note_id(e.client_order_id)
            order = self.orders[e.client_order_id] = self._new(e, SUBMITTED)
        self._track(order)

    def _declared(self, e: OrderDeclared) -> None:
        if e.client_order_id in self.orders:
            self._quarantine(e, f"client order id {e.client_order_id} declared twice")
            return
        self.note_id(e.client_order_id)
        self.orders[e.client_order_id] = self._new(e, DECLARED)
        self.declared[e.client_order_id] = e

    def _move(self, e: Any, trigger: str) -> Order | None:
        order = self.orders.get(e.client_order_id)
        if order is None:
            self._quarantine(e, f"unknown order {e.client_order_id}")
            return None
        try:
            order.apply(trigger)
        except IllegalTransition as exc:
            self._quarantine(e, str(exc))
            return None
        order.ts_last = e.ts_event
        self._track(order)
        return order

    def _rejected(self, e: OrderRejected) -> None:
        if e.client_order_id not in self.orders and e.check:
            self.note_id(e.client_order_id)  # refused by risk: never an order
            return
        self._move(e, REJECT)

    def _accepted(self, e: OrderAccepted) -> None:
        order = self._move(e, ACCEPT)
        if order is not None and e.venue_order_id and not order.venue_order_id:
            order.venue_order_id = e.venue_order_id

    def _canceled(self, e: OrderCanceled) -> None:
        self._move(e, CANCEL)

    def _expired(self, e: OrderExpired) -> None:
        self._move(e, EXPIRE)

    def _amended(self, e: OrderAmended) -> None:
        order = self.orders.get(e.client_order_id)
        if order is not None and order.is_open and e.qty < order.filled_qty:
            self._quarantine(e, f"amended qty {e.qty} below the filled {order.filled_qty}")
            return
        order = self._move(e, AMEND)
        if order is not None and order.is_open:
            order.qty = e.qty
            if e.price is not None:
                order.price = e.price
            if e.trigger_price is not None:
                order.trigger_price = e.trigger_price

    def _cancel_requested(self, e: CancelOrder) -> None:
        self._move(e, CANCEL_REQUEST)

    def _cancel_rejected(self, e: CancelRejected) -> None:
        if self._move(e, CANCEL_REJECT) is not None:
            log.info("oms.cancel_rejected", client_order_id=e.client_order_id, reason=e.reason)

    def _amend_rejected(self, e: AmendRejected) -> None:
        if e.client_order_id not in self.orders:
            self._quarantine(e, f"unknown order {e.client_order_id}")
            return
        log.info("oms.amend_rejected", client_order_id=e.client_order_id, reason=e.reason)

    def _noop(self, e: Event) -> None:
        return None

    def _fill(self, e: Fill) -> None:
        key = (e.venue, e.symbol, e.trade_id)
        if key in self.fills:
            return  # a venue repeating itself: one execution, one fill
        order = self.orders.get(e.client_order_id)
        if order is None:
            self._quarantine(e, f"fill for unknown order {e.client_order_id}")
            return
        problem = _fill_problem(order, e)
        if problem is not None:
            self._quarantine(e, problem)
            return
        try:
            order.add_fill(e.trade_id, e.qty, e.price, e.fee, e.fee_currency)
        except IllegalTransition as exc:
            self._quarantine(e, str(exc))
            return
        self.fills[key] = e.seq
        if e.venue_order_id and not order.venue_order_id:
            order.venue_order_id = e.venue_order_id
        order.ts_last = e.ts_event
        self._track(order)

    # -- views for invariants ------------------------------------------------------------

    def state(self) -> dict[str, tuple[Any, ...]]:
        """Every order as comparable plain data (the simulation tests compare a live
        book with one folded from the journal from scratch)."""
        return {cid: (o.state, o.qty, o.filled_qty, o.price, o.trigger_price,
                      o.venue_order_id, o.linked_order_ids, o.parent_order_id,
                      tuple(sorted(o.trade_ids)))
                for cid, o in self.orders.items()}


def _fill_problem(order: Order, e: Fill) -> str | None:
    if e.side not in (BUY, SELL) or e.side != order.side:
        return f"fill side {e.side} on a {order.side} order {order.client_order_id}"
    if (e.venue, e.symbol) != (order.venue, order.symbol):
        return f"fill on {e.venue}:{e.symbol} for an order on {order.venue}:{order.symbol}"
    if not (e.qty > 0 and e.price > 0):
        return f"fill qty {e.qty} at price {e.price}"
    return None

