"""Instruments: what can be traded where, and its grid.

Not an event: static reference data built from config (or a venue's
exchangeInfo). Tick, step and min notional are Decimals so grid checks and
rounding are exact.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

import msgspec

TRADING = "TRADING"  # orders accepted
CANCEL_ONLY = "CANCEL_ONLY"  # only cancels (Binance's status of that name)
HALTED = "HALT"


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Exact Decimal of a config or market value: floats go through their
    shortest repr, so 0.1 becomes Decimal('0.1'), not 0.1000000000000000055..."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal = Decimal(0)
    min_qty: Decimal = Decimal(0)
    max_qty: Decimal | None = None
    status: str = TRADING

    @property
    def key(self) -> tuple[str, str]:
        return (self.venue, self.symbol)

    @property
    def tradable(self) -> bool:
        return self.status == TRADING

    def on_price_grid(self, price: Decimal) -> bool:
        return price > 0 and price % self.tick_size == 0

    def on_qty_grid(self, qty: Decimal) -> bool:
        return qty > 0 and qty % self.step_size == 0

    def round_price(self, price: Decimal | float, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """The nearest price on the tick grid."""
        p = to_decimal(price)
        return (p / self.tick_size).quantize(Decimal(1), rounding=rounding) * self.tick_size

    def round_qty(self, qty: Decimal | float) -> Decimal:
        """The largest quantity on the step grid not above `qty`."""
        q = to_decimal(qty)
        return (q / self.step_size).quantize(Decimal(1), rounding=ROUND_DOWN) * self.step_size
