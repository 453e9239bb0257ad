"""Exact average-cost position arithmetic: one strategy's position in one symbol.

Quantity and cost (quantity x average entry price) are kept exactly; the shown
average is derived from them. Closing a position fully releases its whole cost
with no division, so a round trip to flat leaves quantity, cost and average at
exactly 0 and realized PnL equals the round trip's cash flow. A partial close
divides; its released cost is exact when the division is, else rounded to
1e-20 (the error never accumulates: the next full close releases the rest).
Arithmetic runs under `CTX` (60 digits), wide enough that sums of prices x
quantities never round.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact

ZERO = Decimal(0)
ONE = Decimal(1)
CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)
RELEASE_QUANTUM = Decimal("1e-20")
# The shown average price: 28 significant digits, Decimal's default precision.
AVG_CTX = Context(prec=28, rounding=ROUND_HALF_EVEN)


class Lot:
    """One strategy's position in one symbol (mutable; only the fold changes it)."""

    __slots__ = ("qty", "cost", "avg", "realized", "fees", "other_fees", "funding",
                 "open_funding")

    def __init__(self, qty: Decimal = ZERO, cost: Decimal = ZERO, avg: Decimal = ZERO,
                 realized: Decimal = ZERO, fees: Decimal = ZERO,
                 other_fees: dict[str, Decimal] | None = None, funding: Decimal = ZERO,
                 open_funding: Decimal = ZERO) -> None:
        self.qty = qty
        self.cost = cost
        self.avg = avg
        self.realized = realized
        # fees in the quote currency (a fee paid in the base counts at the fill price)
        self.fees = fees
        # fees paid in a third currency (e.g. BNB), kept in it: never converted here
        self.other_fees = other_fees
        # a perpetual's funding received (+) or paid (-): in all, and since it opened
        self.funding = funding
        self.open_funding = open_funding

    def fill(self, signed_qty: Decimal, price: Decimal) -> None:
        """Apply a fill of `signed_qty` (> 0 buy, never 0) at `price`; runs under `CTX`."""
        q = self.qty
        if q == 0 or (q > 0) == (signed_qty > 0):
            self.qty = q + signed_qty
            self.cost += signed_qty * price
            # From flat the average is the price itself (and keeps its digits).
            self.avg = price if q == 0 else average_price(self.cost, self.qty)
            return
        closed = min(abs(signed_qty), abs(q))
        released = self.cost if closed == abs(q) else release(self.cost, closed, abs(q))
        closing = closed if signed_qty > 0 else -closed
        # -closing x price is the cash the close brings in; released is what it cost.
        self.realized += -closing * price - released
        self.cost -= released
        self.qty = q + closing
        rest = signed_qty - closing
        if self.qty == 0:  # closed: flat, or flipped with `rest` opened at the price
            self.open_funding = ZERO
            if rest:
                self.qty, self.cost, self.avg = rest, rest * price, price
            else:
                self.qty = self.cost = self.avg = ZERO

    def unrealized(self, mark: Decimal | None) -> Decimal:
        return ZERO if mark is None or self.qty == 0 else self.qty * mark - self.cost

    def total(self, mark: Decimal | None) -> Decimal:
        """realized - fees + funding + unrealized, in the quote currency: the
        position's contribution to equity, third-currency fees apart."""
        return self.realized - self.fees + self.funding + self.unrealized(mark)

    def pay_other(self, currency: str, fee: Decimal) -> None:
        """A fee paid in a third currency; runs under `CTX`."""
        other = self.other_fees
        if other is None:
            self.other_fees = {currency: fee}
        else:
            other[currency] = other.get(currency, ZERO) + fee


def release(cost: Decimal, closed: Decimal, qty: Decimal) -> Decimal:
    """The part of `cost` a partial close of `closed` out of `qty` takes with it."""
    CTX.clear_flags()
    exact = CTX.divide(CTX.multiply(cost, closed), qty)
    if CTX.flags[Inexact] or exact.as_tuple().exponent < -20:  # type: ignore[operator]
        return exact.quantize(RELEASE_QUANTUM, context=CTX)
    return exact


def average_price(cost: Decimal, qty: Decimal) -> Decimal:
    return tidy(AVG_CTX.divide(cost, qty))


def tidy(value: Decimal) -> Decimal:
    """`value` without trailing fractional zeros, for what others read."""
    if value == value.to_integral_value():
        return value.quantize(ONE, context=CTX)
    return value.normalize(CTX)
