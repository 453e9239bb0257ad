"""`risk_ticks.walk` places the re-valuation ticks over a run at once; here it is
compared with the walk that steps them one by one (`_one_by_one`, the algorithm it
replaced, kept as the reference): on every drawn run (one to three instruments
interleaved, trades dense and sparse, invalid prices, a loss limit crossed or not,
any timer state) both give the same row, deadline, interval, "re-valued", "moved
since" and moved marks, and build the loss bound the same number of times (its
`daily_pnl` rolls the portfolio's day)."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.trading.risk_ticks import (
    MARKET_EVAL_NS,
    MAX_EVAL_NS,
    Bound,
    Mover,
    Walked,
    walk,
)
from events.columns import TradeColumns
from tests.examples import examples

_INF = float("inf")
SEC = MARKET_EVAL_NS


# -- the reference: every tick, one by one -------------------------------------------

def _last_valid(prices: Any, lo: int, hi: int) -> float | None:
    for i in range(hi - 1, lo - 1, -1):
        price = prices[i]
        if 0 < price < _INF:
            return float(price)
    return None


class _Step:
    def __init__(self, ts: Any, price: Any, lo: int, hi: int) -> None:
        self.ts, self.price, self.at, self.hi = ts, price, lo, hi
        self.mark: float | None = None
        self.moved = False

    def advance(self, to: int) -> bool:
        price = _last_valid(self.price, self.at, to)
        self.at = to
        if price is None:
            return False
        self.mark = price
        self.moved = True
        return True


def _clearly_below(bound: Bound, steps: list[_Step]) -> bool:
    loss = bound.loss0
    for m, qty, m0 in zip(steps, bound.qty, bound.m0, strict=True):
        if m.mark is not None:
            loss -= qty * (m.mark - m0)
    return loss < bound.limit - bound.margin


def _one_by_one(ts: Any, start: int, end: int, deadline: int, interval: int, changed: bool,
                lanes: list[tuple[Any, Any, int, int]], bound: Any) -> Walked:
    steps = [_Step(*lane) for lane in lanes]
    limits = None
    last_k = start
    evaluated = False
    k = start
    while deadline <= ts[end - 1]:
        k = bisect_left(ts, deadline, last_k, end)
        for m in steps:
            if m.advance(bisect_left(m.ts, deadline, m.at, m.hi)):
                changed = True
        if changed:
            if bound is not None:
                if limits is None:
                    limits = bound()
                if not _clearly_below(limits, steps):
                    break
            evaluated, changed, interval = True, False, SEC
        else:
            interval = min(interval * 2, MAX_EVAL_NS)
        deadline += interval
        last_k = k
    else:
        k = end
        for m in steps:
            if m.advance(m.hi):
                changed = True
    return Walked(k, deadline, interval, evaluated, changed, sum(m.moved for m in steps))


# -- drawn runs ------------------------------------------------------------------------

# gaps between trades: the same instant, a burst, about a second, a pause, a night;
# whole seconds put trades on the ticks' deadlines (a trade at a deadline is after it)
_GAPS = st.one_of(st.just(0), st.integers(1, 50_000_000), st.integers(200_000_000, 2 * SEC),
                  st.integers(2 * SEC, 200 * SEC), st.integers(200 * SEC, 20_000 * SEC),
                  st.integers(1, 300).map(lambda s: s * SEC))
_PRICES = st.one_of(st.floats(99.0, 101.0), st.sampled_from([0.0, -1.0, _INF, float("nan")]))


@st.composite
def runs(draw: st.DrawFn) -> dict[str, Any]:
    lanes = draw(st.integers(1, 3))
    n = draw(st.integers(1, 120))
    dense = draw(st.booleans())  # mostly trades every fraction of a second
    gaps = st.integers(1, 900_000_000) if dense else _GAPS
    ts, code, price = [], [], []
    t = 1_380_000_000 * SEC + draw(st.integers(0, 10 * SEC))
    for _ in range(n):
        t += draw(gaps)
        ts.append(t)
        code.append(draw(st.integers(0, lanes - 1)))
        price.append(draw(_PRICES) if draw(st.integers(0, 9)) == 0
                     else draw(st.floats(99.0, 101.0)))
    start = draw(st.integers(0, n - 1))
    end = draw(st.integers(start + 1, n))
    deadline = ts[start] + draw(st.one_of(st.integers(-3 * SEC, 30 * SEC),
                                          st.integers(-3, 30).map(lambda s: s * SEC)))
    interval = draw(st.sampled_from([SEC, 2 * SEC, 4 * SEC, 16 * SEC, 32 * SEC, MAX_EVAL_NS]))
    changed = draw(st.booleans())
    limit = None
    qty: list[float] = []
    if draw(st.booleans()):
        qty = [draw(st.sampled_from([0.0, 100.0, -100.0, 1000.0, 3.0])) for _ in range(lanes)]
        loss0 = draw(st.floats(-500.0, 500.0))
        limit = (loss0, [100.0] * lanes, qty, loss0 + draw(st.floats(-10.0, 400.0)))
    return {"ts": ts, "code": code, "price": price, "lanes": lanes, "start": start,
            "end": end, "deadline": deadline, "interval": interval, "changed": changed,
            "limit": limit, "qty": qty, "arrays": draw(st.booleans())}


def _both(run: dict[str, Any]) -> tuple[Walked, int, Walked, int]:
    ts, start, end = run["ts"], run["start"], run["end"]
    lanes = []
    for k in range(run["lanes"]):
        rows = [i for i, c in enumerate(run["code"]) if c == k]
        lane_ts = [ts[i] for i in rows]
        lane_price = [run["price"][i] for i in rows]
        if run["arrays"]:  # a replay's columns are arrays; tests' lists
            lane_ts, lane_price = array("q", lane_ts), array("d", lane_price)
        lo = bisect_left(rows, start)
        hi = bisect_left(rows, end, lo)
        if lo < hi:
            lanes.append((lane_ts, lane_price, lo, hi, run["qty"][k] if run["qty"] else 0.0))
    built = [0, 0]

    def bound_of(i: int) -> Any:
        if run["limit"] is None:
            return None
        loss0, m0, qty, limit = run["limit"]

        def make() -> Bound:
            built[i] += 1
            return Bound(loss0, [m0[0]] * len(lanes), [lane[4] for lane in lanes], limit)
        return make

    tape = array("q", ts) if run["arrays"] else ts
    fast = walk(tape, start, end, run["deadline"], run["interval"], run["changed"],
                [Mover(TradeColumns("v", "s", ts, price, [], []), lo, hi, qty)
                 for ts, price, lo, hi, qty in lanes], bound_of(0))
    slow = _one_by_one(tape, start, end, run["deadline"], run["interval"], run["changed"],
                       [lane[:4] for lane in lanes], bound_of(1))
    return fast, built[0], slow, built[1]


@settings(max_examples=examples(300), deadline=None)
@given(runs())
def test_the_walk_fires_what_the_one_by_one_walk_fires(run: dict[str, Any]) -> None:
    fast, fast_built, slow, slow_built = _both(run)
    assert fast == slow
    assert fast_built == slow_built
    assert all(type(v) is int for v in (fast.k, fast.deadline, fast.interval, fast.moved))


def _grid(seconds: int, every_ns: int, price_at: Any = None) -> dict[str, Any]:
    t0 = 1_380_000_000 * SEC
    ts = list(range(t0, t0 + seconds * SEC, every_ns))
    price = [100.0 + (price_at(i) if price_at else 0.0) for i in range(len(ts))]
    return {"ts": ts, "code": [0] * len(ts), "price": price, "lanes": 1, "start": 0,
            "end": len(ts), "deadline": t0 + SEC // 2, "interval": SEC, "changed": False,
            "limit": None, "qty": [], "arrays": True}


def test_a_long_busy_run_passes_thousands_of_ticks_in_stretches() -> None:
    """Two hours of trades every 0.3 s: 7,200 one-second ticks, more than one
    stretch of the grid, all passed; then one trade that moves the loss over the
    limit four hours in stops the walk at the tick after it."""
    run = _grid(2 * 3600, 300_000_000)
    fast, _, slow, _ = _both(run)
    assert fast == slow and fast.k == len(run["ts"]) and fast.evaluated
    crash = len(run["ts"]) * 2 // 3
    run = _grid(2 * 3600, 300_000_000, lambda i: -50.0 if i >= crash else 0.0)
    run.update(limit=(0.0, [100.0], [100.0], 1000.0), qty=[100.0])
    fast, built, slow, _ = _both(run)
    assert fast == slow and built == 1
    assert run["ts"][crash] < fast.deadline <= run["ts"][crash] + SEC
    assert run["ts"][fast.k - 1] < fast.deadline <= run["ts"][fast.k]


def test_a_night_backs_off_to_a_minute_and_jumps_to_the_morning() -> None:
    t0 = 1_380_000_000 * SEC
    morning = t0 + 16 * 3600 * SEC + 7
    ts = [t0, t0 + SEC // 2] + [morning + i * SEC // 2 for i in range(20)]
    run = {"ts": ts, "code": [0] * len(ts), "price": [100.0 + i / 8 for i in range(len(ts))],
           "lanes": 1, "start": 0, "end": len(ts), "deadline": t0 + SEC // 4,
           "interval": SEC, "changed": True, "limit": None, "qty": [], "arrays": True}
    fast, _, slow, _ = _both(run)
    assert fast == slow
    # re-valuing again each second in the morning, on the minute grid of the night
    assert fast.evaluated and fast.interval == SEC and fast.k == len(ts)
    assert fast.deadline > ts[-1] and (fast.deadline - run["deadline"]) % SEC == 0
