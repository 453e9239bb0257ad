"""The simulated venue's perpetual handlers (a base of `SimVenue`): the margin
settings it publishes at start, marks and funding as market events bring them,
and the margin account as checks read it. The account itself (positions,
wallet, funding, liquidation) is `adapters.sim.perps.MarginBook`'s; these only
route the venue's events to it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from adapters.sim.accounts import Accounts
from adapters.sim.ledger import Ledger
from adapters.sim.market import SymbolState
from adapters.sim.perps import MarginBook
from events.instruments import to_decimal
from events.perp import FundingRate, LeverageChanged, MarginModeChanged, MarkPrice

_ZERO = Decimal(0)


class PerpHandlers:
    """What `SimVenue` does for its perpetual symbols (see the module doc)."""

    name: str
    data_venue: str
    _symbols: dict[str, SymbolState]
    _perp: MarginBook | None
    _perp_held: dict[str, tuple[int | None, str | None]]
    _ledger: Ledger
    _acc: Accounts
    _now: Callable[[], int]

    def _perp_settings(self, ts: int) -> None:
        """Set the config's leverage and margin mode where the venue holds others
        (a fresh venue holds none): LeverageChanged / MarginModeChanged."""
        book = self._perp
        assert book is not None
        for symbol, (lev, mode) in book.wanted.items():
            p = book.pos[symbol]
            held = self._perp_held.get(symbol)
            if held is None or held[0] != lev:
                self._ledger.publish(LeverageChanged(ts_event=ts, ts_recv=self._now(),
                                                     venue=self.name, symbol=symbol,
                                                     leverage=lev))
            if held is None or held[1] != mode:
                self._ledger.publish(MarginModeChanged(ts_event=ts, ts_recv=self._now(),
                                                       venue=self.name, symbol=symbol,
                                                       mode=mode))
            p.leverage, p.mode = lev, mode
            self._perp_held[symbol] = (lev, mode)

    # -- perpetuals: marks and funding (only symbols holding a position) --------

    def _perp_tick(self, st: SymbolState, ts: int, price: float | None) -> None:
        """A market event of a perpetual with a position: constant funding due
        at or before it, then, where the symbol has no MarkPrice of its own,
        `price` (a trade, a bar's close) as its mark."""
        book, p = self._perp, st.perp
        assert book is not None
        if book.const_rate is not None and not p.rates_seen:
            book.const_due(p, ts, self._fallback_mark(st))
        if price is not None and not p.marks_seen and p.qty:
            book.on_mark(p, st.inst.round_price(price), ts)

    @staticmethod
    def _fallback_mark(st: SymbolState) -> Decimal | None:
        p = st.perp
        if p.mark is not None:
            return p.mark
        return None if st.last_px is None else st.inst.round_price(st.last_px)

    def on_mark(self, ev: MarkPrice) -> None:
        st = self._symbols.get(ev.symbol)
        if st is None or st.perp is None or ev.venue != self.data_venue or not ev.mark > 0:
            return
        p, book = st.perp, self._perp
        assert book is not None
        p.marks_seen = True
        mark = to_decimal(ev.mark)  # a mark is an observation: kept as the venue sent it
        if p.qty:
            if book.const_rate is not None and not p.rates_seen:
                book.const_due(p, ev.ts_event, p.mark or mark)
            book.on_mark(p, mark, ev.ts_event)
        else:
            p.mark = mark

    def on_funding_rate(self, ev: FundingRate) -> None:
        st = self._symbols.get(ev.symbol)
        if st is None or st.perp is None or ev.venue != self.data_venue:
            return
        assert self._perp is not None
        mark = to_decimal(ev.mark) if ev.mark > 0 else self._fallback_mark(st)
        self._perp.on_rate(ev.symbol, to_decimal(ev.rate), ev.funding_ts, mark, ev.ts_event)

    def margin_state(self, symbol: str) -> dict[str, Any]:
        """A perpetual's margin account as the venue holds it: the settle
        currency's `wallet`, the position's signed `qty` (contracts) and signed
        `entry_cost` (sum of qty x price held), the `funding` booked on it since
        it opened, its `isolated_margin` (initial margin at entry + that
        funding; 0 when cross), `leverage`, `mode` and `paid` (the last funding
        time settled)."""
        st = self._symbols[symbol]
        p = st.perp
        if p is None:
            raise ValueError(f"{symbol} on {self.name!r} is not a perpetual")
        return {"wallet": self._acc.total.get(p.inst.settle, _ZERO), "qty": p.qty,
                "entry_cost": p.cost, "funding": p.funding,
                "isolated_margin": p.used() if p.mode == "isolated" else _ZERO,
                "leverage": p.leverage, "mode": p.mode, "paid": p.settled}
