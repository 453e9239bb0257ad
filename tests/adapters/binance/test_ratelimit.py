"""Rate limiter: an injected clock drives header-fed windows, the safety
margin, window resets, 429 Retry-After and 418 bans."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from adapters.binance.exchange_info import RateLimit
from adapters.binance.ratelimit import (
    DEFAULT_BAN_NS,
    DEFAULT_LIMITS,
    DEFAULT_RETRY_AFTER_NS,
    ORDERS,
    RAW_REQUESTS,
    REQUEST_WEIGHT,
    RateLimiter,
)

S = 1_000_000_000
MIN = 60 * S
DAY = 86400 * S
SLACK = 100_000_000
# 2025-11-21 14:30:00 UTC, on a minute and a 10 s boundary.
T0 = 1763735400 * S


def limiter(**kwargs: float | int) -> RateLimiter:
    return RateLimiter(DEFAULT_LIMITS, **kwargs)  # type: ignore[arg-type]


def test_fresh_limiter_never_waits() -> None:
    rl = limiter()
    assert rl.delay_before(20, False, T0) == 0
    assert rl.delay_before(1, True, T0) == 0
    assert rl.banned_until_ns == 0 and not rl.banned(T0)


def test_weight_under_margin_goes_now() -> None:
    rl = limiter()  # budget 0.9 * 6000 = 5400
    rl.note_response(200, {"x-mbx-used-weight-1m": "5000"}, T0 + 10 * S)
    assert rl.used(REQUEST_WEIGHT, MIN, T0 + 10 * S) == 5000
    assert rl.delay_before(400, False, T0 + 10 * S) == 0


def test_weight_approaching_limit_waits_for_next_minute() -> None:
    rl = limiter()
    now = T0 + 45 * S
    rl.note_response(200, {"X-MBX-USED-WEIGHT-1M": "5390"}, now)  # header case ignored
    assert rl.delay_before(5, False, now) == 0
    assert rl.delay_before(20, False, now) == 15 * S + SLACK
    # Orders cost weight too.
    assert rl.delay_before(20, True, now) == 15 * S + SLACK


def test_new_minute_window_resets() -> None:
    rl = limiter()
    rl.note_response(200, {"x-mbx-used-weight-1m": "5999"}, T0 + 59 * S)
    assert rl.delay_before(1, False, T0 + 59 * S) == S + SLACK
    later = T0 + MIN + SLACK
    assert rl.used(REQUEST_WEIGHT, MIN, later) == 0
    assert rl.delay_before(1, False, later) == 0
    # A fresh header in the new window starts from its own value.
    rl.note_response(200, {"x-mbx-used-weight-1m": "21"}, later)
    assert rl.used(REQUEST_WEIGHT, MIN, later) == 21


def test_stale_lower_header_within_window_does_not_lower_usage() -> None:
    # Concurrent responses can arrive out of order: keep the larger count.
    rl = limiter()
    rl.note_response(200, {"x-mbx-used-weight-1m": "300"}, T0 + S)
    rl.note_response(200, {"x-mbx-used-weight-1m": "250"}, T0 + 2 * S)
    assert rl.used(REQUEST_WEIGHT, MIN, T0 + 2 * S) == 300


def test_legacy_weight_header_is_one_minute() -> None:
    rl = limiter()
    rl.note_response(200, {"x-mbx-used-weight": "5400"}, T0)
    assert rl.delay_before(1, False, T0) == MIN + SLACK


def test_order_count_10s_delays_orders_only() -> None:
    rl = limiter()  # budget 0.9 * 100 = 90
    now = T0 + 3 * S
    rl.note_response(
        200,
        {
            "x-mbx-used-weight-1m": "100",
            "x-mbx-order-count-10s": "90",
            "x-mbx-order-count-1d": "500",
        },
        now,
    )
    assert rl.delay_before(1, True, now) == 7 * S + SLACK
    assert rl.delay_before(4, False, now) == 0  # a query is not an order
    assert rl.delay_before(1, True, T0 + 10 * S + SLACK) == 0


def test_order_count_1d_waits_until_utc_midnight() -> None:
    rl = limiter()  # budget 180000
    rl.note_response(200, {"x-mbx-order-count-1d": "180000"}, T0)
    midnight = (T0 // DAY + 1) * DAY
    assert rl.delay_before(1, True, T0) == midnight + SLACK - T0


def test_note_sent_counts_a_burst_before_any_response() -> None:
    rl = RateLimiter([RateLimit(ORDERS, "SECOND", 10, 10)], safety=1.0)
    for _ in range(10):
        assert rl.delay_before(1, True, T0) == 0
        rl.note_sent(1, True, T0)
    assert rl.delay_before(1, True, T0) == 10 * S + SLACK
    # The response's header (which includes those orders) does not double count.
    rl.note_response(200, {"x-mbx-order-count-10s": "10"}, T0)
    assert rl.used(ORDERS, 10 * S, T0) == 10


def test_raw_requests_counted_locally() -> None:
    rl = RateLimiter([RateLimit(RAW_REQUESTS, "MINUTE", 5, 3)], safety=1.0)
    for _ in range(3):
        rl.note_sent(1, False, T0)
    assert rl.delay_before(1, False, T0 + MIN) == 4 * MIN + SLACK


def test_oversized_request_still_goes_into_an_empty_window() -> None:
    rl = RateLimiter([RateLimit(REQUEST_WEIGHT, "MINUTE", 1, 100)])
    assert rl.delay_before(500, False, T0) == 0


def test_429_retry_after() -> None:
    rl = limiter()
    rl.note_response(429, {"Retry-After": "7", "x-mbx-used-weight-1m": "6001"}, T0 + S)
    assert rl.delay_before(1, False, T0 + S) == MIN - S + SLACK  # weight window is longer
    rl2 = limiter()
    rl2.note_response(429, {"retry-after": "7"}, T0 + S)
    assert rl2.delay_before(1, True, T0 + S) == 7 * S
    assert rl2.delay_before(1, True, T0 + 5 * S) == 3 * S
    assert rl2.delay_before(1, True, T0 + 8 * S) == 0
    assert not rl2.banned(T0 + S)


def test_fractional_retry_after_is_read_exactly() -> None:
    rl = limiter()
    rl.note_response(429, {"Retry-After": "0.25"}, T0)
    assert rl.delay_before(1, False, T0) == S // 4
    rl.note_response(418, {"Retry-After": "1.5"}, T0)
    assert rl.banned(T0) and rl.delay_before(1, False, T0) == 3 * S // 2
    bad = limiter()
    bad.note_response(429, {"Retry-After": "nan"}, T0)
    assert bad.delay_before(1, False, T0) == DEFAULT_RETRY_AFTER_NS


def test_429_without_retry_after_uses_default() -> None:
    rl = limiter()
    rl.note_response(429, {}, T0)
    assert rl.delay_before(1, False, T0) == DEFAULT_RETRY_AFTER_NS


def test_418_bans_everything_until_retry_after() -> None:
    rl = limiter()
    rl.note_response(418, {"Retry-After": "120"}, T0)
    assert rl.banned_until_ns == T0 + 120 * S
    assert rl.banned(T0 + 119 * S)
    assert rl.delay_before(0, False, T0 + 20 * S) == 100 * S
    assert rl.delay_before(1, True, T0 + 20 * S) == 100 * S
    assert rl.delay_before(1, False, T0 + 120 * S) == 0
    assert not rl.banned(T0 + 120 * S)


def test_418_ban_only_extends() -> None:
    rl = limiter()
    rl.note_response(418, {"Retry-After": "600"}, T0)
    rl.note_response(418, {"Retry-After": "10"}, T0 + S)  # a late, shorter answer
    assert rl.banned_until_ns == T0 + 600 * S


@pytest.mark.parametrize("value", [None, "soon", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_418_without_usable_retry_after_uses_shortest_ban(value: str | None) -> None:
    rl = limiter()
    rl.note_response(418, {} if value is None else {"Retry-After": value}, T0)
    assert rl.banned_until_ns == T0 + DEFAULT_BAN_NS


def test_garbage_headers_are_ignored() -> None:
    rl = limiter()
    rl.note_response(200, {"x-mbx-used-weight-1m": "n/a", "x-other": "5", "X-MBX-UUID": "x"}, T0)
    assert rl.used(REQUEST_WEIGHT, MIN, T0) == 0


def test_untracked_interval_header_is_kept_but_not_limited() -> None:
    rl = limiter()
    rl.note_response(200, {"x-mbx-used-weight-1h": "999999"}, T0)
    assert rl.used(REQUEST_WEIGHT, 3600 * S, T0) == 999999
    assert rl.delay_before(1, False, T0) == 0


def test_bad_config_fails() -> None:
    with pytest.raises(ValueError, match="safety"):
        RateLimiter(DEFAULT_LIMITS, safety=0)
    with pytest.raises(ValueError, match="WEEK"):
        RateLimiter([RateLimit(ORDERS, "WEEK", 1, 5)])


class _Reference:
    """The limiter's rules written plainly (each window found by dividing the
    clock, every window walked for every request): what `RateLimiter`'s windows
    with their cached ends and per-kind lists must agree with."""

    def __init__(self, limits: list[RateLimit], safety: float) -> None:
        unit = {"SECOND": S, "MINUTE": MIN, "DAY": DAY}
        self.safety = safety
        # (kind, interval) -> [limit, window start, used]
        self.windows = {(lim.rateLimitType, unit[lim.interval] * lim.intervalNum):
                        [lim.limit, 0, 0] for lim in limits}

    def used(self, key: tuple[str, int], now: int) -> int:
        _, start, used = self.windows[key]
        return used if now // key[1] * key[1] == start else 0

    def record(self, key: tuple[str, int], count: int, now: int, add: bool) -> None:
        window = self.windows.setdefault(key, [0, 0, 0])
        start = now // key[1] * key[1]
        if start != window[1]:
            window[1], window[2] = start, 0
        window[2] = window[2] + count if add else max(window[2], count)

    def cost(self, kind: str, weight: int, is_order: bool) -> int | None:
        if kind == REQUEST_WEIGHT:
            return weight
        if kind == RAW_REQUESTS or (kind == ORDERS and is_order):
            return 1
        return None

    def note_sent(self, weight: int, is_order: bool, now: int) -> None:
        for key in list(self.windows):
            cost = self.cost(key[0], weight, is_order)
            if cost is not None:
                self.record(key, cost, now, True)

    def delay_before(self, weight: int, is_order: bool, now: int) -> int:
        delay = 0
        for key, (limit, _, _) in self.windows.items():
            cost = self.cost(key[0], weight, is_order)
            used = self.used(key, now)
            if limit > 0 and cost is not None and used > 0 \
                    and used + cost > int(limit * self.safety):
                delay = max(delay, (now // key[1] + 1) * key[1] + SLACK - now)
        return delay


_ops = st.lists(st.tuples(
    st.sampled_from(["sent", "delay", "header"]),
    # the clock moves back and forth, across windows, often right on their edges,
    # often staying inside one (where the limiter answers from what it noted)
    st.one_of(st.sampled_from([0, 1, S // 2, S - 1, S, 2 * S, 10 * S - 1, 10 * S, MIN - 1,
                               MIN, -1]),
              st.integers(-3 * S, 90 * S), st.integers(-3, 90).map(lambda k: k * S),
              st.integers(-3, 90).map(lambda k: k * S - 1)),
    st.integers(0, 30), st.booleans(),
    st.sampled_from(["x-mbx-used-weight-1m", "x-mbx-order-count-10s", "x-mbx-order-count-1d",
                     "x-mbx-order-count-1m", "x-mbx-used-weight"])), max_size=60)


H = "x-mbx-used-weight-1m"
# what the limiter must not forget between two questions in one window: a request it
# sent, a count the server reported, a request sent in another window of a shorter
# limit (the day's window still counts it)


@example([(REQUEST_WEIGHT, ("MINUTE", 1), 40)], 0.9,
         [("delay", 0, 20, False, H), ("sent", 0, 20, False, H), ("delay", 0, 20, False, H)])
@example([(ORDERS, ("SECOND", 10), 5)], 1.0,
         [("delay", 0, 1, True, H), ("header", 0, 10, True, "x-mbx-order-count-10s"),
          ("delay", 0, 1, True, H)])
@example([(ORDERS, ("DAY", 1), 3), (ORDERS, ("SECOND", 10), 100)], 0.9,
         [("delay", 0, 1, True, H), ("sent", 20 * S, 1, True, H),
          ("sent", 20 * S, 1, True, H), ("delay", 0, 1, True, H)])
@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from([REQUEST_WEIGHT, ORDERS, RAW_REQUESTS]),
                          # mostly the windows the headers below speak of
                          st.one_of(st.sampled_from([("SECOND", 10), ("MINUTE", 1),
                                                     ("DAY", 1)]),
                                    st.tuples(st.sampled_from(["SECOND", "MINUTE", "DAY"]),
                                              st.integers(1, 10))),
                          st.integers(0, 40)), max_size=5),
       st.sampled_from([0.5, 0.9, 1.0]), _ops)
def test_the_limiter_agrees_with_its_rules_written_plainly(
        raw_limits: list[tuple[str, tuple[str, int], int]], safety: float,
        ops: list[tuple[str, int, int, bool, str]]) -> None:
    limits = [RateLimit(kind, interval, num, limit)
              for kind, (interval, num), limit in raw_limits]
    rl = RateLimiter(limits, safety=safety, slack_ns=SLACK)
    ref = _Reference(limits, safety)
    unit = {"s": S, "m": MIN, "d": DAY}
    for op, dt, n, is_order, header in ops:
        now = T0 + dt
        if op == "sent":
            rl.note_sent(n, is_order, now)
            ref.note_sent(n, is_order, now)
        elif op == "header":  # a window the limiter did not know yet is tracked from now on
            rl.note_response(200, {header: str(n)}, now)
            suffix = header.rsplit("-", 1)[1]
            interval = int(suffix[:-1]) * unit[suffix[-1]] if suffix[-1] in unit else MIN
            kind = REQUEST_WEIGHT if "weight" in header else ORDERS
            ref.record((kind, interval), n, now, False)
        else:  # asked only here, so that several things happen between two questions
            assert rl.delay_before(n, is_order, now) == ref.delay_before(n, is_order, now)
            assert rl.delay_before(1, not is_order, now) == ref.delay_before(1, not is_order,
                                                                            now)
