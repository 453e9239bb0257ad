"""Maker/taker fees charged by the simulated venue.

fee = price × qty × bps / 10 000, in the instrument's quote currency, computed
exactly in Decimal and rounded to 8 decimals with ROUND_HALF_EVEN. A negative
rate is a rebate (the fee comes out negative). The rates come from config
floats through `to_decimal`, so 7.5 bps is exactly 0.00075.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from events.instruments import to_decimal

MAKER = "MAKER"
TAKER = "TAKER"

FEE_QUANTUM = Decimal("0.00000001")
_BPS = Decimal(10_000)


class FeeSchedule:
    """The venue's two rates, fixed for the run."""

    __slots__ = ("maker_rate", "taker_rate")

    def __init__(self, maker_bps: float | Decimal, taker_bps: float | Decimal) -> None:
        self.maker_rate = to_decimal(maker_bps) / _BPS
        self.taker_rate = to_decimal(taker_bps) / _BPS

    def fee(self, price: Decimal, qty: Decimal, liquidity: str) -> Decimal:
        """The fee for one execution of `qty` at `price` on the `liquidity` side."""
        rate = self.maker_rate if liquidity == MAKER else self.taker_rate
        return (price * qty * rate).quantize(FEE_QUANTUM, rounding=ROUND_HALF_EVEN)
