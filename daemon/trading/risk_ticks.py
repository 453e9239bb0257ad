"""The risk engine's once-a-second re-valuation, passed over a quiet run of trades.

In a replay the re-valuation is a timer: every second of market time while a
position is open and prices move (backing off to a minute while none moves), the
account's daily loss is compared with its limits. A timer cuts the replay's quiet
runs (`replay.driver`), and at one cut a second it cost more than the rest of the
pipeline. So the driver asks `skip_ticks` instead: given a run of trades (of one
instrument or several interleaved: a `events.columns.TradeTape`) that nothing
else needs to see singly, it works out the re-valuations that would fire between
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
  it and the real timer fires there (exact, in Decimal, as always). loss0 itself
  is moved the same way from an exact Decimal valuation kept per (positions'
  version, UTC day) (`day_loss`), not valued again for every run.

The ticks are not walked one by one (`walk`): every deadline lies on the
one-second grid from the first (the intervals are whole seconds), so whether a
price moved before each grid point, and whether the loss there is clearly below
the limit, are computed for the whole grid at once (`np.searchsorted` of its
points in each instrument's valid trade times, the marks at those indices), and
the ticks are found by scanning those two strings: one per second while each
sees a move, the back-off's doublings, then a minute at a time straight to the
next move.

At the end the engine's timer, interval and "marks seen" stand as the fired ticks
would have left them. When anything is out of the ordinary (an account currency
the price is not quoted in, a venue mark, a state only a new day changes) the
first tick is simply not passed over. The outcome is the same, byte for byte, as
cutting the run at every tick (tests/daemon/trading/test_risk_ticks.py; the walk
against the one-by-one walk: tests/daemon/trading/test_risk_ticks_walk.py).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

import numpy as np

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
    if engine._interval % MARKET_EVAL_NS:
        return first_k  # off the grid of whole seconds `walk` works on (never so today)
    state = engine.state
    if state == HALTED:
        limit = None  # a halted account is not re-valued
    else:
        if state == REDUCING and engine._state_day is not None \
                and deadline // DAY_NS > engine._state_day:
            return first_k  # the first tick of a new day lifts REDUCING: fire it
        limit = engine._reduce_at if state == ACTIVE else engine._halt_at
    movers: list[Mover] = []
    keys = []
    for lane, rows in zip(tape.lanes, tape.rows, strict=True):
        lo = bisect_left(rows, start)
        hi = bisect_left(rows, end, lo)
        if lo == hi or not portfolio.trades_mark(lane.venue, lane.symbol):
            continue  # no trade in the run, or its trades are no mark
        qty = portfolio.mark_exposure(lane.venue, lane.symbol)
        if qty is None and limit is not None:
            return first_k
        movers.append(Mover(lane, lo, hi, qty))
        keys.append((lane.venue, lane.symbol))

    def bound() -> Bound:
        return Bound.of(portfolio, keys, movers, limit, clock.now_ns() // DAY_NS)

    version = portfolio.mark_version
    done = walk(ts, start, end, deadline, engine._interval, version != engine._seen_marks,
                movers, bound if limit is not None else None)
    if done.deadline == deadline:
        return done.k  # no tick passed over: nothing changes
    engine._interval = done.interval
    if done.evaluated:
        # "seen" as of the last tick passed over: the version the portfolio will
        # hold after the run (its absorb_trades moves mark_version once per lane
        # whose absorbed trades hold a valid price), unless a mark moved after
        # that tick
        engine._seen_marks = _CHANGED if done.changed else version + done.moved
    clock.cancel_timer(timer)
    engine._timer = clock.set_timer(timer.name, done.deadline, timer.callback,
                                    owner=timer.owner, skip=timer.skip)
    return done.k


class Walked(NamedTuple):
    """Where the ticks passed over a run leave things: `k`, the first row not
    passed (the run's end, or the first row at or after a tick that must fire);
    `deadline`, the next tick's; `interval`, the timer's; whether any tick
    re-valued (`evaluated`) and whether a mark moved after the last that did
    (`changed`); `moved`, how many instruments' marks the rows before `k` move."""

    k: int
    deadline: int
    interval: int
    evaluated: bool
    changed: bool
    moved: int


class Mover:
    """One instrument of the run whose trades move its mark: the times and prices
    of its valid trades in the run (0 < price < inf: the others move no mark) and
    its position's quantity."""

    __slots__ = ("ts", "price", "qty")

    def __init__(self, lane: Any, lo: int, hi: int, qty: Any) -> None:
        times, prices, valid = lane.marks()  # an `events.columns.TradeColumns`
        times, prices = times[lo:hi], prices[lo:hi]
        if not valid:
            keep = (prices > 0) & (prices < _INF)
            times, prices = times[keep], prices[keep]
        self.ts = times
        self.price = prices
        self.qty = qty


class Bound:
    """The day's loss as a function of the moving prices, in floats, with a
    margin far wider than their rounding: loss(m) = loss0 - sum qty_i * (m_i - m0_i),
    linear in each (positions are fixed over a quiet run: no fill inside it)."""

    __slots__ = ("loss0", "m0", "qty", "limit", "margin")

    def __init__(self, loss0: float, m0: list[float], qty: list[float], limit: float) -> None:
        self.loss0 = loss0
        self.m0 = m0
        self.qty = qty
        self.limit = limit
        exposure = sum(abs(q * p) for q, p in zip(qty, m0, strict=True))
        scale = max(abs(loss0), abs(limit), exposure, 1.0)
        self.margin = 1e-6 * scale

    @classmethod
    def of(cls, portfolio: Any, keys: list[tuple[str, str]], movers: list[Mover],
           limit: Any, day: int) -> Bound:
        """The portfolio's loss now (UTC day `day`), around its marks now."""
        m0 = []
        for venue, symbol in keys:
            mark = portfolio.last_price(venue, symbol)
            m0.append(float(mark) if mark is not None else 0.0)
        return cls(day_loss(portfolio, day), m0, [float(m.qty) for m in movers], float(limit))

    def below(self, movers: list[Mover], seen: list[np.ndarray], size: int) -> bytes:
        """Per point of a grid of `size`, 1 where the loss is clearly below the
        limit; `seen[i][g + 1]`: how many of mover i's valid trades precede point g
        (its mark is the last of those; none: unmoved)."""
        loss: Any = self.loss0
        for m, before, qty, m0 in zip(movers, seen, self.qty, self.m0, strict=True):
            if not len(m.price):
                continue  # never moved: adds nothing
            # the mark before none of its trades is m0: qty x 0 leaves the loss
            # as it is, exactly as the one-by-one walk leaves it
            marks = np.concatenate(((m0,), m.price))[before[1:]]
            marks -= m0
            marks *= qty
            loss = np.subtract(loss, marks, out=marks)
        threshold = self.limit - self.margin
        if isinstance(loss, float):
            return bytes((loss < threshold,)) * size  # no price moves
        return np.less(loss, threshold).tobytes()  # type: ignore[no-any-return]


class _Anchor:
    """The day's loss once computed exactly (in Decimal), with each position's
    quantity and mark then: while no fill, funding or new day changes the
    positions (`state_version`, the day), the loss at other marks is that loss
    minus sum qty x (mark - mark then), each position valued in the account
    currency (`Portfolio.mark_exposure` says so)."""

    __slots__ = ("version", "day", "loss", "legs")

    def __init__(self, version: int, day: int, loss: float,
                 legs: list[tuple[str, str, float, float]] | None) -> None:
        self.version, self.day, self.loss, self.legs = version, day, loss, legs


_anchors: WeakKeyDictionary[Any, _Anchor] = WeakKeyDictionary()


def day_loss(portfolio: Any, day: int) -> float:
    """`float(-portfolio.daily_pnl())` on UTC day `day` (the clock's), without
    the Decimal valuation each time: from an anchor (see `_Anchor`), within
    rounding far below `Bound`'s margin."""
    anchor = _anchors.get(portfolio)
    if anchor is None or anchor.version != portfolio.state_version or anchor.day != day:
        loss = float(-portfolio.daily_pnl())
        qty: dict[tuple[str, str], Any] = {}
        for p in portfolio.positions():
            qty[(p.venue, p.symbol)] = qty.get((p.venue, p.symbol), 0) + p.qty
        legs: list[tuple[str, str, float, float]] | None = []
        for (venue, symbol), q in qty.items():
            mark = portfolio.last_price(venue, symbol)
            if mark is None or portfolio.mark_exposure(venue, symbol) is None:
                legs = None  # unmarked, or not linear in its marks: exact each time
                break
            legs.append((venue, symbol, float(q), float(mark)))  # type: ignore[union-attr]
        _anchors[portfolio] = _Anchor(portfolio.state_version, day, loss, legs)
        return loss
    if anchor.legs is None:
        return float(-portfolio.daily_pnl())
    loss = anchor.loss
    for venue, symbol, q, then in anchor.legs:
        loss -= q * (float(portfolio.last_price(venue, symbol)) - then)
    return loss


_ONE = b"\x01"
_ZERO = b"\x00"
_SEC = MARKET_EVAL_NS
_MAX = MAX_EVAL_NS // MARKET_EVAL_NS  # the back-off, in seconds
_offsets = np.zeros(0, dtype=np.int64)


def _grid(deadline: int, size: int) -> np.ndarray:
    """[before everything, deadline, deadline + 1 s, ...]: `size` points of the
    one-second grid after one that precedes every trade."""
    global _offsets
    if len(_offsets) <= size:
        _offsets = np.arange(-1, 2 * size + 64, dtype=np.int64) * _SEC
        _offsets[0] = -(1 << 62)  # below any time minus any deadline: no trade before it
    return _offsets[:size + 1] + deadline


def walk(ts: Sequence[int], start: int, end: int, deadline: int, interval: int, changed: bool,
         movers: list[Mover], bound: Callable[[], Bound] | None) -> Walked:
    """The ticks from `deadline` (the timer's `interval`, whole seconds; `changed`:
    a mark moved since the last re-valuation) over the run ts[start:end), as the
    one-by-one walk fires them (see the module doc); `bound` makes the loss bound,
    when a limit applies (None: no tick stops the walk), at the first tick that
    re-values.

    Every tick falls on the one-second grid from `deadline` (intervals are whole
    seconds), so the walk is a scan of two strings over that grid: `moves[g]`, a
    valid trade lies between grid points g-1 and g (before the first, for g = 0);
    `below[g]`, the loss at g is clearly below the limit. A re-valuing tick is
    followed by the grid's points while each sees a move (`find` of the next 0),
    an idle one by the back-off, a minute at a time straight to the next move."""
    last = ts[end - 1]
    size = (last - deadline) // _SEC + 1 if deadline <= last else 0  # grid points <= last
    grid = _grid(deadline, size)
    # each mover's valid trades before each point, and whether one lies between points
    seen = [m.ts.searchsorted(grid) for m in movers]
    if seen:
        moved = seen[0][1:] > seen[0][:-1]
        for before in seen[1:]:
            moved |= before[1:] > before[:-1]
        moves = moved.tobytes()
    else:
        moves = bytes(size)
    below: bytes | None = None
    evaluated = False
    last_eval = -1  # the grid point of the last tick that re-valued
    g, prev, step = 0, -1, interval // _SEC  # a tick at g, the one before at prev
    while g < size:
        if changed or moves.find(_ONE, prev + 1, g + 1) >= 0:
            if bound is not None:
                if below is None:
                    below = bound().below(movers, seen, size)
                if not below[g]:
                    return _stop(ts, start, end, deadline, g, step * _SEC, evaluated, seen)
            # the ticks after it re-value while each sees a move
            z = moves.find(_ZERO, g + 1)
            if z < 0:
                z = size
            if below is not None:
                b = below.find(_ZERO, g + 1, z)
                if b >= 0:
                    return _stop(ts, start, end, deadline, b, _SEC, True, seen)
            evaluated, changed = True, False
            last_eval = z - 1
            if z < size:
                step, prev, g = 2, z, z + 2  # the tick at z saw no move: it backs off
            else:
                step, prev, g = 1, z - 1, z
        elif 2 * step >= _MAX:
            # a minute at a time: straight to the first tick past the next move
            nxt = moves.find(_ONE, g + 1)
            minutes = max(1, -(-((nxt if nxt >= 0 else size) - g) // _MAX))
            prev = g + _MAX * (minutes - 1)
            g += _MAX * minutes
            step = _MAX
        else:
            step *= 2
            prev = g
            g += step
    if last_eval >= 0:
        changed = any(len(m.ts) > before[last_eval + 1]
                      for m, before in zip(movers, seen, strict=True))
    elif any(len(m.ts) for m in movers):
        changed = True  # marks moved after the last tick passed over
    return Walked(end, deadline + g * _SEC, step * _SEC, evaluated, changed,
                  sum(1 for m in movers if len(m.ts)))


def _stop(ts: Sequence[int], start: int, end: int, deadline: int, g: int, interval: int,
          evaluated: bool, seen: list[np.ndarray]) -> Walked:
    """The walk stopped at the tick on grid point g: the real timer fires it."""
    at = deadline + g * _SEC
    return Walked(bisect_left(ts, at, start, end), at, interval, evaluated, True,
                  sum(1 for before in seen if before[g + 1]))
