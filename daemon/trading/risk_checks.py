"""The pre-trade risk checks, each a small named function.

A check is called as `check(order, ctx) -> Rejection | None`; its name (declared
once, with `@check("name")`) becomes `OrderRejected.check`, and its reason is one
readable line carrying the numbers ("qty 12 > max_order_qty 10"). `CHECKS` is the
order they run in; the first refusal wins. The engine that runs them, the
limits and the trading state machine live in `daemon.trading.risk`.

Definitions the checks share:
- An order's price (notional, balance): its limit price, else its trigger price,
  else the mark (last trade / quote mid / bar close) for market orders.
- Positions are projected to the worst case: the current position plus every open
  order of the same side (same scope) plus this order. A limit refuses only an
  order that makes |position| larger than it already is, so an order that
  reduces an oversized position always passes. Each position limit applies to
  the account (all strategies, the account limit) and to the strategy (the
  smaller of the account's and the strategy's limit).
- Money limits are in the account currency: a notional (qty x price, in the
  instrument's quote currency) is converted through the portfolio's conversion
  marks before it is compared. With no conversion mark the check refuses the
  order, naming the missing conversion: a limit never becomes "unlimited".
- Concentration is |projected position| x price, converted, as a percentage of
  the venue's equity in the account currency (`PortfolioView.equity(venue)`).
- "Position-reducing" (daily loss states): opposite the strategy's position and,
  with the strategy's open orders of that side, no larger than it; an order
  flagged reduce-only only has to be on the reducing side (the venue caps it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from daemon.trading.api import BUY, LIMIT, MARKET, STOP_LIMIT, STOP_MARKET, OrderRequest, OrderView
from events.instruments import Instrument
from events.system import ACTIVE

if TYPE_CHECKING:
    from daemon.trading.risk import Limits, RiskPortfolio

ZERO = Decimal(0)
HUNDRED = Decimal(100)

T = TypeVar("T")


class cached_property(Generic[T]):  # noqa: N801 - named as the functools one it replaces
    """functools.cached_property without its lock (Python 3.11 takes one on every
    first read, a microsecond apiece on each order): a context belongs to one
    check on one thread."""

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self._fn = fn
        self._name = fn.__name__
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, cls: type | None = None) -> T:
        if obj is None:
            return self  # type: ignore[return-value]
        value = obj.__dict__[self._name] = self._fn(obj)
        return value


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """Why risk refused an order: the check's name and one line with the numbers."""

    check: str
    reason: str


Reason = Callable[[OrderRequest, "CheckContext"], "str | None"]


class Check:
    """A named check: calls its function and wraps a refusal in a `Rejection`."""

    __slots__ = ("name", "_reason")

    def __init__(self, name: str, reason: Reason) -> None:
        self.name = name
        self._reason = reason

    def __call__(self, order: OrderRequest, ctx: CheckContext) -> Rejection | None:
        reason = self._reason(order, ctx)
        return None if reason is None else Rejection(check=self.name, reason=reason)

    def __repr__(self) -> str:
        return f"<risk check {self.name}>"


def check(name: str) -> Callable[[Reason], Check]:
    """Declare a check: the decorated function returns a reason to refuse, or None."""
    return lambda fn: Check(name, fn)


def fmt(value: Decimal) -> str:
    """A Decimal as people write it: no exponent, no trailing fractional zeros."""
    if value == value.to_integral_value():
        return f"{value.quantize(Decimal(1)):f}"
    return f"{value.normalize():f}"


def remaining(order: OrderView) -> Decimal:
    return order.qty - order.filled_qty


