"""Replay speed: as fast as possible (`max`) or N x real time in event time.

At speed N the event at `ts_event` is due at wall time
`start + (ts_event - first_ts) / N`, computed from the anchor every time, so
late wake-ups never accumulate into drift. Wall time here is the monotonic
clock; both it and the sleep are injectable so tests need no real waiting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

NEVER = 2**63 - 1


def parse_speed(text: str) -> float | None:
    """`--speed` value: "max" -> None (no waiting), "N" -> N (a positive
    number; 1 is real time, 10 ten times faster, 0.5 half speed)."""
    value = text.strip().lower()
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        speed = math.nan
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(
            f"invalid speed {text!r}: expected 'max' or a positive number such as 1, 10 or 0.5"
        )
    return speed


class Pacer:
    """Holds a replay to `speed` x real time (None: no holding back)."""

    def __init__(
        self,
        speed: float | None,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number or None, not {speed!r}")
        self.speed = speed
        self._monotonic_ns = monotonic_ns
        self._sleep = sleep
        self._first_ts: int | None = None
        self._start_wall = 0

    @property
    def unpaced(self) -> bool:
        return self.speed is None

    def start(self, first_ts: int) -> None:
        """Anchor event time `first_ts` to now (done by the first wait if not
        called)."""
        self._first_ts = first_ts
        self._start_wall = self._monotonic_ns()

    def due_wall_ns(self, ts_event: int) -> int:
        """The monotonic time at which `ts_event` is due (0, long ago, when
        unpaced)."""
        if self.speed is None:
            return 0
        if self._first_ts is None:
            self.start(ts_event)
        assert self._first_ts is not None
        return self._start_wall + round((ts_event - self._first_ts) / self.speed)

    def event_now(self) -> int:
        """The latest event time that is due now (NEVER when unpaced)."""
        if self.speed is None:
            return NEVER
        if self._first_ts is None:
            raise RuntimeError("pacer not started")
        elapsed = self._monotonic_ns() - self._start_wall
        return self._first_ts + math.floor(elapsed * self.speed)

    async def wait_until(self, ts_event: int) -> None:
        """Sleep until `ts_event` is due; one sleep, so a fake sleep that
        does not move the fake clock cannot make this spin."""
        if self.speed is None:
            return
        delay_ns = self.due_wall_ns(ts_event) - self._monotonic_ns()
        if delay_ns > 0:
            await self._sleep(delay_ns / 1e9)
