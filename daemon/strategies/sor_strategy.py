"""`sor`: one parent order routed across venues trading the same pair (daemon.strategies.sor).

Params: `side` (BUY | SELL), `total_qty`, `venues` (the venues to route over:
each must list an instrument with the same (base, quote) as the strategy's
symbol on its own venue), `mode` ("split": walk the merged books; "best": the
one venue cheapest for the whole size), `fees_bps` ({venue: taker fee in basis
points}, where known), optional `symbol` (default: its first symbol).

It reads the books (or quotes) of its pair on every routed venue, and routes
once every one of them has shown one and has a last price (which the risk
engine's price band needs): each leg an IOC limit on its venue,
sized on that venue's step and checked by the risk engine like any order. When
its legs are done it logs `sor.done` (what filled, per venue) and stops.

`paper = true` routes to each venue's simulated twin, so it needs one for
every routed venue; as only a strategy's own venue gets a twin, a paper `sor`
over other venues fails to start (one line) rather than send a real order.

Restart-safe: its legs carry the parent id `sor@<t0>`; after a restart a parent
whose legs were sent is not routed again (it follows the legs still open).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from daemon.config import StrategyConfig
from daemon.strategies.base import Strategy, StrategyContext
from daemon.strategies.parent import ChildLedger
from daemon.strategies.runtime import paper_venue
from daemon.strategies.sor import Leg, VenueBook, plan, same_pair
from daemon.trading.api import IOC, LIMIT, OrderRequest
from events.instruments import Instrument, to_decimal
from events.market import BookDelta, BookSnapshot, Quote
from events.orders import Fill

__all__ = ["Sor", "SorParams"]


class SorParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    side: Literal["BUY", "SELL"]
    total_qty: Annotated[float, msgspec.Meta(gt=0)]
    venues: Annotated[list[str], msgspec.Meta(min_length=1)]
    mode: Literal["split", "best"] = "split"
    fees_bps: dict[str, Annotated[float, msgspec.Meta(ge=-100, le=1000)]] = {}
    symbol: str | None = None

    def __post_init__(self) -> None:
        if len(set(self.venues)) != len(self.venues):
            raise ValueError(f"venues {self.venues} names a venue twice")
        if extra := sorted(set(self.fees_bps) - set(self.venues)):
            raise ValueError(f"fees_bps names {extra}, not among venues {self.venues}")


class Sor(Strategy):
    Params = SorParams

    params: SorParams

    @classmethod
    def check_params(
        cls, params: SorParams, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        # the venues' instruments are the start's (check_venues)
        return cls.parent_problem(params, instruments)

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(config, ctx)
        p = self.params
        self.symbol = p.symbol or self.symbols[0]
        own = self.instrument(self.symbol)
        self.pair = same_pair(ctx.instruments, own.base, own.quote, p.venues)
        if missing := [v for v in p.venues if v not in self.pair]:
            raise ValueError(f"{self.id}: venues {missing} list no {own.base}/{own.quote} "
                             "instrument")
        self.market_keys = [(v, i.symbol) for v, i in self.pair.items()]
        # a paper strategy's legs go to each venue's simulated twin, never the venue
        paper = self.venue != config.venue
        self.order_venues = {v: paper_venue(v) if paper else v for v in self.pair}
        if no_twin := [v for v, i in self.pair.items()
                       if (self.order_venues[v], i.symbol) not in ctx.instruments]:
            raise ValueError(f"{self.id}: paper = true trades on simulated twins, and "
                             f"venues {no_twin} have none (only its own venue gets one)")
        self._allowed = {(self.order_venues[v], i.symbol) for v, i in self.pair.items()}
        self.total = own.round_qty(to_decimal(p.total_qty))
        self.fees = {v: to_decimal(bps) / 10_000 for v, bps in p.fees_bps.items()}
        self.books = {v: VenueBook() for v in self.pair}
        self.ledger = ChildLedger(self, "sor")
        self.legs: list[Leg] = []
        self.routed = False
        self._done = False

    def on_start(self) -> None:
        if self.ledger.restore() is not None:
            self.routed = True
            self.log.info("sor.resumed", filled=str(self.ledger.filled), legs=self.ledger.sent)
            self._check_done()

    # -- market data ----------------------------------------------------------------------

    def on_book(self, book: BookDelta | BookSnapshot) -> None:
        self._on_market(book)

    def on_quote(self, quote: Quote) -> None:
        self._on_market(quote)

    def _on_market(self, event: BookDelta | BookSnapshot | Quote) -> None:
        book = self.books.get(event.venue)
        if book is None or self.routed:
            return
        book.on_event(event)
        # the risk engine checks a leg's price band against the venue's last price
        if all(b.shown for b in self.books.values()) and all(
                self.portfolio.last_price(v, i.symbol) is not None for v, i in self.pair.items()):
            self._route()

    # -- routing ----------------------------------------------------------------------------

    def _route(self) -> None:
        self.routed = True
        self.ledger.begin(self.now_ns())
        self.legs = plan(self.params.side, self.total, self.books, self.pair, self.fees,
                         self.params.mode)
        self.log.info("sor.route", side=self.params.side, total=str(self.total),
                      legs=[(leg.venue, str(leg.qty), str(leg.price)) for leg in self.legs])
        for leg in self.legs:
            self.ledger.send(OrderRequest(
                venue=self.order_venues[leg.venue], symbol=leg.symbol, side=self.params.side,
                qty=leg.qty, order_type=LIMIT, price=leg.price, time_in_force=IOC))
        self._check_done()

    def _check_request(self, request: OrderRequest) -> None:
        # its legs go to the routed venues (sized and priced on their grids by `plan`)
        if (request.venue, request.symbol) not in self._allowed:
            raise ValueError(f"{self.id}: order for {request.venue} {request.symbol}, not one "
                             f"of its routed instruments {self.market_keys}")

    # -- completion ----------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> None:
        self.ledger.on_fill(fill)
        self._check_done()

    def on_order(self, event: Any) -> None:
        self._check_done()

    def _check_done(self) -> None:
        if self._done or not self.routed or self.ledger.any_open():
            return
        self._done = True
        filled = self.ledger.filled
        log = self.log.info if filled == self.total else self.log.warning
        log("sor.done", filled=str(filled), total=str(self.total), legs=self.ledger.sent)
        self.stop("done")


