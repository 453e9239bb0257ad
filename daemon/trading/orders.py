"""The order lifecycle: one transition table, and the order record it drives.

Nothing else decides an order's state: `Order.apply(trigger)` looks the move up
in `TRANSITIONS` and raises `IllegalTransition` for anything not in it.

    submitted → accepted → partially_filled → filled
        │           │             │
        └───────────┴─────────────┴──→ canceled | rejected | expired

A fill may arrive before its acknowledgement (venues do not order their
streams), so fills are legal from `submitted` too. Amendments keep the state.
"""

from __future__ import annotations

from decimal import Decimal

SUBMITTED = "submitted"
ACCEPTED = "accepted"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELED = "canceled"
REJECTED = "rejected"
EXPIRED = "expired"

OPEN_STATES = frozenset({SUBMITTED, ACCEPTED, PARTIALLY_FILLED})
TERMINAL_STATES = frozenset({FILLED, CANCELED, REJECTED, EXPIRED})

# triggers
ACCEPT = "accept"
REJECT = "reject"
FILL_PARTIAL = "fill_partial"
FILL_FULL = "fill_full"
CANCEL = "cancel"
EXPIRE = "expire"
AMEND = "amend"

TRANSITIONS: dict[tuple[str, str], str] = {
    (SUBMITTED, ACCEPT): ACCEPTED,
    (SUBMITTED, REJECT): REJECTED,
    (SUBMITTED, FILL_PARTIAL): PARTIALLY_FILLED,
    (SUBMITTED, FILL_FULL): FILLED,
    (SUBMITTED, CANCEL): CANCELED,
    (SUBMITTED, EXPIRE): EXPIRED,
    (ACCEPTED, FILL_PARTIAL): PARTIALLY_FILLED,
    (ACCEPTED, FILL_FULL): FILLED,
    (ACCEPTED, CANCEL): CANCELED,
    (ACCEPTED, EXPIRE): EXPIRED,
    (ACCEPTED, AMEND): ACCEPTED,
    (PARTIALLY_FILLED, FILL_PARTIAL): PARTIALLY_FILLED,
    (PARTIALLY_FILLED, FILL_FULL): FILLED,
    (PARTIALLY_FILLED, CANCEL): CANCELED,
    (PARTIALLY_FILLED, EXPIRE): EXPIRED,
    (PARTIALLY_FILLED, AMEND): PARTIALLY_FILLED,
}


class IllegalTransition(Exception):
    """An event that cannot happen to an order in its current state."""


class Order:
    """One order as the OMS knows it (implements `daemon.trading.api.OrderView`)."""

    __slots__ = (
        "client_order_id", "strategy_id", "venue", "symbol", "side", "order_type", "qty",
        "price", "trigger_price", "time_in_force", "post_only", "reduce_only",
        "filled_qty", "avg_fill_price", "venue_order_id", "state", "cancel_pending",
        "contingency", "linked_order_ids", "parent_order_id", "ts_submitted", "ts_last",
    )

    def __init__(self, *, client_order_id: str, strategy_id: str, venue: str, symbol: str,
                 side: str, order_type: str, qty: Decimal, price: Decimal | None,
                 trigger_price: Decimal | None, time_in_force: str, post_only: bool,
                 reduce_only: bool, contingency: str, linked_order_ids: tuple[str, ...],
                 parent_order_id: str, ts_submitted: int) -> None:
        self.client_order_id = client_order_id
        self.strategy_id = strategy_id
        self.venue = venue
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.qty = qty
        self.price = price
        self.trigger_price = trigger_price
        self.time_in_force = time_in_force
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.contingency = contingency
        self.linked_order_ids = linked_order_ids
        self.parent_order_id = parent_order_id
        self.filled_qty = Decimal(0)
        self.avg_fill_price = Decimal(0)
        self.venue_order_id = ""
        self.state = SUBMITTED
        self.cancel_pending = False
        self.ts_submitted = ts_submitted
        self.ts_last = ts_submitted

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    def apply(self, trigger: str) -> str:
        """Move to the state the table gives for `trigger`; returns it."""
        try:
            self.state = TRANSITIONS[(self.state, trigger)]
        except KeyError:
            raise IllegalTransition(
                f"order {self.client_order_id}: {trigger!r} is illegal in state {self.state!r}"
            ) from None
        return self.state

    def add_fill(self, qty: Decimal, price: Decimal) -> str:
        """Account a fill and apply the matching trigger."""
        total = self.filled_qty + qty
        if total > self.qty:
            raise IllegalTransition(
                f"order {self.client_order_id}: fills {total} exceed its qty {self.qty}"
            )
        self.avg_fill_price = (self.avg_fill_price * self.filled_qty + price * qty) / total
        self.filled_qty = total
        return self.apply(FILL_FULL if total == self.qty else FILL_PARTIAL)

    def __repr__(self) -> str:
        return (f"Order({self.client_order_id} {self.side} {self.qty} {self.symbol} "
                f"{self.order_type} {self.state} filled={self.filled_qty})")
