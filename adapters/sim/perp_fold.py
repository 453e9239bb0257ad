"""The simulated venue's perpetual margin account folded back from the journal.

What `perps.MarginBook` holds comes back from the events it published, by the
same arithmetic (`perps.Position.trade`): each position (signed contracts,
entry cost, the fill that opened it, each strategy's share) from this venue's
Fills and Liquidations of perpetual symbols; the funding booked on it and the
last funding time paid from its FundingPayments; leverage and margin mode from
the last LeverageChanged / MarginModeChanged; per settle currency the opening
wallet (its first "initial" BalanceChanged) and what realized PnL, fees and
funding added since; and what changed the wallet after its last
BalanceChanged (a kill between a Fill and its balance change), which
`install` adds to the restored total.

The market memory (last mark, whether the symbol has MarkPrice or
FundingRate events) is learnt again from the market after the restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from adapters.sim.perps import ZERO, MarginBook, Position
from events.base import Event
from events.instruments import Instrument
from events.orders import SELL, Fill
from events.perp import FundingPayment, LeverageChanged, Liquidation, MarginModeChanged
from events.state import BalanceChanged


class PerpFolded:
    """A venue's margin account as the journal left it."""

    __slots__ = ("venue", "pos", "leverage", "mode", "since", "initial", "realized", "fees",
                 "funding", "trades")

    def __init__(self, venue: str, instruments: Iterable[Instrument]) -> None:
        self.venue = venue
        self.trades = 0  # the highest n of a liquidation's trade id `{venue}-T{n}`
        self.pos = {i.symbol: Position(i) for i in instruments}
        self.leverage: dict[str, int] = {}
        self.mode: dict[str, str] = {}
        self.since: dict[str, Decimal] = {}  # wallet change after the last BalanceChanged
        self.initial: dict[str, Decimal] = {}
        self.realized: dict[str, Decimal] = {}
        self.fees: dict[str, Decimal] = {}
        self.funding: dict[str, Decimal] = {}

    def _book(self, ccy: str, realized: Decimal, fee: Decimal, funding: Decimal) -> None:
        self.since[ccy] = self.since.get(ccy, ZERO) + realized - fee + funding
        self.realized[ccy] = self.realized.get(ccy, ZERO) + realized
        self.fees[ccy] = self.fees.get(ccy, ZERO) + fee
        self.funding[ccy] = self.funding.get(ccy, ZERO) + funding

    def event(self, ev: Event) -> None:
        kind = type(ev)
        if kind is BalanceChanged:
            ccy = ev.currency  # type: ignore[attr-defined]
            self.since[ccy] = ZERO
            if ev.reason == "initial" and ccy not in self.initial:  # type: ignore[attr-defined]
                self.initial[ccy] = ev.total  # type: ignore[attr-defined]
            return
        p = self.pos.get(ev.symbol)  # type: ignore[attr-defined]
        if p is None:
            return
        if kind is Fill or kind is Liquidation:
            signed = -ev.qty if ev.side == SELL else ev.qty  # type: ignore[attr-defined]
            realized = p.trade(ev.strategy_id, signed, ev.price,  # type: ignore[attr-defined]
                               ev.ts_event)
            self._book(p.inst.settle, realized, ev.fee, ZERO)  # type: ignore[attr-defined]
            if kind is Liquidation:
                tail = ev.trade_id.removeprefix(f"{self.venue}-T")  # type: ignore[attr-defined]
                if tail.isdigit():
                    self.trades = max(self.trades, int(tail))
        elif kind is FundingPayment:
            p.funding += ev.amount  # type: ignore[attr-defined]
            p.paid = p.settled = max(p.settled, ev.funding_ts)  # type: ignore[attr-defined]
            self._book(p.inst.settle, ZERO, ZERO, ev.amount)  # type: ignore[attr-defined]
        elif kind is LeverageChanged:
            self.leverage[ev.symbol] = ev.leverage  # type: ignore[attr-defined]
        elif kind is MarginModeChanged:
            self.mode[ev.symbol] = ev.mode  # type: ignore[attr-defined]


PERP_EVENTS = (Fill, Liquidation, FundingPayment, LeverageChanged, MarginModeChanged,
               BalanceChanged)


def fold_perps(venue: str, events: Iterable[Event], instruments: Iterable[Instrument]
               ) -> PerpFolded:
    """The margin account of `venue` from `events` (any venues', in seq order)."""
    out = PerpFolded(venue, instruments)
    for ev in events:
        if isinstance(ev, PERP_EVENTS) and ev.venue == venue:
            out.event(ev)
    return out


def install_perps(folded: PerpFolded, book: MarginBook) -> dict[str, tuple[int | None,
                                                                          str | None]]:
    """Put `folded` into a venue's margin book (before its orders are
    reinstated: their reservations need the leverage). Returns the (leverage,
    mode) the venue holds per symbol (None: never set)."""
    acc = book.acc
    for symbol, f in folded.pos.items():
        p = book.pos[symbol]
        p.qty, p.cost, p.funding, p.opened = f.qty, f.cost, f.funding, f.opened
        p.paid, p.settled, p.shares = f.paid, f.settled, dict(f.shares)
        p.leverage = folded.leverage.get(symbol, p.leverage)
        p.mode = folded.mode.get(symbol, p.mode)
        acc.net[symbol] = p.qty
    for ccy, delta in folded.since.items():
        if delta:
            acc.add(ccy, delta)
    book.initial.update(folded.initial)
    book.realized, book.fees_paid = dict(folded.realized), dict(folded.fees)
    book.funding = dict(folded.funding)
    book.ledger.trades_issued(folded.trades)
    return {s: (folded.leverage.get(s), folded.mode.get(s)) for s in folded.pos}
