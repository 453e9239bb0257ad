"""Reconnect policy shared by the Binance websocket clients.

`Reconnects` holds the two rules every long-lived Binance connection follows
(market data streams and the WS-API user data stream alike):

- **backoff**: exponential with full jitter — the k-th consecutive failure
  waits uniform in [0, min(backoff_max, backoff_initial * 2**k)] — seeded, so
  tests and replays are deterministic; `reset()` after a session that worked;
- **budget**: at most `budget` reconnects in any `window_s` seconds (Binance
  allows 300 connection attempts per 5 min per IP; a client that keeps
  failing should stop and let the supervisor decide). `spend(reason)` records
  one reconnect or raises `ReconnectBudgetExhausted`.

Publishing status and logging stay with the caller, which knows the venue
and endpoint; this module does no I/O and never sleeps.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable

import structlog

from events.base import Event
from events.system import DISCONNECTED, VenueStatus

log = structlog.get_logger("tapeloop.binance.reconnect")

__all__ = ["ReconnectBudgetExhausted", "Reconnects"]


# websockets' `compression` that offers no permessage-deflate: every Binance stream
# connects with it (inflating cost ~10 µs a message, see adapters.binance.market_ws)
NO_COMPRESSION = None


class ReconnectBudgetExhausted(ConnectionError):
    """Too many reconnects in the budget window: the supervisor decides what next."""


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class Reconnects:
    """Backoff delays and the reconnect budget for one connection; see the module docstring.

    `attempt` is the number of consecutive failed sessions (the backoff
    exponent). `clock` is monotonic seconds, by default the running loop's.
    """

    def __init__(
        self,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        budget: int = 10,
        window_s: float = 300.0,
        rng: random.Random | None = None,
        seed: int = 0,
        clock: Callable[[], float] = _loop_time,
    ) -> None:
        if backoff_initial < 0 or backoff_max < 0:
            raise ValueError("backoff must not be negative")
        if budget < 0:
            raise ValueError(f"reconnect budget must not be negative, got {budget}")
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.budget = budget
        self.window_s = window_s
        self.rng = rng if rng is not None else random.Random(seed)
        self.clock = clock
        self.attempt = 0
        self._times: deque[float] = deque()

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**attempt)]."""
        cap = min(self.backoff_max, self.backoff_initial * 2.0 ** min(attempt, 62))
        return self.rng.uniform(0.0, cap)

    def next_delay(self) -> float:
        """The delay for the current failure streak, then count one more failure."""
        d = self.delay(self.attempt)
        self.attempt += 1
        return d

    def reset(self) -> None:
        """The last session worked: the next failure starts the backoff afresh."""
        self.attempt = 0

    def recent(self) -> int:
        """Reconnects spent within the window, as of now."""
        self._expire(self.clock())
        return len(self._times)

    def spend(self, reason: str) -> None:
        """Record one reconnect, or raise `ReconnectBudgetExhausted` (recording
        nothing) when the window already holds `budget` of them. The message
        reads `reconnect budget exhausted: N reconnects in W s (last: reason)`."""
        now = self.clock()
        self._expire(now)
        if len(self._times) >= self.budget:
            raise ReconnectBudgetExhausted(
                f"reconnect budget exhausted: {len(self._times)} reconnects in "
                f"{self.window_s:g} s (last: {reason})")
        self._times.append(now)

    def _expire(self, now: float) -> None:
        times = self._times
        while times and times[0] <= now - self.window_s:
            times.popleft()


class Stoppable:
    """What the market and user streams share around their `run()` task:

    - `stop()`: the task is cancelled once, and `run()` swallows exactly that
      cancellation (`_own_cancel()`), so a stop returns cleanly while any other
      cancellation still propagates;
    - `_set_status()`: a `VenueStatus` on every change of `status`;
    - `_spend_budget()`: one reconnect from the budget, or `disconnected` and
      `ReconnectBudgetExhausted` naming the stream;
    - `_session_ended()` then `_wait_to_reconnect()`: what follows the end of
      every session (status, budget, counters, backoff).
    Subclasses set `venue`, `publish`, `now_ns`, `status`, `reconnects` and
    `reconnect_policy`.
    """

    _stopping: bool = False
    _task: asyncio.Task[None] | None = None
    venue: str
    status: str
    publish: Callable[[Event], object]
    now_ns: Callable[[], int]
    reconnect_policy: Reconnects
    reconnects: int

    def _set_status(self, status: str, reason: str = "", *, force: bool = False) -> None:
        if status == self.status and not force:
            return
        self.status = status
        now = self.now_ns()
        self.publish(VenueStatus(ts_event=now, ts_recv=now, venue=self.venue,
                                 status=status, reason=reason))

    def _spend_budget(self, reason: str) -> None:
        try:
            self.reconnect_policy.spend(reason)
        except ReconnectBudgetExhausted as exc:
            self._set_status(DISCONNECTED, str(exc), force=True)
            what, where = self._describe()
            log.error("binance.reconnect_budget_exhausted", venue=self.venue, stream=what,
                      endpoint=where, reason=reason)
            raise ReconnectBudgetExhausted(f"{self.venue} {what} {where}: {exc}") from None

    def _session_ended(self, reason: str, *, worked: bool) -> None:
        """A session ended (not by stop()): say so, and count one reconnect
        against the budget; a session that `worked` starts the backoff afresh."""
        self._set_status(DISCONNECTED, reason)
        if worked:
            self.reconnect_policy.reset()
        self._spend_budget(reason)
        self.reconnects += 1

    async def _wait_to_reconnect(self, reason: str, *, planned: bool,
                                 not_before_s: float = 0.0) -> None:
        """Back off (a planned rotation does not), at least `not_before_s`."""
        delay = 0.0 if planned else self.reconnect_policy.next_delay()
        delay = max(delay, not_before_s)
        log.info("binance.reconnect", venue=self.venue, stream=self._describe()[0],
                 reason=reason, delay_s=round(delay, 3), reconnects=self.reconnects)
        if delay > 0:
            await asyncio.sleep(delay)

    def _describe(self) -> tuple[str, str]:
        """(what the stream is, where it connects), for errors; subclasses say more."""
        return type(self).__name__, ""

    def stop(self) -> None:
        """Ask `run()` to close the socket and return. Safe to call any time."""
        if self._stopping:
            return  # one cancel only: run() swallows exactly the one it asked for
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _own_cancel(self) -> bool:
        """In `run()`'s `except CancelledError`: True when it is stop()'s own."""
        task = asyncio.current_task()
        return self._stopping and task is not None and task.uncancel() == 0
