"""Pre-trade risk on integers: prices in ticks, quantities in lots, notionals in
tick x lot units.

The Decimal checks of `daemon.trading.risk_checks` are the reference: they decide
every order this module cannot, and they word every refusal. `grid_accepts` proves,
on integers, that an order passes the grid and limit checks `GRID_CHECKS`
(instrument_tradable through max_position_qty), so the engine runs only the checks
after them. It never refuses: whenever it cannot prove a pass (an order a check
refuses, a mark or a position off the grid, a notional in another currency than
the account's, a trading state other than active, numbers so long the Decimal
reference would round them) it answers False and the engine runs every reference
check. So the outcome and the reason text are the reference's, exactly
(tests/daemon/trading/test_risk_grid.py compares them).

Limits are converted once, per instrument and set of limits, with the rounding
that never loosens them: for an integer n and a limit L in units u,
n > L/u iff n > floor(L/u), and n < L/u iff n < ceil(L/u).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from daemon.trading.api import BUY, LIMIT, MARKET, STOP_LIMIT, STOP_MARKET, OrderRequest
from events.instruments import Instrument
from events.system import ACTIVE

if TYPE_CHECKING:
    from daemon.trading.risk import Limits
    from daemon.trading.risk_checks import CheckContext

Ratio = tuple[int, int]  # numerator, denominator > 0

# The checks `grid_accepts` decides, in the order the engine runs them.
GRID_CHECKS = ("instrument_tradable", "daily_loss_limit", "qty_grid", "price_grid",
               "max_order_qty", "price_band", "min_notional", "max_order_notional",
               "max_position_qty")

# The Decimal reference computes at 28 significant digits (the default context).
# Ticks and lots stay below 10**12 on the integer path, and an instrument or a
# limit whose own digits would push a product of the reference past 28 digits
# gets no integer path: the reference's products are then exact, as ours are.
PREC = 28
MAX_UNITS = 10**12
_UNIT_DIGITS = 12
# An order's number this far from 1 (1E+999999999) is never a whole number of
# ticks below MAX_UNITS; turning it into an integer could take all memory.
_MAX_EXPONENT = 40


def units(value: Decimal, unit: Ratio) -> int | None:
    """`value` as a whole number of `unit`s; None when it is not one (or is not a
    finite number of sane size: the reference judges those, as it always did)."""
    if not value:  # zero (a flat position, nothing pending: most calls on an order)
        return 0
    if not value.is_finite() or not -_MAX_EXPONENT < value.adjusted() < _MAX_EXPONENT:
        return None
    num, den = value.as_integer_ratio()
    q, r = divmod(num * unit[1], den * unit[0])
    return q if r == 0 else None


def floor_units(value: Decimal, unit: Ratio) -> int:
    """The largest whole number of `unit`s not above `value`."""
    num, den = value.as_integer_ratio()
    return (num * unit[1]) // (den * unit[0])


def ceil_units(value: Decimal, unit: Ratio) -> int:
    """The smallest whole number of `unit`s not below `value`."""
    num, den = value.as_integer_ratio()
    return -((-num * unit[1]) // (den * unit[0]))


def digits(value: Decimal) -> int:
    """Significant digits of `value` (trailing zeros do not count)."""
    return len(value.normalize().as_tuple().digits)


class Grid:
    """One instrument's grid and its own limits (min/max qty, min notional) in
    integers. `Grid.of` gives None for an instrument the integer path cannot take."""

    __slots__ = ("tick", "step", "unit", "min_lots", "max_lots", "min_notional",
                 "tick_digits")

    def __init__(self, inst: Instrument) -> None:
        self.tick: Ratio = inst.tick_size.as_integer_ratio()
        self.step: Ratio = inst.step_size.as_integer_ratio()
        # one tick x one lot: the unit of a notional
        self.unit: Ratio = (self.tick[0] * self.step[0], self.tick[1] * self.step[1])
        self.min_lots = ceil_units(inst.min_qty, self.step)  # qty < min_qty: lots < this
        self.max_lots = None if inst.max_qty is None else floor_units(inst.max_qty, self.step)
        # notional < min_notional: ticks x lots < this (0: no minimum)
        self.min_notional = ceil_units(inst.min_notional, self.unit) if inst.min_notional else 0
        self.tick_digits = digits(inst.tick_size)

    @classmethod
    def of(cls, inst: Instrument) -> Grid | None:
        try:
            if not (inst.tick_size > 0 and inst.step_size > 0):
                return None
            # qty x price: lots and ticks below 10**12 each
            if 2 * _UNIT_DIGITS + digits(inst.tick_size) + digits(inst.step_size) > PREC:
                return None
            return cls(inst)
        except (ArithmeticError, ValueError):  # an infinite or NaN bound
            return None


class GridLimits:
    """A set of `Limits` on one instrument's grid. `GridLimits.of` gives None
    for limits the integer path cannot take."""

    __slots__ = ("max_order_lots", "max_position_lots", "max_order_notional", "band",
                 "daily_loss_limit")

    def __init__(self, limits: Limits, grid: Grid) -> None:
        # qty > max_order_qty: lots > this; |position| > max_position_qty: lots > this
        self.max_order_lots = floor_units(limits.max_order_qty, grid.step)
        self.max_position_lots = floor_units(limits.max_position_qty, grid.step)
        # notional > max_order_notional (account currency = quote): units > this
        self.max_order_notional = floor_units(limits.max_order_notional, grid.unit)
        self.band: Ratio = limits.price_band_pct.as_integer_ratio()
        self.daily_loss_limit = limits.daily_loss_limit

    @classmethod
    def of(cls, limits: Limits, grid: Grid | None) -> GridLimits | None:
        if grid is None:
            return None
        try:
            # the band check's band x mark, and |price - mark| x 100
            if _UNIT_DIGITS + 1 + grid.tick_digits + max(digits(limits.price_band_pct), 3) \
                    > PREC:
                return None
            return cls(limits, grid)
        except (ArithmeticError, ValueError):
            return None


def grid_accepts(order: OrderRequest, ctx: CheckContext, grid: Grid,
                 account: GridLimits, strategy: GridLimits,
                 strategy_loss: Decimal | None = None) -> bool:
    """True only when every check of `GRID_CHECKS` passes `order` (see the module
    doc); False when one may refuse it or the integers cannot tell.
    `strategy_loss`: the strategy's daily loss, when the caller has it."""
    inst = ctx.instrument
    if inst is None or not inst.tradable or ctx.trading_state != ACTIVE:
        return False
    # daily_loss_limit: an active account and the strategy's loss under its limit
    # pass whether or not the order reduces (money, compared as the reference does)
    if strategy_loss is None:
        strategy_loss = -ctx.portfolio.daily_pnl(ctx.strategy_id)
    if strategy_loss >= strategy.daily_loss_limit:
        return False
    # qty_grid, max_order_qty
    lots = units(order.qty, grid.step)
    if lots is None or not 0 < lots < MAX_UNITS or lots < grid.min_lots \
            or (grid.max_lots is not None and lots > grid.max_lots) \
            or lots > strategy.max_order_lots:
        return False
    # price_grid
    order_type = order.order_type
    if order.price is None:
        if order_type == LIMIT or order_type == STOP_LIMIT:
            return False
        price = None
    else:
        price = units(order.price, grid.tick)
        if price is None or not 0 < price < MAX_UNITS:
            return False
    if order.trigger_price is None:
        if order_type == STOP_MARKET or order_type == STOP_LIMIT:
            return False
        trigger = None
    else:
        trigger = units(order.trigger_price, grid.tick)
        if trigger is None or not 0 < trigger < MAX_UNITS:
            return False
    if order.trailing_offset is not None:
        offset = units(order.trailing_offset, grid.tick)
        if offset is None or not 0 < offset < MAX_UNITS:
            return False
    # price_band: |p - mark| x 100 > band x mark refuses; in ticks, the tick cancels
    mark_price = ctx.mark
    if mark_price is None:
        return False
    mark = units(mark_price, grid.tick)
    if mark is None or not 0 < mark < MAX_UNITS:
        return False
    if order_type != MARKET:
        band_num, band_den = strategy.band
        limit = band_num * mark
        if (price is not None and abs(price - mark) * 100 * band_den > limit) \
                or (trigger is not None and abs(trigger - mark) * 100 * band_den > limit):
            return False
    # min_notional, max_order_notional: the order valued at its price, else its
    # trigger, else the mark
    ticks = price if price is not None else trigger if trigger is not None else mark
    notional = lots * ticks
    if notional < grid.min_notional:
        return False
    if inst.quote != ctx.portfolio.account_currency or notional > strategy.max_order_notional:
        return False
    # max_position_qty, for the account and the strategy: worst case, every open
    # order of this side fills too; refused only when |position| grows past the limit
    sign = 1 if order.side == BUY else -1
    pending_all = pending_own = 0
    if ctx.open_orders:
        side, sid = order.side, ctx.strategy_id
        total, own = Decimal(0), Decimal(0)
        for other in ctx.symbol_orders:
            if other.side == side:
                left = other.qty - other.filled_qty
                total += left
                if other.strategy_id == sid:
                    own += left
        got_all, got_own = units(total, grid.step), units(own, grid.step)
        if got_all is None or got_own is None or got_all >= MAX_UNITS:
            return False
        pending_all, pending_own = got_all, got_own
    for current_qty, pending, limits in ((ctx.account_position, pending_all, account),
                                         (ctx.strategy_position, pending_own, strategy)):
        current = units(current_qty, grid.step)
        if current is None or abs(current) >= MAX_UNITS:
            return False
        projected = abs(current + sign * (pending + lots))
        if projected > limits.max_position_lots and projected > abs(current):
            return False
    return True
