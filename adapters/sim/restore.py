"""The simulated venue's books folded back from the journal (a paper restart).

A real exchange keeps its orders, balances and id counters while we restart;
the paper venue keeps them in the journal: `fold` reads the events one venue
published or was sent (requests, answers, fills, balance changes, in seq
order) into a `Folded` record, and `SimVenue.restore` installs that record.
The fold is pure: it publishes nothing and changes nothing but its record.

What it recovers, and from which events:

- every accepted order (OrderAccepted + its OrderSubmitted), with its terms
  after each OrderAmended, its filled quantity (Fill), and whether it is still
  open or was filled, canceled or expired; the newest `CLOSED_KEPT` closed
  ones are kept, as the live venue keeps them, so a late cancel gets the
  same "order already filled" answer;
- the requests nobody answered yet: an OrderSubmitted until its
  OrderAccepted/OrderRejected, a CancelOrder until its CancelRejected or the
  OrderCanceled that carries its reason, an AmendOrder until its
  OrderAmended/AmendRejected (first in, first answered, per order);
- the id counters: the highest venue order id (`{venue}-{n}`) and trade id
  (`{venue}-T{n}`) ever issued, so new ones never repeat an old one;
- each currency's total: the last BalanceChanged, plus any Fill journaled
  after it (a kill between a fill and its balance change);
- what a market order's reservation was per unit (the locked amount its
  acceptance added, from the BalanceChanged that followed it): the only
  reservation that depends on the market at the time.

`install` puts the record into a venue that has taken no request yet: open
orders rest in their book again with their reservations (`locked` is their
sum), unanswered requests are queued again with their arrival (their time plus
latency: at a restart after a pause they are due at the first market event),
and a currency the journal never mentions keeps the config's opening balance.

What the journal does not hold is the venue's memory of the market; it is
learnt again from the market events after the restart: the last price and
book; a restored limit order's place in the queue (queue_aware: unknown until
a quote shows its level, so on trade-only data it then fills only when the
market trades through it); a trailing stop's extreme (it trails again from
its last stated trigger); whether a STOP_LIMIT triggered (one that triggered
but has not filled waits for its trigger again; one that filled in part
rests as the limit it became).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from heapq import heappush
from typing import Any

from adapters.sim.accounts import Accounts
from adapters.sim.ledger import CLOSED_KEPT, Ledger
from adapters.sim.market import SymbolState
from adapters.sim.orders import CANCELED, EXPIRED, FILLED, OPEN, SimOrder, next_midnight_ns
from adapters.sim.perps import MarginBook
from adapters.sim.reservations import restored
from events.base import Event
from events.orders import (
    BUY,
    DAY,
    GTD,
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
from events.state import BalanceChanged

_ZERO = Decimal(0)

Request = OrderSubmitted | CancelOrder | AmendOrder


class RestoredOrder:
    """An accepted order as the journal left it."""

    __slots__ = ("sub", "venue_order_id", "accepted_ts", "qty", "price", "trigger", "filled",
                 "state", "accept_locked")

    def __init__(self, sub: OrderSubmitted, venue_order_id: str, accepted_ts: int) -> None:
        self.sub = sub
        self.venue_order_id = venue_order_id
        self.accepted_ts = accepted_ts  # the arrival time: a DAY order's day
        self.qty: Decimal = sub.qty
        self.price: Decimal | None = sub.price
        self.trigger: Decimal | None = sub.trigger_price
        self.filled = _ZERO
        self.state = OPEN
        # how much its acceptance locked (None: nothing journaled, or nothing locked)
        self.accept_locked: Decimal | None = None


class Folded:
    """One venue's books as the journal left them (see the module docstring)."""

    __slots__ = ("orders", "closed", "pending", "totals", "accepted", "trades", "balances_seen")

    def __init__(self) -> None:
        # client_order_id -> order, in acceptance order (open and kept closed ones)
        self.orders: dict[str, RestoredOrder] = {}
        self.closed: deque[str] = deque()  # closed ids, oldest first
        self.pending: dict[int, Request] = {}  # unanswered requests by journal position
        self.totals: dict[str, Decimal] = {}
        self.accepted = 0  # highest n of `{venue}-{n}`
        self.trades = 0  # highest n of `{venue}-T{n}`
        self.balances_seen = False


def _number(ident: str, prefix: str) -> int:
    """n of `{prefix}{n}`, or 0 for an id of another form."""
    if ident.startswith(prefix):
        tail = ident[len(prefix):]
        if tail.isdigit():
            return int(tail)
    return 0


