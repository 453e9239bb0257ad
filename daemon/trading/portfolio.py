"""The portfolio: positions, balances, marks and PnL, folded from bus events.

Owns the account's accounting state and nothing else: it never sends an order.
`apply(event)` is the one fold; the live bus handler calls it (and publishes
`PositionChanged` after a fill), and recovery calls it too.

Accounting (average cost, exact `Decimal`)
    A position is a signed `qty` and its `cost`: the entry value of the open
    quantity (qty x average entry price, signed like qty).
    - Opening or increasing by `d` at `p` adds `d x p` to cost, exactly. The shown
      `avg_price` is `cost / qty`, recomputed only when the position grows.
    - Reducing by `c` releases `cost x c / |qty|` and realizes
      `(exit - avg) x c` (sign by side). Closing the whole position releases the
      whole cost, with no division: a round trip to flat leaves qty, cost and avg
      exactly 0 and realized PnL exactly equal to the round trip's cash flow. A
      partial close divides; the released cost is exact when the quotient
      terminates (to 1e-20), else it is rounded half-even to 1e-20 quote units,
      so a partial close's PnL is within 1e-20 of the exact rational value and
      the error never compounds (the cost keeps it and a full close settles it).
    - A fill through zero closes the old side at its average and opens the
      remainder at the fill price.
    - Fees accumulate separately, in the quote currency: a fee charged in the base
      is valued at the fill price, one in a third currency at its valuation.
    - Unrealized PnL is `qty x mark - cost` (= qty x (mark - avg)), 0 with no mark.
    Hence, for one instrument whose balances follow its fills,
    `equity == initial cash + realized - fees + unrealized`, exactly.

Marks
    The last market price seen for a symbol, whichever arrived last of: a trade's
    price, a quote's mid (both sides > 0), a bar's close. Floats become Decimal
    through `to_decimal` (shortest repr), converted lazily on first read so the
    market data path only stores a reference.

Balances and equity
    Balances are taken verbatim from `BalanceChanged`: the venue is the source of
    truth. `equity(venue)` is the sum of balance totals, each currency valued at 1
    if it is no instrument's base (a quote/cash currency), else at the mark of an
    instrument it is the base of (those quoted in a cash currency first, then by
    symbol; the first with a mark whose quote can itself be valued, so a cross
    like ETHBTC is valued through BTC's price), else 0 (no price yet). A strategy's
    contribution to equity is `pnl(strategy_id)` = realized - fees + unrealized.

Daily PnL
    `daily_pnl(strategy_id)` = the change, since the start of the current UTC day,
    of each position's `realized - fees + unrealized`. At the first event (or
    query) of a new UTC day the portfolio records every position's value at the
    marks of that moment as the day's baseline; a position opened later starts
    at 0. So it is realized - fees of today's fills plus the change in unrealized
    since midnight. Days follow the events' `ts_event` (and the run's clock on a
    query), never the wall clock. A position has no value until its symbol's
    first mark; for one held since the day began (e.g. seeded), that first
    valuation is not counted as the day's PnL.

Recovery
    State = fold of events. `snapshot()` captures the state as
    `Snapshot(component="portfolio", upto_seq=<seq of the last applied event>)`;
    recovery is `restore(last snapshot)` then `apply()` for every journaled
    event after `upto_seq`, which `recover()` does. `apply` never publishes, so
    folding the journal does not duplicate `PositionChanged`. `seed()` (a
    positions file at a strategy's start) publishes a snapshot, so the seed is in the
    journal and recovery includes it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, localcontext
from operator import attrgetter
from typing import Any

from daemon.trading.api import BUY, SELL, Position
from daemon.trading.average_cost import CTX, ONE, ZERO, Lot, average_price, tidy
from daemon.trading.portfolio_state import (
    STATE_VERSION,
    BalState,
    BaseState,
    MarkState,
    PosState,
    State,
    decode_state,
    encode_state,
)
from daemon.trading.positions_file import UNATTRIBUTED, load_positions
from events.base import Event
from events.bus import Bus
from events.columns import TradeColumns
from events.instruments import Instrument, to_decimal
from events.market import Bar, Quote, Trade
from events.orders import Fill
from events.state import BalanceChanged, PositionChanged, Snapshot

__all__ = ["ACCOUNT", "COMPONENT", "UNATTRIBUTED", "Portfolio", "load_positions"]

COMPONENT = "portfolio"
ACCOUNT = "*"  # strategy id shown on an account-wide (all strategies) position
DAY_NS = 86_400 * 1_000_000_000

_INF = float("inf")
_ts_event = attrgetter("ts_event")

Key = tuple[str, str]  # (venue, symbol)


class Portfolio:
    """Positions per (venue, symbol, strategy), balances, marks and PnL.

    `publish` is the bus's publish; `now_ns` the run's clock; `instruments` maps
    (venue, symbol) to its `Instrument` (base/quote for valuation and fees).
    Implements `daemon.trading.api.PortfolioView`.
    """

    def __init__(self, publish: Callable[[Event], object], now_ns: Callable[[], int],
                 instruments: Mapping[Key, Instrument]) -> None:
        self._publish = publish
        self._now_ns = now_ns
        self._instruments = dict(instruments)
        # (venue, currency) -> instruments with that base, the order they are tried
        # in to value it: quoted in a cash currency first, then by symbol
        bases = {(i.venue, i.base) for i in self._instruments.values()}
        self._by_base: dict[Key, list[Instrument]] = {}
        for inst in sorted(self._instruments.values(),
                           key=lambda i: ((i.venue, i.quote) in bases, i.venue, i.symbol)):
            self._by_base.setdefault((inst.venue, inst.base), []).append(inst)
        self._positions: dict[Key, dict[str, Lot]] = {}
        self._balances: dict[Key, tuple[Decimal, Decimal, Decimal]] = {}  # total, free, locked
        self._marks: dict[Key, Trade | Quote | Bar | Decimal | float] = {}
        self._mark_cache: dict[Key, tuple[object, Decimal]] = {}
        self._day: int | None = None
        self._day_end = 0  # ns: the end of `_day` (0 until the first event)
        self.mark_version = 0  # counts mark updates: "have prices moved since?"
        self._mark_venue: dict[str, str] = {}  # paper twin -> venue whose marks it uses
        self._baselines: dict[tuple[str, str, str], Decimal] = {}
        self.upto_seq = 0

    def subscribe(self, bus: Bus) -> None:
        """Follow fills, balances and market prices on `bus`."""
        bus.subscribe(Fill, self._on_fill)
        bus.subscribe(Trade, self._on_trade)
        for cls in (Quote, Bar, BalanceChanged):
            bus.subscribe(cls, self._on_event)

    def _on_event(self, event: Event) -> None:
        self.apply(event)

    def quiet_trades(self, cols: TradeColumns, start: int, stop: int) -> int:
        """How far from `start` a run of trades (one symbol, sorted) may skip
        `_on_trade`: while the symbol is already marked and the UTC day holds."""
        if (cols.venue, cols.symbol) not in self._marks:
            return start
        return bisect_left(cols.ts, self._day_end, start, stop)

    def absorb_trades(self, cols: TradeColumns, start: int, stop: int) -> None:
        """What `_on_trade` does for quiet trades: keep the last valid price as
        the mark (a float mark values exactly as the Trade holding it would)."""
        seq = cols.seq[stop - 1]
        if seq:
            self.upto_seq = seq
        prices = cols.price
        for i in range(stop - 1, start - 1, -1):
            price = prices[i]
            if 0 < price < _INF:
                self._marks[(cols.venue, cols.symbol)] = price
                self.mark_version += 1
                return

    def _on_trade(self, trade: Trade) -> None:
        """`apply` for the one event that comes a million times a second: a
        trade of an already marked symbol, on the same UTC day, only replaces
        the mark. Anything else takes the full fold."""
        key = (trade.venue, trade.symbol)
        if (key in self._marks and trade.ts_event < self._day_end
                and 0 < trade.price < _INF):
            self._marks[key] = trade
            self.mark_version += 1
            if trade.seq:
                self.upto_seq = trade.seq
        else:
            self.apply(trade)

    def _on_fill(self, fill: Fill) -> None:
        changed = self.apply(fill)
        if changed is not None:
            now = self._now_ns()
            self._publish(PositionChanged(
                ts_event=now, ts_recv=now, venue=changed.venue, symbol=changed.symbol,
                strategy_id=changed.strategy_id, qty=changed.qty, avg_price=changed.avg_price,
                realized_pnl=changed.realized_pnl, fees=changed.fees))

    # -- the fold ------------------------------------------------------------------

    def apply(self, event: Event) -> Position | None:
        """Fold one event into the state; returns the strategy position a `Fill`
        changed (None otherwise). Never publishes: recovery calls it too."""
        self._roll_day(event.ts_event)
        if event.seq:
            self.upto_seq = event.seq
        cls = type(event)
        if cls is Trade:
            assert isinstance(event, Trade)
            if 0 < event.price < _INF:
                self._mark(event)
        elif cls is Quote:
            assert isinstance(event, Quote)
            if 0 < event.bid < _INF and 0 < event.ask < _INF:  # a one-sided book has no mid
                self._mark(event)
        elif cls is Bar:
            assert isinstance(event, Bar)
            if 0 < event.close < _INF:
                self._mark(event)
        elif cls is Fill:
            assert isinstance(event, Fill)
            return self._apply_fill(event)
        elif cls is BalanceChanged:
            assert isinstance(event, BalanceChanged)
            self._balances[(event.venue, event.currency)] = (
                event.total, event.free, event.locked)
        return None

    def _mark(self, event: Trade | Quote | Bar) -> None:
        key = (event.venue, event.symbol)
        first = key not in self._marks
        self._marks[key] = event
        self.mark_version += 1
        if first and key in self._positions:
            # A position held since the day began had no value until now: its first
            # valuation is not the day's PnL.
            mark = self.last_price(*key)
            with localcontext(CTX):
                for sid, pos in self._positions[key].items():
                    if (*key, sid) in self._baselines:
                        self._baselines[(*key, sid)] += pos.unrealized(mark)

    def _apply_fill(self, fill: Fill) -> Position:
        if fill.side not in (BUY, SELL) or fill.qty <= 0 or fill.price <= 0:
            raise ValueError(f"malformed fill {fill.client_order_id} {fill.trade_id}: "
                             f"side={fill.side} qty={fill.qty} price={fill.price}")
        key = (fill.venue, fill.symbol)
        pos = self._positions.setdefault(key, {}).get(fill.strategy_id)
        if pos is None:
            pos = self._positions[key][fill.strategy_id] = Lot()
        with localcontext(CTX):
            pos.fill(fill.qty if fill.side == BUY else -fill.qty, fill.price)
            pos.fees += self._fee_in_quote(fill)
        return self._view(fill.venue, fill.symbol, fill.strategy_id, pos)

    def _fee_in_quote(self, fill: Fill) -> Decimal:
        inst = self._instruments.get((fill.venue, fill.symbol))
        if not fill.fee or inst is None or fill.fee_currency in ("", inst.quote):
            return fill.fee
        if fill.fee_currency == inst.base:
            return fill.fee * fill.price
        return fill.fee * self._value(fill.venue, fill.fee_currency, ())

    def _roll_day(self, ts: int) -> None:
        day = ts // DAY_NS
        if self._day is not None and day <= self._day:
            return
        self._day = day
        self._day_end = (day + 1) * DAY_NS
        # The baseline is every position's value at the moment the day starts.
        with localcontext(CTX):
            self._baselines = {
                (venue, symbol, sid): pos.total(self.last_price(venue, symbol))
                for (venue, symbol), by_sid in self._positions.items()
                for sid, pos in by_sid.items()
            }

    # -- seeding, snapshots and recovery --------------------------------------------

    def seed(self, strategy_id: str | None, positions: Iterable[Position]) -> Snapshot:
        """Start from known positions (e.g. `load_positions`), attributed to
        `strategy_id` (None: each position's own `strategy_id`), replacing any held
        for the same keys. Publishes `PositionChanged` for each and then a snapshot
        (returned), so the seed is journaled and recovery includes it."""
        now = self._now_ns()
        for p in positions:
            sid = p.strategy_id if strategy_id is None else strategy_id
            with localcontext(CTX):
                pos = Lot(p.qty, p.qty * p.avg_price, p.avg_price if p.qty else ZERO,
                           p.realized_pnl, p.fees)
                if self._day is not None:  # a seed is not today's PnL
                    self._baselines[(p.venue, p.symbol, sid)] = pos.total(
                        self.last_price(p.venue, p.symbol))
            self._positions.setdefault((p.venue, p.symbol), {})[sid] = pos
            self._publish(PositionChanged(
                ts_event=now, ts_recv=now, venue=p.venue, symbol=p.symbol, strategy_id=sid,
                qty=pos.qty, avg_price=pos.avg, realized_pnl=pos.realized, fees=pos.fees))
        snapshot = self.snapshot()
        self._publish(snapshot)
        return snapshot

    def snapshot(self) -> Snapshot:
        """The folded state as a `Snapshot` event (not published; the caller
        publishes it, e.g. on a timer)."""
        state = State(
            version=STATE_VERSION, upto_seq=self.upto_seq, day=self._day,
            positions=[PosState(v, s, sid, p.qty, p.cost, p.avg, p.realized, p.fees)
                       for (v, s), by_sid in self._positions.items()
                       for sid, p in by_sid.items()],
            balances=[BalState(v, c, *bal) for (v, c), bal in self._balances.items()],
            marks=[MarkState(v, s, price) for (v, s) in self._marks
                   if (price := self.last_price(v, s)) is not None],
            baselines=[BaseState(v, s, sid, value)
                       for (v, s, sid), value in self._baselines.items()],
        )
        now = self._now_ns()
        return Snapshot(ts_event=now, ts_recv=now, component=COMPONENT,
                        upto_seq=self.upto_seq, state=encode_state(state))

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole state with the one `snapshot` holds."""
        if snapshot.component != COMPONENT:
            raise ValueError(f"not a portfolio snapshot: component {snapshot.component!r}")
        state = decode_state(snapshot.state)
        if state.version != STATE_VERSION:
            raise ValueError(f"portfolio snapshot version {state.version} "
                             f"(this build reads {STATE_VERSION})")
        self._positions = {}
        for p in state.positions:
            self._positions.setdefault((p.venue, p.symbol), {})[p.strategy_id] = Lot(
                p.qty, p.cost, p.avg, p.realized, p.fees)
        self._balances = {(b.venue, b.currency): (b.total, b.free, b.locked)
                          for b in state.balances}
        self._marks = {(m.venue, m.symbol): m.price for m in state.marks}
        self._mark_cache = {}
        self._baselines = {(b.venue, b.symbol, b.strategy_id): b.value for b in state.baselines}
        self._day = state.day
        self._day_end = 0 if state.day is None else (state.day + 1) * DAY_NS
        self.upto_seq = state.upto_seq

    def recover(self, events: Iterable[Event], snapshot: Snapshot | None = None) -> None:
        """Recovery: `restore(snapshot)`, then fold every event after its
        `upto_seq` (all of them without a snapshot). The live fold, replayed."""
        after = 0
        if snapshot is not None:
            self.restore(snapshot)
            after = snapshot.upto_seq
        for event in events:
            if event.seq > after:
                self.apply(event)

    # -- queries (PortfolioView and friends) ------------------------------------------

    def position(self, venue: str, symbol: str, strategy_id: str | None = None) -> Position:
        """A strategy's position, or the account's (all strategies, labelled
        `ACCOUNT`) when `strategy_id` is None: summed qty, realized and fees; its
        avg is the net cost over the net qty (0 when the net is flat)."""
        by_sid = self._positions.get((venue, symbol), {})
        if strategy_id is not None:
            pos = by_sid.get(strategy_id)
            return self._view(venue, symbol, strategy_id, pos or Lot())
        with localcontext(CTX):
            total = Lot()
            for pos in by_sid.values():
                total.qty += pos.qty
                total.cost += pos.cost
                total.realized += pos.realized
                total.fees += pos.fees
            if total.qty:
                total.avg = average_price(total.cost, total.qty)
        return self._view(venue, symbol, ACCOUNT, total)

    def positions(self, strategy_id: str | None = None, venue: str | None = None,
                  include_flat: bool = False) -> list[Position]:
        """Strategy-level positions (open ones unless `include_flat`), in the order
        they first traded."""
        return [self._view(v, s, sid, pos)
                for (v, s), by_sid in self._positions.items() if venue in (None, v)
                for sid, pos in by_sid.items()
                if strategy_id in (None, sid) and (include_flat or pos.qty)]

    @staticmethod
    def _view(venue: str, symbol: str, strategy_id: str, pos: Lot) -> Position:
        return Position(venue=venue, symbol=symbol, strategy_id=strategy_id, qty=pos.qty,
                        avg_price=pos.avg, realized_pnl=tidy(pos.realized),
                        fees=tidy(pos.fees))

    def balance(self, venue: str, currency: str) -> Decimal:
        """The venue's total balance of `currency` (0 if never reported)."""
        return self._balances.get((venue, currency), (ZERO, ZERO, ZERO))[0]

    def free_balance(self, venue: str, currency: str) -> Decimal:
        """The part of the balance the venue reports as free (not locked)."""
        return self._balances.get((venue, currency), (ZERO, ZERO, ZERO))[1]

    def mark_as(self, venue: str, data_venue: str) -> None:
        """Value `venue`'s positions at `data_venue`'s prices (a paper twin has
        no market data of its own)."""
        self._mark_venue[venue] = data_venue

    def last_price(self, venue: str, symbol: str) -> Decimal | None:
        """The mark: the last trade price, quote mid or bar close, exact."""
        key = (self._mark_venue.get(venue, venue), symbol)
        raw = self._marks.get(key)
        if raw is None:
            return None
        cached = self._mark_cache.get(key)
        if cached is not None and cached[0] is raw:
            return cached[1]
        if isinstance(raw, Decimal):
            price = raw
        elif isinstance(raw, float):  # a trade price absorbed from a quiet run
            price = to_decimal(raw)
        elif isinstance(raw, Trade):
            price = to_decimal(raw.price)
        elif isinstance(raw, Bar):
            price = to_decimal(raw.close)
        else:
            price = tidy(CTX.divide(CTX.add(to_decimal(raw.bid), to_decimal(raw.ask)), 2))
        self._mark_cache[key] = (raw, price)
        return price

    def unrealized_pnl(self, venue: str, symbol: str, strategy_id: str | None = None) -> Decimal:
        """qty x (mark - avg) of a strategy's (or the account's) position."""
        mark = self.last_price(venue, symbol)
        by_sid = self._positions.get((venue, symbol), {})
        with localcontext(CTX):
            return tidy(sum((p.unrealized(mark) for sid, p in by_sid.items()
                              if strategy_id in (None, sid)), ZERO))

    def pnl(self, strategy_id: str | None = None, venue: str | None = None) -> Decimal:
        """realized - fees + unrealized over the positions in scope: a strategy's
        contribution to equity (the account's when `strategy_id` is None)."""
        with localcontext(CTX):
            return tidy(sum((pos.total(self.last_price(v, s))
                              for (v, s), by_sid in self._positions.items() if venue in (None, v)
                              for sid, pos in by_sid.items() if strategy_id in (None, sid)),
                             ZERO))

    def daily_pnl(self, strategy_id: str | None = None, venue: str | None = None) -> Decimal:
        """PnL since the start of the current UTC day (see the module doc)."""
        self._roll_day(self._now_ns())
        baselines = self._baselines
        total = ZERO
        # A plain loop: risk asks this on every market event while a position is open.
        with localcontext(CTX):
            for (v, s), by_sid in self._positions.items():
                if venue is not None and v != venue:
                    continue
                mark = self.last_price(v, s)
                for sid, pos in by_sid.items():
                    if strategy_id is None or sid == strategy_id:
                        total += pos.total(mark) - baselines.get((v, s, sid), ZERO)
        return tidy(total)

    def equity(self, venue: str | None = None) -> Decimal:
        """Balances valued at the marks (see the module doc), one venue or all."""
        with localcontext(CTX):
            return tidy(sum((total * self._value(v, currency, ())
                              for (v, currency), (total, _free, _locked) in self._balances.items()
                              if venue in (None, v) and total), ZERO))

    def equity_by_strategy(self) -> dict[str, Decimal]:
        """Each strategy's contribution to equity (`pnl(strategy_id)`), by id."""
        ids = sorted({sid for by_sid in self._positions.values() for sid in by_sid})
        return {sid: self.pnl(sid) for sid in ids}

    def final_report(self, initial_equity: Decimal) -> dict[str, Any]:
        """The account at the end of a run, as `replay.report` takes it: positions
        and marks by symbol (summed over venues and strategies), realized PnL
        (gross of fees), unrealized PnL, fees, and the starting equity."""
        positions: dict[str, Decimal] = {}
        realized = unrealized = fees = ZERO
        marks: dict[str, Decimal] = {}
        with localcontext(CTX):
            for (venue, symbol), by_sid in self._positions.items():
                mark = self.last_price(venue, symbol)
                if mark is not None:
                    marks[symbol] = mark
                for pos in by_sid.values():
                    positions[symbol] = positions.get(symbol, ZERO) + pos.qty
                    realized += pos.realized
                    unrealized += pos.unrealized(mark)
                    fees += pos.fees
        return {"positions": positions, "realized": tidy(realized),
                "unrealized": tidy(unrealized), "fees": tidy(fees),
                "initial_equity": initial_equity, "marks": marks}

    def has_any_position(self) -> bool:
        """Whether any strategy holds a non-zero position anywhere."""
        return any(p.qty for by_sid in self._positions.values() for p in by_sid.values())

    def has_position(self, venue: str, symbol: str) -> bool:
        """Whether any strategy holds a non-zero position in the symbol."""
        return any(p.qty for p in self._positions.get((venue, symbol), {}).values())

    def _value(self, venue: str, currency: str, seen: tuple[str, ...]) -> Decimal:
        """One unit of `currency` in quote terms (1 for a quote/cash currency)."""
        candidates = self._by_base.get((venue, currency))
        if not candidates:
            return ONE
        for inst in candidates:
            mark = self.last_price(venue, inst.symbol)
            if mark is not None and inst.quote not in seen:
                quote = self._value(venue, inst.quote, (*seen, currency))
                if quote:
                    return mark * quote
        return ZERO
