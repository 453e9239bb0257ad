"""Matching one order against one market event (see `market.Touch` for which
price of a Trade, Quote/book or Bar each rule reads).

Market orders (fill_model "next", and the same under every model but
conservative): a market order executes at its first matching event, entirely
(unless the volume slippage model caps it), at that event's taker price: the
trade price, the ask (buy) / bid (sell) of a quote, or a bar's open. The venue
never matches an order against the event that was current when it was placed,
so this is the NEXT price (no look-ahead).

conservative: every taker execution (market orders, crossing limits,
triggered stops) happens on the same event as under next, for the same
quantity, but at the WORSE of that price and the last known opposite best
when both are known (a buy pays max(trade price or bar open, ask), a sell gets
min(trade price or bar open, bid); on a Quote or book event they are one
price); a crossing limit still never beyond its limit. Slippage then applies
as under next.

Limit orders: on their first matching event a limit order that crosses is a
taker. Once a Quote or book has been seen for the symbol, crossing means
reaching the last known opposite best (buy: L >= ask) and the order fills
there (slipped, never beyond L). On data without quotes (trades or bars only)
it means reaching the event's taker price (buy: L >= trade price or bar open)
and it fills at that price, as a market order would (never beyond L). A limit
that does not cross rests and fills as maker at L per the fill model
(`fill_models`); on a Bar that can be the same bar (it opened above a buy limit
and traded below it). An amend that changes the price makes the order enter
again (it may cross and take).

Stops: a buy stop triggers when the event's buy_stop price (trade price, ask,
bar high) reaches the trigger T (>= T); a sell stop when sell_stop (trade
price, bid, bar low) <= T. Quotes move stops (and trails) only for a symbol
with no trades seen: with trades, stops follow the last trade price.
STOP_MARKET then executes on the same event as a taker at max(taker price, T)
for a buy, min(taker price, T) for a sell: the trade price or quote on
trade/quote data (already at or beyond T); on a bar the trigger price, or the
open when the bar gapped through T. Slippage applies.
STOP_LIMIT becomes a limit order at `price` on the trigger event: it takes
(as a crossing limit above) if the limit is at or beyond the price that
triggered it (max(taker price, T) for a buy), else it rests from there.

TRAILING_STOP: a sell's trigger is the highest price since acceptance minus
trailing_offset (a buy's: the lowest plus the offset), starting from
trigger_price when given and only ever moving in the order's favour. Each event
first checks the current trigger, then moves the extreme (trade price, bid for
a sell / ask for a buy, bar high for a sell / low for a buy): a bar's path is
unknown, so its low never triggers against a trail its own high raised. Once
triggered it executes as a STOP_MARKET.
"""

from __future__ import annotations

from decimal import Decimal

from adapters.sim.fees import MAKER, TAKER
from adapters.sim.fill_models import CONSERVATIVE, join_queue, resting_fill
from adapters.sim.market import QUOTE, SymbolState, Touch
from adapters.sim.orders import SimOrder
from adapters.sim.slippage import Slippage
from events.orders import STOP_LIMIT, TRAILING_STOP


class Execution:
    __slots__ = ("qty", "price", "liquidity")

    def __init__(self, qty: Decimal, price: Decimal, liquidity: str) -> None:
        self.qty = qty
        self.price = price
        self.liquidity = liquidity


def crosses(buy: bool, limit: Decimal, t: Touch) -> bool:
    """A limit at `limit` entering on event `t` would take liquidity."""
    if buy:
        ref = t.buy_px if t.ask is None else t.ask
        return ref is not None and limit >= ref
    ref = t.sell_px if t.bid is None else t.bid
    return ref is not None and limit <= ref


