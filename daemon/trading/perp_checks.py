"""Pre-trade risk checks for perpetuals, each a small named check like the spot ones
(`daemon.trading.risk_checks`): they run on perpetual instruments only, and an
order that reduces the account's position in the symbol always passes (it frees
margin and moves the liquidation price away).

- `available_margin`: the order's initial margin (notional at its price over the
  symbol's leverage) plus its taker fee, against what the venue reports free less
  what the account's other open orders on the venue would take (replaces spot's
  `available_balance`, which does not apply to a contract).
- `leverage`: every perpetual position's notional at the mark, after the order,
  over the margin balance: at most `max_leverage`.
- `margin_usage`: the initial margin in use after the order, as % of the margin
  balance: at most `max_margin_usage_pct`.
- `liquidation_distance`: the position's liquidation price after the order at
  least `min_liquidation_distance_pct` % away from the mark.

Figures come from the portfolio's `projected` (events.margin arithmetic, the same
the simulated venue liquidates by).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from daemon.trading.api import BUY, OrderRequest
from daemon.trading.margin_view import Projection
from daemon.trading.risk_checks import CheckContext, _price_of, check, fmt, remaining

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
CENT = Decimal("0.01")


def _perp_order(order: OrderRequest, ctx: CheckContext) -> Projection | None:
    """The projection after `order`, or None when the checks do not apply."""
    inst = ctx.instrument
    if inst is None or not inst.perpetual or ctx.price is None:
        return None
    position = ctx.account_position
    if position and (position > 0) != (order.side == BUY) and order.qty <= abs(position):
        return None  # reduces the account's position
    if order.reduce_only:
        return None
    signed = order.qty if order.side == BUY else -order.qty
    return ctx.portfolio.projected(order.venue, order.symbol, signed, ctx.price)


@check("available_margin")
def available_margin(order: OrderRequest, ctx: CheckContext) -> str | None:
    p = _perp_order(order, ctx)
    if p is None:
        return None
    inst = ctx.instrument
    assert inst is not None and ctx.price is not None
    lev = Decimal(ctx.portfolio.leverage(order.venue, order.symbol))
    size = order.qty * inst.contract_size
    need = size * ctx.price / lev + size * ctx.price * ctx.taker_fee_rate
    reserved = ZERO
    for other in ctx.open_orders:
        other_inst = ctx.instruments.get((other.venue, other.symbol))
        if (other.venue == order.venue and other_inst is not None and other_inst.perpetual
                and other_inst.settle == inst.settle and not other.reduce_only):
            other_lev = Decimal(ctx.portfolio.leverage(other.venue, other.symbol))
            reserved += (remaining(other) * other_inst.contract_size * _price_of(other, ctx)
                         / other_lev)
    # The venue's free margin already counts the orders it holds; our own
    # reckoning covers the ones it has not acknowledged yet.
    available = min(p.available, p.margin_balance - p.initial_before - reserved)
    if need > available:
        return (f"{order.side} needs {fmt(need)} {inst.settle} of margin at leverage "
                f"{lev} (incl. taker fee), available {fmt(available)} ({fmt(reserved)} "
                f"reserved by open orders)")
    return None


@check("leverage")
def leverage(order: OrderRequest, ctx: CheckContext) -> str | None:
    return _over_balance(order, ctx, ctx.account_limits.max_leverage, "max_leverage",
                         "leverage", "notional", lambda p: p.notional, ONE, "")


@check("margin_usage")
def margin_usage(order: OrderRequest, ctx: CheckContext) -> str | None:
    return _over_balance(order, ctx, ctx.account_limits.max_margin_usage_pct,
                         "max_margin_usage_pct", "margin usage", "initial margin",
                         lambda p: p.initial_margin, HUNDRED, "%")


def _over_balance(order: OrderRequest, ctx: CheckContext, limit: Decimal | None, key: str,
                  what: str, part_name: str, part: Callable[[Projection], Decimal],
                  scale: Decimal, unit: str) -> str | None:
    """A figure of the account after the order over its margin balance (x `scale`)
    above `limit`: the refusal, with the numbers."""
    if limit is None:
        return None
    p = _perp_order(order, ctx)
    if p is None:
        return None
    if p.margin_balance <= 0:
        return f"margin balance {fmt(p.margin_balance)} {p.currency}: no {what} is possible"
    value = part(p) / p.margin_balance * scale
    if value > limit:
        return (f"{what} {fmt(value.quantize(CENT))}{unit} after the order ({part_name} "
                f"{fmt(part(p))} / margin balance {fmt(p.margin_balance)} {p.currency}) "
                f"> {key} {fmt(limit)}")
    return None


@check("liquidation_distance")
def liquidation_distance(order: OrderRequest, ctx: CheckContext) -> str | None:
    limit = ctx.account_limits.min_liquidation_distance_pct
    if limit is None:
        return None
    p = _perp_order(order, ctx)
    if p is None or p.liquidation_price is None or not p.qty:
        return None
    distance = abs(p.mark - p.liquidation_price) / p.mark * HUNDRED
    if distance < limit:
        return (f"liquidation price {fmt(p.liquidation_price.quantize(Decimal('0.0001')))} "
                f"after the order is {fmt(distance.quantize(CENT))}% from the "
                f"mark {fmt(p.mark)} < min_liquidation_distance_pct {fmt(limit)}")
    return None
