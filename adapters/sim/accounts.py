"""Spot balances and net positions of the simulated venue.

The venue is the source of truth for balances, as a real exchange is. Each
currency has a `total` and a `locked` part (reserved by open orders);
free = total - locked (a buy locks quote, a sell its base; a buy whose price
is not known in advance locks `HEADROOM` above the price it is checked
against). Net base position per symbol is folded from fills only
(it is what reduce-only orders are checked against). Everything is exact
Decimal; nothing here publishes events (the venue does).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from events.instruments import to_decimal

HEADROOM = Decimal("1.01")  # market buys reserve 1% above the last price
_ZERO = Decimal(0)


class Accounts:
    __slots__ = ("total", "locked", "net")

    def __init__(self, balances: Mapping[str, Decimal | float | int | str]) -> None:
        # insertion order is the config's order: the initial events follow it
        self.total: dict[str, Decimal] = {c: to_decimal(v) for c, v in balances.items()}
        self.locked: dict[str, Decimal] = {c: _ZERO for c in self.total}
        self.net: dict[str, Decimal] = {}

    def free(self, currency: str) -> Decimal:
        return self.total.get(currency, _ZERO) - self.locked.get(currency, _ZERO)

    def lock(self, currency: str, amount: Decimal) -> None:
        """Reserve `amount` (negative releases it)."""
        self.locked[currency] = self.locked.get(currency, _ZERO) + amount
        self.total.setdefault(currency, _ZERO)

    def add(self, currency: str, amount: Decimal) -> None:
        self.total[currency] = self.total.get(currency, _ZERO) + amount
        self.locked.setdefault(currency, _ZERO)

    def position(self, symbol: str) -> Decimal:
        return self.net.get(symbol, _ZERO)

    def add_position(self, symbol: str, qty: Decimal) -> None:
        self.net[symbol] = self.net.get(symbol, _ZERO) + qty
