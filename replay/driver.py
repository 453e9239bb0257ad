"""Driving a bus from stored events under a `ReplayClock`.

The contract, per event: fire every timer due at or before its `ts_event`,
set the clock to it, dispatch it. Done batch-wise: a batch goes to
`bus.dispatch_many` whole, through a feed that sets the clock per event (so
`now_ns()` inside a handler is that event's time, whatever the batch size) and
stops just before the first event that reaches a timer's deadline, including
a timer a handler set moments earlier. Timers then fire outside any dispatch,
so what their callbacks publish precedes that event, and the batch resumes.

Quiet runs. Most trades of a replay change nothing but a last price and the
open bar: no order is working at the venue, no bar closes, no timer is due,
and no strategy wants each trade. When every subscriber to `Trade` says how
far from a given trade that holds (`quiet_trades(cols, start, stop) -> end`,
over `events.columns.TradeColumns` of one instrument) and can take the run in
bulk (`absorb_trades(cols, start, end)`), such a run is absorbed by each of
them instead of dispatched event by event, and the next trade someone must see
is dispatched normally.

Passive timers (`ReplayClock.set_timer(passive=True)`: the equity samples) only
observe, so they end no quiet run: the run is absorbed up to each deadline, the
timer fired there, and the rest absorbed (`_absorb_around`).

Per instrument. A batch of several instruments' trades (a portfolio's, in one
time order) is a `events.columns.TradeTape`: one lane per (venue, symbol). A
trade of one instrument is quiet for owners that do not follow it, so each
owner is asked about each lane, and the run goes to the first trade, of any
lane, that some owner must see: everything before it is absorbed lane by lane
(owners keep per-instrument state), that trade is dispatched singly, in the
global order, and the next run starts after it. So every handler that acts sees
the slow path's order, times and marks. The outcome is the same, byte for byte
(tests/test_replay_e2e.py and tests/test_portfolio_quiet_runs.py run both ways);
only the per-event Python calls are saved.

What the owners said of a lane is kept until something they read may have
changed: an event published on the bus (an order, a fill, a trading state), a
timer fired that is neither passive nor passed over by quiet runs, or a trade
of that lane dispatched singly. So a run ended by one instrument's bar does not
ask every other lane again (that made the asks grow with the square of the
instruments). An owner's answer about one instrument must therefore shorten (a
trade of it becoming one to see) only with that instrument's trades, events on
the bus or such timers; an answer that grows otherwise (the portfolio's day
rolled by another instrument's trade) is kept too short, which is still right.
"""

from __future__ import annotations

import asyncio
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from events.base import Event
from events.bus import Bus
from events.columns import TradeBatch, TradeColumns, TradeTape
from events.market import Trade
from replay.clock import ReplayClock, TimerHandle
from replay.pacing import Pacer

__all__ = ["READER_SWITCH_INTERVAL_S", "reader_switch_interval", "replay_into",
           "replay_into_paced", "share_cpus"]


def _feed(
    batch: Sequence[Event], start: int, stop: int, clock: ReplayClock, stopped_at: list[int]
) -> Iterator[Event]:
    for i in range(start, stop):
        event = batch[i]
        ts = event.ts_event
        if ts >= clock.next_due:
            stopped_at[0] = i
            return
        # Direct write, not set_now(): a method call per event is measurable here.
        clock._now = ts
        yield event
    stopped_at[0] = stop


