"""Fill models: when a *resting* limit order (one that did not cross on entry)
executes, and for how much. It always executes at its limit price, as maker.

    model         Trade at price p      Quote (ask a / bid b)     Bar (low l / high h)
    next          buy: p < L            buy: a < L                buy: l < L
    conservative  buy: p <= L - tick:   buy: a <= L - tick:       buy: l <= L - tick:
                  the trade's size      the ask's size            the bar's volume
    aggressive    buy: p <= L           buy: a <= L               buy: l <= L
    queue_aware   p < L: all; p == L:   a < L: all                l < L: all
                  the volume beyond
                  the queue ahead
(sells mirror: p > L, b > L, h > L, or >= for aggressive; conservative:
p >= L + tick with the trade's size, b >= L + tick with the bid's size,
h >= L + tick with the bar's volume.)

"next" is the default: it fills market orders at the next price (see
`matching`), and limit orders only when the market trades through them, as
DESIGN.md asks of the simulated venue. next and aggressive fill the whole
remaining quantity at once.

conservative: never more favourable than next for any order. A resting limit
fills only once the market trades at least one tick THROUGH it, and only for
the volume seen there (rounded down to the step; the rest waits for the next
event through it): a trade's size, the size displayed at the best price on the
other side, or the whole bar's volume (a bar does not say how much of it
traded beyond L; its volume is the most that could have). Market prices are
on the tick grid (rounded to it on arrival), so "one tick through" is the
strict trade-through of next; what differs is the quantity. Takers (market
orders, crossing limits, triggered stops) execute on the same event as under
next but pay the WORSE of the event's price and the last known opposite best
(see `matching`). Like queue_aware's, each simulated order sees the whole
traded size (they do not share it).

queue_aware: an order that rests joins the back of the queue at its price. The
queue ahead is the size displayed at that price when it rested (the top of
book from the last Quote, or the book's depth); 0 if it improves the best price
or no quote/book was ever seen (trade-only data); unknown if it sits behind a
top-of-book-only quote (then trades at L do not fill it: it waits for a quote
showing its level, or a trade through it). A Trade at exactly L consumes the queue ahead first and
fills the order by the traded size beyond it (rounded down to the step: a
partial fill); a trade through L fills it whole. Each Quote/book event shrinks
the queue to the size now displayed at L (others canceled ahead of us; an
unknown queue becomes known when L reaches the top), and to 0 when the best
price on our side moves behind L (everyone ahead left). Several simulated
orders at one price each see the whole traded size (they do not share it).
"""

from __future__ import annotations

from decimal import Decimal

from adapters.sim.market import QUOTE, TRADE, SymbolState, Touch
from adapters.sim.orders import SimOrder

NEXT = "next"
AGGRESSIVE = "aggressive"
CONSERVATIVE = "conservative"
QUEUE_AWARE = "queue_aware"
FILL_MODELS = (NEXT, AGGRESSIVE, CONSERVATIVE, QUEUE_AWARE)

_ZERO = Decimal(0)


def check_fill_model(model: str) -> str:
    if model not in FILL_MODELS:
        raise ValueError(f"fill_model {model!r}: expected one of {', '.join(FILL_MODELS)}")
    return model


def join_queue(order: SimOrder, st: SymbolState) -> None:
    """Put `order` at the back of the queue at its price (on resting, or on an
    amend that loses priority)."""
    price = order.price
    assert price is not None
    if not st.has_book or st.better_than_top(order.buy, price):
        order.queue_ahead = _ZERO
    else:
        order.queue_ahead = st.displayed(order.buy, price)


def _refresh_queue(order: SimOrder, st: SymbolState, price: Decimal) -> None:
    if st.better_than_top(order.buy, price):
        order.queue_ahead = _ZERO
        return
    shown = st.displayed(order.buy, price)
    if shown is not None:
        queue = order.queue_ahead
        order.queue_ahead = shown if queue is None else min(queue, shown)


def resting_fill(model: str, order: SimOrder, t: Touch, st: SymbolState) -> Decimal | None:
    """The quantity a resting limit order fills on event `t` (at its limit
    price), or None."""
    price = order.price
    assert price is not None
    buy = order.buy
    if model == QUEUE_AWARE and t.kind == QUOTE:
        _refresh_queue(order, st, price)
    probe = t.buy_probe if buy else t.sell_probe
    if probe is None:
        return None
    if model == CONSERVATIVE:
        return _through_volume(order, t, st, probe, price)
    if probe < price if buy else probe > price:  # traded through
        return order.remaining
    if probe != price:
        return None
    if model == AGGRESSIVE:
        return order.remaining
    if model != QUEUE_AWARE or t.kind != TRADE:
        return None
    queue, size = order.queue_ahead, t.trade_size
    if queue is None or size is None:
        return None
    if size <= queue:
        order.queue_ahead = queue - size
        return None
    order.queue_ahead = _ZERO
    qty = min(order.remaining, st.inst.round_qty(size - queue))
    return qty if qty > 0 else None


def _through_volume(order: SimOrder, t: Touch, st: SymbolState, probe: Decimal,
                    price: Decimal) -> Decimal | None:
    """conservative: the volume traded at least one tick through `price`."""
    tick = st.inst.tick_size
    if probe > price - tick if order.buy else probe < price + tick:
        return None
    size = t.buy_size if order.buy else t.sell_size  # the other side's volume
    if size is None:
        return None
    qty = min(order.remaining, st.inst.round_qty(size))
    return qty if qty > 0 else None