class CheckContext:
    """What the checks may look at for one order; derived values are computed once,
    on first use."""

    def __init__(self, *, strategy_id: str, order: OrderRequest, instrument: Instrument | None,
                 instruments: Mapping[tuple[str, str], Instrument], limits: Limits,
                 account_limits: Limits, portfolio: RiskPortfolio,
                 open_orders: Sequence[OrderView], trading_state: str, state_reason: str,
                 recent_orders: int, recent_strategy_orders: int, taker_fee_rate: Decimal,
                 allow_short: bool, self_trade_prevention: bool) -> None:
        self.strategy_id = strategy_id
        self.order = order
        self.instrument = instrument
        self.instruments = instruments
        self.limits = limits
        self.account_limits = account_limits
        self.portfolio = portfolio
        self.open_orders = open_orders
        self.trading_state = trading_state
        self.state_reason = state_reason
        self.recent_orders = recent_orders
        self.recent_strategy_orders = recent_strategy_orders
        self.taker_fee_rate = taker_fee_rate
        self.allow_short = allow_short
        self.self_trade_prevention = self_trade_prevention

    @cached_property
    def mark(self) -> Decimal | None:
        return self.portfolio.last_price(self.order.venue, self.order.symbol)

    @cached_property
    def price(self) -> Decimal | None:
        """The price the order's notional is valued at (see the module doc)."""
        order = self.order
        if order.price is not None:
            return order.price
        return order.trigger_price if order.trigger_price is not None else self.mark

    def in_account(self, amount: Decimal) -> Decimal | None:
        """`amount` of this order's quote currency in the account currency (None:
        no conversion mark)."""
        inst = self.instrument
        assert inst is not None  # instrument_tradable ran first
        return self.portfolio.to_account(amount, inst.quote, self.order.venue)

    def no_conversion(self, what: str) -> str:
        """The refusal for a money limit that cannot be checked."""
        inst = self.instrument
        assert inst is not None
        return (f"{what} is in {inst.quote}, the limit in "
                f"{self.portfolio.account_currency}: "
                f"{self.portfolio.why_unvalued(self.order.venue, inst.quote)}")

    @cached_property
    def symbol_orders(self) -> list[OrderView]:
        """The account's open orders on this order's venue and symbol."""
        venue, symbol = self.order.venue, self.order.symbol
        return [o for o in self.open_orders if o.venue == venue and o.symbol == symbol]

    @cached_property
    def account_position(self) -> Decimal:
        return self.portfolio.position_qty(self.order.venue, self.order.symbol)

    @cached_property
    def strategy_position(self) -> Decimal:
        order = self.order
        return self.portfolio.position_qty(order.venue, order.symbol, self.strategy_id)

    def pending(self, side: str, strategy_id: str | None = None) -> Decimal:
        """Open quantity on `side` in this symbol (of one strategy, or all)."""
        return sum((remaining(o) for o in self.symbol_orders
                    if o.side == side and strategy_id in (None, o.strategy_id)), ZERO)

    def projections(self, limit: Callable[[Limits], Decimal | None]
                    ) -> list[tuple[str, Decimal, Decimal, Decimal, Decimal]]:
        """(scope, current, pending, projected, limit) for the account and the
        strategy, where the limit is set."""
        order = self.order
        sign = 1 if order.side == BUY else -1
        out = []
        for scope, current, sid, limits in (
                ("account", self.account_position, None, self.account_limits),
                (f"strategy {self.strategy_id}", self.strategy_position, self.strategy_id,
                 self.limits)):
            value = limit(limits)
            if value is not None:
                pending = self.pending(order.side, sid)
                out.append((scope, current, pending, current + sign * (pending + order.qty),
                            value))
        return out

    @cached_property
    def reduces(self) -> bool:
        """Whether the order reduces the strategy's position (see the module doc)."""
        position, order = self.strategy_position, self.order
        if position == 0 or (position > 0) == (order.side == BUY):
            return False
        if order.reduce_only:
            return True
        return order.qty + self.pending(order.side, self.strategy_id) <= abs(position)


def _where(order: OrderRequest) -> str:
    return f"{order.venue}:{order.symbol}"


@check("instrument_tradable")
def instrument_tradable(order: OrderRequest, ctx: CheckContext) -> str | None:
    inst = ctx.instrument
    if inst is None:
        return f"unknown instrument {_where(order)}"
    if not inst.tradable:
        return f"{_where(order)} is not tradable (status {inst.status})"
    return None


@check("daily_loss_limit")
def daily_loss_limit(order: OrderRequest, ctx: CheckContext) -> str | None:
    if ctx.reduces:
        return None
    if ctx.trading_state != ACTIVE:
        return (f"trading {ctx.trading_state} ({ctx.state_reason}): only position-reducing "
                f"orders pass")
    loss = -ctx.portfolio.daily_pnl(ctx.strategy_id)
    limit = ctx.limits.daily_loss_limit
    if loss >= limit:
        return (f"strategy {ctx.strategy_id} daily loss {fmt(loss)} >= daily_loss_limit "
                f"{fmt(limit)}: only position-reducing orders pass")
    return None


@check("qty_grid")
def qty_grid(order: OrderRequest, ctx: CheckContext) -> str | None:
    inst, qty = ctx.instrument, order.qty
    assert inst is not None  # instrument_tradable ran first
    if qty <= 0:
        return f"qty {fmt(qty)} <= 0"
    if not inst.on_qty_grid(qty):
        return f"qty {fmt(qty)} not a multiple of step_size {fmt(inst.step_size)}"
    if qty < inst.min_qty:
        return f"qty {fmt(qty)} < min_qty {fmt(inst.min_qty)}"
    if inst.max_qty is not None and qty > inst.max_qty:
        return f"qty {fmt(qty)} > instrument max_qty {fmt(inst.max_qty)}"
    return None


