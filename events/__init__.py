"""Events: the types, their codec, the bus, the journal and the Parquet store.

The bottom layer of tapeloop: it imports nothing from `adapters`, `replay` or
`daemon`.
"""

import events.native  # noqa: F401  (first: serves the compiled modules if built)
from events.base import Event
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
from events.registry import ALL_TYPES, AnyEvent
from events.state import BalanceChanged, PositionChanged, Snapshot
from events.system import StrategyStatus, Timer, TradingState, VenueStatus

__all__ = [
    "ALL_TYPES",
    "AmendOrder",
    "AmendRejected",
    "CancelOrder",
    "AnyEvent",
    "Bar",
    "BalanceChanged",
    "BookDelta",
    "BookSnapshot",
    "CancelRejected",
    "Event",
    "Fill",
    "OrderAccepted",
    "OrderAmended",
    "OrderCanceled",
    "OrderDeclared",
    "OrderExpired",
    "OrderRejected",
    "OrderSubmitted",
    "PositionChanged",
    "Quote",
    "Snapshot",
    "StrategyStatus",
    "Timer",
    "Trade",
    "TradingState",
    "VenueStatus",
]
