"""Instruments: what can be traded where, and its grid.

Not an event: static reference data built from config (or a venue's
exchangeInfo). Tick, step and min notional are Decimals so grid checks and
rounding are exact.

Rounding onto the grid depends on what the number is:

- a market price (a trade, a quote) goes to the NEAREST tick (`round_price`):
  it is an observation, not a promise to anyone;
- an order's prices go to the tick in the order's own favour, never a worse
  price than the strategy asked (`round_order_price`): a BUY limit rounds down,
  a SELL limit up. Stop triggers follow the same rule: a buy stop rounds down
  and a sell stop up, so a protective stop fires at the asked level or up to
  one tick sooner, never later, and the loss it allows is never larger than
  asked (the cost: it may fire on a move up to one tick smaller). A trailing
  offset is a distance: it rounds DOWN (`round_offset`), for the same reason
  (the trigger trails no farther from the best price than asked);
- a quantity rounds down to the step (`round_qty`): never more than asked.

Floats are taken as the decimal their repr shows (`to_decimal`), so a price a
strategy computed in float arithmetic (100.00000000000001) rounds as that
decimal: pass a Decimal or a str for an exact grid price.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import msgspec

from events.orders import BUY, SELL

TRADING = "TRADING"  # orders accepted
CANCEL_ONLY = "CANCEL_ONLY"  # only cancels (Binance's status of that name)
HALTED = "HALT"

SPOT = "spot"
PERPETUAL = "perpetual"
KINDS = (SPOT, PERPETUAL)


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Exact Decimal of a config or market value: floats go through their
    shortest repr, so 0.1 becomes Decimal('0.1'), not 0.1000000000000000055..."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


# Trade prices as exact Decimals, per float: a market trades at the same few price
# levels over and over, and `to_decimal` (through the float's repr) costs ten look-ups.
_DECIMALS: dict[float, Decimal] = {}
_DECIMALS_SIZE = 4096


def price_decimal(price: float) -> Decimal:
    """`to_decimal(price)`, remembered for a positive float (only a float: 64000 and
    64000.0 are equal keys but not the same Decimal, nor are 0.0 and -0.0)."""
    if type(price) is not float or not price > 0:
        return to_decimal(price)
    got = _DECIMALS.get(price)
    if got is None:
        if len(_DECIMALS) >= _DECIMALS_SIZE:
            _DECIMALS.clear()
        got = _DECIMALS[price] = to_decimal(price)
    return got


class MarginTier(msgspec.Struct, frozen=True, kw_only=True):
    """One maintenance-margin bracket of a perpetual (Binance's leverageBracket):
    positions whose notional is at most `cap` (and above the previous tier's cap)
    keep `notional x maint_rate - maint_amount` as maintenance margin and may use
    at most `max_leverage`. `maint_amount` is Binance's `cum`, which makes the
    maintenance margin continuous across tiers (`events.margin.tiers` derives it)."""

    cap: Decimal
    maint_rate: Decimal
    max_leverage: int
    maint_amount: Decimal = Decimal(0)


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """A spot pair, or a linear perpetual (`kind` "perpetual"): quantities in
    contracts of `contract_size` base units, settled and margined in
    `margin_asset` (the quote for a linear, USDT-margined contract), with
    leverage up to `max_leverage` and maintenance margin by `margin_tiers`
    (ascending caps, see `events.margin`)."""

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
    kind: str = SPOT
    contract_size: Decimal = Decimal(1)
    margin_asset: str = ""
    max_leverage: int = 0
    margin_tiers: tuple[MarginTier, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.venue, self.symbol)

    @property
    def perpetual(self) -> bool:
        return self.kind == PERPETUAL

    @property
    def settle(self) -> str:
        """The currency PnL, fees, funding and margin are booked in."""
        return self.margin_asset or self.quote

    @property
    def tradable(self) -> bool:
        return self.status == TRADING

    def on_price_grid(self, price: Decimal) -> bool:
        return price > 0 and price % self.tick_size == 0

    def on_qty_grid(self, qty: Decimal) -> bool:
        return qty > 0 and qty % self.step_size == 0

    def round_price(self, price: Decimal | float, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """The nearest price on the tick grid (a market price; `rounding` picks
        another direction). An order's price goes through `round_order_price`."""
        p = to_decimal(price)
        return (p / self.tick_size).quantize(Decimal(1), rounding=rounding) * self.tick_size

    def round_order_price(self, price: Decimal | float | int | str, side: str) -> Decimal:
        """An order's limit price or stop trigger on the tick grid, never worse
        for `side` than `price`: down for a BUY, up for a SELL. ValueError when
        a BUY price is below one tick (it would round to 0) or `side` is
        neither BUY nor SELL."""
        if side == BUY:
            rounded = self.round_price(to_decimal(price), ROUND_FLOOR)
        elif side == SELL:
            rounded = self.round_price(to_decimal(price), ROUND_CEILING)
        else:
            raise ValueError(f"side must be BUY or SELL, got {side!r}")
        if rounded <= 0:
            raise ValueError(f"price {price} rounds to {rounded} on {self.symbol}'s tick "
                             f"{self.tick_size}")
        return rounded

    def round_offset(self, offset: Decimal | float | int | str) -> Decimal:
        """A trailing offset (a distance) on the tick grid, rounded down: the
        trigger never trails farther than asked. ValueError below one tick."""
        rounded = self.round_price(to_decimal(offset), ROUND_FLOOR)
        if rounded <= 0:
            raise ValueError(f"trailing offset {offset} is below {self.symbol}'s tick "
                             f"{self.tick_size}")
        return rounded

    def round_qty(self, qty: Decimal | float) -> Decimal:
        """The largest quantity on the step grid not above `qty`."""
        q = to_decimal(qty)
        return (q / self.step_size).quantize(Decimal(1), rounding=ROUND_DOWN) * self.step_size
