"""Binance's rate limits as the fake counts and enforces them (protocol doc §3).

Fixed windows, as Binance's: the request weight per minute (REQUEST_WEIGHT,
6000; REST and WS-API share it), new orders per 10 s and per day (ORDERS, 100
and 200000). `over()` is Binance's refusal once a window is spent: HTTP 429 with
`-1003` (weight; the request's own weight counts) or `-1015` (orders), and
`Retry-After` in seconds to the window's end. Response headers
`x-mbx-used-weight-1m` (and the legacy `x-mbx-used-weight`) on every answer,
`x-mbx-order-count-10s` / `-1d` on placements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fake_binance.common import RATE_LIMITS, ApiError

MINUTE_MS, TEN_S_MS, DAY_MS = 60_000, 10_000, 86_400_000


def _limit(rate_limits: list[dict[str, Any]], kind: str, interval: str) -> int:
    return next(int(r["limit"]) for r in rate_limits
                if (r["rateLimitType"], r["interval"]) == (kind, interval))


def _window(now_ms: int, window: tuple[int, int], size_ms: int, add: int) -> tuple[int, int]:
    """(window start, count) after adding `add` at `now_ms` (a new window starts at 0)."""
    start = now_ms // size_ms * size_ms
    return start, (window[1] if window[0] == start else 0) + add


def _seconds_left(start: int, size_ms: int, now_ms: int) -> str:
    return str(max(1, -(-(start + size_ms - now_ms) // 1000)))


class RateLimits:
    """The counters of one fake venue; `weight_limit`/`orders_limit` may be changed."""

    def __init__(self, now_ms: Callable[[], int],
                 rate_limits: list[dict[str, Any]] = RATE_LIMITS) -> None:
        self._now_ms = now_ms
        self.weight_limit = _limit(rate_limits, "REQUEST_WEIGHT", "MINUTE")
        self.orders_limit = _limit(rate_limits, "ORDERS", "SECOND")
        self._weight = (0, 0)  # (window start ms, used)
        self._orders_10s = (0, 0)
        self._orders_1d = (0, 0)

    def add_weight(self, weight: int) -> int:
        """Count `weight` in this minute's window; returns the window's total."""
        self._weight = _window(self._now_ms(), self._weight, MINUTE_MS, weight)
        return self._weight[1]

    def count_order(self) -> None:
        """One more order in the ORDERS windows."""
        now = self._now_ms()
        self._orders_10s = _window(now, self._orders_10s, TEN_S_MS, 1)
        self._orders_1d = _window(now, self._orders_1d, DAY_MS, 1)

    def headers(self, order_counted: bool = False) -> dict[str, str]:
        used = str(self._window_now(self._weight, MINUTE_MS)[1])
        h = {"x-mbx-used-weight-1m": used, "x-mbx-used-weight": used}
        if order_counted:
            h["x-mbx-order-count-10s"] = str(self._window_now(self._orders_10s, TEN_S_MS)[1])
            h["x-mbx-order-count-1d"] = str(self._window_now(self._orders_1d, DAY_MS)[1])
        return h

    def over(self, placing: bool) -> tuple[ApiError, str] | None:
        """The 429 refusal (and its Retry-After) if a window is spent, else None;
        `placing`: the request places an order."""
        now = self._now_ms()
        start, used = self._window_now(self._weight, MINUTE_MS)
        if used > self.weight_limit:
            return ApiError(429, -1003, f"Too much request weight used; current limit is "
                                        f"{self.weight_limit} request weight per 1 MINUTE. "
                                        "Please use WebSocket Streams for live updates to "
                                        "avoid polling the API."), _seconds_left(
                                            start, MINUTE_MS, now)
        start, placed = self._window_now(self._orders_10s, TEN_S_MS)
        if placing and placed >= self.orders_limit:
            return ApiError(429, -1015, f"Too many new orders; current limit is "
                                        f"{self.orders_limit} orders per 10 SECOND."), \
                _seconds_left(start, TEN_S_MS, now)
        return None

    def _window_now(self, window: tuple[int, int], size_ms: int) -> tuple[int, int]:
        return _window(self._now_ms(), window, size_ms, 0)
