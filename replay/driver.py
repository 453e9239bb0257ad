"""Driving a bus from stored events under a `ReplayClock`.

The contract, per event: fire every timer due at or before its `ts_event`,
set the clock to it, dispatch it. Done batch-wise: a batch goes to
`bus.dispatch_many` whole, through a feed that sets the clock per event (so
`now_ns()` inside a handler is that event's time, whatever the batch size) and
stops just before the first event that reaches a timer's deadline, including
a timer a handler set moments earlier. Timers then fire outside any dispatch,
so what their callbacks publish precedes that event, and the batch resumes.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence

from events.base import Event
from events.bus import Bus
from replay.clock import ReplayClock
from replay.pacing import Pacer

__all__ = ["replay_into", "replay_into_paced"]


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


def _dispatch(bus: Bus, clock: ReplayClock, batch: Sequence[Event], start: int, stop: int) -> None:
    """Dispatch batch[start:stop], firing timers before the events they precede."""
    stopped_at = [start]
    i = start
    while i < stop:
        ts = batch[i].ts_event
        if ts >= clock.next_due:
            clock.advance_to(ts)
        bus.dispatch_many(_feed(batch, i, stop, clock, stopped_at))
        i = stopped_at[0]


def replay_into(bus: Bus, clock: ReplayClock, batches: Iterable[Sequence[Event]]) -> int:
    """Dispatch every event of `batches` (in order, already sequenced) at full
    speed. Returns the number of events dispatched."""
    count = 0
    for batch in batches:
        _dispatch(bus, clock, batch, 0, len(batch))
        count += len(batch)
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
                _dispatch(bus, clock, batch, i, j)
                i = j
        count += n
        await asyncio.sleep(0)
    return count


def _ts_event(event: Event) -> int:
    return event.ts_event
