"""Binance spot rate limits as a pure state machine.

Owns how much of each limit (REQUEST_WEIGHT, ORDERS, RAW_REQUESTS, from
exchangeInfo's `rateLimits`) has been used in the current window, and any
429 back-off or 418 ban. It is fed by the REST client, which asks
`delay_before` before sending, calls `note_sent` when it sends and
`note_response` for every response; it never sleeps and never reads a clock.

Windows are fixed and aligned to the epoch (each minute; a DAY resets at
00:00 UTC), so `now_ns` must be epoch time, ideally corrected to the server's
clock. Usage counts come from the server's `X-MBX-USED-WEIGHT-<n><unit>` and
`X-MBX-ORDER-COUNT-<n><unit>` headers; between responses the client's own
`note_sent` keeps a local estimate so a burst of concurrent requests does not
all see the same stale count. Within a window we keep the larger of the two,
which errs towards waiting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from adapters.binance.exchange_info import RateLimit

SECOND_NS = 1_000_000_000
_INTERVAL_NS = {
    "SECOND": SECOND_NS,
    "MINUTE": 60 * SECOND_NS,
    "HOUR": 3600 * SECOND_NS,
    "DAY": 86400 * SECOND_NS,
}
_UNIT_NS = {"s": _INTERVAL_NS["SECOND"], "m": _INTERVAL_NS["MINUTE"]}
_UNIT_NS |= {"h": _INTERVAL_NS["HOUR"], "d": _INTERVAL_NS["DAY"]}

REQUEST_WEIGHT = "REQUEST_WEIGHT"
ORDERS = "ORDERS"
RAW_REQUESTS = "RAW_REQUESTS"

# The protocol doc's values; use the live exchangeInfo's when available.
DEFAULT_LIMITS = (
    RateLimit(REQUEST_WEIGHT, "MINUTE", 1, 6000),
    RateLimit(ORDERS, "SECOND", 10, 100),
    RateLimit(ORDERS, "DAY", 1, 200000),
    RateLimit(RAW_REQUESTS, "MINUTE", 5, 300000),
)

# Without a usable Retry-After: a 429 waits a minute, a 418 the shortest ban.
DEFAULT_RETRY_AFTER_NS = 60 * SECOND_NS
DEFAULT_BAN_NS = 120 * SECOND_NS

_HEADER = re.compile(r"x-mbx-(used-weight|order-count)(?:-(\d+)([smhd]))?")


@dataclass(slots=True)
class _Window:
    kind: str
    interval_ns: int
    limit: int  # 0: no known limit, only tracked
    start_ns: int = 0
    used: int = 0
    # start_ns + interval_ns: "is now in this window" is two comparisons, not a
    # division of a 19-digit integer (asked for every window on every request)
    end: int = 0
    budget: int = 0  # what `safety` allows of `limit` (RateLimiter sets it)

    def __post_init__(self) -> None:
        self.end = self.start_ns + self.interval_ns

    def used_at(self, now_ns: int) -> int:
        # start_ns is always a multiple of interval_ns, so this is "now's window
        # is the one counted", as now_ns // interval_ns * interval_ns == start_ns
        return self.used if self.start_ns <= now_ns < self.end else 0

    def record(self, used: int, now_ns: int, *, add: bool) -> None:
        if not self.start_ns <= now_ns < self.end:
            self.start_ns = start = now_ns // self.interval_ns * self.interval_ns
            self.end, self.used = start + self.interval_ns, 0
        self.used = self.used + used if add else max(self.used, used)

    def end_ns(self, now_ns: int) -> int:
        return (now_ns // self.interval_ns + 1) * self.interval_ns


def _interval_ns(limit: RateLimit) -> int:
    try:
        return _INTERVAL_NS[limit.interval] * limit.intervalNum
    except KeyError:
        raise ValueError(f"rateLimits: unknown interval {limit.interval!r}") from None


def _retry_after_ns(headers: Mapping[str, str]) -> int | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value.strip())  # Binance sends whole seconds; allow fractions
            except ValueError:
                return None  # an HTTP-date: Binance sends seconds, so don't guess
            if seconds != seconds or seconds in (float("inf"), float("-inf")):
                return None
            return round(max(seconds, 0.0) * SECOND_NS)
    return None


class RateLimiter:
    """Tracks usage against Binance's limits and says how long to wait.

    `safety` is the fraction of each limit we allow ourselves (the rest is
    headroom for other processes on the IP and clock skew); `slack_ns` is
    added past a window's end so we do not send on the boundary with a
    clock slightly ahead of the server's.
    """

    def __init__(
        self,
        limits: Iterable[RateLimit] = DEFAULT_LIMITS,
        *,
        safety: float = 0.9,
        slack_ns: int = 100_000_000,
    ) -> None:
        if not 0 < safety <= 1:
            raise ValueError(f"safety must be in (0, 1], got {safety}")
        self.safety = safety
        self.slack_ns = slack_ns
        self._windows: dict[tuple[str, int], _Window] = {}
        for limit in limits:
            key = (limit.rateLimitType, _interval_ns(limit))
            self._windows[key] = _Window(limit.rateLimitType, key[1], limit.limit)
        self.banned_until_ns = 0
        self.retry_after_until_ns = 0
        self._sort_windows()

    def _sort_windows(self) -> None:
        """Which windows a request and an order count in, with their budgets, so
        `delay_before` and `note_sent` (on every order) only walk those."""
        for window in self._windows.values():
            window.budget = int(window.limit * self.safety)
        windows = list(self._windows.values())
        self._weight = [w for w in windows if w.kind == REQUEST_WEIGHT]
        # counted 1 per request, and 1 per order
        self._per_request = [w for w in windows if w.kind == RAW_REQUESTS]
        self._per_order = [w for w in windows if w.kind in (RAW_REQUESTS, ORDERS)]
        self._limited_weight = [w for w in self._weight if w.limit > 0]
        self._limited_request = [w for w in self._per_request if w.limit > 0]
        self._limited_order = [w for w in self._per_order if w.limit > 0]

    def _window(self, kind: str, interval_ns: int) -> _Window:
        key = (kind, interval_ns)
        if key not in self._windows:
            self._windows[key] = _Window(kind, interval_ns, 0)
            self._sort_windows()
        return self._windows[key]

    def used(self, kind: str, interval_ns: int, now_ns: int) -> int:
        """Usage counted in the window containing `now_ns` (0 if untracked)."""
        window = self._windows.get((kind, interval_ns))
        return window.used_at(now_ns) if window else 0

    def banned(self, now_ns: int) -> bool:
        return now_ns < self.banned_until_ns

    def note_sent(self, weight: int, is_order: bool, now_ns: int) -> None:
        """Count a request as it is sent, until its response's headers say more."""
        # `_Window.record(..., add=True)` written out: this runs for every order
        for window in self._weight:
            if window.start_ns <= now_ns < window.end:
                window.used += weight
            else:
                window.record(weight, now_ns, add=True)
        for window in self._per_order if is_order else self._per_request:
            if window.start_ns <= now_ns < window.end:
                window.used += 1
            else:
                window.record(1, now_ns, add=True)

    def note_response(self, status: int, headers: Mapping[str, str], now_ns: int) -> None:
        """Take the server's usage counts, and any 429 back-off or 418 ban."""
        for name, value in headers.items():
            match = _HEADER.fullmatch(name.lower())
            if match is None:
                continue
            family, num, unit = match.groups()
            kind = REQUEST_WEIGHT if family == "used-weight" else ORDERS
            # Legacy bare X-MBX-USED-WEIGHT is the 1-minute weight.
            interval = int(num) * _UNIT_NS[unit] if num else _UNIT_NS["m"]
            try:
                count = int(value.strip())
            except ValueError:
                continue
            self._window(kind, interval).record(count, now_ns, add=False)
        if status == 418:
            wait = _retry_after_ns(headers)
            until = now_ns + (DEFAULT_BAN_NS if wait is None else wait)
            self.banned_until_ns = max(self.banned_until_ns, until)
        elif status == 429:
            wait = _retry_after_ns(headers)
            until = now_ns + (DEFAULT_RETRY_AFTER_NS if wait is None else wait)
            self.retry_after_until_ns = max(self.retry_after_until_ns, until)

    def delay_before(self, weight: int, is_order: bool, now_ns: int) -> int:
        """Nanoseconds to wait before sending a request of `weight` (an order
        if `is_order`) so that every limit stays under `safety` of itself.
        During a ban this is the rest of the ban, whatever the request."""
        if now_ns < self.banned_until_ns:
            return self.banned_until_ns - now_ns
        delay = self.retry_after_until_ns - now_ns
        if delay < 0:
            delay = 0
        # Only the windows this request counts in, and only while they are the
        # current ones (else nothing is used there yet). A request bigger than the
        # whole budget still goes into an empty window.
        for window in self._limited_weight:
            if window.start_ns <= now_ns < window.end and window.used > 0 \
                    and window.used + weight > window.budget:
                delay = max(delay, window.end_ns(now_ns) + self.slack_ns - now_ns)
        for window in self._limited_order if is_order else self._limited_request:
            if window.start_ns <= now_ns < window.end and window.used > 0 \
                    and window.used + 1 > window.budget:
                delay = max(delay, window.end_ns(now_ns) + self.slack_ns - now_ns)
        return delay
