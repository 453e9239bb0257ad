"""The closed set of event types: the union, lookup by tag, and durability class."""

from __future__ import annotations

from typing import Union

from events.base import Event, event_type_name
from events.market import Bar, BookDelta, BookSnapshot, Quote, Trade
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
from events.perp import (
    FundingPayment,
    FundingRate,
    LeverageChanged,
    Liquidation,
    MarginModeChanged,
    MarkPrice,
)
from events.state import BalanceChanged, PositionChanged, Snapshot
from events.system import StrategyStatus, Timer, TradingState, VenueStatus

MARKET_TYPES: tuple[type[Event], ...] = (Trade, Quote, BookDelta, BookSnapshot, Bar,
                                         MarkPrice, FundingRate)
ORDER_TYPES: tuple[type[Event], ...] = (
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderCanceled,
    CancelRejected,
    OrderExpired,
    OrderAmended,
    Fill,
    CancelOrder,
    AmendOrder,
    AmendRejected,
    OrderDeclared,
)
STATE_TYPES: tuple[type[Event], ...] = (PositionChanged, BalanceChanged, Snapshot,
                                        FundingPayment, Liquidation, LeverageChanged,
                                        MarginModeChanged)
SYSTEM_TYPES: tuple[type[Event], ...] = (VenueStatus, TradingState, StrategyStatus, Timer)

ALL_TYPES: tuple[type[Event], ...] = MARKET_TYPES + ORDER_TYPES + STATE_TYPES + SYSTEM_TYPES

# The union msgspec decodes by tag: the same closed set, as one type.
AnyEvent = Union[ALL_TYPES]  # type: ignore[valid-type]  # noqa: UP007

BY_NAME: dict[str, type[Event]] = {event_type_name(t): t for t in ALL_TYPES}

# Events that must be durable (written and fsynced) before anything acts on them:
# losing one of these would lose or double an order. Market data may instead sit
# in the journal's buffer for up to its flush window.
CRITICAL_TYPES: frozenset[type[Event]] = frozenset(ORDER_TYPES + STATE_TYPES + SYSTEM_TYPES)


def type_by_name(name: str) -> type[Event]:
    """The event class for a tag, or KeyError naming the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(BY_NAME))
        raise KeyError(f"unknown event type {name!r} (known: {known})") from None
