"""The pace of look-ups of an order Binance has not answered for, and its alerts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.binance.unresolved import Retry, RetryPolicy

policies = st.builds(
    lambda first, factor, after, every: RetryPolicy(first_s=first, max_s=first * factor,
                                                    alert_after_s=after, alert_every_s=every),
    st.floats(0.001, 5), st.floats(1, 100), st.floats(0, 120), st.floats(0.01, 900))


@given(policies, st.integers(1, 60))
def test_delays_double_from_first_to_max_and_stay_there(policy: RetryPolicy, n: int) -> None:
    retry = Retry(policy, 0.0)
    delays = [retry.next_delay() for _ in range(n)]
    assert delays[0] == policy.first_s
    for before, after in zip(delays, delays[1:], strict=False):
        assert after == min(before * 2, policy.max_s)
    assert all(policy.first_s <= d <= policy.max_s for d in delays)


@given(policies, st.lists(st.floats(0, 50), min_size=1, max_size=80))
def test_alerts_come_after_the_threshold_then_at_most_every_interval(
        policy: RetryPolicy, gaps: list[float]) -> None:
    """Whatever the attempts' timing: no alert before `alert_after_s`, the first
    attempt past it alerts, and two alerts are at least `alert_every_s` apart
    (and every attempt that far past the last alert raises the next)."""
    retry = Retry(policy, 100.0)
    now, alerted = 100.0, []
    for gap in gaps:
        now += gap
        last = retry.last_alert
        due = retry.failed(now)
        expected = now - 100.0 >= policy.alert_after_s and (
            last is None or now - last >= policy.alert_every_s)
        assert due == expected
        if due:
            alerted.append(now)
    assert retry.attempts == len(gaps) and retry.alerts == len(alerted)
    assert all(t - 100.0 >= policy.alert_after_s for t in alerted)
    assert all(b - a >= policy.alert_every_s for a, b in zip(alerted, alerted[1:], strict=False))


def test_the_default_pace() -> None:
    retry = Retry(RetryPolicy(), 0.0)
    assert [retry.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize("kw", [{"first_s": 0}, {"first_s": 2, "max_s": 1},
                                {"alert_after_s": -1}, {"alert_every_s": 0}])
def test_a_nonsense_policy_is_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kw)
