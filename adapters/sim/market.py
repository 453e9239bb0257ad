"""What the simulated venue knows about one symbol's market, and the view of
one market event that matching works from.

`SymbolState` keeps the last known price, top of book (from the last Quote or
book event, whichever is newer) and, when book events come, the book itself,
plus the symbol's pending arrivals and open orders, and a float "gate": the
price band inside which no open order can react to an event, so a symbol whose
orders rest away from the market also costs only a few float comparisons. Market prices stay float
here (they are cheap to store on the hot path); they become Decimal, rounded
to the tick, only when a `Touch` is built, which happens only for a symbol
with orders.

A `Touch` names, per event kind, the prices each rule compares against:

    field        Trade   Quote/book   Bar
    buy_px       price   ask          open    a taker buy executes here
    sell_px      price   bid          open    a taker sell executes here
    buy_probe    price   ask          low     lowest offer: resting buy limits, buy trails
    sell_probe   price   bid          high    highest bid: resting sell limits, sell trails
    buy_stop     price   ask          high    buy stops trigger when this reaches them
    sell_stop    price   bid          low     sell stops trigger when this reaches them
    buy_size     size    ask_size     volume  what a taker buy could take
    sell_size    size    bid_size     volume
    ask, bid     the last known best ask / bid (None until a Quote or book is
                 seen): what an entering limit order crosses and takes
    stops        whether the event moves stops: always for trades and bars; for
                 a Quote/book only while no Trade has been seen for the symbol
                 (stops follow the last trade price when there is one)
"""

from __future__ import annotations

from decimal import Decimal
from math import inf
from typing import Any

from adapters.sim.orders import SimOrder
from events.instruments import Instrument, to_decimal
from events.market import Bar, BookDelta, BookSnapshot, Trade
from events.orders import TRAILING_STOP

TRADE = 0
QUOTE = 1  # a Quote or a book event: the book is visible
BAR = 2


class Touch:
    __slots__ = ("kind", "buy_px", "sell_px", "buy_probe", "sell_probe", "buy_stop",
                 "sell_stop", "buy_size", "sell_size", "trade_size", "ask", "bid", "stops")

    def __init__(self, kind: int, buy_px: Decimal | None, sell_px: Decimal | None,
                 buy_probe: Decimal | None, sell_probe: Decimal | None,
                 buy_stop: Decimal | None, sell_stop: Decimal | None,
                 buy_size: Decimal | None, sell_size: Decimal | None,
                 trade_size: Decimal | None = None, ask: Decimal | None = None,
                 bid: Decimal | None = None, stops: bool = True) -> None:
        self.kind = kind
        self.buy_px = buy_px
        self.sell_px = sell_px
        self.buy_probe = buy_probe
        self.sell_probe = sell_probe
        self.buy_stop = buy_stop
        self.sell_stop = sell_stop
        self.buy_size = buy_size
        self.sell_size = sell_size
        self.trade_size = trade_size
        self.ask = ask
        self.bid = bid
        self.stops = stops


def _best(inst: Instrument, px: float | None) -> Decimal | None:
    return None if px is None else inst.round_price(px)


def trade_touch(st: SymbolState, ev: Trade) -> Touch:
    inst = st.inst
    p = inst.round_price(ev.price)
    s = to_decimal(ev.size)
    return Touch(TRADE, p, p, p, p, p, p, s, s, s, _best(inst, st.ask), _best(inst, st.bid))


def quote_touch(st: SymbolState) -> Touch:
    inst = st.inst
    a, b = _best(inst, st.ask), _best(inst, st.bid)
    return Touch(QUOTE, a, b, a, b, a, b,
                 to_decimal(st.ask_size) if a is not None else None,
                 to_decimal(st.bid_size) if b is not None else None, None, a, b,
                 not st.trades_seen)


def bar_touch(st: SymbolState, ev: Bar) -> Touch:
    inst = st.inst
    o, h, lo = inst.round_price(ev.open), inst.round_price(ev.high), inst.round_price(ev.low)
    v = to_decimal(ev.volume)
    return Touch(BAR, o, o, lo, h, h, lo, v, v, None, _best(inst, st.ask), _best(inst, st.bid))


def _side(px: float) -> float | None:
    # an empty side is sent as 0 (or NaN); `px > 0` is False for both
    return px if px > 0 else None


class Book:
    """Price → size per side, with the best price kept incrementally (a delta
    only forces a rescan when it removes the best level)."""

    __slots__ = ("bids", "asks", "best_bid", "best_ask")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.best_bid: float | None = None
        self.best_ask: float | None = None

    def snapshot(self, ev: BookSnapshot) -> None:
        self.bids = {p: s for p, s in zip(ev.bid_prices, ev.bid_sizes, strict=False) if s > 0}
        self.asks = {p: s for p, s in zip(ev.ask_prices, ev.ask_sizes, strict=False) if s > 0}
        self.best_bid = max(self.bids) if self.bids else None
        self.best_ask = min(self.asks) if self.asks else None

    def apply(self, ev: BookDelta) -> None:
        bids, asks = self.bids, self.asks
        rescan = False
        best = self.best_bid
        for p, s in zip(ev.bid_prices, ev.bid_sizes, strict=False):
            if s > 0:
                bids[p] = s
                if best is None or p > best:
                    best = p
            elif bids.pop(p, None) is not None and p == best:
                rescan = True
        self.best_bid = (max(bids) if bids else None) if rescan else best
        rescan = False
        best = self.best_ask
        for p, s in zip(ev.ask_prices, ev.ask_sizes, strict=False):
            if s > 0:
                asks[p] = s
                if best is None or p < best:
                    best = p
            elif asks.pop(p, None) is not None and p == best:
                rescan = True
        self.best_ask = (min(asks) if asks else None) if rescan else best