def _dispatch(bus: Bus, clock: ReplayClock, batch: Sequence[Event], start: int, stop: int,
              coalesce: bool = True) -> None:
    """Dispatch batch[start:stop], firing timers before the events they precede."""
    quiet = _quiet_owners(bus) if coalesce else None
    tape: TradeColumns | TradeTape | None = None
    if quiet is not None:
        tape = batch if isinstance(batch, TradeColumns | TradeTape) \
            else TradeTape.of_events(batch)
        if tape is None:
            quiet = None
    if quiet is None and isinstance(batch, TradeBatch | TradeTape):
        batch = batch.events()  # dispatched one by one: build them in bulk
    stopped_at = [start]
    misses = 0
    # A trade each owner must see ends the run in its lane only: lanes whose bars
    # close at one time (a portfolio's instruments in a thin market) refuse one
    # trade each, so a tape of k lanes meets k misses where one lane meets one.
    # Counted per lane, a tape of four lanes went plain on 458k quiet trades of
    # the 4-symbol SPY week (56 spans of 8192), the 1-symbol week on none.
    max_misses = _MAX_MISSES * (len(tape.lanes) if tape is not None else 1)
    plain = _PLAIN
    cursor = [0] * len(tape.lanes) if tape is not None else []
    # the row an owner said it must see singly, where the last run stopped: that
    # trade is dispatched without asking again (dispatching a trade singly is
    # always right; asking again would only say so, at a call to every owner)
    refused = [-1]
    # what the owners last said of each lane (see _quiet_run), kept while
    # nothing they read can have changed: no event published (the bus's next
    # seq unchanged: orders, fills, states...), no timer fired but passive ones
    # and those a quiet run may pass over (neither changes what owners say:
    # see ReplayClock.set_timer), and of the lane of a trade dispatched singly,
    # nothing (its owners saw it)
    lanes = len(cursor)
    known = [-1] * lanes
    refusal = [False] * lanes
    seq = bus.next_seq
    # row -> lane, of a tape of several lanes (one lane keeps no answers: see
    # _quiet_run_one)
    codes = tape.code if isinstance(tape, TradeTape) else None
    # the tape when it is one lane (then codes is None), typed as such
    one_lane = tape if not isinstance(tape, TradeTape) else None
    i = start
    while i < stop:
        ts = tape.ts[i] if tape is not None else batch[i].ts_event
        if ts >= clock.next_due:
            if codes is not None and clock.skippable()[1] <= ts:
                # a timer neither passive nor passed over quiet runs is due: it
                # may change what owners say (a venue's order reaching its book)
                known = [-1] * lanes
            clock.advance_to(ts)
        if quiet is not None:
            assert tape is not None
            if codes is not None and bus.next_seq != seq:
                seq = bus.next_seq
                known = [-1] * lanes
            if refused[0] == i:
                end = i
            elif one_lane is not None:
                end = _quiet_run_one(one_lane, i, stop, quiet, clock, cursor, refused)
            else:
                end = _quiet_run(tape, i, stop, quiet, clock, cursor, refused, known, refusal)
            if end > i:
                if clock.next_due <= tape.ts[end - 1]:
                    _absorb_around(tape, i, end, quiet, cursor, clock)
                else:
                    _absorb(tape, end, quiet, cursor)
                clock._now = tape.ts[end - 1]
                i = end
                misses = 0
                plain = _PLAIN
                continue
            misses += 1
            if misses > max_misses:
                # someone wants every trade here (a thin market closes a bar
                # with each): the next `plain` trades one by one without
                # asking, twice as many each time it goes on
                n = min(i + plain, stop)
                if isinstance(batch, TradeBatch | TradeTape):
                    # in bulk, not row by row; only these (the rest may be quiet)
                    span = batch.events_between(i, n)
                    bus.dispatch_many(_feed(span, 0, n - i, clock, stopped_at))
                    i += stopped_at[0]
                else:
                    bus.dispatch_many(_feed(batch, i, n, clock, stopped_at))
                    i = stopped_at[0]
                misses = max_misses
                plain = min(plain * 2, _MAX_PLAIN)
                known = [-1] * lanes
                continue
            # this trade, one by one; the run after it may be quiet again
            if codes is not None:
                known[codes[i]] = -1
            bus.dispatch_many(_feed(batch, i, i + 1, clock, stopped_at))
            i = stopped_at[0]
            continue
        bus.dispatch_many(_feed(batch, i, stop, clock, stopped_at))
        i = stopped_at[0]


_MAX_MISSES = 16
_PLAIN = 64
_MAX_PLAIN = 8192


def _quiet_owners(bus: Bus) -> tuple | None:
    """The objects behind every Trade handler, if all of them take quiet runs."""
    owners = tuple(getattr(h, "__self__", None) for h in bus.route(Trade))
    if owners and all(hasattr(o, "quiet_trades") and hasattr(o, "absorb_trades")
                      for o in owners):
        return owners
    return None


def _quiet_run_one(cols: TradeColumns, start: int, stop: int, owners: tuple,
                   clock: ReplayClock, cursor: list[int], refused: list[int]) -> int:
    """`_quiet_run` of one instrument's trades (its rows are the tape's: no
    lane to look up, no answers kept: the run that follows a refused trade
    starts after it, and the one lane must be asked again then anyway)."""
    refused[0] = -1
    cursor[0] = start
    end = stop
    ts = cols.ts
    skippable = None
    if ts[end - 1] >= clock.next_due:
        skippable, hard = clock.skippable()
        end = bisect_left(ts, hard, start, end)
        if end <= start:
            return start
    hi = end
    for owner in owners:
        end = owner.quiet_trades(cols, start, end)
        if end <= start:
            return start
    if end < hi:
        refused[0] = end
    return _pass_over(skippable, ts, cols, start, end, refused)