class _Fold:
    __slots__ = ("out", "venue", "currencies", "kept", "queues", "locked", "awaiting", "n")

    def __init__(self, venue: str, currencies: Mapping[str, tuple[str, str]],
                 kept: int) -> None:
        self.out = Folded()
        self.venue = venue
        self.currencies = currencies
        self.kept = kept
        # (request type, client_order_id) -> positions of its unanswered requests
        self.queues: dict[tuple[type, str], deque[int]] = {}
        self.locked: dict[str, Decimal] = {}  # the last journaled locked per currency
        self.awaiting: RestoredOrder | None = None  # accepted; its lock not seen yet
        self.n = 0

    def request(self, ev: Request) -> None:
        self.n += 1
        self.out.pending[self.n] = ev
        self.queues.setdefault((type(ev), ev.client_order_id), deque()).append(self.n)

    def head(self, kind: type, cid: str) -> Request | None:
        queue = self.queues.get((kind, cid))
        return self.out.pending[queue[0]] if queue else None

    def answer(self, kind: type, cid: str) -> Request | None:
        """The oldest unanswered request of `kind` for `cid`, now answered."""
        queue = self.queues.get((kind, cid))
        if not queue:
            return None
        req = self.out.pending.pop(queue.popleft())
        if not queue:
            del self.queues[(kind, cid)]
        return req

    def close(self, cid: str, state: str) -> None:
        out = self.out
        order = out.orders.get(cid)
        if order is None or order.state != OPEN:
            return
        order.state = state
        out.closed.append(cid)
        if len(out.closed) > self.kept:
            out.orders.pop(out.closed.popleft(), None)

    def add(self, currency: str, amount: Decimal) -> None:
        totals = self.out.totals
        totals[currency] = totals.get(currency, _ZERO) + amount

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        return {OrderSubmitted: self.request, CancelOrder: self.request,
                AmendOrder: self.request, OrderAccepted: self.accepted,
                OrderRejected: self.rejected, Fill: self.fill, BalanceChanged: self.balance,
                OrderCanceled: self.canceled, CancelRejected: self.cancel_rejected,
                OrderExpired: self.expired, OrderAmended: self.amended,
                AmendRejected: self.amend_rejected}

    def accepted(self, ev: OrderAccepted) -> None:
        out = self.out
        out.accepted = max(out.accepted, _number(ev.venue_order_id, f"{self.venue}-"))
        sub = self.answer(OrderSubmitted, ev.client_order_id)
        if isinstance(sub, OrderSubmitted):
            order = RestoredOrder(sub, ev.venue_order_id, ev.ts_event)
            out.orders[ev.client_order_id] = order
            self.awaiting = order

    def rejected(self, ev: OrderRejected) -> None:
        self.answer(OrderSubmitted, ev.client_order_id)

    def balance(self, ev: BalanceChanged) -> None:
        awaiting = self.awaiting
        if awaiting is not None and ev.reason == "order":
            # the ledger publishes an acceptance's lock right after it
            awaiting.accept_locked = ev.locked - self.locked.get(ev.currency, _ZERO)
        self.awaiting = None
        self.out.totals[ev.currency] = ev.total
        self.locked[ev.currency] = ev.locked
        self.out.balances_seen = True

    def canceled(self, ev: OrderCanceled) -> None:
        cancel = self.head(CancelOrder, ev.client_order_id)
        # a cancel on request carries the request's reason; one the venue
        # decided (IOC, FOK, reduce-only) leaves the request waiting
        if isinstance(cancel, CancelOrder) and (cancel.reason or "requested") == ev.reason:
            self.answer(CancelOrder, ev.client_order_id)
        self.close(ev.client_order_id, CANCELED)

    def cancel_rejected(self, ev: CancelRejected) -> None:
        self.answer(CancelOrder, ev.client_order_id)

    def expired(self, ev: OrderExpired) -> None:
        self.close(ev.client_order_id, EXPIRED)

    def amended(self, ev: OrderAmended) -> None:
        self.answer(AmendOrder, ev.client_order_id)
        order = self.out.orders.get(ev.client_order_id)
        if order is not None:
            order.qty, order.price, order.trigger = ev.qty, ev.price, ev.trigger_price

    def amend_rejected(self, ev: AmendRejected) -> None:
        self.answer(AmendOrder, ev.client_order_id)

    def fill(self, ev: Fill) -> None:
        out = self.out
        out.trades = max(out.trades, _number(ev.trade_id, f"{self.venue}-T"))
        order = out.orders.get(ev.client_order_id)
        if order is not None:
            order.filled += ev.qty
            if order.filled >= order.qty:
                self.close(ev.client_order_id, FILLED)
        pair = self.currencies.get(ev.symbol)
        if pair is not None:
            # the BalanceChanged that follow a fill overwrite these; they
            # count only when the journal ends between the two
            notional = ev.price * ev.qty
            if ev.side == BUY:
                self.add(pair[0], ev.qty)
                self.add(pair[1], -notional)
            else:
                self.add(pair[0], -ev.qty)
                self.add(pair[1], notional)
            self.add(ev.fee_currency, -ev.fee)


