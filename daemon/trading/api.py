"""What strategies ask of the trading core, and the read-only views they get.

The OMS implements `OrderGateway`; the portfolio implements `PortfolioView`.
Strategies and execution algorithms depend only on these protocols.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import msgspec

from events.orders import (  # noqa: F401 - re-exported: the strategy-facing names
    BUY,
    DAY,
    FOK,
    GTC,
    GTD,
    IOC,
    LIMIT,
    MARKET,
    ORDER_TYPES,
    SELL,
    STOP_LIMIT,
    STOP_MARKET,
    TIME_IN_FORCE,
    TRAILING_STOP,
)


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A strategy's order before it becomes `OrderSubmitted` (the OMS adds the
    client order id, the strategy id and the timestamps)."""

    venue: str
    symbol: str
    side: str  # BUY | SELL
    qty: Decimal
    order_type: str = MARKET
    price: Decimal | None = None  # limit price (LIMIT, STOP_LIMIT)
    trigger_price: Decimal | None = None  # stop price (STOP_*, first trigger of TRAILING_STOP)
    time_in_force: str = GTC
    expire_ts: int = 0  # GTD deadline, ns
    post_only: bool = False
    reduce_only: bool = False
    trailing_offset: Decimal | None = None  # TRAILING_STOP distance, in price units
    # contingencies, set by the OMS for OCO/bracket children
    parent_order_id: str = ""
    contingency: str = ""  # "" | OCO | OTO
    linked_order_ids: tuple[str, ...] = ()


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A position snapshot. `qty` is signed (> 0 long, < 0 short)."""

    venue: str
    symbol: str
    strategy_id: str
    qty: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)


class OrderGateway(Protocol):
    def submit(self, strategy_id: str, request: OrderRequest) -> str:
        """Journal the order and send it; returns its client order id. A risk
        refusal still returns the id (and publishes OrderRejected)."""
        ...

    def submit_bracket(self, strategy_id: str, entry: OrderRequest, stop: OrderRequest,
                       target: OrderRequest) -> tuple[str, str, str]:
        """Entry, then stop and target as an OCO pair once the entry fills."""
        ...

    def submit_oco(self, strategy_id: str, a: OrderRequest, b: OrderRequest) -> tuple[str, str]:
        """Two orders; a fill of one cancels the other."""
        ...

    def cancel(self, strategy_id: str, client_order_id: str) -> None: ...

    def amend(self, strategy_id: str, client_order_id: str, *, qty: Decimal | None = None,
              price: Decimal | None = None, trigger_price: Decimal | None = None) -> None: ...

    def open_orders(self, strategy_id: str | None = None,
                    symbol: str | None = None) -> list[OrderView]:
        """Orders at a venue or on their way there."""
        ...

    def working_orders(self, strategy_id: str) -> list[OrderView]:
        """A strategy's unfinished orders, declared contingent ones included."""
        ...


class OrderView(Protocol):
    """Read-only view of an order the OMS tracks."""

    client_order_id: str
    strategy_id: str
    venue: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    filled_qty: Decimal
    price: Decimal | None
    trigger_price: Decimal | None
    state: str
    reduce_only: bool


class PortfolioView(Protocol):
    def position(self, venue: str, symbol: str, strategy_id: str | None = None) -> Position:
        """A strategy's position, or the account's (all strategies) when None."""
        ...

    def balance(self, venue: str, currency: str) -> Decimal: ...

    def last_price(self, venue: str, symbol: str) -> Decimal | None: ...

    def equity(self, venue: str | None = None) -> Decimal:
        """Balances valued at the marks, in the account currency (a currency with
        no conversion mark is left out, never counted at 1)."""
        ...