@check("price_grid")
def price_grid(order: OrderRequest, ctx: CheckContext) -> str | None:
    inst = ctx.instrument
    assert inst is not None
    if order.order_type in (LIMIT, STOP_LIMIT) and order.price is None:
        return f"{order.order_type} order without a price"
    if order.order_type in (STOP_MARKET, STOP_LIMIT) and order.trigger_price is None:
        return f"{order.order_type} order without a trigger_price"
    for label, price in (("price", order.price), ("trigger_price", order.trigger_price),
                         ("trailing_offset", order.trailing_offset)):
        if price is not None and not inst.on_price_grid(price):
            return (f"{label} {fmt(price)} not a positive multiple of tick_size "
                    f"{fmt(inst.tick_size)}")
    return None


@check("max_order_qty")
def max_order_qty(order: OrderRequest, ctx: CheckContext) -> str | None:
    limit = ctx.limits.max_order_qty
    if order.qty > limit:
        return f"qty {fmt(order.qty)} > max_order_qty {fmt(limit)}"
    return None


@check("price_band")
def price_band(order: OrderRequest, ctx: CheckContext) -> str | None:
    ref = ctx.mark
    if ref is None:
        return f"no last price for {_where(order)} to check the price band against"
    band = ctx.limits.price_band_pct
    for label, price in (("price", order.price), ("trigger_price", order.trigger_price)):
        # a market order is valued at the last price itself: always inside the band
        if price is None or order.order_type == MARKET:
            continue
        if abs(price - ref) * HUNDRED > band * ref:
            off = abs(price - ref) * HUNDRED / ref
            return (f"{label} {fmt(price)} is {off:.2f}% from last price {fmt(ref)} "
                    f"> price_band_pct {fmt(band)}")
    return None


@check("min_notional")
def min_notional(order: OrderRequest, ctx: CheckContext) -> str | None:
    inst, price = ctx.instrument, ctx.price
    assert inst is not None
    if price is None or not inst.min_notional:
        return None
    notional = order.qty * price
    if notional < inst.min_notional:
        return (f"notional {fmt(order.qty)} x {fmt(price)} = {fmt(notional)} "
                f"< min_notional {fmt(inst.min_notional)}")
    return None


@check("max_order_notional")
def max_order_notional(order: OrderRequest, ctx: CheckContext) -> str | None:
    price, limit = ctx.price, ctx.limits.max_order_notional
    if price is None:
        return None
    notional = order.qty * price
    what = f"notional {fmt(order.qty)} x {fmt(price)} = {fmt(notional)}"
    value = ctx.in_account(notional)
    if value is None:
        return ctx.no_conversion(what)
    if value > limit:
        return f"{what}{_converted(value, ctx)} > max_order_notional {fmt(limit)}"
    return None


def _converted(value: Decimal, ctx: CheckContext) -> str:
    """" (= 95 USDT)" after an amount given in another currency, else nothing."""
    account = ctx.portfolio.account_currency
    inst = ctx.instrument
    return "" if inst is not None and inst.quote == account else f" (= {fmt(value)} {account})"


@check("max_position_qty")
def max_position_qty(order: OrderRequest, ctx: CheckContext) -> str | None:
    for scope, current, pending, projected, limit in ctx.projections(
            lambda lim: lim.max_position_qty):
        if abs(projected) > limit and abs(projected) > abs(current):
            return (f"{scope} position {fmt(current)} -> {fmt(projected)} (incl. "
                    f"{fmt(pending)} in open orders) exceeds max_position_qty {fmt(limit)}")
    return None


@check("max_position_notional")
def max_position_notional(order: OrderRequest, ctx: CheckContext) -> str | None:
    price = ctx.price
    if price is None:
        return None
    for scope, current, _pending, projected, limit in ctx.projections(
            lambda lim: lim.max_position_notional):
        if abs(projected) <= abs(current):
            continue
        notional = abs(projected) * price
        what = f"{scope} position {fmt(current)} -> {fmt(projected)}: notional {fmt(notional)}"
        value = ctx.in_account(notional)
        if value is None:
            return ctx.no_conversion(what)
        if value > limit:
            return (f"{what}{_converted(value, ctx)} > max_position_notional "
                    f"{fmt(limit)}")
    return None


@check("concentration")
def concentration(order: OrderRequest, ctx: CheckContext) -> str | None:
    price = ctx.price
    projections = ctx.projections(lambda lim: lim.max_concentration_pct)
    if price is None or not projections:
        return None
    equity = ctx.portfolio.equity(order.venue)
    for scope, current, _pending, projected, limit in projections:
        if abs(projected) <= abs(current):
            continue
        notional = abs(projected) * price
        what = f"{scope} position {fmt(projected)} x {fmt(price)} = {fmt(notional)}"
        value = ctx.in_account(notional)
        if value is None:
            return ctx.no_conversion(what)
        if equity <= 0:
            return f"{order.venue} equity {fmt(equity)} <= 0: no room for a {scope} position"
        if value * HUNDRED > limit * equity:
            share = value * HUNDRED / equity
            return (f"{what}{_converted(value, ctx)} is {share:.2f}% of equity "
                    f"{fmt(equity)} > max_concentration_pct {fmt(limit)}")
    return None


