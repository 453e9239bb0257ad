"""Account state events: positions, balances and the periodic snapshot."""

from __future__ import annotations

from decimal import Decimal

from events.base import Event


class PositionChanged(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    symbol: str
    strategy_id: str
    qty: Decimal  # signed: > 0 long, < 0 short
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal = Decimal(0)


class BalanceChanged(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    currency: str
    total: Decimal
    free: Decimal
    locked: Decimal = Decimal(0)
    reason: str = ""


class Snapshot(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """A component's folded state at `upto_seq`, so recovery folds only the
    events after it. `state` is that component's own msgpack encoding."""

    component: str
    upto_seq: int
    state: bytes
