"""The risk engine: pre-trade checks, the effective limits and the trading state.

Owns the account's trading state (active | reducing | halted) and the order-rate
windows; the checks themselves are in `daemon.trading.risk_checks`. The OMS asks
`RiskEngine.check(strategy_id, order, open_orders)` before it publishes
`OrderSubmitted`; a `Rejection` becomes `OrderRejected(check=..., reason=...)`.

Limits (`daemon.trading.risk_limits`): a strategy's `[strategies.risk]` only
tightens the account's: each effective limit is the smaller of the two
(`Limits.from_config`). Limits in money
(`max_order_notional`, `max_position_notional`, `daily_loss_limit`, and equity for
`max_concentration_pct`) are in the account currency (`[account] currency`).

Trading state machine (events.system.TradingState), on the account's daily PnL
in the account currency (`Portfolio.daily_pnl()`: realized - fees + change in
unrealized since 00:00 UTC, each currency converted at the marks; a currency with
no conversion mark is left out and reported by the portfolio as unvalued):
    active   -- loss >= daily_loss_limit -->                    reducing
    active | reducing -- loss >= halt_loss_multiple x limit --> halted
    any      -- halt(reason) (kill switch) -->                  halted
    reducing -- first evaluation on a new UTC day -->           active (loss resets)
    reducing | halted -- resume() -->  active, or straight back to the state the
                                       day's loss still demands
Escalation is automatic, de-escalation is not (a recovering price does not lift
the limit within the day), and halted always needs `resume()`. In reducing and
halted, only position-reducing orders pass (see `risk_checks`). A strategy whose
own daily loss reaches its effective limit is held to reducing orders the same way,
without a state event (TradingState is account-wide).

The state is evaluated before every check (so no order is judged on a stale
state) and after every `PositionChanged` and, while a position is open, every
market event. The risk engine is subscribed before the portfolio, so on a market
event it sees the previous mark: one event late, never wrong at order time.

Speed: an ordinary order (spot, quoted in the account currency, no open order in
the account, no concentration limit, an active account) takes the accept path
(`daemon.trading.risk_fast`): every check proved on integers and per-version
look-ups, no `CheckContext`. Otherwise, the grid and limit checks run first on
integers (`daemon.trading.risk_grid`: prices in ticks, quantities in lots, limits
converted once per strategy and instrument); an order they prove passes skips them
in Decimal, and only the checks that can still refuse it run (`_grid_of`). Any other
order runs every Decimal check, so every outcome and reason is the reference's. The
account's and the strategy's daily PnL come from one pass over the positions,
remembered until a fill, a balance, a new day or (with a position open) a mark
changes them (`Portfolio.daily_pnls`).

Recovery: the state is a fold of `TradingState` events; `apply()` is that fold,
used live (every transition is applied, then published) and when the journal is
folded at start (`recover()`). The rate windows (1 s of history) start empty.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Protocol

from daemon.config import RiskConfig, StrategyRiskConfig, VenueConfig
from daemon.trading.api import BUY, ORDER_TYPES, SELL, OrderRequest, OrderView, PortfolioView
from daemon.trading.margin_view import Projection
from daemon.trading.risk_checks import (
    CHECK_NAMES,
    CHECKS,
    Check,
    CheckContext,
    Rejection,
    fmt,
)
from daemon.trading.risk_fast import FastPlan, fast_accepts, rate_allows
from daemon.trading.risk_grid import GRID_CHECKS, Grid, GridLimits, grid_accepts
from daemon.trading.risk_limits import Limits
from daemon.trading.risk_ticks import MARKET_EVAL_NS, MAX_EVAL_NS, skip_ticks
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument, to_decimal
from events.state import PositionChanged
from events.system import ACTIVE, HALTED, REDUCING, TradingState
from replay.clock import Clock, ReplayClock, TimerHandle

__all__ = ["Limits", "Rejection", "RiskEngine", "RiskPortfolio"]

DAY_NS = 86_400 * 1_000_000_000
# what the reason of every state the day's loss demands holds (`_demanded`, also
# after a "new UTC day; " or an operator's prefix): after a restart it tells a
# REDUCING the loss caused from one the holds caused
LOSS_REASON = "daily loss "
_ZERO = Decimal(0)

# An order the integer path accepts has passed the first checks: only these run.
if CHECK_NAMES[:len(GRID_CHECKS)] != GRID_CHECKS:  # pragma: no cover - a refactoring slip
    raise ImportError(f"risk_grid.GRID_CHECKS {GRID_CHECKS} are not the first of {CHECK_NAMES}")
AFTER_GRID_CHECKS = CHECKS[len(GRID_CHECKS):]


# grid, the account's limits and the strategy's on it, the checks left to run
_IntegerPath = tuple[Grid, GridLimits, GridLimits, tuple[Check, ...]]


class RiskPortfolio(PortfolioView, Protocol):
    """What risk reads from the portfolio beyond `PortfolioView`."""

    def free_balance(self, venue: str, currency: str) -> Decimal: ...

    def daily_pnl(self, strategy_id: str | None = None, venue: str | None = None) -> Decimal: ...

    def daily_pnls(self, strategy_id: str) -> tuple[Decimal, Decimal]: ...

    def has_position(self, venue: str, symbol: str) -> bool: ...

    def position_qty(self, venue: str, symbol: str, strategy_id: str | None = None
                     ) -> Decimal: ...

    def has_any_position(self) -> bool: ...

    @property
    def account_currency(self) -> str | None: ...

    def to_account(self, amount: Decimal, currency: str, venue: str) -> Decimal | None: ...

    def why_unvalued(self, venue: str, currency: str) -> str: ...

    def leverage(self, venue: str, symbol: str) -> int: ...

    def projected(self, venue: str, symbol: str, signed_qty: Decimal, price: Decimal
                  ) -> Projection | None: ...


class RiskEngine:
    """Runs the pre-trade checks and keeps the trading state.

    `strategy_limits` maps strategy id to its `[strategies.risk]` (None: the
    account's limits); `instruments` maps (venue, symbol) to its Instrument;
    `venues` (the configs) give each venue's taker fee and whether it allows
    shorting. `now_ns` is the run's clock, `publish` the bus's publish.
    """

    def __init__(self, config: RiskConfig,
                 strategy_limits: Mapping[str, StrategyRiskConfig | None],
                 instruments: Mapping[tuple[str, str], Instrument], portfolio: RiskPortfolio,
                 now_ns: Callable[[], int], publish: Callable[[Event], object], *,
                 venues: Iterable[VenueConfig] = ()) -> None:
        self._config = config
        self.account_limits = Limits.from_config(config)
        self._limits = {sid: Limits.from_config(config, lim)
                        for sid, lim in strategy_limits.items()}
        self._halt_multiple = to_decimal(config.halt_loss_multiple)
        self._reduce_at = self.account_limits.daily_loss_limit
        self._halt_at = self._reduce_at * self._halt_multiple
        self._self_trade_prevention = config.self_trade_prevention
        self._instruments = dict(instruments)
        self._portfolio = portfolio
        self._now_ns = now_ns
        self._publish = publish
        self._fee_rate: dict[str, Decimal] = {}
        self._allow_short: set[str] = set()
        for venue in venues:
            self._fee_rate[venue.name] = to_decimal(venue.taker_fee_bps) / 10_000
            if venue.allow_short:
                self._allow_short.add(venue.name)
        self.state = ACTIVE
        self.reason = ""
        self._state_day: int | None = None
        self._account_orders: deque[int] = deque()
        self._strategy_orders: dict[str, deque[int]] = {}
        self._clock: Clock | None = None
        self._armed = False  # the re-valuation timer is set
        self._timer: TimerHandle | None = None
        self._interval = MARKET_EVAL_NS
        self._seen_marks = -1  # the portfolio's mark_version at the last re-valuation
        # Venue gates (live adapters): a venue not yet reconciled takes no order
        # at all; a hold (an unresolved order, a stale feed) keeps the account
        # REDUCING until every hold is released.
        self._not_ready: dict[str, str] = {}
        self._holds: dict[str, str] = {}
        # The integer path (risk_grid) per (strategy, venue, symbol), built on first
        # use; None where it cannot be taken. False runs only the Decimal reference.
        self.integer_path = True
        self._grids: dict[tuple[str, str, str], _IntegerPath | None] = {}
        # The accept path (risk_fast) per (strategy, venue, symbol); None: not taken.
        self._plans: dict[tuple[str, str, str], FastPlan | None] = {}
        self._unversioned = -1
        # _evaluate's last daily PnLs (the portfolio's tuple), the state then, and
        # the strategy's loss it answered
        self._seen_pnls: tuple[tuple[Decimal, Decimal], str, Decimal | None] | None = None
        self._versioned = isinstance(getattr(portfolio, "state_version", None), int)

    def set_strategy_limits(self, strategy_id: str,
                            limits: StrategyRiskConfig | None) -> None:
        """A strategy's own limits (a strategy added or changed at run time)."""
        self._limits[strategy_id] = Limits.from_config(self._config, limits)
        self._grids.clear()
        self._plans.clear()

    def limits(self, strategy_id: str) -> Limits:
        """The limits `strategy_id`'s orders are held to."""
        return self._limits.get(strategy_id, self.account_limits)

    def subscribe(self, bus: Bus) -> None:
        """Re-evaluate the trading state as positions change (and, with
        `schedule`, as the market moves)."""
        bus.subscribe(PositionChanged, self._on_position)

    def schedule(self, clock: Clock) -> None:
        """Re-value open positions once a second of the run's clock (market
        time in a replay) while any is open: the loss limit then follows the
        market between fills and orders, which are always evaluated at once.
        Valuing the book on each of a million trades a second would cost more
        than the rest of the pipeline; a second of price moves is within what
        the price band and position limits already bound. With every position
        flat the timer is not armed at all (nights, flat strategies)."""
        self._clock = clock
        self._arm()

    def _arm(self) -> None:
        clock = self._clock
        if clock is None or self._armed or not self._portfolio.has_any_position():
            return
        self._armed = True
        # a replay may pass the re-valuation over quiet runs (risk_ticks)
        extra = {"skip": self._skip} if isinstance(clock, ReplayClock) else {}
        self._timer = clock.set_timer("risk.revalue", clock.now_ns() + self._interval,
                                      self._tick, owner="risk", **extra)

    def _skip(self, cols: object, start: int, end: int) -> int:
        """Pass the re-valuation over a quiet run of trades (see `risk_ticks`)."""
        return skip_ticks(self, cols, start, end)

    def _tick(self, _timer: object) -> None:
        self._armed = False
        if not self._portfolio.has_any_position():
            return
        marks = getattr(self._portfolio, "mark_version", None)
        if marks is not None and marks == self._seen_marks:
            # nothing moved (a quiet market, a night): look again less often
            self._interval = min(self._interval * 2, MAX_EVAL_NS)
        else:
            self._seen_marks = marks if marks is not None else -1
            self._interval = MARKET_EVAL_NS
            self.evaluate()
        self._arm()

    def _on_position(self, _event: PositionChanged) -> None:
        self.evaluate()
        self._interval = MARKET_EVAL_NS
        self._arm()

    # -- pre-trade ------------------------------------------------------------------

    def check(self, strategy_id: str, order: OrderRequest,
              open_orders: Sequence[OrderView] = ()) -> Rejection | None:
        """Run every check on `order` (`open_orders`: all the account's open
        orders, every strategy). None means it may be submitted, and it then
        counts against the order rate: the OMS submits every order risk passes.

        Raises ValueError for a malformed request (unknown side or order type).
        """
        if order.side not in (BUY, SELL) or order.order_type not in ORDER_TYPES:
            raise ValueError(f"malformed order: side {order.side!r}, "
                             f"order_type {order.order_type!r}")
        if order.venue in self._not_ready:
            return Rejection(check="venue_ready", reason=self._not_ready[order.venue])
        now = self._now_ns()
        strategy_loss = self._evaluate(strategy_id)
        limits = self._limits.get(strategy_id, self.account_limits)
        strategy_orders = self._strategy_orders.get(strategy_id)
        if strategy_orders is None:  # (setdefault would build a deque per order)
            strategy_orders = self._strategy_orders[strategy_id] = deque()
        if self.integer_path and strategy_loss is not None and self.state == ACTIVE:
            key = (strategy_id, order.venue, order.symbol)
            try:
                plan = self._plans[key]
            except KeyError:
                plan = self._plans[key] = FastPlan.of(
                    self._instruments.get((order.venue, order.symbol)), self.account_limits,
                    limits, self._portfolio.account_currency,
                    self._fee_rate.get(order.venue, _ZERO), order.venue in self._allow_short)
            if plan is not None and fast_accepts(
                    plan, order, self._portfolio,
                    self._portfolio.state_version if self._versioned  # type: ignore[attr-defined]
                    else self._portfolio_version(), strategy_id, strategy_loss,
                    open_orders, self._self_trade_prevention, self._instruments):
                if rate_allows(plan, self._account_orders, strategy_orders, now):
                    return None
        ctx = CheckContext(
            strategy_id=strategy_id, order=order,
            instrument=self._instruments.get((order.venue, order.symbol)),
            instruments=self._instruments, limits=limits,
            account_limits=self.account_limits, portfolio=self._portfolio,
            open_orders=open_orders, trading_state=self.state, state_reason=self.reason,
            recent_orders=_count(self._account_orders, self.account_limits, now),
            recent_strategy_orders=_count(strategy_orders, limits, now),
            taker_fee_rate=self._fee_rate.get(order.venue, _ZERO),
            allow_short=order.venue in self._allow_short,
            self_trade_prevention=self._self_trade_prevention)
        checks = CHECKS
        if self.integer_path:
            key = (strategy_id, order.venue, order.symbol)
            try:
                grid = self._grids[key]
            except KeyError:
                grid = self._grids[key] = self._grid_of(ctx)
            if grid is not None and grid_accepts(order, ctx, grid[0], grid[1], grid[2],
                                                 strategy_loss):
                checks = grid[3]
        for chk in checks:
            rejection = chk(order, ctx)
            if rejection is not None:
                return rejection
        self._account_orders.append(now)
        strategy_orders.append(now)
        return None

    def _portfolio_version(self) -> int:
        """The portfolio's state_version (positions, balances): a portfolio without
        one (a test's stand-in) reads as changed on every order."""
        if self._versioned:
            return self._portfolio.state_version  # type: ignore[attr-defined, no-any-return]
        self._unversioned -= 1
        return self._unversioned

    def _grid_of(self, ctx: CheckContext) -> _IntegerPath | None:
        """The integer path for this strategy's orders on this instrument (None: none):
        the grid, the account's and the strategy's limits on it, and the checks still
        to run after it, without those that cannot refuse here (a limit neither the
        account nor the strategy sets, perpetual checks on a spot pair, ...)."""
        inst = ctx.instrument
        if inst is None:
            return None
        grid = Grid.of(inst)
        account = GridLimits.of(ctx.account_limits, grid)
        strategy = GridLimits.of(ctx.limits, grid)
        if grid is None or account is None or strategy is None:
            return None
        unset = {name for name, field in (
            ("max_position_notional", "max_position_notional"),
            ("concentration", "max_concentration_pct"))
            if getattr(ctx.account_limits, field) is None and getattr(ctx.limits, field) is None}
        if not self._self_trade_prevention:
            unset.add("self_trade")
        unset.update(("available_margin", "leverage", "margin_usage", "liquidation_distance")
                     if not inst.perpetual else ("available_balance",))
        return grid, account, strategy, tuple(c for c in AFTER_GRID_CHECKS
                                              if c.name not in unset)

    # -- the trading state machine ------------------------------------------------

    def evaluate(self) -> str:
        """Bring the state up to date with the day's loss; returns the state."""
        self._evaluate(None)
        return self.state

    def _evaluate(self, strategy_id: str | None) -> Decimal | None:
        """`evaluate`; with `strategy_id`, also that strategy's daily loss when the
        account's was computed (in the same pass over the positions), else None."""
        own = None
        if self.state == REDUCING and self._state_day is not None \
                and self._now_ns() // DAY_NS > self._state_day:
            target, reason = self._demanded()
            self._transition(target, f"new UTC day; {reason}")
        elif self.state != HALTED:
            # The common case, on every market event with a position open: compare
            # first, word a reason only for a transition.
            if strategy_id is None:
                loss = -self._portfolio.daily_pnl()
            else:
                pnls = self._portfolio.daily_pnls(strategy_id)
                seen = self._seen_pnls
                # the same figures (the portfolio remembers them) in the same state:
                # the same outcome, no transition
                if seen is not None and seen[0] is pnls and seen[1] == self.state:
                    return seen[2]
                loss, own = -pnls[0], -pnls[1]
            if loss >= self._halt_at or (loss >= self._reduce_at and self.state == ACTIVE):
                self._transition(*self._demanded(loss))
            elif strategy_id is not None:
                self._seen_pnls = (pnls, self.state, own)
        return own

    def _demanded(self, loss: Decimal | None = None) -> tuple[str, str]:
        """The state the account's daily loss (and any venue hold) calls for, and why."""
        if loss is None:
            loss = -self._portfolio.daily_pnl()
        limit = self._reduce_at
        if loss >= self._halt_at:
            return HALTED, (f"{LOSS_REASON}{fmt(loss)} >= {fmt(self._halt_multiple)} x "
                            f"daily_loss_limit {fmt(limit)}")
        if loss >= limit:
            return REDUCING, f"{LOSS_REASON}{fmt(loss)} >= daily_loss_limit {fmt(limit)}"
        if self._holds:
            return REDUCING, "; ".join(self._holds.values())
        return ACTIVE, f"{LOSS_REASON}{fmt(loss)} < daily_loss_limit {fmt(limit)}"

    # -- venue gates (live adapters) ---------------------------------------------------

    def update_instrument(self, instrument: Instrument) -> None:
        """The venue's own word on an instrument (e.g. Binance moved it to
        CANCEL_ONLY): checks use it from now on."""
        self._instruments[instrument.key] = instrument
        self._grids.clear()
        self._plans.clear()

    def block_venue(self, venue: str, reason: str) -> None:
        """Refuse every order on `venue` (check "venue_ready") until `unblock_venue`."""
        self._not_ready[venue] = reason

    def unblock_venue(self, venue: str) -> None:
        self._not_ready.pop(venue, None)

    def hold(self, key: str, reason: str) -> None:
        """Keep the account REDUCING while `key` is held (e.g. an order whose state
        the venue has not confirmed, or a stale feed)."""
        new = key not in self._holds
        self._holds[key] = reason
        if new and self.state == ACTIVE:
            self._transition(REDUCING, reason)

    def release(self, key: str, reason: str = "") -> None:
        """Drop a hold; with none left, REDUCING lifts unless the day's loss demands it."""
        if self._holds.pop(key, None) is None or self._holds or self.state != REDUCING:
            return
        target, why = self._demanded()
        if target != self.state:
            self._transition(target, reason or why)

    @property
    def holds(self) -> dict[str, str]:
        return dict(self._holds)

    def after_recovery(self) -> None:
        """Once the live venues have reconciled after a start. Holds are not
        journaled: a venue holds again what is still unresolved when it reconciles.
        So a REDUCING the journal left that holds caused (an order whose outcome was
        unknown when the process died, a stale feed) lifts here when no hold stands
        now, as the release of the last hold would have lifted it; one the day's
        loss caused stays (it lifts on the next UTC day)."""
        if self.state != REDUCING or self._holds or LOSS_REASON in self.reason:
            return
        target, why = self._demanded()
        if target != self.state:
            self._transition(target, f"no hold left after the restart ({self.reason}); {why}")

    def halt(self, reason: str = "halted by operator") -> None:
        """The kill switch: HALTED until `resume()`; only reducing orders pass."""
        if self.state != HALTED:
            self._transition(HALTED, reason)

    def resume(self, reason: str = "resumed by operator") -> str:
        """Leave HALTED/REDUCING: to ACTIVE, or to the state the day's loss still
        demands. Returns the new state."""
        if self.state != ACTIVE:
            target, why = self._demanded()
            if target != self.state:
                self._transition(target, reason if target == ACTIVE else f"{reason}; {why}")
        return self.state

    def _transition(self, state: str, reason: str) -> None:
        now = self._now_ns()
        event = TradingState(ts_event=now, ts_recv=now, state=state, reason=reason)
        self.apply(event)
        self._publish(event)

    def apply(self, event: Event) -> None:
        """The fold: a `TradingState` event sets the state (live and recovery)."""
        if isinstance(event, TradingState):
            self.state = event.state
            self.reason = event.reason
            self._state_day = event.ts_event // DAY_NS

    def recover(self, events: Iterable[Event]) -> None:
        """Fold journaled events (the `TradingState`s matter) at start."""
        for event in events:
            self.apply(event)


def _count(times: deque[int], limits: Limits, now: int) -> int:
    """Orders in the sliding window (now - window, now], forgetting older ones."""
    _capacity, window = limits.rate_window
    horizon = now - window
    while times and times[0] <= horizon:
        times.popleft()
    return len(times)
