"""Smart order routing: one order for an asset pair, sent where its size is cheapest.

Matching. Venues trade the "same" instrument when their instruments have the
same (base, quote): BTCUSDT on `binance` and BTC/USDT on `bybit` both are
(BTC, USDT). `same_pair` finds them among the configured instruments.

Books. `VenueBook` keeps one venue's displayed book from BookSnapshot /
BookDelta events, or, where a venue sends none, the last Quote (one level a
side). Levels are sorted only when a route is planned, never per event.

Planning (`plan`). Each venue's levels on the far side (asks for a BUY, bids for
a SELL) are costed with that venue's taker fee where known (a BUY pays
price × (1 + fee), a SELL receives price × (1 − fee)). Mode "split" walks the
merged levels best-first, taking displayed size until the order is full (so it
splits by displayed liquidity where the prices say so); mode "best" walks each
venue's book alone for the whole size and takes the venue whose fill is
cheapest in total (a venue that cannot fill it all is used only if none can,
then the one that fills most). Each venue's leg is rounded down to its step;
the sub-step remainder goes to the cheapest legs whose venues show room for it. A
leg below its venue's minimum notional is dropped and the plan redone without
that venue. A leg is a LIMIT IOC at the worst level it walked, on the venue's
tick in the order's favour: marketable, and never worse than planned. The risk
engine checks each leg as any order.

The `sor` strategy (daemon.strategies.sor_strategy:Sor) routes one parent
order (params side, total_qty, venues, mode, fees_bps) once every venue has
shown a book or quote, then stops
when its legs are done; its legs carry the parent id `sor@<t0>`, so after a
restart a parent that already routed is not routed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import msgspec

from daemon.trading.api import BUY
from events.instruments import Instrument, to_decimal
from events.market import BookDelta, BookSnapshot, Quote

__all__ = ["Leg", "VenueBook", "plan", "same_pair"]


def same_pair(instruments: Mapping[tuple[str, str], Instrument], base: str, quote: str,
              venues: Iterable[str]) -> dict[str, Instrument]:
    """`{venue: instrument}` of the (base, quote) pair on each of `venues` that lists it."""
    wanted = set(venues)
    return {venue: inst for (venue, _symbol), inst in instruments.items()
            if venue in wanted and inst.base == base and inst.quote == quote}


class VenueBook:
    """One venue's displayed book of one instrument: price -> size per side."""

    __slots__ = ("bids", "asks")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def on_event(self, event: BookSnapshot | BookDelta | Quote) -> None:
        if type(event) is Quote:
            self.bids = {event.bid: event.bid_size} if event.bid_size > 0 else {}
            self.asks = {event.ask: event.ask_size} if event.ask_size > 0 else {}
            return
        if type(event) is BookSnapshot:
            self.bids, self.asks = {}, {}
        for side, prices, sizes in ((self.bids, event.bid_prices, event.bid_sizes),
                                    (self.asks, event.ask_prices, event.ask_sizes)):
            for price, size in zip(prices, sizes, strict=False):
                if size > 0:
                    side[price] = size
                else:
                    side.pop(price, None)

    @property
    def shown(self) -> bool:
        return bool(self.bids or self.asks)

    def far_side(self, side: str) -> list[tuple[Decimal, Decimal]]:
        """(price, size) a taker of `side` walks, best first, exact decimals."""
        book = self.asks if side == BUY else self.bids
        prices = sorted(book, reverse=side != BUY)
        return [(to_decimal(p), to_decimal(book[p])) for p in prices]


class Leg(msgspec.Struct, frozen=True):
    """One venue's part of a routed order: an IOC limit of `qty` at `price`."""

    venue: str
    symbol: str
    qty: Decimal
    price: Decimal
    cost: Decimal  # what the walked levels cost (BUY) or pay (SELL), fees included


def _cost(side: str, price: Decimal, fee: Decimal) -> Decimal:
    return price * (1 + fee) if side == BUY else price * (1 - fee)


