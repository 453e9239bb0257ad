"""`market_maker`: post-only quotes around the mid, skewed by inventory.

From each `Quote` (the venue's best bid/ask), per symbol:
- center = mid × (1 - skew_bps/1e4 × position/max_position), the ratio clipped to
  [-1, 1]: a long inventory lowers both quotes (sells sooner, buys later);
- bid = center × (1 - half_spread_bps/1e4) rounded down to the tick, ask =
  center × (1 + half_spread_bps/1e4) rounded up, and never at or through the
  opposite touch (a post-only order there would be rejected);
- sizes: `qty`, capped so that a full fill keeps |position| <= max_position; a
  side whose size rounds to 0 is not quoted (no ask at all when flat and
  `allow_short` is false).
Quotes are LIMIT, GTC, post-only. They are refreshed when the mid has moved by
more than `requote_bps` since they were placed, after every fill, and after a
quote died (rejected, canceled, expired): by amending the open order (`requote =
"amend"`, when it has no fills yet) or by cancel + replace (the replacement is
sent at once, so for a moment both may rest). `on_stop` cancels everything; `on_start`
takes over the quotes a previous run left resting.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Annotated, Any, Literal

import msgspec

from daemon.config import StrategyConfig
from daemon.strategies.base import Strategy, StrategyContext
from daemon.trading.api import BUY, SELL
from events.instruments import Instrument, to_decimal
from events.market import Quote
from events.orders import AmendRejected, Fill, OrderCanceled, OrderExpired, OrderRejected

__all__ = ["MarketMaker", "MarketMakerParams", "compute_quotes"]


class MarketMakerParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    qty: Annotated[float, msgspec.Meta(gt=0)]
    half_spread_bps: Annotated[float, msgspec.Meta(gt=0)]
    max_position: Annotated[float, msgspec.Meta(gt=0)]
    skew_bps: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    requote_bps: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    requote: Literal["amend", "replace"] = "amend"
    allow_short: bool = False


# (price, qty) per side; None = don't quote that side
Side = tuple[Decimal, Decimal] | None


def compute_quotes(
    bid: float, ask: float, position: Decimal, p: MarketMakerParams, inst: Instrument
) -> tuple[Side, Side]:
    """The (bid, ask) quotes for a market `bid`/`ask` and a signed `position`."""
    max_pos = to_decimal(p.max_position)
    ratio = max(-1.0, min(1.0, float(position / max_pos)))
    mid = (bid + ask) / 2.0
    center = mid * (1.0 - p.skew_bps * ratio / 1e4)
    half = p.half_spread_bps / 1e4
    tick = inst.tick_size
    best_bid, best_ask = to_decimal(bid), to_decimal(ask)
    our_bid = min(inst.round_price(center * (1.0 - half), ROUND_FLOOR), best_ask - tick)
    our_ask = max(inst.round_price(center * (1.0 + half), ROUND_CEILING), best_bid + tick)
    # Off-grid market prices: clamp, then put back on the grid on the safe side.
    our_bid = inst.round_price(our_bid, ROUND_FLOOR)
    our_ask = inst.round_price(our_ask, ROUND_CEILING)
    qty = to_decimal(p.qty)
    bid_qty = inst.round_qty(min(qty, max_pos - position))
    ask_room = max_pos + position if p.allow_short else position
    ask_qty = inst.round_qty(min(qty, ask_room))
    bid_side = (our_bid, bid_qty) if bid_qty > 0 and our_bid > 0 else None
    ask_side = (our_ask, ask_qty) if ask_qty > 0 else None
    return bid_side, ask_side


class _Quoted:
    """One resting quote of ours."""

    __slots__ = ("cid", "price", "qty")

    def __init__(self, cid: str, price: Decimal, qty: Decimal) -> None:
        self.cid, self.price, self.qty = cid, price, qty


class _Book:
    """Per-symbol state: the market's touch, our quotes, when we last quoted."""

    __slots__ = ("bid", "ask", "quoted_mid", "dirty", "orders")

    def __init__(self) -> None:
        self.bid = self.ask = 0.0
        self.quoted_mid: float | None = None
        self.dirty = False  # requote at the next opportunity, whatever the mid did
        self.orders: dict[str, _Quoted | None] = {BUY: None, SELL: None}