def fold(venue: str, events: Iterable[Event], currencies: Mapping[str, tuple[str, str]],
         kept: int = CLOSED_KEPT) -> Folded:
    """The books of `venue` from `events` (any venues', in seq order);
    `currencies` maps each symbol to its (base, quote)."""
    f = _Fold(venue, currencies, kept)
    handlers = f.handlers()
    for ev in events:
        handler = handlers.get(type(ev))
        if handler is not None and ev.venue == venue:  # type: ignore[attr-defined]
            if f.awaiting is not None and type(ev) is not BalanceChanged:
                f.awaiting = None  # its lock, if any, came right after it
            handler(ev)
    return f.out


# -- installing the books in a venue ---------------------------------------------

Unlisted = SimOrder | OrderSubmitted | CancelOrder | AmendOrder


def install(folded: Folded, positions: Mapping[str, Decimal], ledger: Ledger, acc: Accounts,
            symbols: dict[str, SymbolState], unlisted: list[Unlisted], *, allow_short: bool,
            latency_ns: int, queue_aware: bool, received: int,
            perp: MarginBook | None = None,
            before_orders: Callable[[], object] | None = None) -> int:
    """Put `folded` into a venue that has taken no request yet: totals (a
    currency the journal never mentions keeps its opening balance), net
    positions, orders with their reservations, the request queues. Open
    orders and requests of a symbol not in `symbols` go to `unlisted`.
    Returns the venue's receipt counter after the re-queued requests.
    `before_orders` runs once the accounts are in and before the orders take
    their reservations (the margin account goes in there); `perp` prices a
    perpetual order's margin."""
    if folded.balances_seen:
        acc.total.update(folded.totals)
    acc.locked = {c: _ZERO for c in acc.total}
    acc.net = {s: Decimal(q) for s, q in positions.items() if s in symbols}
    if before_orders is not None:
        before_orders()
    orders = []
    for r in folded.orders.values():
        order = _reinstate(r, symbols.get(r.sub.symbol), acc, allow_short, perp)
        orders.append(order)
        if order.state == OPEN and order.symbol not in symbols:
            unlisted.append(order)
    ledger.reinstate(orders, list(folded.closed), folded.accepted, folded.trades)
    for req in folded.pending.values():
        st = symbols.get(req.symbol)
        if st is None:
            unlisted.append(req)
            continue
        # a request's arrival: its time plus latency, as when it was sent
        # (the market time it was sent at is not journaled); a restart after
        # a pause finds it due at the first market event
        received += 1
        heappush(st.pending, (req.ts_event + latency_ns, received, req))
    for st in symbols.values():
        st.regate(queue_aware)
        st.busy = bool(st.open or st.pending)
    return received


def _reinstate(r: RestoredOrder, st: SymbolState | None, acc: Accounts,
               allow_short: bool, perp: MarginBook | None) -> SimOrder:
    """The venue's order for `r`; an open one rests in `st`'s book again
    with its reservation locked (`st` None: the symbol is no longer listed)."""
    sub = r.sub
    tif = sub.time_in_force
    expire = sub.expire_ts if tif == GTD else (
        next_midnight_ns(r.accepted_ts) if tif == DAY else 0)
    order = SimOrder(sub, r.venue_order_id, expire)
    order.qty, order.price, order.trigger = r.qty, r.price, r.trigger
    order.filled, order.state = r.filled, r.state
    if order.state != OPEN or st is None:
        return order
    # a stop that filled has triggered; one that has not waits for its trigger
    order.live = order.live or order.filled > 0
    order.fresh = False  # it met the market at the event it arrived on
    if st.perp is not None and perp is not None:
        order.reserve_ccy, order.reserve_px = st.inst.settle, _perp_unit(perp, st, r)
    else:
        order.reserve_ccy, order.reserve_px = restored(st, sub, r.price, r.trigger,
                                                       r.accept_locked, allow_short)
    if order.reserve_px:
        order.reserved = order.remaining * order.reserve_px
        acc.lock(order.reserve_ccy, order.reserved)
    st.open[order.client_order_id] = order
    if expire and (not st.next_expiry or expire < st.next_expiry):
        st.next_expiry = expire
    return order


def _perp_unit(perp: MarginBook, st: SymbolState, r: RestoredOrder) -> Decimal:
    """A restored perpetual order's margin per contract: none if its acceptance
    reserved none (it reduced the position), else the margin at its current
    price or trigger, else (a market order) what its acceptance reserved."""
    if not r.accept_locked:
        return _ZERO
    px = perp.order_px(r.sub, None, r.price, r.trigger)
    if px is None:
        return r.accept_locked / r.sub.qty
    return perp.unit(st.perp, px)
