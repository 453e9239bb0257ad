"""The order lifecycle: one transition table, and the order record it drives.

Nothing else decides an order's state: `Order.apply(trigger)` looks the move up in
`TRANSITIONS` and raises `IllegalTransition` for anything not in it (the OMS's fold
turns that into a quarantined event, never an exception out of the fold).

    declared ──release──→ submitted → accepted → partially_filled → filled
                              │           │             │
                              └───────────┴──── cancel request ───→ pending_cancel
                              │           │             │                 │
                              └───────────┴─────────────┴─────────────────┴──→
                                                  canceled | rejected | expired

The table holds what real venues do, not only the happy path:
- a fill may come before its acknowledgement (venues do not order their streams);
- a fill may come after the cancel acknowledgement, or after an expiry (the
  venue matched the order while the cancel was on its way): it is applied; the
  order completes as FILLED if that fill completes it, else it stays where it is
  (NautilusTrader's table allows CANCELED -> FILLED for this reason);
- a rejection we inferred (a look-up that found no order yet) may be contradicted
  by the venue: an acknowledgement or a fill re-opens the order;
- late or repeated answers (an ack after a fill, a second cancel, a cancel
  refusal for a finished order) change nothing.
A cancel refusal returns a `pending_cancel` order to the open state its facts give
(`Order.open_state`). `declared` is a contingent order (a bracket's stop and
target) that no venue has seen: `release` submits it once its parent filled.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

import msgspec

DECLARED = "declared"
SUBMITTED = "submitted"
ACCEPTED = "accepted"
PARTIALLY_FILLED = "partially_filled"
PENDING_CANCEL = "pending_cancel"
FILLED = "filled"
CANCELED = "canceled"
REJECTED = "rejected"
EXPIRED = "expired"

# at a venue (or on its way there): what risk counts and cancels reach
OPEN_STATES = frozenset({SUBMITTED, ACCEPTED, PARTIALLY_FILLED, PENDING_CANCEL})
TERMINAL_STATES = frozenset({FILLED, CANCELED, REJECTED, EXPIRED})

# triggers
RELEASE = "release"  # a declared order is submitted (its parent filled)
ACCEPT = "accept"
REJECT = "reject"
FILL_PARTIAL = "fill_partial"
FILL_FULL = "fill_full"
CANCEL = "cancel"  # the venue (or, for a declared order, the OMS) canceled it
EXPIRE = "expire"
AMEND = "amend"  # the venue confirmed an amendment
CANCEL_REQUEST = "cancel_request"  # we asked for a cancel (CancelOrder journaled)
CANCEL_REJECT = "cancel_reject"  # the venue refused the cancel

RESUME = "<open state>"  # target: back to the open state the order's facts give


def _table() -> dict[tuple[str, str], str]:
    t: dict[tuple[str, str], str] = {
        (DECLARED, RELEASE): SUBMITTED,
        (DECLARED, CANCEL): CANCELED,
        (DECLARED, CANCEL_REQUEST): DECLARED,  # the OMS answers it with CANCEL
        (DECLARED, REJECT): REJECTED,  # risk refused its release
    }
    for state in (SUBMITTED, ACCEPTED, PARTIALLY_FILLED):
        t |= {
            (state, ACCEPT): ACCEPTED if state == SUBMITTED else state,
            (state, REJECT): REJECTED,
            (state, FILL_PARTIAL): PARTIALLY_FILLED,
            (state, FILL_FULL): FILLED,
            (state, CANCEL): CANCELED,
            (state, EXPIRE): EXPIRED,
            (state, AMEND): state,
            (state, CANCEL_REQUEST): PENDING_CANCEL,
            (state, CANCEL_REJECT): state,
        }
    t |= {
        (PENDING_CANCEL, ACCEPT): PENDING_CANCEL,
        (PENDING_CANCEL, REJECT): REJECTED,
        (PENDING_CANCEL, FILL_PARTIAL): PENDING_CANCEL,
        (PENDING_CANCEL, FILL_FULL): FILLED,
        (PENDING_CANCEL, CANCEL): CANCELED,
        (PENDING_CANCEL, EXPIRE): EXPIRED,
        (PENDING_CANCEL, AMEND): PENDING_CANCEL,
        (PENDING_CANCEL, CANCEL_REQUEST): PENDING_CANCEL,
        (PENDING_CANCEL, CANCEL_REJECT): RESUME,
    }
    late = (ACCEPT, CANCEL, EXPIRE, AMEND, CANCEL_REQUEST, CANCEL_REJECT, REJECT)
    t |= {(FILLED, trigger): FILLED for trigger in late}
    for state in (CANCELED, EXPIRED):
        t |= {(state, trigger): state for trigger in late}
        t |= {(state, FILL_PARTIAL): state, (state, FILL_FULL): FILLED}
    t |= {
        (REJECTED, ACCEPT): ACCEPTED,
        (REJECTED, FILL_PARTIAL): PARTIALLY_FILLED,
        (REJECTED, FILL_FULL): FILLED,
        (REJECTED, CANCEL): CANCELED,
        (REJECTED, EXPIRE): EXPIRED,
        (REJECTED, REJECT): REJECTED,
        (REJECTED, AMEND): REJECTED,
        (REJECTED, CANCEL_REQUEST): REJECTED,
        (REJECTED, CANCEL_REJECT): REJECTED,
    }
    return t


TRANSITIONS: dict[tuple[str, str], str] = _table()


_NO_FEES: Mapping[str, Decimal] = MappingProxyType({})


class IllegalTransition(Exception):
    """An event that cannot happen to an order in its current state."""


class Order(msgspec.Struct, eq=False, gc=False):
    """One order as the OMS knows it (implements `daemon.trading.api.OrderView`).

    A mutable msgspec Struct that the garbage collector does not track (`gc=False`):
    the order book keeps every order the account ever had, and tracked records
    surviving each order would make young collections run on the order path. Its
    fields hold only strings, Decimals, a tuple of strings and a mapping of Decimals,
    so an order can never be part of a reference cycle. `eq=False`: orders compare
    (and hash) by identity, as records do."""

    client_order_id: str
    strategy_id: str
    venue: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    trigger_price: Decimal | None
    time_in_force: str
    post_only: bool
    reduce_only: bool
    contingency: str
    linked_order_ids: tuple[str, ...]
    parent_order_id: str
    ts_submitted: int
    state: str = SUBMITTED
    filled_qty: Decimal = Decimal(0)
    avg_fill_price: Decimal = Decimal(0)
    venue_order_id: str = ""
    accepted: bool = False  # the venue acknowledged it (an ack, or a fill)
    ts_last: int = 0  # the last event's time (the order book starts it at ts_submitted)
    # the venue trades applied to it, in order (a tuple: an order without fills,
    # the common case, holds the shared empty one, nothing the collector tracks)
    trade_ids: tuple[str, ...] = ()
    # fees its fills paid, per currency: replaced, never changed in place, so an
    # order without fees shares one empty mapping (a dict each would count as a
    # collector allocation that outlives its order)
    fees: Mapping[str, Decimal] = _NO_FEES

    @property
    def is_open(self) -> bool:
        """At a venue or on its way there (not declared, not finished)."""
        return self.state in OPEN_STATES

    @property
    def is_done(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def cancel_pending(self) -> bool:
        """A cancel was requested and the venue has not answered it."""
        return self.state == PENDING_CANCEL

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    def open_state(self) -> str:
        """The open state this order's facts give (where a refused cancel returns)."""
        if self.filled_qty:
            return PARTIALLY_FILLED
        return ACCEPTED if self.accepted else SUBMITTED

    def apply(self, trigger: str) -> str:
        """Move to the state the table gives for `trigger`; returns it."""
        try:
            target = TRANSITIONS[(self.state, trigger)]
        except KeyError:
            raise IllegalTransition(
                f"order {self.client_order_id}: {trigger!r} is illegal in state {self.state!r}"
            ) from None
        if trigger == ACCEPT:
            self.accepted = True
        self.state = self.open_state() if target == RESUME else target
        return self.state

    def add_fill(self, trade_id: str, qty: Decimal, price: Decimal, fee: Decimal = Decimal(0),
                 fee_currency: str = "") -> str:
        """Account a fill and apply the matching trigger (IllegalTransition, with
        nothing changed, when it cannot happen: more than the order's quantity)."""
        total = self.filled_qty + qty
        if total > self.qty:
            raise IllegalTransition(
                f"order {self.client_order_id}: fills {total} exceed its qty {self.qty}"
            )
        state = self.apply(FILL_FULL if total == self.qty else FILL_PARTIAL)
        self.avg_fill_price = (self.avg_fill_price * self.filled_qty + price * qty) / total
        self.filled_qty = total
        self.accepted = True
        self.trade_ids += (trade_id,)
        if fee:
            self.fees = {**self.fees, fee_currency: self.fees.get(fee_currency, Decimal(0)) + fee}
        return state

    def __repr__(self) -> str:
        return (f"Order({self.client_order_id} {self.side} {self.qty} {self.symbol} "
                f"{self.order_type} {self.state} filled={self.filled_qty})")