def _quiet_run(tape: TradeColumns | TradeTape, start: int, stop: int, owners: tuple,
               clock: ReplayClock, cursor: list[int], refused: list[int],
               known: list[int], refusal: list[bool]) -> int:
    """End (exclusive) of the quiet run from `start`: trades before any timer
    due that no owner must see singly. Each instrument's lane is asked of every
    owner; the run ends at the first row any of them must see. The earliest
    timer, if it can be passed over (`ReplayClock.set_timer(skip=...)`, the
    risk engine's re-valuation), is asked how far the run may go past its
    deadlines instead. Leaves `cursor[k]` at lane k's first row at or after
    `start`, and `refused[0]` at the end when an owner's answer set it (the
    row it must see), else -1.

    `known[k]` (-1: nothing known) is what the owners last said of lane k, as
    a tape row: the row they must see when `refusal[k]`, else how far it was
    asked (quiet up to there). `_dispatch` drops it when it may be stale; a
    lane known far enough is not asked again. Each lane is
    asked over the whole window, not only up to an earlier lane's refusal, so
    its answer still holds once that row has been dispatched."""
    refused[0] = -1
    end = stop
    ts = tape.ts
    due = clock.next_due
    skippable = None
    if ts[end - 1] >= due:
        # passive timers (equity samples) do not end the run: see _absorb_around
        skippable, hard = clock.skippable()
        end = bisect_left(ts, hard, start, end)
        if end <= start:
            return start
    window = end
    lanes = tape.lanes
    for k, rows in enumerate(tape.rows):
        row = known[k]
        if row >= start:
            if refusal[k]:
                if row < end:
                    end = refused[0] = row
                    if end <= start:
                        return start
                continue
            if row >= window:
                continue  # quiet over the whole window, as said before
        # the lane's first row not absorbed yet is mostly the first at or after
        # `start`, or one short (its trade dispatched singly): a step or two
        # before a bisect of the whole lane (after trades dispatched in bulk)
        lo = cursor[k]
        n = len(rows)
        if lo < n and rows[lo] < start:
            lo += 1
            if lo < n and rows[lo] < start:
                lo = bisect_left(rows, start, lo)
            cursor[k] = lo
        if lo == n or rows[lo] >= window:
            known[k] = window
            refusal[k] = False
            continue  # no trade of this instrument in the run
        hi = lane_end = bisect_left(rows, window, lo)
        lane = lanes[k]
        for owner in owners:
            lane_end = owner.quiet_trades(lane, lo, lane_end)
            if lane_end <= lo:
                break
        if lane_end < hi:
            row = known[k] = rows[lane_end]
            refusal[k] = True
            # a prefix of a quiet run is quiet: the lanes asked before stay right
            if row < end:
                end = refused[0] = row
                if end <= start:
                    return start
        else:
            known[k] = window
            refusal[k] = False
    return _pass_over(skippable, ts, tape, start, end, refused)


def _pass_over(skippable: TimerHandle | None, ts: Any, tape: TradeColumns | TradeTape,
               start: int, end: int, refused: list[int]) -> int:
    """The end of a quiet run [start, end) once a timer it may pass over (`skippable`,
    or None) had its say: the run stops where the timer needs it to, and a refusal
    noted at the old end no longer holds at a new one."""
    if skippable is not None and ts[end - 1] >= skippable.deadline_ns:
        assert skippable.skip is not None
        end = skippable.skip(tape, start, end)
        if end != refused[0]:
            refused[0] = -1
    return end


def _absorb(tape: TradeColumns | TradeTape, end: int, owners: tuple, cursor: list[int]) -> None:
    """Each owner absorbs each lane's trades before `end` (from `cursor`, which
    moves past them). Owners keep per-instrument state, so lanes may go one
    after another; the lane holding the run's last trade goes last, so what is
    kept of the last trade overall (the portfolio's `upto_seq`) is the slow
    path's."""
    lanes = tape.lanes
    if len(lanes) == 1:
        lo = cursor[0]
        hi = cursor[0] = bisect_left(tape.rows[0], end, lo)
        for owner in owners:
            owner.absorb_trades(lanes[0], lo, hi)
        return
    spans = []
    for k, rows in enumerate(tape.rows):
        lo = cursor[k]
        hi = bisect_left(rows, end, lo)
        if hi > lo:
            spans.append((rows[hi - 1], lanes[k], lo, hi))
            cursor[k] = hi
    spans.sort(key=_first)
    for owner in owners:
        for _, lane, lo, hi in spans:
            owner.absorb_trades(lane, lo, hi)


