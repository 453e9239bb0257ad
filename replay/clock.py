"""The `Clock` port and its two implementations: live (wall clock, asyncio
timers) and replay (time moves only when the replay advances it).

Components read time and set timers only through a `Clock`, so the same code
sees identical calls live and in replay. A timer's callback receives the
`Timer` event describing it (`ts_event` = its deadline, `ts_recv` = the
clock's time as it fires); publishing that event is the caller's choice.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Protocol

from events.system import Timer

TimerCallback = Callable[[Timer], None]
# A replay timer that can be passed over: given a quiet run of trades
# (`events.columns.TradeColumns` [start, end)), it accounts for its own firings
# inside the run without the run being cut, and returns how far that holds (an
# index <= end: the run is absorbed up to there, and the timer is then armed for
# its first firing that must really happen). See `ReplayClock.set_timer`.
TimerSkip = Callable[[object, int, int], int]

# Larger than any ns timestamp: "no timer pending".
NEVER = 2**63 - 1


class TimerHandle:
    """A timer set on a clock; pass it to `cancel_timer`."""

    __slots__ = (
        "name",
        "owner",
        "deadline_ns",
        "callback",
        "cancelled",
        "fired",
        "_order",
        "_loop_handle",
        "skip",
        "passive",
    )

    def __init__(
        self, name: str, owner: str, deadline_ns: int, callback: TimerCallback, order: int,
        skip: TimerSkip | None = None, passive: bool = False,
    ) -> None:
        self.skip = skip
        self.passive = passive
        self.name = name
        self.owner = owner
        self.deadline_ns = deadline_ns
        self.callback = callback
        self.cancelled = False
        self.fired = False
        self._order = order
        self._loop_handle: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        return not (self.cancelled or self.fired)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "fired" if self.fired else "pending"
        return f"<TimerHandle {self.owner}:{self.name} @{self.deadline_ns} {state}>"


class Clock(Protocol):
    """Time and timers for components; never `time.time()` in the core."""

    def now_ns(self) -> int:
        """The current time, ns since the epoch (UTC)."""
        ...

    def set_timer(
        self, name: str, deadline_ns: int, callback: TimerCallback, owner: str = "",
        skip: TimerSkip | None = None,
    ) -> TimerHandle:
        """Call `callback(Timer(...))` once the clock reaches `deadline_ns`
        (as soon as possible if it already has). `skip`: see `TimerSkip` (only
        a replay uses it)."""
        ...

    def cancel_timer(self, handle: TimerHandle) -> None:
        """Stop a timer from firing; a no-op if it fired or was cancelled."""
        ...


class LiveClock:
    """Wall-clock time; timers run on the asyncio loop.

    Deadlines are wall-clock ns, converted once to the loop's monotonic time
    when the timer is set: a wall-clock step after that moves nothing. Timers
    go to `loop` if given, else to the running loop of the caller.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        time_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._loop = loop
        self._time_ns = time_ns
        self._order = itertools.count()

    def now_ns(self) -> int:
        return self._time_ns()

    def set_timer(
        self, name: str, deadline_ns: int, callback: TimerCallback, owner: str = "",
        skip: TimerSkip | None = None,
    ) -> TimerHandle:
        loop = self._loop or asyncio.get_running_loop()
        handle = TimerHandle(name, owner, deadline_ns, callback, next(self._order))
        delay_s = (deadline_ns - self._time_ns()) / 1e9
        handle._loop_handle = loop.call_at(loop.time() + delay_s, self._fire, handle)
        return handle

    def _fire(self, handle: TimerHandle) -> None:
        if not handle.active:
            return
        handle.fired = True
        handle.callback(
            Timer(
                ts_event=handle.deadline_ns,
                ts_recv=self._time_ns(),
                name=handle.name,
                owner=handle.owner,
            )
        )

    def cancel_timer(self, handle: TimerHandle) -> None:
        if handle.active:
            handle.cancelled = True
            if handle._loop_handle is not None:
                handle._loop_handle.cancel()


