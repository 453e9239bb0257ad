"""The risk engine's once-a-second re-valuation, passed over a quiet run of trades.

In a replay the re-valuation is a timer: every second of market time while a
position is open and prices move (backing off to a minute while none moves), the
account's daily loss is compared with its limits. A timer cuts the replay's quiet
runs (`replay.driver`), and at one cut a second it cost more than the rest of the
pipeline. So the driver asks `skip_ticks` instead: given a run of trades (of one
instrument or several interleaved: a `events.columns.TradeTape`) that nothing
else needs to see singly, it walks the re-valuations that would fire between
them, exactly as they would fire:

- a tick at deadline `d` fires before the first trade at or after `d`, and sees
  each instrument's mark as the last of its trades before it; it re-values only
  if some mark moved since the last re-valuation, and otherwise doubles its
  interval (up to the back-off); the next tick is `d + interval`;
- a re-valuation is a comparison of the day's loss with a limit: with the
  positions fixed over the run (no fill inside a quiet run), the loss is linear
  in each moving price (`Portfolio.mark_exposure`: loss0 - sum of qty_i x
  (m_i - m0_i)), so it is bounded in floats with a wide margin; a tick whose
  loss is not clearly below the limit is not passed over: the run stops before
  it and the real timer fires there (exact, in Decimal, as always).

At the end the engine's timer, interval and "marks seen" stand as the fired ticks
would have left them. When anything is out of the ordinary (an account currency
the price is not quoted in, a venue mark, a state only a new day changes) the
first tick is simply not passed over. The outcome is the same, byte for byte, as
cutting the run at every tick (tests/daemon/trading/test_risk_ticks.py).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from events.system import ACTIVE, HALTED, REDUCING

DAY_NS = 86_400 * 1_000_000_000
MARKET_EVAL_NS = 1_000_000_000  # re-value open positions at most once a second of market time
MAX_EVAL_NS = 60_000_000_000  # ... and back off to once a minute while no price moves
_INF = float("inf")
_CHANGED = -2  # a "marks seen" no mark_version equals: some mark moved since


def skip_ticks(engine: Any, tape: Any, start: int, end: int) -> int:
    """How far the quiet run tape[start:end) may be absorbed past the engine's
    re-valuation ticks (see the module doc); leaves the engine's timer armed for
    the first tick after that point. `tape` is an `events.columns.TradeTape`
    (or `TradeColumns`, a tape of one lane)."""
    timer = engine._timer
    clock = engine._clock
    portfolio = engine._portfolio
    ts = tape.ts
    if timer is None or clock is None or not timer.active:
        return start
    deadline = timer.deadline_ns
    first_k = bisect_left(ts, deadline, start, end)
    if not portfolio.has_any_position():
        return first_k  # its first tick disarms it: let it fire
    state = engine.state
    if state == HALTED:
        limit = None  # a halted account is not re-valued
    else:
        if state == REDUCING and engine._state_day is not None \
                and deadline // DAY_NS > engine._state_day:
            return first_k  # the first tick of a new day lifts REDUCING: fire it
        limit = engine._reduce_at if state == ACTIVE else engine._halt_at
    movers: list[_Mover] = []
    for lane, rows in zip(tape.lanes, tape.rows, strict=True):
        lo = bisect_left(rows, start)
        hi = bisect_left(rows, end, lo)
        if lo == hi or not portfolio.trades_mark(lane.venue, lane.symbol):
            continue  # no trade in the run, or its trades are no mark
        qty = portfolio.mark_exposure(lane.venue, lane.symbol)
        if qty is None and limit is not None:
            return first_k
        movers.append(_Mover(lane, lo, hi, qty))
    interval = engine._interval
    version = portfolio.mark_version
    changed = version != engine._seen_marks
    bound = None
    last_k = start
    evaluated = False
    k = start
    while deadline <= ts[end - 1]:
        k = bisect_left(ts, deadline, last_k, end)
        for m in movers:
            if m.advance(bisect_left(m.ts, deadline, m.at, m.hi)):
                changed = True
        if changed:
            if limit is not None:
                if bound is None:
                    bound = _Bound(portfolio, movers, limit)
                if not bound.clearly_below(movers):
                    break  # this tick may move the state: the real timer fires it
            evaluated, changed, interval = True, False, MARKET_EVAL_NS
        else:
            interval = min(interval * 2, MAX_EVAL_NS)
        deadline += interval
        last_k = k
    else:
        k = end
        for m in movers:
            if m.advance(m.hi):
                changed = True  # marks moved after the last tick passed over
    if deadline == timer.deadline_ns:
        return k  # no tick passed over: nothing changes
    engine._interval = interval
    if evaluated:
        # "seen" as of the last tick passed over: the version the portfolio will
        # hold after the run (its absorb_trades moves mark_version once per lane
        # whose absorbed trades hold a valid price), unless a mark moved after
        # that tick
        after = version + sum(m.moved for m in movers)
        engine._seen_marks = _CHANGED if changed else after
    clock.cancel_timer(timer)
    engine._timer = clock.set_timer(timer.name, deadline, timer.callback, owner=timer.owner,
                                    skip=timer.skip)
    return k


def _last_valid(prices: Any, lo: int, hi: int) -> float | None:
    for i in range(hi - 1, lo - 1, -1):
        price = prices[i]
        if 0 < price < _INF:
            return float(price)
    return None


class _Mover:
    """One instrument of the run whose trades move its mark: where the walk is
    in its lane, its mark at the last tick passed (None: unmoved) and whether
    any trade walked over moved it."""

    __slots__ = ("lane", "ts", "at", "hi", "qty", "mark", "moved")

    def __init__(self, lane: Any, lo: int, hi: int, qty: Any) -> None:
        self.lane = lane
        self.ts = lane.ts
        self.at = lo
        self.hi = hi
        self.qty = qty
        self.mark: float | None = None
        self.moved = False

    def advance(self, to: int) -> bool:
        """Walk the lane's trades up to `to`; whether they moved the mark."""
        price = _last_valid(self.lane.price, self.at, to)
        self.at = to
        if price is None:
            return False
        self.mark = price
        self.moved = True
        return True


class _Bound:
    """The day's loss as a function of the moving prices, in floats, with a
    margin far wider than their rounding: loss(m) = loss0 - sum qty_i * (m_i - m0_i),
    linear in each (positions are fixed over a quiet run: no fill inside it)."""

    __slots__ = ("loss0", "m0", "qty", "limit", "margin")

    def __init__(self, portfolio: Any, movers: list[_Mover], limit: Any) -> None:
        self.loss0 = float(-portfolio.daily_pnl())
        self.m0 = []
        self.qty = []
        for m in movers:
            m0 = portfolio.last_price(m.lane.venue, m.lane.symbol)
            self.m0.append(float(m0) if m0 is not None else 0.0)
            self.qty.append(float(m.qty))
        self.limit = float(limit)
        exposure = sum(abs(q * p) for q, p in zip(self.qty, self.m0, strict=True))
        scale = max(abs(self.loss0), abs(self.limit), exposure, 1.0)
        self.margin = 1e-6 * scale

    def clearly_below(self, movers: list[_Mover]) -> bool:
        loss = self.loss0
        for m, qty, m0 in zip(movers, self.qty, self.m0, strict=True):
            if m.mark is not None:
                loss -= qty * (m.mark - m0)
        return loss < self.limit - self.margin
