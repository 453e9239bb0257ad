"""The portfolio: positions, balances, marks and PnL, folded from bus events.

Owns the account's accounting state and nothing else: it never sends an order.
`apply(event)` is the one fold; the live bus handler calls it (and publishes
`PositionChanged` after a fill), and recovery calls it too. Which fills count is
not the portfolio's call: a `fill_gate` (the OMS's word) decides, live and in
the fold alike.

Accounting (average cost, exact `Decimal`, in each instrument's quote currency)
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
    - Fees, booked as the venue books them, so the position always equals the
      base balance the fills moved:
      in the quote: added to the position's fees;
      in the base: a buy of q with fee f moves the position by q - f, a sell by
        -(q + f), both at the fill price; the fee counts f x price in the
        position's fees (exact);
      in a third currency (BNB): kept in that currency (fees by currency), never
        converted with a made-up rate; not in the position's `fees`.
    - Unrealized PnL is `qty x mark - cost` (= qty x (mark - avg)), 0 with no mark.
    Hence, per currency, when balances follow the fills:
    `cash + base x mark == initial + realized - fees + unrealized`, exactly.

Marks
    The last market price seen for a symbol, whichever arrived last of: a trade's
    price, a quote's mid (both sides > 0), a bar's close. Floats become Decimal
    through `to_decimal` (shortest repr), converted lazily on first read so the
    market data path only stores a reference.

The account currency, equity and unvalued money
    Balances are taken verbatim from `BalanceChanged`: the venue is the source of
    truth. The account's figures (`equity`, `pnl`, `daily_pnl`) are stated in one
    account currency through explicit conversion marks, and a currency that has
    none is unvalued, never counted at 1: see `daemon.trading.valuation`.

Daily PnL
    `daily_pnl(strategy_id)` = the change, since the start of the current UTC day,
    of each position's `realized - fees + unrealized` (and of its third-currency
    fees), each currency converted at the current marks. At the first event (or
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
    `recover(events, snapshot)` restores it and folds the events after its
    `upto_seq` (a snapshot this build cannot read: a warning, and every event is
    folded from scratch). `apply` never publishes, so folding the journal does not
    duplicate `PositionChanged`. `seed()` (a positions file at a strategy's start)
    publishes a snapshot, so the seed is in the journal and recovery includes it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from decimal import Decimal, localcontext
from operator import attrgetter

import structlog

from daemon.trading.api import BUY, SELL, Position
from daemon.trading.average_cost import CTX, ZERO, Lot, average_price, tidy
from daemon.trading.margin_view import MarginView, defaults
from daemon.trading.money import Converter, Pnl, Unvalued, account_currency_of
from daemon.trading.portfolio_snapshots import COMPONENT, DAY_NS, Snapshots
from daemon.trading.positions_file import UNATTRIBUTED, load_positions
from daemon.trading.valuation import Valuation
from events.base import Event
from events.bus import Bus
from events.columns import TradeColumns
from events.instruments import Instrument, price_decimal, to_decimal
from events.market import Bar, Quote, Trade
from events.orders import Fill
from events.perp import (
    FundingPayment,
    LeverageChanged,
    Liquidation,
    MarginModeChanged,
    MarkPrice,
)
from events.state import BalanceChanged, PositionChanged

__all__ = ["ACCOUNT", "COMPONENT", "UNATTRIBUTED", "Pnl", "Portfolio", "Unvalued",
           "load_positions"]

log = structlog.get_logger("tapeloop.portfolio")

ACCOUNT = "*"  # strategy id shown on an account-wide (all strategies) position

_INF = float("inf")
# events that only move a mark (counted by mark_version, not state_version)
_MARKS = frozenset({Trade, Quote, Bar, MarkPrice})
_ts_event = attrgetter("ts_event")

Key = tuple[str, str]  # (venue, symbol)


class Portfolio(Valuation, MarginView, Snapshots):
    """Positions per (venue, symbol, strategy), balances, marks and PnL.

    `publish` is the bus's publish; `now_ns` the run's clock; `instruments` maps
    (venue, symbol) to its `Instrument` (base/quote for fees and valuation).
    `account_currency` is the currency the account's figures are stated in
    (None: the quote currency every instrument shares; ValueError if they
    differ); `rates` the configured fixed rates to it (`[account] rates`).
    `fill_gate(fill)` says whether a `Fill` is applied (None: every fill).
    `perp_settings` maps a perpetual's key to its configured (leverage, margin
    mode), what it has until the venue's `LeverageChanged`/`MarginModeChanged`.
    Implements `daemon.trading.api.PortfolioView`.
    """

    def __init__(self, publish: Callable[[Event], object], now_ns: Callable[[], int],
                 instruments: Mapping[Key, Instrument], *,
                 account_currency: str | None = None,
                 rates: Mapping[str, Decimal] | None = None,
                 fill_gate: Callable[[Fill], bool] | None = None,
                 perp_settings: Mapping[Key, tuple[int, str]] | None = None) -> None:
        self._publish = publish
        self._now_ns = now_ns
        self._instruments = dict(instruments)
        self._quote = {key: inst.quote for key, inst in self._instruments.items()}
        self._perp_list = [key for key, inst in self._instruments.items() if inst.perpetual]
        if account_currency is None:
            account_currency = account_currency_of(self._quote.values())
        self.account_currency = account_currency
        self._money = Converter(account_currency, self._instruments.values(), rates or {},
                                self.last_price)
        self._fill_gate = fill_gate
        self._warned: set[str] = set()  # currencies already logged as unvalued
        self._positions: dict[Key, dict[str, Lot]] = {}
        self._balances: dict[Key, tuple[Decimal, Decimal, Decimal]] = {}  # total, free, locked
        self._marks: dict[Key, Trade | Quote | Bar | MarkPrice | Decimal | float] = {}
        self._mark_priced: set[Key] = set()  # perpetuals marked by the venue's MarkPrice
        self._nets: dict[Key, Lot] = {}  # a perpetual's account-level position
        self._perp_defaults = defaults(perp_settings)
        self._leverage, self._margin_mode = (dict(d) for d in self._perp_defaults)
        self._mark_cache: dict[Key, tuple[object, Decimal]] = {}
        self._day: int | None = None
        self._day_end = 0  # ns: the end of `_day` (0 until the first event)
        self.mark_version = 0  # counts mark updates: "have prices moved since?"
        # counts every other change a valuation reads (fills, balances, funding,
        # liquidations, leverage, seeds, restores): with mark_version, "could the
        # equity differ from when I last asked?" (the replay's equity samples)
        self.state_version = 0
        self._any_position = (-1, False)  # (state_version, has_any_position then)
        self._mark_venue: dict[str, str] = {}  # paper twin -> venue whose marks it uses
        self._baselines: dict[tuple[str, str, str], Decimal] = {}
        # (venue, symbol, strategy, currency) -> third-currency fees at the day's start
        self._fee_baselines: dict[tuple[str, str, str, str], Decimal] = {}
        self.upto_seq = 0

    def subscribe(self, bus: Bus) -> None:
        """Follow fills, balances and market prices on `bus`."""
        bus.subscribe(Fill, self._on_fill)
        bus.subscribe(Trade, self._on_trade)
        bus.subscribe(Liquidation, self._on_liquidation)
        for cls in (Quote, Bar, BalanceChanged, MarkPrice, FundingPayment, LeverageChanged,
                    MarginModeChanged):
            bus.subscribe(cls, self._on_event)

    def _on_event(self, event: Event) -> None:
        self.apply(event)

    def quiet_trades(self, cols: TradeColumns, start: int, stop: int) -> int:
        """How far from `start` a run of trades (one symbol, sorted) may skip
        `_on_trade`: while the symbol is already marked and the UTC day holds.
        Shortens only with this symbol's trades (its first mark); another's may
        roll the day, which only lengthens it (the replay keeps answers meanwhile)."""
        if (cols.venue, cols.symbol) not in self._marks:
            return start
        if self._mark_priced and (cols.venue, cols.symbol) in self._mark_priced:
            return stop  # a perpetual's mark is the venue's MarkPrice: trades are no mark
        return bisect_left(cols.ts, self._day_end, start, stop)

    def absorb_trades(self, cols: TradeColumns, start: int, stop: int) -> None:
        """What `_on_trade` does for quiet trades: keep the last valid price as
        the mark (a float mark values exactly as the Trade holding it would)."""
        seq = cols.seq[stop - 1]
        if seq:
            self.upto_seq = seq
        if self._mark_priced and (cols.venue, cols.symbol) in self._mark_priced:
            return
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
            if self._mark_priced and key in self._mark_priced:
                return
            self._marks[key] = trade
            self.mark_version += 1
            if trade.seq:
                self.upto_seq = trade.seq
        else:
            self.apply(trade)

    def _on_fill(self, fill: Fill) -> None:
        changed = self.apply(fill)
        if changed is not None:
            self._changed(changed)

    def _on_liquidation(self, event: Liquidation) -> None:
        self.state_version += 1
        self._roll_day(event.ts_event)
        if event.seq:
            self.upto_seq = event.seq
        for changed in self._apply_liquidation(event):
            self._changed(changed)

    def _changed(self, changed: Position) -> None:
        now = self._now_ns()
        self._publish(PositionChanged(
            ts_event=now, ts_recv=now, venue=changed.venue, symbol=changed.symbol,
            strategy_id=changed.strategy_id, qty=changed.qty, avg_price=changed.avg_price,
            realized_pnl=changed.realized_pnl, fees=changed.fees))

    # -- the fold ------------------------------------------------------------------

    def apply(self, event: Event) -> Position | None:
        """Fold one event into the state; returns the strategy position a `Fill`
        changed (None otherwise, and for a fill the gate holds back). Never
        publishes: recovery calls it too."""
        self._roll_day(event.ts_event)
        if event.seq:
            self.upto_seq = event.seq
        cls = type(event)
        if cls not in _MARKS:
            self.state_version += 1
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
            if self._fill_gate is None or self._fill_gate(event):
                return self._apply_fill(event)
        elif cls is BalanceChanged:
            assert isinstance(event, BalanceChanged)
            self._balances[(event.venue, event.currency)] = (
                event.total, event.free, event.locked)
        elif cls is MarkPrice:
            assert isinstance(event, MarkPrice)
            if 0 < event.mark < _INF:
                self._mark_priced.add((event.venue, event.symbol))
                self._mark(event)
        elif cls is FundingPayment:
            assert isinstance(event, FundingPayment)
            self._apply_funding(event)
        elif cls is Liquidation:
            assert isinstance(event, Liquidation)
            self._apply_liquidation(event)
        elif cls is LeverageChanged:
            assert isinstance(event, LeverageChanged)
            self._leverage[(event.venue, event.symbol)] = event.leverage
        elif cls is MarginModeChanged:
            assert isinstance(event, MarginModeChanged)
            self._margin_mode[(event.venue, event.symbol)] = event.mode
        return None

    def _mark(self, event: Trade | Quote | Bar | MarkPrice) -> None:
        key = (event.venue, event.symbol)
        if type(event) is not MarkPrice and self._mark_priced and key in self._mark_priced:
            return  # a perpetual the venue marks: its MarkPrice is the mark
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
        inst = self._instruments.get(key)
        fee, currency = fill.fee, fill.fee_currency
        with localcontext(CTX):
            signed = fill.qty if fill.side == BUY else -fill.qty
            if not fee or inst is None or currency in ("", inst.quote):
                pos.fees += fee
            elif currency == inst.base and not inst.perpetual:
                # the venue takes the fee out of the base it delivers (or adds it
                # to the base it takes): the position moves as the balance does
                signed -= fee
                pos.fees += fee * fill.price
            else:
                pos.pay_other(currency, fee)
            if signed:
                pos.fill(signed, fill.price)
                if inst is not None and inst.perpetual:
                    self._net_fill(key, signed, fill.price)
        return self._view(fill.venue, fill.symbol, fill.strategy_id, pos)

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
        self._fee_baselines = {
            (venue, symbol, sid, currency): amount
            for (venue, symbol), by_sid in self._positions.items()
            for sid, pos in by_sid.items() if pos.other_fees
            for currency, amount in pos.other_fees.items()
        }

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

    def position_qty(self, venue: str, symbol: str, strategy_id: str | None = None
                     ) -> Decimal:
        """`position(...).qty` without building the Position (risk asks per order)."""
        by_sid = self._positions.get((venue, symbol))
        if not by_sid:
            return ZERO
        if strategy_id is not None:
            pos = by_sid.get(strategy_id)
            return ZERO if pos is None else pos.qty
        with localcontext(CTX):
            return sum((pos.qty for pos in by_sid.values()), ZERO)

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

    def quote_currency(self, venue: str, symbol: str) -> str:
        """The currency a symbol's prices and PnL are in ("" if unknown)."""
        return self._quote.get((venue, symbol), "")

    def balance(self, venue: str, currency: str) -> Decimal:
        """The venue's total balance of `currency` (0 if never reported)."""
        return self._balances.get((venue, currency), (ZERO, ZERO, ZERO))[0]

    def free_balance(self, venue: str, currency: str) -> Decimal:
        """The part of the balance the venue reports as free (not locked)."""
        return self._balances.get((venue, currency), (ZERO, ZERO, ZERO))[1]

    def balances(self, venue: str) -> dict[str, Decimal]:
        """Every currency's total balance on `venue`, as last reported."""
        return {c: bal[0] for (v, c), bal in self._balances.items() if v == venue}

    def mark_as(self, venue: str, data_venue: str) -> None:
        """Value `venue`'s positions at `data_venue`'s prices (a paper twin has
        no market data of its own)."""
        self._mark_venue[venue] = data_venue
        self.state_version += 1  # what the valuation reads changed

    def last_price(self, venue: str, symbol: str) -> Decimal | None:
        """The mark: the last trade price, quote mid or bar close, exact."""
        key = (self._mark_venue.get(venue, venue), symbol)
        raw = self._marks.get(key)
        if raw is None:
            return None
        cached = self._mark_cache.get(key)
        if cached is not None and cached[0] is raw:
            return cached[1]
        if type(raw) is Trade:  # the common mark: first
            price = price_decimal(raw.price)  # type: ignore[union-attr]
        elif isinstance(raw, Decimal):
            price = raw
        elif isinstance(raw, MarkPrice):
            price = to_decimal(raw.mark)
        elif isinstance(raw, float):  # a trade price absorbed from a quiet run
            price = price_decimal(raw)
        elif isinstance(raw, Trade):
            price = price_decimal(raw.price)
        elif isinstance(raw, Bar):
            price = to_decimal(raw.close)
        else:
            price = tidy(CTX.divide(CTX.add(to_decimal(raw.bid), to_decimal(raw.ask)), 2))
        self._mark_cache[key] = (raw, price)
        return price

    def unrealized_pnl(self, venue: str, symbol: str, strategy_id: str | None = None) -> Decimal:
        """qty x (mark - avg) of a strategy's (or the account's) position, in the
        symbol's quote currency."""
        mark = self.last_price(venue, symbol)
        by_sid = self._positions.get((venue, symbol), {})
        with localcontext(CTX):
            return tidy(sum((p.unrealized(mark) for sid, p in by_sid.items()
                              if strategy_id in (None, sid)), ZERO))

    def trades_mark(self, venue: str, symbol: str) -> bool:
        """Whether trades of `symbol` on `venue` move its mark (not a perpetual the
        venue marks with MarkPrice)."""
        return not (self._mark_priced and (venue, symbol) in self._mark_priced)

    def mark_exposure(self, venue: str, symbol: str) -> Decimal | None:
        """How the account's daily PnL moves with the price of `symbol`'s trades on
        `venue`: the summed quantity of every position valued at that price, when
        the PnL is that simple (every position quoted in the account currency, no
        fee paid in a third currency); None otherwise."""
        account = self.account_currency
        qty = ZERO
        for (v, s), by_sid in self._positions.items():
            if self._quote.get((v, s)) != account:
                return None
            for pos in by_sid.values():
                if pos.other_fees:
                    return None
                if s == symbol and self._mark_venue.get(v, v) == venue:
                    qty += pos.qty
        return qty

    def has_any_position(self) -> bool:
        """Whether any strategy holds a non-zero position anywhere."""
        # asked on every risk tick and quiet run: positions change only with
        # state_version (a fill, a liquidation, a seed, a restore)
        if self._any_position[0] != self.state_version:
            self._any_position = (self.state_version, any(
                p.qty for by_sid in self._positions.values() for p in by_sid.values()))
        return self._any_position[1]

    def has_position(self, venue: str, symbol: str) -> bool:
        """Whether any strategy holds a non-zero position in the symbol."""
        return any(p.qty for p in self._positions.get((venue, symbol), {}).values())