class ReplayClock:
    """Time that moves only when the replay calls `advance_to`.

    `advance_to(t)` first fires, in deadline order (ties in the order they were
    set), every timer due at or before `t`, with `now_ns()` at each timer's
    deadline while it runs; a timer set by a callback for a time already
    reached fires in the same advance. Time never goes backwards.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns
        self._heap: list[tuple[int, int, TimerHandle]] = []
        self._order = itertools.count()
        # Deadline of the earliest pending timer, or NEVER: read by the driver
        # for every event, so kept as a plain attribute.
        self.next_due = NEVER
        self._advancing = False

    def now_ns(self) -> int:
        return self._now

    def set_now(self, ts_ns: int) -> None:
        """Move time to `ts_ns` without firing timers: only for the driver,
        which has already fired every timer due by then."""
        if ts_ns > self._now:
            self._now = ts_ns

    def set_timer(
        self, name: str, deadline_ns: int, callback: TimerCallback, owner: str = "",
        skip: TimerSkip | None = None, passive: bool = False,
    ) -> TimerHandle:
        """A timer with `skip` may be passed over by a quiet run of trades (the
        driver asks `skip` instead of cutting the run at its deadline); the
        outcome must be the same as firing it between the run's trades. A
        `passive` timer only observes (the replay's equity samples): its callback
        changes nothing a trade's handler, an owner of quiet runs or another
        timer reads, so a quiet run (and a skippable timer's pass over it) goes
        on past its deadline, and the driver fires it between the run's trades
        before and after it."""
        handle = TimerHandle(name, owner, deadline_ns, callback, next(self._order), skip,
                             passive)
        heappush(self._heap, (deadline_ns, handle._order, handle))
        if deadline_ns < self.next_due:
            self.next_due = deadline_ns
        return handle

    def cancel_timer(self, handle: TimerHandle) -> None:
        # Left in the heap and skipped when it surfaces: O(1) here.
        if handle.active:
            handle.cancelled = True
            self._settle()

    def skippable(self) -> tuple[TimerHandle | None, int]:
        """The earliest pending timer that is not passive if it can be passed over
        (else None), and the deadline of the earliest other pending timer that
        is not passive (NEVER if none): a quiet run may go on up to it."""
        heap = self._heap
        if not heap:
            return None, NEVER
        first = heap[0][2]  # active: _settle keeps it so
        if first.passive:  # not the common case: scan for the first that is not
            found = min((e for e in heap if e[2].active and not e[2].passive), default=None)
            if found is None:
                return None, NEVER
            first = found[2]
        if first.skip is None:
            return None, first.deadline_ns
        rest = min((d for d, _, h in heap if h.active and h is not first and not h.passive),
                   default=NEVER)
        return first, rest

    def pending(self) -> int:
        """How many timers are waiting to fire."""
        return sum(1 for _, _, h in self._heap if h.active)

    def advance_to(self, ts_ns: int) -> None:
        """Fire every timer due at or before `ts_ns`, then set now to `ts_ns`."""
        if self._advancing:
            raise RuntimeError("advance_to called from a timer callback")
        self._advancing = True
        heap = self._heap
        try:
            while heap and heap[0][0] <= ts_ns:
                deadline, _, handle = heappop(heap)
                if not handle.active:
                    continue
                if deadline > self._now:
                    self._now = deadline
                handle.fired = True
                handle.callback(
                    Timer(
                        ts_event=deadline, ts_recv=self._now, name=handle.name, owner=handle.owner
                    )
                )
        finally:
            self._advancing = False
            self._settle()
        if ts_ns > self._now:
            self._now = ts_ns

    def _settle(self) -> None:
        heap = self._heap
        while heap and not heap[0][2].active:
            heappop(heap)
        self.next_due = heap[0][0] if heap else NEVER