def _absorb_around(tape: TradeColumns | TradeTape, start: int, end: int, owners: tuple,
                   cursor: list[int], clock: ReplayClock) -> None:
    """`_absorb` of a quiet run that passive timers fall inside (every other
    timer is past its last trade: `_quiet_run` ends the run before them, and a
    skippable one has been passed over it): the trades before each deadline,
    the timer fired there as the one-by-one dispatch fires it (before the first
    trade at or after it, the clock at its deadline), then the rest."""
    ts = tape.ts
    last = ts[end - 1]
    while clock.next_due <= last:
        due = clock.next_due
        k = bisect_left(ts, due, start, end)
        if k > start:
            _absorb(tape, k, owners, cursor)
            clock._now = ts[k - 1]
        clock.advance_to(due)
        start = k
    _absorb(tape, end, owners, cursor)


def _first(span: tuple) -> int:
    return span[0]  # type: ignore[no-any-return]


# The GIL's switch interval while the loop runs. The read-ahead thread
# (replay.merge) gives up the GIL inside each Arrow and numpy call and must win it
# back from this loop, which never blocks: at Python's 5 ms default it waited up
# to 5 ms each time, a dozen times a batch, and the loop then waited for the
# batch (40-70 ms at each new day of the SPY week).
READER_SWITCH_INTERVAL_S = 0.0005
_reader_switch: float | None = READER_SWITCH_INTERVAL_S


def share_cpus() -> None:
    """This process shares the machine's cores with sibling replays (a sweep's
    workers, one per core): replays keep the interpreter's switch interval. With
    more runnable threads than cores, each forced GIL hand-off waits for the
    other thread to be scheduled: 64 SPY-week jobs on 2 workers took 36.3 s with
    the short interval against 29.3 s without (1 worker: 55.1 against 57.2 s)."""
    global _reader_switch
    _reader_switch = None


def reader_switch_interval(current: float) -> float:
    """The switch interval a replay holds while its read-ahead thread reads:
    `READER_SWITCH_INTERVAL_S` (never longer than `current`), or `current` in a
    process that `share_cpus()`."""
    return current if _reader_switch is None else min(current, _reader_switch)


def replay_into(bus: Bus, clock: ReplayClock, batches: Iterable[Sequence[Event]],
                coalesce: bool = True) -> int:
    """Dispatch every event of `batches` (in order, already sequenced) at full
    speed. Returns the number of events dispatched. `coalesce=False` turns
    quiet runs off (every event dispatched singly: for equivalence tests).
    Holds the GIL's switch interval at `reader_switch_interval` meanwhile."""
    count = 0
    interval = sys.getswitchinterval()
    sys.setswitchinterval(reader_switch_interval(interval))
    try:
        for batch in batches:
            _dispatch(bus, clock, batch, 0, len(batch), coalesce)
            count += len(batch)
    finally:
        sys.setswitchinterval(interval)
    return count


async def replay_into_paced(
    bus: Bus, clock: ReplayClock, batches: Iterable[Sequence[Event]], pacer: Pacer
) -> int:
    """`replay_into` held to the pacer's speed. Timers fire when their deadline
    is due, not only when the next event arrives. Yields to the event loop at
    least once per batch, so a fast replay leaves the loop responsive."""
    count = 0
    for batch in batches:
        n = len(batch)
        if pacer.unpaced:
            _dispatch(bus, clock, batch, 0, n)
        else:
            i = 0
            while i < n:
                ts = batch[i].ts_event
                target = min(ts, clock.next_due)
                await pacer.wait_until(target)
                due = max(target, pacer.event_now())
                if due < ts:
                    clock.advance_to(due)  # only timers are due yet
                    continue
                j = bisect_right(batch, due, lo=i, hi=n, key=_ts_event)
                # paced: speed is not the point, and sub-ranges would rebuild columns
                _dispatch(bus, clock, batch, i, j, coalesce=False)
                i = j
        count += n
        await asyncio.sleep(0)
    return count


def _ts_event(event: Event) -> int:
    return event.ts_event