class MarketMaker(Strategy):
    Params = MarketMakerParams

    params: MarketMakerParams

    @classmethod
    def check_params(
        cls, params: MarketMakerParams, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        # below the step it would never quote that side, silently
        for key in ("qty", "max_position"):
            if problem := cls.qty_problem(getattr(params, key), instruments):
                return key, problem
        return None

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(config, ctx)
        self._books = {symbol: _Book() for symbol in self.symbols}

    def on_start(self) -> None:
        """Take over the quotes a previous run left resting (a restart after a crash or
        with `on_stop = "keep"`): the first on each side becomes that side's quote, to
        be moved at the next requote; any other is one too many and is canceled."""
        for order in self.open_orders():
            book = self._books.get(order.symbol)
            if book is None or order.price is None:
                continue
            if book.orders[order.side] is None:
                book.orders[order.side] = _Quoted(order.client_order_id, order.price,
                                                  order.qty)
                book.dirty = True
            else:
                self.cancel(order.client_order_id)

    def on_quote(self, quote: Quote) -> None:
        book = self._books[quote.symbol]
        book.bid, book.ask = quote.bid, quote.ask
        if not 0.0 < quote.bid < quote.ask:
            return  # empty or crossed book: nothing sane to quote around
        mid = (quote.bid + quote.ask) / 2.0
        last = book.quoted_mid
        if not book.dirty and last is not None:
            if abs(mid - last) <= last * self.params.requote_bps / 1e4:
                return
        self._requote(quote.symbol, book)

    def on_fill(self, fill: Fill) -> None:
        book = self._books.get(fill.symbol)
        if book is not None:
            # The position changed: new skew and caps, at once if the touch is known.
            book.dirty = True
            if 0.0 < book.bid < book.ask:
                self._requote(fill.symbol, book)

    def on_order(self, event: Any) -> None:
        book = self._books.get(event.symbol)
        if book is None:
            return
        cls = event.__class__
        if cls in (OrderRejected, OrderCanceled, OrderExpired):
            for side, quoted in book.orders.items():
                if quoted is not None and quoted.cid == event.client_order_id:
                    book.orders[side] = None
                    book.dirty = True
        elif cls is AmendRejected:
            book.dirty = True  # our quote is not where we think: redo it

    def on_stop(self) -> None:
        self.cancel_all()

    def _requote(self, symbol: str, book: _Book) -> None:
        position = self.position(symbol).qty
        bid, ask = compute_quotes(
            book.bid, book.ask, position, self.params, self.instrument(symbol)
        )
        self._quote_side(symbol, book, BUY, bid)
        self._quote_side(symbol, book, SELL, ask)
        book.quoted_mid = (book.bid + book.ask) / 2.0
        book.dirty = False

    def _quote_side(self, symbol: str, book: _Book, side: str, want: Side) -> None:
        quoted = book.orders[side]
        if quoted is not None and not self.is_open(quoted.cid):
            quoted = book.orders[side] = None  # filled (or gone) since
        if want is None:
            if quoted is not None:
                self.cancel(quoted.cid)
                book.orders[side] = None
            return
        price, qty = want
        if quoted is not None:
            if quoted.price == price and quoted.qty == qty:
                return
            if self.params.requote == "amend" and self.filled_qty(quoted.cid) == 0:
                self.amend(quoted.cid, price=price, qty=qty)
                quoted.price, quoted.qty = price, qty
                return
            self.cancel(quoted.cid)
        request = self.order_request(side, symbol, qty, price=price, post_only=True)
        book.orders[side] = _Quoted(self.submit(request), price, qty)