@check("self_trade")
def self_trade(order: OrderRequest, ctx: CheckContext) -> str | None:
    # A resting order is a limit order on the book; stops are not there until triggered.
    if not ctx.self_trade_prevention or order.order_type not in (MARKET, LIMIT):
        return None
    for other in ctx.symbol_orders:
        if other.side == order.side or other.order_type != LIMIT or other.price is None:
            continue
        crosses = (order.order_type == MARKET or order.price is None
                   or (other.price <= order.price if order.side == BUY
                       else other.price >= order.price))
        if crosses:
            at = "" if order.price is None else f" at {fmt(order.price)}"
            return (f"{order.side}{at} would cross own resting {other.side} "
                    f"{other.client_order_id} at {fmt(other.price)} (strategy "
                    f"{other.strategy_id})")
    return None


@check("available_balance")
def available_balance(order: OrderRequest, ctx: CheckContext) -> str | None:
    inst = ctx.instrument
    assert inst is not None
    if inst.perpetual:
        return None  # a contract moves no balance: `available_margin` checks its margin
    fee = 1 + ctx.taker_fee_rate
    reserved = ZERO
    if order.side == BUY:
        price = ctx.price
        if price is None:
            return None
        currency, need = inst.quote, order.qty * price * fee
        for other in ctx.open_orders:
            other_inst = ctx.instruments.get((other.venue, other.symbol))
            if (other.side == BUY and other.venue == order.venue and other_inst is not None
                    and other_inst.quote == currency):
                other_price = _price_of(other, ctx)
                reserved += remaining(other) * other_price * fee
    else:
        if ctx.allow_short:
            return None
        currency, need = inst.base, order.qty
        for other in ctx.open_orders:
            other_inst = ctx.instruments.get((other.venue, other.symbol))
            if (other.side != BUY and other.venue == order.venue and other_inst is not None
                    and other_inst.base == currency):
                reserved += remaining(other)
    total = ctx.portfolio.balance(order.venue, currency)
    free = ctx.portfolio.free_balance(order.venue, currency)
    # A venue that locks funds for open orders reports them as not free; one that
    # does not, or has not yet seen an order, is covered by our own reservations.
    available = min(free, total - reserved)
    if need > available:
        return (f"{order.side} needs {fmt(need)} {currency} (incl. taker fee), available "
                f"{fmt(available)} (free {fmt(free)}, total {fmt(total)}, {fmt(reserved)} "
                f"reserved by open orders)")
    return None


def _price_of(order: OrderView, ctx: CheckContext) -> Decimal:
    """What an open order may cost per unit: its price, trigger, or the mark."""
    for price in (order.price, order.trigger_price):
        if price is not None:
            return price
    return ctx.portfolio.last_price(order.venue, order.symbol) or ZERO


@check("order_rate")
def order_rate(order: OrderRequest, ctx: CheckContext) -> str | None:
    for scope, recent, limits in (("account", ctx.recent_orders, ctx.account_limits),
                                  (f"strategy {ctx.strategy_id}", ctx.recent_strategy_orders,
                                   ctx.limits)):
        capacity, window_ns = limits.rate_window
        if recent + 1 > capacity:
            return (f"{scope}: {recent} orders in the last {window_ns / 1e9:g}s, "
                    f"max_orders_per_s {fmt(limits.max_orders_per_s)}")
    return None


# The order the engine runs them in: cheap, order-only checks first; the rate
# check last, so only an order that passes everything else uses rate budget.
CHECKS: tuple[Check, ...] = (
    instrument_tradable,
    daily_loss_limit,
    qty_grid,
    price_grid,
    max_order_qty,
    price_band,
    min_notional,
    max_order_notional,
    max_position_qty,
    max_position_notional,
    concentration,
    self_trade,
    available_balance,
    order_rate,
)

def _with_perp_checks() -> tuple[Check, ...]:
    from daemon.trading.perp_checks import (
        available_margin,
        leverage,
        liquidation_distance,
        margin_usage,
    )
    return (*CHECKS[:-1], available_margin, leverage, margin_usage, liquidation_distance,
            CHECKS[-1])


CHECKS = _with_perp_checks()
CHECK_NAMES: tuple[str, ...] = tuple(c.name for c in CHECKS)
