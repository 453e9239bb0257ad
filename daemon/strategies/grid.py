"""A strategy's order terms on its instrument's grid, the same digits for less work.

The definition is the instrument's: `Instrument.round_order_price(to_decimal(p),
side)` for a price (a BUY down, a SELL up, on the tick) and
`Instrument.round_qty(to_decimal(q))` for a quantity (down, on the step). Both go
through the float's shortest repr and three Decimal operations, about 2 µs each on
the order path. `Grid` gives the identical Decimal (value and exponent) cheaper:

- a float price is divided by the tick in float arithmetic. The quotient differs
  from the exact one (the shortest repr over the tick) by a few units in the last
  place, 1e-15 relative at most; when it lies farther than `_MARGIN` (relative)
  from a grid line, its floor or ceiling is the exact one's, and `Decimal(k) *
  tick` is what `quantize(1) * tick` gives. Near a grid line (a price on the tick,
  `0.29` whose binary value lies below it), beyond `_LIMIT` ticks, or for anything
  not a positive finite float, the instrument decides.
- a quantity is rounded once and remembered while the strategy repeats it (a fixed
  order size); another value is rounded by the instrument and remembered instead.

tests/daemon/strategies/test_order_rounding.py compares both with the definition.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from events.instruments import Instrument, to_decimal
from events.orders import BUY, SELL

__all__ = ["Grid"]

# How far (relative to the quotient) from a grid line the float quotient must lie
# for its floor to be trusted: the float error is below 1e-15 relative.
_MARGIN = 1e-12
# Quotients at or above this many ticks go to the instrument (floats hold integers
# exactly below 2**53, about 9e15).
_LIMIT = 1e15
# How many grid prices one instrument's `Grid` remembers.
_PRICES_KEPT = 4096


class Grid:
    """One instrument's rounding for one strategy (see the module doc)."""

    __slots__ = ("inst", "key", "tick", "_tick_f", "_prices", "_qty_in", "_qty_type",
                 "_qty_out")

    def __init__(self, inst: Instrument, key: tuple[str, str] | None = None) -> None:
        self.inst = inst
        self.key = key or inst.key  # where its owner looks the instrument up
        self.tick = inst.tick_size
        self._tick_f = float(inst.tick_size)
        # k -> k ticks as a Decimal, for the prices a strategy keeps asking about
        # (bounded: emptied when full; ints and Decimals, nothing the collector tracks)
        self._prices: dict[int, Decimal] = {}
        self._qty_in: Any = None  # the last quantity asked for, its type and its rounding
        self._qty_type: type | None = None
        self._qty_out = Decimal(0)

    def qty(self, qty: Any) -> Decimal:
        """`inst.round_qty(to_decimal(qty))` (ArithmeticError as it raises)."""
        if qty.__class__ is self._qty_type and qty == self._qty_in:
            return self._qty_out
        out = self.inst.round_qty(to_decimal(qty))
        self._qty_in, self._qty_type, self._qty_out = qty, qty.__class__, out
        return out

    def order_price(self, price: Any, side: str) -> Decimal:
        """`inst.round_order_price(to_decimal(price), side)` (ValueError as it raises)."""
        if price.__class__ is float and 0.0 < price and (side == BUY or side == SELL):
            x = price / self._tick_f
            if x < _LIMIT:
                k = math.floor(x)
                frac = x - k
                margin = x * _MARGIN
                if margin < frac < 1.0 - margin:
                    if side == SELL:
                        k += 1
                    if k > 0:
                        out = self._prices.get(k)
                        if out is None:
                            if len(self._prices) >= _PRICES_KEPT:
                                self._prices.clear()
                            out = self._prices[k] = Decimal(k) * self.tick
                        return out
        return self.inst.round_order_price(to_decimal(price), side)
