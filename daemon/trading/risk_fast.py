"""The risk engine's accept path: proves, mostly on integers, that every check
passes an ordinary order, without building a `CheckContext`.

The Decimal checks of `daemon.trading.risk_checks` stay the reference: this path
never refuses. It answers True only when it has proved that every check passes
the order; on False the engine runs the reference (with the integer grid of
`daemon.trading.risk_grid` in front), which decides and words every refusal.

It takes a spot instrument quoted in the account currency, with no concentration
limit, and an active account. The account's open orders (a market maker's resting
quotes) are weighed as the reference weighs them: their remaining quantities on
this instrument's side count towards the positions (in lots: an order whose
remaining quantity is off the lot grid leaves the decision to the reference), one
of the other side the order would cross is left to the reference's self-trade
check, and what they reserve is taken from the available balance with the
reference's own Decimal expressions.
Per (strategy, venue, symbol) a `FastPlan` holds what does not change between
orders: the grid, both sets of limits in ticks and lots, the position limits in
notional units. What changes is read from the portfolio and converted once per
change, so restarting changes nothing: the plan is a function of the config and
the instruments, the positions' lots are cached per `Portfolio.state_version`,
and a number's ticks or lots per value (`UnitCache`).

The checks it proves, each as the reference decides it:
- instrument_tradable .. max_position_qty: as `risk_grid.grid_accepts` (prices in
  ticks, quantities in lots, limits rounded the way that never loosens them);
- max_position_notional: |projected lots| x ticks against the limit in tick x lot
  units, floored (ticks and lots below 10**12: the reference's product is exact);
- concentration: not set (else no plan); self_trade: no open order it crosses
  (any that may: the reference decides);
- available_balance with open orders: the reference's expression (reserved by
  every open order on the venue in the currency, `min(free, total - reserved)`);
- available_balance with nothing reserved (no open order): a sell's lots against the
  available base in lots, floored (exact: both sides are Decimals compared
  exactly); a buy's notional units against a bound that leaves room for the
  reference's rounding of qty x price x (1 + fee) (28 digits: a relative error
  under 10**-27, the bound keeps 10**-20), else the reference's own expression;
- order_rate: by the engine, on the counts the reference would see.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from daemon.trading.api import (
    BUY,
    LIMIT,
    MARKET,
    STOP_LIMIT,
    STOP_MARKET,
    OrderRequest,
    OrderView,
)
from daemon.trading.risk_grid import MAX_UNITS, Grid, GridLimits, Ratio, floor_units, units
from events.instruments import Instrument

if TYPE_CHECKING:
    from daemon.trading.risk import Limits, RiskPortfolio

__all__ = ["FastPlan", "UnitCache", "fast_accepts", "rate_allows"]

ZERO = Decimal(0)
# distinct prices and quantities remembered per plan (then forgotten at once:
# a bound on memory, not an eviction policy: the next orders refill it)
CACHE_SIZE = 4096
# a buy's notional within this relative margin of the available balance is left
# to the reference's own expression (its rounding is 10**7 times finer)
_MARGIN = 10**20


class UnitCache:
    """`units(value, unit)` remembered per value, as a whole number in
    [low, high] within (0, MAX_UNITS), else 0 (not one, or out of range: the
    reference decides): a strategy sends the same few quantities and prices near
    the mark again and again, and a dict look-up costs a tenth of the exact
    conversion. Callers may read `known` themselves and call only on a miss."""

    __slots__ = ("unit", "low", "high", "known")

    def __init__(self, unit: Ratio, low: int = 1, high: int = MAX_UNITS - 1) -> None:
        self.unit = unit
        self.low, self.high = low, high
        self.known: dict[Decimal, int] = {}

    def __call__(self, value: Decimal) -> int:
        known = self.known
        try:
            return known[value]
        except KeyError:
            pass
        except TypeError:  # a signalling NaN cannot be hashed: the reference judges it
            return 0
        got = units(value, self.unit)
        if got is None or not 0 < got < MAX_UNITS or not self.low <= got <= self.high:
            got = 0
        if len(known) >= CACHE_SIZE:
            known.clear()
        # equal Decimals (1.0, 1.00) share a key and are the same number of units
        known[value] = got
        return got


class FastPlan:
    """What one strategy's orders on one instrument are checked against on the
    accept path. `FastPlan.of` gives None where the path cannot be taken."""

    __slots__ = ("inst", "grid", "account", "strategy", "account_notional",
                 "strategy_notional", "fee", "fee_ratio", "allow_short", "account_window",
                 "strategy_window", "ticks", "lots", "marks", "version", "account_lots",
                 "strategy_lots", "available_quote", "buy_units", "sell_lots", "flat",
                 "flat_lots", "flat_notional")

    def __init__(self, inst: Instrument, grid: Grid, account_limits: Limits, limits: Limits,
                 account: GridLimits, strategy: GridLimits, notional: list[int | None],
                 fee_rate: Decimal, allow_short: bool) -> None:
        self.inst = inst
        self.grid = grid
        self.account = account
        self.strategy = strategy
        # max_position_notional in tick x lot units, floored (None: not set)
        self.account_notional, self.strategy_notional = notional
        # available_balance's `1 + taker_fee_rate` (the same Decimal every time)
        self.fee = 1 + fee_rate
        self.fee_ratio: Ratio = self.fee.as_integer_ratio()
        self.allow_short = allow_short
        # order_rate: (orders allowed, window in ns) of the account and the strategy
        self.account_window = account_limits.rate_window
        self.strategy_window = limits.rate_window
        self.ticks = UnitCache(grid.tick)
        # an order's qty in lots when qty_grid and max_order_qty pass it, else 0
        high = strategy.max_order_lots if grid.max_lots is None \
            else min(strategy.max_order_lots, grid.max_lots)
        self.lots = UnitCache(grid.step, grid.min_lots, high)
        # the mark -> (its ticks, the lowest and highest price in ticks the band
        # passes), None when the mark is off the grid or out of range
        self.marks: dict[Decimal, tuple[int, int, int] | None] = {}
        # as of the portfolio's state_version `version`: the positions in lots, and
        # available_balance's min(free, total - reserved) with nothing reserved
        self.version = -1
        self.account_lots: int | None = None
        self.strategy_lots: int | None = None
        self.available_quote = ZERO
        self.buy_units = -1  # a buy of notional units up to this is covered
        self.sell_lots = -1  # a sell of lots up to this is covered
        # every position flat: the largest order in lots and notional units the
        # position limits pass (None: no notional limit)
        self.flat = False
        self.flat_lots = min(account.max_position_lots, strategy.max_position_lots)
        limits_set = [n for n in notional if n is not None]
        self.flat_notional = min(limits_set) if limits_set else None

    @classmethod
    def of(cls, inst: Instrument | None, account_limits: Limits, limits: Limits,
           account_currency: str | None, fee_rate: Decimal, allow_short: bool
           ) -> FastPlan | None:
        if inst is None or inst.perpetual or not inst.tradable \
                or inst.quote != account_currency \
                or account_limits.max_concentration_pct is not None \
                or limits.max_concentration_pct is not None:
            return None
        grid = Grid.of(inst)
        account = GridLimits.of(account_limits, grid)
        strategy = GridLimits.of(limits, grid)
        if grid is None or account is None or strategy is None:
            return None
        try:
            notional = [None if lim.max_position_notional is None
                        else floor_units(lim.max_position_notional, grid.unit)
                        for lim in (account_limits, limits)]
            plan = cls(inst, grid, account_limits, limits, account, strategy, notional,
                       fee_rate, allow_short)
        except (ArithmeticError, ValueError):  # an infinite limit or fee
            return None
        return plan if plan.fee > 0 else None

    def mark(self, mark_price: Decimal) -> tuple[int, int, int] | None:
        """(ticks, lowest, highest price in ticks inside the band) of a mark."""
        marks = self.marks
        try:
            return marks[mark_price]
        except KeyError:
            pass
        mark = self.ticks(mark_price)
        got = None
        if mark:
            # |p - mark| x 100 x den > num x mark refuses: |p - mark| <= the floor passes
            band_num, band_den = self.strategy.band
            reach = (band_num * mark) // (100 * band_den)
            got = (mark, mark - reach, mark + reach)
        if len(marks) >= CACHE_SIZE:
            marks.clear()
        marks[mark_price] = got
        return got

    def refresh(self, portfolio: RiskPortfolio, version: int, strategy_id: str) -> None:
        """Read what the orders are checked against from the portfolio as of its
        state_version `version` (positions and balances change only with it)."""
        inst, grid = self.inst, self.grid
        venue, symbol = inst.venue, inst.symbol
        self.account_lots = units(portfolio.position_qty(venue, symbol), grid.step)
        self.strategy_lots = units(portfolio.position_qty(venue, symbol, strategy_id),
                                   grid.step)
        self.flat = self.account_lots == 0 and self.strategy_lots == 0
        quote, base = (min(portfolio.free_balance(venue, c),
                           portfolio.balance(venue, c) - ZERO)  # the reference's expression
                       for c in (inst.quote, inst.base))
        self.available_quote = quote
        try:
            # qty x price x fee <= quote x (1 - 10**-20): units x unit x fee <= that
            num, den = quote.as_integer_ratio()
            (unit_num, unit_den), (fee_num, fee_den) = grid.unit, self.fee_ratio
            self.buy_units = (num * (_MARGIN - 1) * unit_den * fee_den) \
                // (den * _MARGIN * unit_num * fee_num)
            self.sell_lots = floor_units(base, grid.step)
        except (ArithmeticError, ValueError):  # a balance no number: the reference's
            self.buy_units = self.sell_lots = -1
        self.version = version


def fast_accepts(plan: FastPlan, order: OrderRequest, portfolio: RiskPortfolio,
                 version: int, strategy_id: str, strategy_loss: Decimal,
                 open_orders: Sequence[OrderView] = (), self_trade_prevention: bool = False,
                 instruments: Mapping[tuple[str, str], Instrument] | None = None) -> bool:
    """True only when every check but order_rate passes `order` (the caller has
    seen to the account's state and the order rate); False when one may refuse it
    or this path cannot tell. `version`: the portfolio's state_version;
    `strategy_loss`: the strategy's daily loss, as the engine evaluated it;
    `open_orders`, `self_trade_prevention`, `instruments`: as the reference's
    `CheckContext` has them."""
    strategy = plan.strategy
    # daily_loss_limit: an active account, the strategy's loss under its limit
    if strategy_loss >= strategy.daily_loss_limit:
        return False
    # qty_grid, max_order_qty
    try:
        lots = plan.lots.known[order.qty]
    except (KeyError, TypeError):
        lots = plan.lots(order.qty)
    if not lots:
        return False
    # price_grid
    order_type = order.order_type
    known = plan.ticks.known
    price = trigger = 0
    if order.price is None:
        if order_type == LIMIT or order_type == STOP_LIMIT:
            return False
    else:
        try:
            price = known[order.price]
        except (KeyError, TypeError):
            price = plan.ticks(order.price)
        if not price:
            return False
    if order.trigger_price is None:
        if order_type == STOP_MARKET or order_type == STOP_LIMIT:
            return False
    else:
        trigger = plan.ticks(order.trigger_price)
        if not trigger:
            return False
    if order.trailing_offset is not None and not plan.ticks(order.trailing_offset):
        return False
    # price_band
    mark_price = portfolio.last_price(order.venue, order.symbol)
    if mark_price is None:
        return False
    try:
        marked = plan.marks[mark_price]
    except KeyError:
        marked = plan.mark(mark_price)
    if marked is None:
        return False
    mark, low, high = marked
    if order_type != MARKET and ((price and not low <= price <= high)
                                 or (trigger and not low <= trigger <= high)):
        return False
    # min_notional, max_order_notional (the quote is the account currency): the
    # order valued at its price, else its trigger, else the mark
    ticks = price or trigger or mark
    notional = lots * ticks
    if notional < plan.grid.min_notional or notional > strategy.max_order_notional:
        return False
    # max_position_qty, max_position_notional: nothing pending (no open order);
    # refused only when |position| grows past the limit
    if version != plan.version:
        plan.refresh(portfolio, version, strategy_id)
    account_lots, strategy_lots = plan.account_lots, plan.strategy_lots
    if account_lots is None or strategy_lots is None:
        return False
    signed = lots if order.side == BUY else -lots
    if open_orders:
        return _with_open_orders(plan, order, portfolio, strategy_id, open_orders,
                                 self_trade_prevention, instruments or {}, account_lots,
                                 strategy_lots, signed, ticks, mark_price)
    if plan.flat:  # (every position flat: the loop below, for projected = lots)
        if lots > plan.flat_lots or (plan.flat_notional is not None
                                     and notional > plan.flat_notional):
            return False
    elif not _positions_pass(plan, account_lots, strategy_lots, signed, signed, ticks):
        return False
    return _balance_passes(plan, order, signed, lots, notional, mark_price)


def _with_open_orders(plan: FastPlan, order: OrderRequest, portfolio: RiskPortfolio,
                      strategy_id: str, open_orders: Sequence[OrderView], stp: bool,
                      instruments: Mapping[tuple[str, str], Instrument], account_lots: int,
                      strategy_lots: int, signed: int, ticks: int, mark_price: Decimal
                      ) -> bool:
    """self_trade, the position limits and available_balance with the account's open
    orders, each as the reference weighs them (see the module doc)."""
    venue, symbol, side = order.venue, order.symbol, order.side
    buy = side == BUY
    crossing = stp and (order.order_type == MARKET or order.order_type == LIMIT)
    step = plan.grid.step
    pending_account = pending_strategy = 0  # lots on the order's side, this instrument
    for other in open_orders:
        if other.venue != venue or other.symbol != symbol:
            continue
        if other.side == side:
            lots = units(other.qty - other.filled_qty, step)
            if lots is None:
                return False
            pending_account += lots
            if other.strategy_id == strategy_id:
                pending_strategy += lots
        elif crossing and other.order_type == LIMIT and other.price is not None and (
                order.order_type == MARKET or order.price is None
                or (other.price <= order.price if buy else other.price >= order.price)):
            return False  # it would cross its own resting order: the reference words it
    if pending_account >= MAX_UNITS:
        return False
    sign = 1 if buy else -1
    if not _positions_pass(plan, account_lots, strategy_lots, signed + sign * pending_account,
                           signed + sign * pending_strategy, ticks):
        return False
    # available_balance: the reference's expressions, in its order
    inst = plan.inst
    fee = plan.fee
    reserved = ZERO
    if buy:
        price = order.price if order.price is not None else order.trigger_price \
            if order.trigger_price is not None else mark_price
        currency, need = inst.quote, order.qty * price * fee
        for other in open_orders:
            other_inst = instruments.get((other.venue, other.symbol))
            if (other.side == BUY and other.venue == venue and other_inst is not None
                    and other_inst.quote == currency):
                other_price = other.price if other.price is not None else \
                    other.trigger_price if other.trigger_price is not None else \
                    portfolio.last_price(other.venue, other.symbol) or ZERO
                reserved += (other.qty - other.filled_qty) * other_price * fee
    else:
        if plan.allow_short:
            return True
        currency, need = inst.base, order.qty
        for other in open_orders:
            other_inst = instruments.get((other.venue, other.symbol))
            if (other.side != BUY and other.venue == venue and other_inst is not None
                    and other_inst.base == currency):
                reserved += other.qty - other.filled_qty
    total = portfolio.balance(venue, currency)
    free = portfolio.free_balance(venue, currency)
    return not need > min(free, total - reserved)


def _positions_pass(plan: FastPlan, account_lots: int, strategy_lots: int,
                    account_signed: int, strategy_signed: int, ticks: int) -> bool:
    """max_position_qty and max_position_notional: the position after the order and
    what is pending on its side (signed lots, the account's and the strategy's)."""
    for current, signed, limits, notional_limit in (
            (account_lots, account_signed, plan.account, plan.account_notional),
            (strategy_lots, strategy_signed, plan.strategy, plan.strategy_notional)):
        projected = abs(current + signed)
        if projected <= abs(current):
            continue
        if projected > limits.max_position_lots:
            return False
        if notional_limit is not None and (projected >= MAX_UNITS
                                           or projected * ticks > notional_limit):
            return False
    return True


def _balance_passes(plan: FastPlan, order: OrderRequest, signed: int, lots: int,
                    notional: int, mark_price: Decimal) -> bool:
    """available_balance, with nothing reserved."""
    if signed < 0:
        return plan.allow_short or lots <= plan.sell_lots
    if notional <= plan.buy_units:
        return True
    valued = order.price if order.price is not None else order.trigger_price \
        if order.trigger_price is not None else mark_price
    return not order.qty * valued * plan.fee > plan.available_quote


def rate_allows(plan: FastPlan, account_orders: deque[int], strategy_orders: deque[int],
                now: int) -> bool:
    """order_rate, on the counts the reference would see (the sliding windows
    forget what is older, as `risk._count` does); True: the order is counted in
    both windows."""
    capacity, window = plan.account_window
    horizon = now - window
    while account_orders and account_orders[0] <= horizon:
        account_orders.popleft()
    if len(account_orders) >= capacity:
        return False
    capacity, window = plan.strategy_window
    horizon = now - window
    while strategy_orders and strategy_orders[0] <= horizon:
        strategy_orders.popleft()
    if len(strategy_orders) >= capacity:
        return False
    account_orders.append(now)
    strategy_orders.append(now)
    return True