class SymbolState:
    """One symbol at one venue: market memory plus the orders that need it."""

    __slots__ = ("inst", "busy", "pending", "open", "next_expiry", "last_px", "last_ts",
                 "trades_seen",
                 "bid", "bid_size", "ask", "ask_size", "book", "always", "quotes_always",
                 "lo", "hi", "buy_limit", "sell_limit", "buy_stop", "sell_stop", "perp")

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.busy = False  # pending arrivals or open orders: the only case that costs
        self.perp: Any = None  # a perpetual's perps.Position (None: spot)
        # heap of (arrival_ns, receipt counter, request event)
        self.pending: list[tuple[int, int, Any]] = []
        self.open: dict[str, SimOrder] = {}  # client_order_id -> order, acceptance order
        self.next_expiry = 0  # earliest expire_ns among open orders (0: none)
        # the price a buyer would expect to pay (last trade, ask, bar close):
        # what a market buy is reserved against
        self.last_px: float | None = None
        self.last_ts = 0  # venue time of the last market event seen for the symbol
        self.trades_seen = False
        self.bid: float | None = None
        self.bid_size = 0.0
        self.ask: float | None = None
        self.ask_size = 0.0
        self.book: Book | None = None
        # the gate (see `regate`); "always" until the first regate
        self.always = True
        self.quotes_always = True
        self.lo = self.buy_limit = self.sell_stop = inf
        self.hi = self.sell_limit = self.buy_stop = -inf

    # -- the gate ------------------------------------------------------------

    def due(self, ts: int) -> bool:
        """An arrival or a deadline is at or before `ts`."""
        pending = self.pending
        return (bool(pending) and pending[0][0] <= ts) or (0 < self.next_expiry <= ts)

    def regate(self, queue_aware: bool) -> None:
        """Recompute the band of prices no open order reacts to (after any
        change to the open orders). Resting limits and untriggered stops react
        only when the market reaches their price; the margin of one tick covers
        the rounding of market prices to the tick. Orders at their first
        matching event, market-like orders still filling and trailing stops
        react to every event."""
        buy_limit = sell_stop = -inf
        sell_limit = buy_stop = inf
        always = limits = False
        for o in self.open.values():
            if o.fresh or (o.live and o.takes) or o.order_type == TRAILING_STOP:
                always = True
                break
            if o.live:
                limits = True
                assert o.price is not None
                if o.buy:
                    buy_limit = max(buy_limit, float(o.price))
                else:
                    sell_limit = min(sell_limit, float(o.price))
            else:
                assert o.trigger is not None
                if o.buy:
                    buy_stop = min(buy_stop, float(o.trigger))
                else:
                    sell_stop = max(sell_stop, float(o.trigger))
        m = float(self.inst.tick_size)
        self.always = always
        # queue_aware queues follow every displayed size change
        self.quotes_always = queue_aware and limits
        self.buy_limit, self.sell_limit = buy_limit + m, sell_limit - m
        self.buy_stop, self.sell_stop = buy_stop - m, sell_stop + m
        self.lo = max(self.buy_limit, self.sell_stop)
        self.hi = min(self.sell_limit, self.buy_stop)

    def quiet_quote(self) -> bool:
        """The current top of book reaches no open order."""
        ask, bid = self.ask, self.bid
        if self.quotes_always or ask is None or bid is None:
            return False
        if not (ask > self.buy_limit and bid < self.sell_limit):
            return False
        # with trades seen, quotes do not move stops (see `Touch.stops`)
        return self.trades_seen or (ask < self.buy_stop and bid > self.sell_stop)

    # -- market memory -----------------------------------------------------

    def on_quote(self, bid: float, bid_size: float, ask: float, ask_size: float) -> None:
        self.bid, self.bid_size = _side(bid), bid_size
        self.ask, self.ask_size = _side(ask), ask_size
        if self.ask is not None:
            self.last_px = self.ask

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        book = self.book
        if book is None:
            book = self.book = Book()
        if isinstance(ev, BookSnapshot):
            book.snapshot(ev)
        else:
            book.apply(ev)
        self.bid = book.best_bid
        self.bid_size = book.bids[self.bid] if self.bid is not None else 0.0
        self.ask = book.best_ask
        self.ask_size = book.asks[self.ask] if self.ask is not None else 0.0
        if self.ask is not None:
            self.last_px = self.ask

    def half_spread(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (to_decimal(self.ask) - to_decimal(self.bid)) / 2

    def displayed(self, buy: bool, price: Decimal) -> Decimal | None:
        """Size shown at `price` on the order's own side: from the top of book,
        or the book's depth (0 when a known book has no such level). None when
        only the top is known and `price` is behind it."""
        p = float(price)
        top, size = (self.bid, self.bid_size) if buy else (self.ask, self.ask_size)
        if top is not None and p == top:
            return to_decimal(size)
        if self.book is not None:
            level = (self.book.bids if buy else self.book.asks).get(p)
            return to_decimal(level) if level is not None else Decimal(0)
        return None

    def better_than_top(self, buy: bool, price: Decimal) -> bool:
        """`price` would improve its side's best price (or the side is empty)."""
        top = self.bid if buy else self.ask
        if top is None:
            return True
        p = float(price)
        return p > top if buy else p < top

    @property
    def has_book(self) -> bool:
        return self.bid is not None or self.ask is not None
