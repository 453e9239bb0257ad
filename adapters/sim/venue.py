"""SimVenue: a deterministic simulated exchange for paper trading and replay.

It owns the venue side of the order flow (daemon/trading/FLOW.md, step 2 and
3): it takes `OrderSubmitted`, `CancelOrder` and `AmendOrder` for its venue
name, matches orders against the market events it sees, and publishes the
venue's answers (`OrderAccepted`/`OrderRejected`, `Fill`, `OrderCanceled`,
`OrderExpired`, `OrderAmended`, `CancelRejected`/`AmendRejected`) and the
`BalanceChanged` events of its spot accounts.

Time is event time only. A request arrives at its `ts_event + latency`; it is
acted on when the venue sees the first market event of its symbol with
`ts_event >= arrival`. On that event the venue, in order: updates its market
memory, handles the due arrivals (accept/reject, cancel, amend; GTD/DAY
deadlines passed before an arrival expire first), expires orders whose
deadline is at or before the event, then matches every open order against the
event. Because the kernel subscribes venues before strategies, an order placed
in reaction to event E reaches the venue after E: it can never fill at E.

Stamps: acks and rejections (and cancel/amend answers, with their balance
changes) carry the arrival time; OrderExpired carries the deadline; fills and
everything else the time of the market event being processed; `ts_recv` is
always `now_ns()`.

Accounts are spot. On acceptance a buy locks quote: qty × limit price (LIMIT,
STOP_LIMIT), or 1% above the trigger (STOP_MARKET), or 1% above the last known
price (MARKET; TRAILING_STOP: 1% above its trigger_price, else last price +
offset). A sell locks its base quantity, unless allow_short (then nothing is
locked and base may go negative). A fill moves quote ↔ base at the fill price,
pays the fee in the configured fee asset (`fees`: the quote, the asset
received, or a third currency) and releases the matching part of the lock (all
of it when the order completes or closes). A market fill beyond the reserved price is
still debited in full. Reduce-only orders are checked against the venue's net
position in the symbol (from fills): refused if they cannot reduce it, trimmed
at fill time to what is left of it (the rest is canceled, reason
"reduce-only").

IOC and FOK are settled on the order's first matching event (the arrival event;
the trigger event for stops): IOC cancels what did not fill (reason "IOC"), FOK
fills entirely or is canceled whole (reason "FOK"). DAY orders expire at the
next 00:00 UTC after acceptance.

The venue outlives the process as an exchange does: `restore` rebuilds its
books from the journal at a restart (the `restore` module says what comes
back), `state` and `invariant_violations` expose them to checks, and at a
graceful stop `answer_pending` answers the requests no market event will
reach.

Perpetual instruments are margined, not spot: the `perps` module says how
(positions, leverage, funding, liquidation); their state is restored and
audited with the rest.

Matching rules live in `matching` (order types), `fill_models` (resting limit
orders), `slippage` and `fees`; the records and the events that change them in
`ledger`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from heapq import heappop, heappush
from typing import Any

from adapters.sim.accounts import Accounts
from adapters.sim.arrivals import Arrivals
from adapters.sim.audit import venue_state, violations
from adapters.sim.fees import QUOTE, FeeSchedule
from adapters.sim.fill_models import QUEUE_AWARE, check_fill_model
from adapters.sim.ledger import Ledger
from adapters.sim.market import TRADE, SymbolState, Touch, bar_touch, quote_touch, trade_touch
from adapters.sim.matching import match
from adapters.sim.orders import OPEN, SimOrder
from adapters.sim.perp_fold import fold_perps, install_perps
from adapters.sim.perp_venue import PerpHandlers
from adapters.sim.perps import MarginBook
from adapters.sim.restore import fold, install
from adapters.sim.slippage import FIXED_BPS, NONE, make_slippage
from events.base import Event
from events.columns import TradeColumns
from events.instruments import Instrument
from events.market import Bar, BookDelta, BookSnapshot, Quote, Trade
from events.orders import (
    FOK,
    IOC,
    AmendOrder,
    CancelOrder,
    OrderSubmitted,
)
from events.perp import FundingRate, MarkPrice

_ZERO = Decimal(0)


class SimVenue(PerpHandlers, Arrivals):
    """One simulated venue. Plain object: drive it through `subscribe(bus)`
    (or call the `on_*` handlers directly)."""

    def __init__(self, name: str, instruments: Iterable[Instrument],
                 publish: Callable[[Event], object], now_ns: Callable[[], int], *,
                 fill_model: str = "next", slippage_model: str | None = None,
                 slippage_bps: float = 0.0, maker_fee_bps: float = 0.0,
                 taker_fee_bps: float = 0.0, latency_ms: float = 0.0,
                 balances: Mapping[str, Decimal | float] | None = None,
                 allow_short: bool = False, volume_limit_pct: float = 10.0,
                 data_venue: str | None = None, fee_asset: str = QUOTE,
                 funding_rate: float | None = None, funding_interval_h: float = 8.0,
                 liquidation_fee_pct: float = 1.25, leverage: Mapping[str, int] | None = None,
                 margin_mode: Mapping[str, str] | None = None) -> None:
        """`slippage_model` defaults to "fixed_bps" when slippage_bps > 0, else
        "none". `volume_limit_pct` caps each taker execution under the "volume"
        model. Instruments of other venues are ignored. `data_venue` (default:
        `name`) is the venue whose market data it matches against: a paper twin
        named "binance.paper" trades against "binance"'s market. `fee_asset`:
        "quote", "received" or a currency (see `fees`). Perpetuals: `leverage` and
        `margin_mode` per symbol (default 1, "cross"), set at `start`;
        `funding_rate` (None: none) paid every `funding_interval_h` hours by a
        symbol with no FundingRate events; `liquidation_fee_pct` of the notional."""
        if latency_ms < 0:
            raise ValueError(f"latency_ms {latency_ms!r}: must be >= 0")
        self.name = name
        self.data_venue = data_venue or name
        self.fill_model = check_fill_model(fill_model)
        if slippage_model is None:
            slippage_model = FIXED_BPS if slippage_bps > 0 else NONE
        self.slippage_model = slippage_model
        self._slip = make_slippage(slippage_model, slippage_bps, volume_limit_pct)
        self.latency_ns = round(latency_ms * 1_000_000)
        self.allow_short = allow_short
        self._symbols = {i.symbol: SymbolState(i) for i in instruments if i.venue == name}
        self._acc = Accounts(balances or {})
        # currencies whose opening balance came from the journal (a restart)
        self._restored: set[str] = set()
        # restored orders and requests of symbols the venue no longer lists:
        # closed and refused at start()
        self._unlisted: list[SimOrder | OrderSubmitted | CancelOrder | AmendOrder] = []
        self._ledger = Ledger(name, publish, now_ns,
                              FeeSchedule(maker_fee_bps, taker_fee_bps, fee_asset),
                              self._acc, self._symbols)
        perps = [st.inst for st in self._symbols.values() if st.inst.perpetual]
        self._perp: MarginBook | None = None
        # (leverage, mode) per perpetual as the venue holds them (restored); start()
        # sets the config's where they differ
        self._perp_held: dict[str, tuple[int | None, str | None]] = {}
        if perps:
            book = MarginBook(name, publish, now_ns, self._ledger, perps,
                              leverage=dict(leverage or {}), margin_mode=dict(margin_mode or {}),
                              funding_rate=funding_rate, funding_interval_h=funding_interval_h,
                              liquidation_fee_pct=liquidation_fee_pct)
            self._perp = self._ledger.perp = book
            self._ledger.margined = frozenset(i.settle for i in perps)
            for inst in perps:
                self._symbols[inst.symbol].perp = book.pos[inst.symbol]
        self._now = now_ns
        self._received = 0  # tie-break of arrivals at the same time: receipt order

    # -- wiring --------------------------------------------------------------

    def subscribe(self, bus: Any) -> None:
        """Subscribe the handlers to `bus` (an `events.bus.Bus`)."""
        bus.subscribe(Trade, self.on_trade)
        bus.subscribe(Quote, self.on_quote)
        bus.subscribe(Bar, self.on_bar)
        bus.subscribe(BookSnapshot, self.on_book)
        bus.subscribe(BookDelta, self.on_book)
        bus.subscribe(OrderSubmitted, self.on_request)
        bus.subscribe(CancelOrder, self.on_request)
        bus.subscribe(AmendOrder, self.on_request)
        if self._perp is not None:
            bus.subscribe(MarkPrice, self.on_mark)
            bus.subscribe(FundingRate, self.on_funding_rate)

    def start(self) -> None:
        """Publish BalanceChanged for each balance: reason "initial" (the config's)
        or "restored" (from the journal, after `restore`). A restored order or
        request of a symbol the venue no longer lists is canceled or refused."""
        ts = self._now()
        for currency in list(self._acc.total):
            self._ledger.balance(currency, ts,
                                 "restored" if currency in self._restored else "initial")
        for item in self._unlisted:
            reason = f"unknown symbol {item.symbol!r} at {self.name!r}"
            if isinstance(item, SimOrder):
                self._ledger.cancel_unlisted(item, ts, reason)
            else:
                self._ledger.refuse(item, ts, reason)
        self._unlisted.clear()
        if self._perp is not None:
            for ccy in self._ledger.margined:
                if ccy not in self._restored:
                    self._perp.initial.setdefault(ccy, self._acc.total.get(ccy, _ZERO))
            self._perp_settings(ts)

    def restore(self, events: Iterable[Event], positions: Mapping[str, Decimal]) -> None:
        """Rebuild the venue from the journal, before `start()` (a restart; the
        `restore` module says what comes back and what is learnt again): `events` are
        the journaled order events, fills and balance changes of every venue
        in seq order (this venue's are kept); `positions` the net position per
        symbol as the portfolio folded it. Publishes nothing."""
        assert not self._ledger.orders and not any(st.pending for st in self._symbols.values()), \
            "restore() comes before any request"
        events = events if isinstance(events, list) else list(events)
        folded = fold(self.name, events, {s: (st.inst.base, st.inst.quote)
                                          for s, st in self._symbols.items()
                                          if st.perp is None})
        if folded.balances_seen:
            self._restored.update(folded.totals)
        book = self._perp

        def margin_account() -> None:
            if book is not None:
                perps = [p.inst for p in book.pos.values()]
                self._perp_held = install_perps(fold_perps(self.name, events, perps), book)

        self._received = install(
            folded, positions, self._ledger, self._acc, self._symbols, self._unlisted,
            allow_short=self.allow_short, latency_ns=self.latency_ns,
            queue_aware=self.fill_model == QUEUE_AWARE, received=self._received,
            perp=book, before_orders=margin_account)

    def restore_account(self, balances: dict[str, Decimal],
                        positions: dict[str, Decimal]) -> None:
        """Replace the config's opening account with a recovered one (each
        currency's total and each symbol's net position, nothing locked).
        Superseded by `restore`, which also brings back the orders."""
        self._acc.total.clear()
        self._acc.total.update(balances)
        self._acc.locked.clear()
        self._acc.locked.update({c: Decimal(0) for c in balances})
        self._acc.net.clear()
        self._acc.net.update({s: q for s, q in positions.items() if s in self._symbols})
        self._restored.update(balances)

    def seed_position(self, symbol: str, qty: Decimal) -> None:
        """Hold `qty` (signed) of `symbol` from the start, as a positions file
        says the account does: the base currency behind it is credited (or
        owed, for a short) and the venue's net position follows, so the
        position can be closed. Publishes BalanceChanged(reason="seed")."""
        st = self._symbols.get(symbol)
        if st is None:
            raise ValueError(f"unknown symbol {symbol!r} at {self.name!r}")
        base = st.inst.base
        self._acc.add(base, qty)
        self._acc.add_position(symbol, qty)
        self._ledger.balance(base, self._now(), "seed")

    # -- read-only views -----------------------------------------------------

    def balance(self, currency: str) -> tuple[Decimal, Decimal, Decimal]:
        """(total, free, locked) of `currency`; a perpetual's settle currency
        counts its positions' margin as locked (as its BalanceChanged does)."""
        acc = self._acc
        total, locked = acc.total.get(currency, _ZERO), acc.locked.get(currency, _ZERO)
        if self._perp is not None and currency in self._ledger.margined:
            locked += self._perp.used(currency)
        return total, total - locked, locked

    def position(self, symbol: str) -> Decimal:
        """Net base position in `symbol` from this venue's fills."""
        return self._acc.position(symbol)

    def open_orders(self, symbol: str | None = None) -> list[str]:
        """Client order ids of the open orders, in acceptance order."""
        states = self._symbols.values() if symbol is None else (
            [self._symbols[symbol]] if symbol in self._symbols else [])
        return [cid for st in states for cid in st.open]

    def state(self) -> dict[str, Any]:
        """The venue's books as plain comparable data (see `audit.venue_state`)."""
        out = venue_state(self._ledger, self._acc, self._symbols)
        if self._perp is not None:
            out["perps"] = self._perp.state()
        return out

    def invariant_violations(self) -> list[str]:
        """What is wrong with the books (empty: nothing); see `audit.violations`."""
        out = violations(self._ledger, self._acc, self._symbols)
        if self._perp is not None:
            spot = {c for st in self._symbols.values() if st.perp is None
                    for c in (st.inst.base, st.inst.quote)}
            out += self._perp.violations(spot)
        return out

    # -- a stop --------------------------------------------------------------

    def answer_pending(self) -> int:
        """Answer every request still waiting for a market event, now, at the
        market the venue last saw (a graceful stop: a cancel sent on the way
        out must not wait for a next event that will never come). In arrival
        order across symbols, each stamped with its arrival time, deadlines
        before it expiring first; an order accepted here rests until the next
        market event (nothing fills without one). Returns how many."""
        due = sorted((arrival, n, req.symbol) for st in self._symbols.values()
                     for arrival, n, req in st.pending)
        touches: dict[str, Touch] = {}
        for arrival, _, symbol in due:
            st = self._symbols[symbol]
            _, _, req = heappop(st.pending)
            t = touches.get(symbol) or touches.setdefault(symbol, memory_touch(st))
            self._arrive(st, req, arrival, t)
        for symbol in touches:
            st = self._symbols[symbol]
            st.regate(self.fill_model == QUEUE_AWARE)
            st.busy = bool(st.open or st.pending)
        return len(due)

    # -- market events: the hot path -----------------------------------------
    # A symbol with nothing pending or open costs a lookup and a store; one
    # whose orders rest away from the market, a few float comparisons more.

    def on_trade(self, ev: Trade) -> None:
        st = self._symbols.get(ev.symbol)
        if st is None or ev.venue != self.data_venue:
            return
        st.last_px = p = ev.price
        st.last_ts = ev.ts_event
        st.trades_seen = True
        if st.perp is not None and st.perp.qty:
            self._perp_tick(st, ev.ts_event, p)
        if st.busy and (st.due(ev.ts_event) or (
                st.open and (st.always or not st.lo < p < st.hi))):
            self._step(st, ev.ts_event, trade_touch(st, ev))

    # -- quiet runs (see replay.driver): trades nobody must see one by one --------

    def quiet_trades(self, cols: TradeColumns, start: int, stop: int) -> int:
        """How far from `start` a run of trades (one symbol, sorted) may skip
        `on_trade`: to `stop` while the symbol has nothing pending or open,
        else not at all."""
        st = self._symbols.get(cols.symbol)
        if st is None or cols.venue != self.data_venue or not st.busy and (
                st.perp is None or not st.perp.qty):
            return stop
        return start

    def absorb_trades(self, cols: TradeColumns, start: int, stop: int) -> None:
        """What `on_trade` does for quiet trades: remember the last price."""
        st = self._symbols.get(cols.symbol)
        if st is not None and cols.venue == self.data_venue:
            st.last_px = cols.price[stop - 1]
            st.last_ts = cols.ts[stop - 1]
            st.trades_seen = True

    def on_quote(self, ev: Quote) -> None:
        st = self._symbols.get(ev.symbol)
        if st is None or ev.venue != self.data_venue:
            return
        st.on_quote(ev.bid, ev.bid_size, ev.ask, ev.ask_size)
        st.last_ts = ev.ts_event
        if st.perp is not None and st.perp.qty:
            self._perp_tick(st, ev.ts_event, None)
        if st.busy and (st.due(ev.ts_event) or (
                st.open and (st.always or not st.quiet_quote()))):
            self._step(st, ev.ts_event, quote_touch(st))

    def on_bar(self, ev: Bar) -> None:
        st = self._symbols.get(ev.symbol)
        if st is None or ev.venue != self.data_venue:
            return
        st.last_px = ev.close
        st.last_ts = ev.ts_event
        if st.perp is not None and st.perp.qty:
            self._perp_tick(st, ev.ts_event, ev.close)
        if st.busy and (st.due(ev.ts_event) or (
                st.open and (st.always or not st.lo < ev.low <= ev.high < st.hi))):
            self._step(st, ev.ts_event, bar_touch(st, ev))

    def on_book(self, ev: BookSnapshot | BookDelta) -> None:
        st = self._symbols.get(ev.symbol)
        if st is None or ev.venue != self.data_venue:
            return
        st.on_book(ev)
        st.last_ts = ev.ts_event
        if st.perp is not None and st.perp.qty:
            self._perp_tick(st, ev.ts_event, None)
        if st.busy and (st.due(ev.ts_event) or (
                st.open and (st.always or not st.quiet_quote()))):
            self._step(st, ev.ts_event, quote_touch(st))

    # -- requests ------------------------------------------------------------

    def on_request(self, ev: OrderSubmitted | CancelOrder | AmendOrder) -> None:
        """Queue a request until the market event at or after its arrival."""
        if ev.venue != self.name:
            return
        st = self._symbols.get(ev.symbol)
        if st is None:  # no market event will ever come for it: answer now
            self._ledger.refuse(ev, ev.ts_event + self.latency_ns,
                                f"unknown symbol {ev.symbol!r} at {self.name!r}")
            return
        # Latency counts from the later of the request's time and the market
        # time the venue has reached: in a replay they are the same (the clock
        # is the market's); live, the request is stamped by the local clock
        # while market events carry the venue's, and a skew (or a sample feed
        # played at another speed) must not hold the order back.
        arrival = max(ev.ts_event, st.last_ts) + self.latency_ns
        self._received += 1
        heappush(st.pending, (arrival, self._received, ev))
        st.busy = True

    # -- one market event for a symbol with work -----------------------------

    def _step(self, st: SymbolState, ts: int, t: Touch) -> None:
        pending = st.pending
        while pending and pending[0][0] <= ts:
            arrival, _, req = heappop(pending)
            self._arrive(st, req, arrival, t)
        if st.open:
            if st.next_expiry and st.next_expiry <= ts:
                self._expire(st, ts)
            for order in list(st.open.values()):
                if order.state == OPEN:
                    self._match(st, order, t, ts)
            st.regate(self.fill_model == QUEUE_AWARE)
        st.busy = bool(st.open or st.pending)

    def _match(self, st: SymbolState, order: SimOrder, t: Touch, ts: int) -> None:
        ledger = self._ledger
        was_live, was_fresh = order.live, order.fresh
        ex = match(order, t, self.fill_model, self._slip, st)
        first = was_fresh or (order.live and not was_live)
        tif = order.tif
        if ex is not None:
            qty = ex.qty
            if order.reduce_only:
                room = ledger.reduce_room(order.symbol, order.buy)
                if room <= 0:
                    ledger.cancel(order, ts, "reduce-only")
                    return
                qty = min(qty, room)
            if first and tif == FOK and qty < order.remaining:
                ledger.cancel(order, ts, FOK)
                return
            ledger.fill(order, st.inst, qty, ex.price, ex.liquidity, ts)
            if (order.state == OPEN and order.reduce_only
                    and ledger.reduce_room(order.symbol, order.buy) <= 0):
                ledger.cancel(order, ts, "reduce-only")
                return
        elif first and tif == FOK:
            ledger.cancel(order, ts, FOK)
            return
        if first and tif == IOC and order.state == OPEN:
            ledger.cancel(order, ts, IOC)

    def _arrive(self, st: SymbolState, req: OrderSubmitted | CancelOrder | AmendOrder,
                arrival: int, t: Touch) -> None:
        if st.next_expiry and st.next_expiry <= arrival:
            self._expire(st, arrival)
        if isinstance(req, OrderSubmitted):
            self._accept(st, req, arrival, t)
        elif isinstance(req, CancelOrder):
            self._cancel(req, arrival)
        else:
            self._amend(st, req, arrival, t)

    def _expire(self, st: SymbolState, ts: int) -> None:
        """Expire the orders whose deadline is at or before `ts`."""
        nearest = 0
        for order in list(st.open.values()):
            deadline = order.expire_ns
            if not deadline:
                continue
            if deadline <= ts:
                self._ledger.expire(order, deadline)
            elif not nearest or deadline < nearest:
                nearest = deadline
        st.next_expiry = nearest


def memory_touch(st: SymbolState) -> Touch:
    """The market as the venue last saw it, for answering a request with no
    market event: the top of book if one is known, else the last price (no
    sizes either way: nothing executes against it)."""
    if st.has_book:
        return quote_touch(st)
    p = None if st.last_px is None else st.inst.round_price(st.last_px)
    return Touch(TRADE, p, p, p, p, p, p, None, None)
