"""Policies: what the order book's state demands of the OMS (events in, commands out).

"Policies receive events and issue commands" (eventsourcing): the fold
(`daemon.trading.order_book`) only records facts; these functions say what those
facts call for, and the live OMS carries it out. They never run while the journal is
folded at start. They are written as functions of the folded STATE, not of the event
that triggered them, so they are idempotent: after a restart the OMS asks them once
more about every order (`sweep`), which completes whatever a crash interrupted (a
sibling left uncanceled, a bracket's children not yet submitted) and, because a
command already journaled has changed the state, never repeats one.

Contingencies
- OCO: once either leg has filled (any amount), the other legs still open are
  canceled (one cancel: not while one is pending).
- Bracket (OTO): the entry's stop and target are declared with it; when the entry is
  finished (filled, or canceled/expired after partial fills) they are submitted as an
  OCO pair sized to what the entry actually filled (less a fee the venue took in the
  base asset, rounded down to the step); an entry that ends with nothing filled
  cancels them, unsubmitted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from daemon.trading.order_book import OrderBook
from daemon.trading.orders import DECLARED, Order
from events.orders import BUY

OCO = "OCO"
OTO = "OTO"


@dataclass(frozen=True, slots=True)
class CancelSibling:
    order: Order
    reason: str


@dataclass(frozen=True, slots=True)
class ReleaseChild:
    order: Order
    qty: Decimal


@dataclass(frozen=True, slots=True)
class DropChild:
    order: Order
    reason: str


Command = CancelSibling | ReleaseChild | DropChild

# a finished entry -> the quantity its protective children get
Sizer = Callable[[Order], Decimal]


def demands(book: OrderBook, order: Order, size: Sizer) -> list[Command]:
    """The commands `order`'s contingencies call for in the book's current state."""
    out: list[Command] = []
    if order.contingency == OCO and order.filled_qty > 0:
        for cid in order.linked_order_ids:
            sibling = book.orders.get(cid)
            if sibling is not None and sibling.is_open and not sibling.cancel_pending:
                out.append(CancelSibling(sibling, f"OCO: {order.client_order_id} filled"))
    if order.contingency == OTO and order.is_done:
        children = [c for cid in order.linked_order_ids
                    if (c := book.orders.get(cid)) is not None and c.state == DECLARED]
        qty = size(order) if order.filled_qty > 0 else Decimal(0)
        for child in children:
            if qty > 0:
                out.append(ReleaseChild(child, qty))
            else:
                out.append(DropChild(child, f"parent {order.client_order_id} "
                                            f"{order.state} with nothing filled"))
    return out


def sweep(book: OrderBook, size: Sizer) -> Iterable[Command]:
    """Every command the whole book calls for (after recovery)."""
    for order in list(book.orders.values()):
        if order.contingency:
            yield from demands(book, order, size)


def net_filled(order: Order, base: str | None, round_qty: Callable[[Decimal], Decimal]
               ) -> Decimal:
    """What a filled entry put in the account: its filled qty, less a fee the venue
    took in the base asset on a buy, on the instrument's step."""
    qty = order.filled_qty
    if order.side == BUY and base is not None:
        qty -= order.fees.get(base, Decimal(0))
    return round_qty(qty) if qty > 0 else Decimal(0)
