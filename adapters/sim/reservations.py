"""What an order reserves at the simulated venue: the currency it locks and
how much per unit of its remaining quantity.

A buy locks quote: its limit price (LIMIT, STOP_LIMIT), or `HEADROOM` (1%)
above its trigger (STOP_MARKET; TRAILING_STOP with a trigger_price), or 1%
above the last known price (MARKET; TRAILING_STOP without one: last price +
offset). A sell locks its base quantity (1 per unit), or nothing with
allow_short. The same rules apply at arrival (`on_arrival`, which also refuses
an order the free balance cannot cover), after an amend (`after_amend`: the
new limit or trigger) and at a restart (`restored`: the order's current terms;
what depended on the market then comes from what its acceptance locked).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from adapters.sim.accounts import HEADROOM
from adapters.sim.market import SymbolState, Touch
from adapters.sim.orders import LIMIT_TYPES, SimOrder
from events.orders import SELL, STOP_MARKET, TRAILING_STOP, OrderSubmitted

_ZERO = Decimal(0)
_ONE = Decimal(1)


def on_arrival(st: SymbolState, sub: OrderSubmitted, t: Touch, free: Callable[[str], Decimal],
               allow_short: bool) -> tuple[str, Decimal, str | None]:
    """(currency, amount locked per unit of quantity, refusal reason) of an
    arriving order, on market event `t`."""
    inst = st.inst
    if sub.side == SELL:
        if allow_short:
            return inst.base, _ZERO, None
        have = free(inst.base)
        if sub.qty > have:
            return inst.base, _ONE, insufficient(sub.qty, inst.base, have)
        return inst.base, _ONE, None
    otype = sub.order_type
    if otype in LIMIT_TYPES:
        assert sub.price is not None  # validated
        unit = sub.price
    elif otype == STOP_MARKET:
        assert sub.trigger_price is not None
        unit = sub.trigger_price * HEADROOM
    elif otype == TRAILING_STOP and sub.trigger_price is not None:
        unit = sub.trigger_price * HEADROOM
    else:
        last = inst.round_price(st.last_px) if st.last_px is not None else t.buy_px
        if last is None:
            return inst.quote, _ZERO, "no market price known to check a market buy against"
        if otype == TRAILING_STOP:
            assert sub.trailing_offset is not None
            last += sub.trailing_offset
        unit = last * HEADROOM
    need = sub.qty * unit
    have = free(inst.quote)
    if need > have:
        return inst.quote, unit, insufficient(need, inst.quote, have)
    return inst.quote, unit, None


def after_amend(order: SimOrder, price: Decimal | None, trigger: Decimal | None) -> Decimal:
    """The unit of `order` with its new price and trigger."""
    unit = order.reserve_px
    if order.buy and unit:
        if order.order_type in LIMIT_TYPES and price is not None:
            return price
        if order.order_type == STOP_MARKET and trigger is not None:
            return trigger * HEADROOM
    return unit


def restored(st: SymbolState, sub: OrderSubmitted, price: Decimal | None,
             trigger: Decimal | None, accept_locked: Decimal | None,
             allow_short: bool) -> tuple[str, Decimal]:
    """(currency, unit) of an open order restored at a restart with its current
    `price` and `trigger`: a market buy's (or a trailing buy's without
    trigger_price) is what its acceptance locked (`accept_locked`) per unit,
    else 1% above the last price known, else 0."""
    inst = st.inst
    if sub.side == SELL:
        return inst.base, _ZERO if allow_short else _ONE
    otype = sub.order_type
    if otype in LIMIT_TYPES and price is not None:
        return inst.quote, price
    if otype == STOP_MARKET and trigger is not None:
        return inst.quote, trigger * HEADROOM
    if otype == TRAILING_STOP and sub.trigger_price is not None:
        return inst.quote, sub.trigger_price * HEADROOM
    if accept_locked is not None:
        return inst.quote, accept_locked / sub.qty
    if st.last_px is None:
        return inst.quote, _ZERO
    last = inst.round_price(st.last_px)
    if otype == TRAILING_STOP and sub.trailing_offset is not None:
        last += sub.trailing_offset
    return inst.quote, last * HEADROOM


def insufficient(need: Decimal, currency: str, free: Decimal) -> str:
    # plain notation without trailing zeros: "need 1000.91 USDT, free 1000"
    return f"insufficient balance: need {plain(need)} {currency}, free {plain(free)}"


def plain(x: Decimal) -> str:
    return format(x.normalize(), "f") if x else "0"