def match(order: SimOrder, t: Touch, model: str, slip: Slippage,
          st: SymbolState) -> Execution | None:
    """Mutates `order` (trigger, freshness, trail, queue), never its fills."""
    if not order.live:
        base = _trigger(order, t)
        if base is None:
            return None
        order.live = True
        if order.order_type != STOP_LIMIT:
            return _take(order, base, t, model, slip, st)
        # the limit enters the book at the trigger moment: it crosses if the
        # price that triggered it is within the limit
        limit = order.price
        assert limit is not None
        join_queue(order, st)
        if limit >= base if order.buy else limit <= base:
            return _take_limit(order, limit, t, model, slip, st)
        qty = resting_fill(model, order, t, st)
        return None if qty is None else Execution(qty, limit, MAKER)
    if order.takes:
        order.fresh = False
        px = t.buy_px if order.buy else t.sell_px
        return None if px is None else _take(order, px, t, model, slip, st)
    limit = order.price
    assert limit is not None
    if order.fresh:
        order.fresh = False
        if crosses(order.buy, limit, t):
            return _take_limit(order, limit, t, model, slip, st)
    qty = resting_fill(model, order, t, st)
    return None if qty is None else Execution(qty, limit, MAKER)


def _worse(buy: bool, a: Decimal, b: Decimal | None) -> Decimal:
    """The worse of two prices for a taker (`b` unknown: `a`)."""
    if b is None:
        return a
    return max(a, b) if buy else min(a, b)


def _take(order: SimOrder, px: Decimal, t: Touch, model: str, slip: Slippage,
          st: SymbolState) -> Execution | None:
    size = t.buy_size if order.buy else t.sell_size
    qty = slip.cap(order, size, st.inst)
    if qty <= 0:
        return None
    if model == CONSERVATIVE:
        px = _worse(order.buy, px, t.ask if order.buy else t.bid)
    price = slip.price(order.buy, px, qty, size, st.half_spread(), t.kind == QUOTE, st.inst)
    return Execution(qty, price, TAKER)


def _take_limit(order: SimOrder, limit: Decimal, t: Touch, model: str, slip: Slippage,
                st: SymbolState) -> Execution | None:
    buy = order.buy
    size = t.buy_size if buy else t.sell_size
    qty = slip.cap(order, size, st.inst)
    if qty <= 0:
        return None
    px = t.ask if buy else t.bid
    quoted = px is not None
    if px is None:
        # No book visible: it takes at the price the market trades (the trade,
        # the bar's open), as a market order would, never worse than its limit.
        px = t.buy_px if buy else t.sell_px
        if px is None:
            return Execution(qty, limit, TAKER)
    elif model == CONSERVATIVE:
        px = _worse(buy, px, t.buy_px if buy else t.sell_px)
    price = slip.price(buy, px, qty, size, st.half_spread(), quoted, st.inst)
    return Execution(qty, min(price, limit) if buy else max(price, limit), TAKER)


def _trigger(order: SimOrder, t: Touch) -> Decimal | None:
    """The base execution price if the stop triggers on `t`, else None."""
    if not t.stops:
        return None
    buy = order.buy
    trig = order.trigger
    probe = t.buy_stop if buy else t.sell_stop
    hit = trig is not None and probe is not None and (probe >= trig if buy else probe <= trig)
    if not hit:
        if order.order_type == TRAILING_STOP:
            _trail(order, t)
        return None
    assert trig is not None
    px = t.buy_px if buy else t.sell_px
    if px is None:
        return trig
    return max(px, trig) if buy else min(px, trig)


def _trail(order: SimOrder, t: Touch) -> None:
    offset = order.offset
    assert offset is not None
    trig = order.trigger
    if order.buy:
        src = t.buy_probe
        if src is None:
            return
        low = src if order.extreme is None else min(order.extreme, src)
        order.extreme = low
        cand = low + offset
        order.trigger = cand if trig is None else min(trig, cand)
    else:
        src = t.sell_probe
        if src is None:
            return
        high = src if order.extreme is None else max(order.extreme, src)
        order.extreme = high
        cand = high - offset
        order.trigger = cand if trig is None else max(trig, cand)
