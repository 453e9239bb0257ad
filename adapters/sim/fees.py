"""Maker/taker fees charged by the simulated venue, and the asset they are paid in.

The rate is price × qty × bps / 10 000 of the notional, computed exactly in
Decimal and rounded to 8 decimals with ROUND_HALF_EVEN. A negative rate is a
rebate (the fee comes out negative). The rates come from config floats through
`to_decimal`, so 7.5 bps is exactly 0.00075.

The fee asset (`fee_asset`), as venues charge it:

- ``quote``: always the instrument's quote currency (fee = notional × rate).
- ``received``: the asset the trade brings in, as Binance does: a buy pays in
  the base (fee = qty × rate, so the account receives qty - fee), a sell in the
  quote (fee = notional × rate).
- a currency C (e.g. ``BNB``): fee = notional × rate / price of C in the
  quote, the price being the last market price of the instrument C/<quote> on
  the same venue (on C/<quote> itself: qty × rate; on X/C: notional × rate).
  When no price of C is known yet, or the free balance of C cannot pay the
  fee, the fee falls back to the asset received (as Binance does when BNB runs
  out). `Fill.fee_currency` says which was charged.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal

from events.instruments import Instrument, to_decimal

MAKER = "MAKER"
TAKER = "TAKER"

QUOTE = "quote"
RECEIVED = "received"

FEE_QUANTUM = Decimal("0.00000001")
_BPS = Decimal(10_000)


def check_fee_asset(asset: str) -> str:
    if not asset or not asset.strip() or asset != asset.strip():
        raise ValueError(f"fee_asset {asset!r}: expected \"quote\", \"received\" or a currency")
    return asset


def _q(x: Decimal) -> Decimal:
    return x.quantize(FEE_QUANTUM, rounding=ROUND_HALF_EVEN)


class FeeSchedule:
    """The venue's two rates and its fee asset, fixed for the run."""

    __slots__ = ("maker_rate", "taker_rate", "asset")

    def __init__(self, maker_bps: float | Decimal, taker_bps: float | Decimal,
                 asset: str = QUOTE) -> None:
        self.maker_rate = to_decimal(maker_bps) / _BPS
        self.taker_rate = to_decimal(taker_bps) / _BPS
        self.asset = check_fee_asset(asset)

    def fee(self, price: Decimal, qty: Decimal, liquidity: str) -> Decimal:
        """The fee in the quote currency for one execution of `qty` at `price`
        on the `liquidity` side."""
        rate = self.maker_rate if liquidity == MAKER else self.taker_rate
        return _q(price * qty * rate)

    def charge(self, inst: Instrument, buy: bool, price: Decimal, qty: Decimal,
               liquidity: str, price_of: Callable[[str, str], Decimal | None],
               free: Callable[[str], Decimal]) -> tuple[Decimal, str]:
        """(fee, currency) of one execution. `price_of(c, quote)` is the last
        price of c in `quote` on the venue (None: unknown); `free(c)` the free
        balance of c."""
        asset = self.asset
        if asset == QUOTE or asset == inst.quote:
            return self.fee(price, qty, liquidity), inst.quote
        rate = self.maker_rate if liquidity == MAKER else self.taker_rate
        if asset != RECEIVED:
            fee: Decimal | None
            if asset == inst.base:
                fee = _q(qty * rate)
            else:
                px = price_of(asset, inst.quote)
                fee = _q(price * qty * rate / px) if px else None
            if fee is not None and free(asset) >= fee:
                return fee, asset
        if buy:
            return _q(qty * rate), inst.base
        return _q(price * qty * rate), inst.quote
