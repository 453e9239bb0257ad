"""Pacing: the `--speed` parser and the wall-time math, on a fake clock."""

from __future__ import annotations

import pytest

from replay.pacing import NEVER, Pacer, parse_speed


class FakeTime:
    """A monotonic clock that moves only when slept on (plus `oversleep_ns`,
    the lateness of a real wake-up)."""

    def __init__(self, start: int = 5_000, oversleep_ns: int = 0) -> None:
        self.now = start
        self.oversleep_ns = oversleep_ns
        self.sleeps: list[float] = []

    def monotonic_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += round(seconds * 1e9) + self.oversleep_ns


@pytest.mark.parametrize(
    ("text", "speed"),
    [
        ("max", None),
        ("MAX", None),
        (" max ", None),
        ("1", 1.0),
        ("10", 10.0),
        ("0.5", 0.5),
        ("2.5", 2.5),
        ("1e3", 1000.0),
    ],
)
def test_parse_speed_accepts(text: str, speed: float | None) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["0", "-1", "abc", "inf", "nan", "", "10x", "fast"])
def test_parse_speed_rejects_with_the_value(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_speed(text)
    assert repr(text) in str(info.value) and "'max' or a positive number" in str(info.value)


async def test_waits_until_the_computed_wall_time() -> None:
    t = FakeTime()
    pacer = Pacer(4.0, monotonic_ns=t.monotonic_ns, sleep=t.sleep)
    first = 10**18
    await pacer.wait_until(first)  # anchors: no wait
    assert t.sleeps == []
    await pacer.wait_until(first + 4_000_000_000)  # 4 s of events at 4x: 1 s
    assert t.sleeps == [1.0] and t.now == 5_000 + 10**9
    await pacer.wait_until(first + 2_000_000_000)  # already due: no sleep
    assert t.sleeps == [1.0]
    assert pacer.event_now() == first + 4_000_000_000


async def test_late_wakeups_do_not_accumulate() -> None:
    t = FakeTime(oversleep_ns=3_000_000)  # every wake-up 3 ms late
    pacer = Pacer(2.0, monotonic_ns=t.monotonic_ns, sleep=t.sleep)
    first = 1_000
    pacer.start(first)
    start = t.now
    for k in range(1, 101):
        await pacer.wait_until(first + k * 100_000_000)  # every 100 ms at 2x: 50 ms
        # each wait ends 3 ms late, never 3 ms per wait so far
        assert t.now - start == k * 50_000_000 + 3_000_000
    assert all(s == pytest.approx(0.047) for s in t.sleeps[1:])


async def test_unpaced_never_sleeps() -> None:
    t = FakeTime()
    pacer = Pacer(None, monotonic_ns=t.monotonic_ns, sleep=t.sleep)
    for ts in (5, 10**18, 3):
        await pacer.wait_until(ts)
    assert t.sleeps == [] and pacer.unpaced and pacer.event_now() == NEVER


def test_event_now_and_due_are_inverse() -> None:
    t = FakeTime(start=0)
    pacer = Pacer(0.5, monotonic_ns=t.monotonic_ns, sleep=t.sleep)
    with pytest.raises(RuntimeError):
        pacer.event_now()
    pacer.start(1_000)
    assert pacer.due_wall_ns(1_000 + 10) == 20  # half speed: twice the wall time
    t.now = 20
    assert pacer.event_now() == 1_010
    with pytest.raises(ValueError):
        Pacer(0.0)