def _better(side: str, a: Decimal, b: Decimal) -> bool:
    return a < b if side == BUY else a > b


def _walk(side: str, qty: Decimal, levels: list[tuple[str, Decimal, Decimal, Decimal]]
          ) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """Take `qty` from (venue, price, size, unit cost) levels in the given order:
    {venue: (qty, worst price, cost)}."""
    taken: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
    left = qty
    for venue, price, size, unit in levels:
        if left <= 0:
            break
        q = min(size, left)
        got, _worst, cost = taken.get(venue, (Decimal(0), price, Decimal(0)))
        taken[venue] = (got + q, price, cost + q * unit)
        left -= q
    return taken


def plan(side: str, qty: Decimal, books: Mapping[str, VenueBook],
         instruments: Mapping[str, Instrument], fees: Mapping[str, Decimal] | None = None,
         mode: str = "split") -> list[Leg]:
    """The legs routing `qty` (module doc); [] when no venue can take a leg."""
    fees = fees or {}
    venues = [v for v in books if v in instruments and books[v].shown]
    while venues:
        levels = {v: [(v, p, s, _cost(side, p, fees.get(v, Decimal(0))))
                      for p, s in books[v].far_side(side)] for v in venues}
        if mode == "best":
            walks = {v: _walk(side, qty, levels[v]).get(v) for v in venues}
            full = [v for v, w in walks.items() if w is not None and w[0] >= qty]
            if full:
                pick = full[0]
                for v in full[1:]:
                    if _better(side, walks[v][2], walks[pick][2]):  # type: ignore[index]
                        pick = v
            else:
                pick = max((v for v in venues if walks[v] is not None),
                           key=lambda v: walks[v][0], default=None)  # type: ignore[index]
            taken = {} if pick is None else {pick: walks[pick]}
        else:
            merged = [lvl for v in venues for lvl in levels[v]]
            # best unit cost first; ties by venue order (deterministic)
            order = {v: i for i, v in enumerate(venues)}
            merged.sort(key=lambda lvl: (lvl[3] if side == BUY else -lvl[3], order[lvl[0]]))
            taken = _walk(side, qty, merged)
        legs = _legs(side, taken, books, instruments)
        small = [leg.venue for leg in legs
                 if leg.qty * leg.price < instruments[leg.venue].min_notional]
        if not small:
            return legs
        venues = [v for v in venues if v not in small]
    return []


def _legs(side: str, taken: Mapping[str, tuple[Decimal, Decimal, Decimal]],
          books: Mapping[str, VenueBook], instruments: Mapping[str, Instrument]) -> list[Leg]:
    legs: dict[str, Leg] = {}
    room: dict[str, Decimal] = {}  # what a leg's venue shows up to its price, unused
    for venue, (q, worst, cost) in taken.items():
        inst = instruments[venue]
        legs[venue] = leg = Leg(venue, inst.symbol, inst.round_qty(q),
                                inst.round_order_price(worst, side), cost)
        shown = sum((s for p, s in books[venue].far_side(side)
                     if (p <= worst if side == BUY else p >= worst)), Decimal(0))
        room[venue] = shown - leg.qty
    # what rounding to the steps left out (never more: undisplayed size stays
    # unrouted) goes to the cheapest legs whose venue shows room for it
    left = sum((t[0] for t in taken.values()), Decimal(0)) - sum(
        (leg.qty for leg in legs.values()), Decimal(0))
    by_cost = sorted(legs.values(), key=lambda leg: leg.cost / leg.qty if leg.qty else 0,
                     reverse=side != BUY)
    for leg in by_cost:
        if left <= 0:
            break
        grown = instruments[leg.venue].round_qty(leg.qty + min(left, room[leg.venue]))
        if grown > leg.qty:
            left -= grown - leg.qty
            legs[leg.venue] = msgspec.structs.replace(leg, qty=grown)
    return [leg for leg in legs.values() if leg.qty > 0]
