"""Order lifecycle and fill events.

Facts are past tense. Every monetary field is a `Decimal`, carried as decimal
text in the journal and the store, so no float error can enter accounting.
`OrderSubmitted` is the intent and is journaled durably before a venue sees it.
"""

from __future__ import annotations

from decimal import Decimal

from events.base import Event

BUY = "BUY"
SELL = "SELL"

# order types
MARKET = "MARKET"
LIMIT = "LIMIT"
STOP_MARKET = "STOP_MARKET"
STOP_LIMIT = "STOP_LIMIT"
TRAILING_STOP = "TRAILING_STOP"
ORDER_TYPES = (MARKET, LIMIT, STOP_MARKET, STOP_LIMIT, TRAILING_STOP)

# time in force
GTC, IOC, FOK, GTD, DAY = "GTC", "IOC", "FOK", "GTD", "DAY"
TIME_IN_FORCE = (GTC, IOC, FOK, GTD, DAY)


class OrderTerms(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """The terms of an order, shared by `OrderSubmitted` and `OrderDeclared` (never
    published itself)."""

    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    side: str  # BUY | SELL
    order_type: str  # MARKET | LIMIT | STOP_MARKET | STOP_LIMIT | TRAILING_STOP
    qty: Decimal
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    time_in_force: str = "GTC"  # GTC | IOC | FOK | GTD | DAY
    expire_ts: int = 0  # GTD deadline, ns
    post_only: bool = False
    reduce_only: bool = False
    trailing_offset: Decimal | None = None
    parent_order_id: str = ""
    contingency: str = ""  # "" | OCO | OTO | BRACKET
    linked_order_ids: list[str] = []


class OrderSubmitted(OrderTerms, frozen=True, kw_only=True, tag=True, array_like=True,
                     gc=False):
    """The intent: journaled before any venue sees the order."""


class OrderDeclared(OrderTerms, frozen=True, kw_only=True, tag=True, array_like=True,
                    gc=False):
    """A contingent order declared with its parent (a bracket's stop and target):
    its client order id is fixed and journaled now, but no venue sees it until its
    parent has filled; then the OMS submits it (an `OrderSubmitted` with the same
    id, sized to what the parent filled). If the parent ends unfilled it is
    canceled without ever reaching a venue."""


class OrderAccepted(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    venue_order_id: str = ""


class OrderRejected(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """`check` names the pre-trade risk check that refused the order, or is ""
    when the venue refused it (then `code` holds the venue's error code)."""

    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    reason: str
    check: str = ""
    code: str = ""
    # what was refused, when the OMS refused it before any OrderSubmitted
    side: str = ""
    order_type: str = ""
    qty: Decimal | None = None
    price: Decimal | None = None


class OrderCanceled(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    venue_order_id: str = ""
    reason: str = ""


class CancelRejected(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    reason: str
    code: str = ""


class AmendRejected(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    reason: str
    code: str = ""


class OrderExpired(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    venue_order_id: str = ""
    reason: str = ""  # e.g. GTD deadline, DAY end, self-trade prevention


class OrderAmended(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    qty: Decimal
    price: Decimal | None = None
    trigger_price: Decimal | None = None


class Fill(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    trade_id: str
    side: str  # BUY | SELL
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: str  # MAKER | TAKER
    venue_order_id: str = ""


# -- requests: imperative, journaled like every event, acted on by the venue ----


class CancelOrder(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """A request to cancel an open order, journaled before the venue sees it so
    a restart knows a cancel was in flight."""

    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    reason: str = ""


class AmendOrder(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """A request to change an open order's quantity and/or prices (None keeps it)."""

    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    qty: Decimal | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None
