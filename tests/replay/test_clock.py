"""Clocks: the replay clock's timer order and time, the live clock on asyncio."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.system import Timer
from replay.clock import NEVER, Clock, LiveClock, ReplayClock


def recorder(clock: ReplayClock, log: list) -> object:
    def fire(timer: Timer) -> None:
        log.append((timer.name, timer.ts_event, clock.now_ns()))

    return fire


def test_timers_fire_in_deadline_order_ties_by_creation() -> None:
    clock = ReplayClock(start_ns=100)
    log: list = []
    fire = recorder(clock, log)
    for name, deadline in [("c", 300), ("a", 200), ("b1", 250), ("b2", 250), ("late", 900)]:
        clock.set_timer(name, deadline, fire)
    assert clock.next_due == 200
    clock.advance_to(250)
    assert log == [("a", 200, 200), ("b1", 250, 250), ("b2", 250, 250)]
    assert clock.now_ns() == 250
    clock.advance_to(400)
    assert log[-1] == ("c", 300, 300) and clock.now_ns() == 400
    assert clock.next_due == 900 and clock.pending() == 1


def test_timer_set_in_a_callback_for_a_passed_time_fires_in_the_same_advance() -> None:
    clock = ReplayClock()
    log: list = []
    fire = recorder(clock, log)

    def chain(timer: Timer) -> None:
        log.append((timer.name, timer.ts_event, clock.now_ns()))
        clock.set_timer("past", 5, fire)  # already passed: due now
        clock.set_timer("soon", 60, fire)  # within this advance
        clock.set_timer("later", 500, fire)  # not yet

    clock.set_timer("first", 50, chain)
    clock.advance_to(100)
    # "past" fires at the current time: the clock never goes backwards
    assert log == [("first", 50, 50), ("past", 5, 50), ("soon", 60, 60)]
    assert clock.now_ns() == 100 and clock.next_due == 500


def test_cancel_and_time_never_goes_back() -> None:
    clock = ReplayClock(start_ns=10)
    log: list = []
    handle = clock.set_timer("x", 20, recorder(clock, log))
    clock.set_timer("y", 30, recorder(clock, log))
    clock.cancel_timer(handle)
    clock.cancel_timer(handle)  # twice is harmless
    assert clock.next_due == 30
    clock.advance_to(40)
    assert [name for name, *_ in log] == ["y"]
    clock.advance_to(35)
    assert clock.now_ns() == 40
    assert clock.next_due == NEVER


def test_advance_inside_a_callback_is_refused() -> None:
    clock = ReplayClock()
    clock.set_timer("x", 5, lambda t: clock.advance_to(10))
    with pytest.raises(RuntimeError, match="advance_to"):
        clock.advance_to(5)


@given(
    st.lists(st.tuples(st.integers(0, 50), st.booleans()), max_size=30),
    st.lists(st.integers(0, 60), max_size=10),
)
def test_fires_exactly_the_uncancelled_due_timers_in_order(timers, advances) -> None:
    clock = ReplayClock()
    log: list = []
    fire = recorder(clock, log)
    handles = [
        (clock.set_timer(str(i), d, fire), d, cancel) for i, (d, cancel) in enumerate(timers)
    ]
    for h, _, cancel in handles:
        if cancel:
            clock.cancel_timer(h)
    for t in sorted(advances):
        clock.advance_to(t)
    end = max(advances, default=-1)
    expected = sorted(((d, int(h.name)) for h, d, c in handles if not c and d <= end))
    assert [(d, int(name)) for name, d, _ in log] == expected
    assert all(now == d for _, d, now in log)


def test_clocks_satisfy_the_protocol() -> None:
    def uses(clock: Clock) -> int:
        return clock.now_ns()

    assert uses(ReplayClock(start_ns=7)) == 7
    assert uses(LiveClock(time_ns=lambda: 8)) == 8


async def test_live_clock_fires_on_the_loop_in_deadline_order() -> None:
    now = 1_700_000_000 * 10**9
    clock = LiveClock(time_ns=lambda: now)
    loop = asyncio.get_running_loop()
    fired: list[Timer] = []
    done = asyncio.Event()

    def fire(timer: Timer) -> None:
        fired.append(timer)
        if timer.name == "last":
            done.set()

    clock.set_timer("past", now - 10**9, fire, owner="t")
    cancelled = clock.set_timer("cancelled", now + 1_000_000, fire)
    clock.set_timer("last", now + 2_000_000, fire)  # 2 ms
    far = clock.set_timer("far", now + 2 * 10**9, fire)
    assert far._loop_handle is not None
    assert far._loop_handle.when() == pytest.approx(loop.time() + 2.0, abs=0.05)
    clock.cancel_timer(cancelled)
    await asyncio.wait_for(done.wait(), timeout=5)
    clock.cancel_timer(far)
    assert [(t.name, t.ts_event, t.ts_recv) for t in fired] == [
        ("past", now - 10**9, now),
        ("last", now + 2_000_000, now),
    ]
    assert fired[0].owner == "t"
    assert not far.active and far.cancelled


@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["plain", "skip", "passive"]),
                          st.booleans()), max_size=12))
def test_skippable_is_the_first_timer_not_passive_and_the_next_bounds_the_run(
        timers: list[tuple[int, str, bool]]) -> None:
    """`skippable()`: the earliest pending timer that is not passive, if it has a
    `skip` (else None), and the earliest deadline among the other pending timers
    that are not passive: passive ones (the replay's equity samples) never bound
    a quiet run, the driver fires them inside it."""
    clock = ReplayClock()
    handles = []
    for deadline, kind, cancel in timers:
        h = clock.set_timer(kind, deadline, lambda _t: None,
                            skip=(lambda _c, s, e: e) if kind == "skip" else None,
                            passive=kind == "passive")
        handles.append((h, cancel))
    for h, cancel in handles:
        if cancel:
            clock.cancel_timer(h)
    live = sorted(((h.deadline_ns, i, h) for i, (h, _) in enumerate(handles)
                   if h.active and not h.passive))
    first, rest = clock.skippable()
    if not live:
        assert (first, rest) == (None, NEVER)
    elif live[0][2].skip is None:
        assert (first, rest) == (None, live[0][0])
    else:
        assert first is live[0][2]
        assert rest == (live[1][0] if len(live) > 1 else NEVER)
