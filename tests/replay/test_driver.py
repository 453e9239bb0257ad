"""The replay driver: timers fire before the event that passes their deadline,
the clock reads each event's time inside its handlers, and batching changes
nothing a component can observe."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.base import Event
from events.bus import Bus
from events.market import Trade
from events.system import Timer
from replay.clock import ReplayClock
from replay.driver import READER_SWITCH_INTERVAL_S, replay_into, replay_into_paced
from replay.pacing import Pacer
from tests.conftest import REPO
from tests.replay.helpers import make_event
from tests.replay.test_pacing import FakeTime


def trades(*ts: int) -> list[Event]:
    return [make_event("Trade", t, i + 1) for i, t in enumerate(ts)]


def split(events: list[Event], size: int) -> list[list[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


class World:
    """A bus and a replay clock whose every observable call is logged."""

    def __init__(self) -> None:
        self.bus = Bus(next_seq=1000)
        self.clock = ReplayClock()
        self.log: list[tuple] = []
        self.bus.subscribe_all(self.on_event)

    def on_event(self, event: Event) -> None:
        self.log.append((type(event).__name__, event.ts_event, self.clock.now_ns()))

    def on_timer(self, timer: Timer) -> None:
        self.log.append(("timer:" + timer.name, timer.ts_event, self.clock.now_ns()))


def test_timers_fire_before_the_event_that_passes_them_in_deadline_order() -> None:
    w = World()
    for name, deadline in [("t25", 25), ("t20", 20), ("t15", 15), ("t5", 5), ("t99", 99)]:
        w.clock.set_timer(name, deadline, w.on_timer)
    replay_into(w.bus, w.clock, [trades(10, 20, 30)])
    assert w.log == [
        ("timer:t5", 5, 5),
        ("Trade", 10, 10),
        ("timer:t15", 15, 15),
        ("timer:t20", 20, 20),  # a deadline equal to the event's time fires first
        ("Trade", 20, 20),
        ("timer:t25", 25, 25),
        ("Trade", 30, 30),
    ]
    assert w.clock.next_due == 99 and w.clock.now_ns() == 30


def test_timer_set_by_a_handler_mid_batch_fires_before_the_next_event() -> None:
    w = World()

    def on_trade(event: Event) -> None:
        if event.ts_event == 10:
            w.clock.set_timer("from-handler", 15, w.on_timer)

    w.bus.subscribe(Trade, on_trade)
    replay_into(w.bus, w.clock, [trades(10, 20, 30)])
    assert [entry[0] for entry in w.log] == ["Trade", "timer:from-handler", "Trade", "Trade"]


def test_what_a_timer_publishes_comes_before_the_next_event() -> None:
    w = World()

    def publish(timer: Timer) -> None:
        w.bus.publish(Timer(ts_event=timer.ts_event, ts_recv=timer.ts_recv, name=timer.name))

    w.clock.set_timer("tick", 15, publish)
    replay_into(w.bus, w.clock, [trades(10, 20)])
    assert w.log == [("Trade", 10, 10), ("Timer", 15, 15), ("Trade", 20, 20)]


def naive(events: Sequence[Event], timers: list[tuple[int, bool]], rearm: int) -> list[tuple]:
    """The contract, one event at a time."""
    w = setup(timers, rearm)
    for event in events:
        w.clock.advance_to(event.ts_event)
        w.bus.dispatch_many([event])
    return w.log


def setup(timers: list[tuple[int, bool]], rearm: int) -> World:
    """A world with `timers` (deadline, cancelled) set and, with `rearm`, a
    handler that sets a timer `rearm` ns ahead on every third trade."""
    w = World()

    def on_trade(event: Event) -> None:
        if rearm and event.seq % 3 == 0:  # handlers set timers too
            w.clock.set_timer(f"h{event.seq}", event.ts_event + rearm, w.on_timer)

    w.bus.subscribe(Trade, on_trade)
    for i, (deadline, cancelled) in enumerate(timers):
        handle = w.clock.set_timer(f"t{i}", deadline, w.on_timer)
        if cancelled:
            w.clock.cancel_timer(handle)
    return w


@settings(max_examples=80, deadline=None)
@given(
    ts=st.lists(st.integers(0, 200), min_size=1, max_size=40),
    timers=st.lists(st.tuples(st.integers(0, 220), st.booleans()), max_size=8),
    rearm=st.integers(0, 30),
    size=st.integers(1, 12),
)
def test_batching_is_invisible(ts, timers, rearm, size) -> None:
    events = trades(*sorted(ts))
    w = setup(timers, rearm)
    assert replay_into(w.bus, w.clock, split(events, size)) == len(events)
    assert w.log == naive(events, timers, rearm)


async def test_paced_replay_waits_in_event_time_and_fires_timers_on_time() -> None:
    t = FakeTime(start=0)
    pacer = Pacer(2.0, monotonic_ns=t.monotonic_ns, sleep=t.sleep)
    w = World()
    walls: list[int] = []
    w.bus.subscribe_all(lambda e: walls.append(t.now))
    w.clock.set_timer("mid", 3_000_000_000, lambda tm: walls.append(-t.now))
    s = 1_000_000_000
    events = trades(0, s, 4 * s, 4 * s)
    assert await replay_into_paced(w.bus, w.clock, split(events, 3), pacer) == 4
    # 2x: event k at (ts_k - first) / 2; the timer at its own deadline, not at
    # the next event's.
    assert walls == [0, s // 2, -3 * s // 2, 2 * s, 2 * s]
    assert [entry[1] for entry in w.log] == [0, s, 4 * s, 4 * s]


async def test_unpaced_async_replay_equals_sync() -> None:
    events = trades(1, 5, 5, 9, 12)
    timers = [(4, False), (9, False), (6, True), (30, False)]
    w = setup(timers, rearm=2)
    await replay_into_paced(w.bus, w.clock, split(events, 2), Pacer(None))
    assert w.log == naive(events, timers, rearm=2)


def test_the_loop_holds_a_short_switch_interval_and_restores_it() -> None:
    """The read-ahead thread wins the GIL back within READER_SWITCH_INTERVAL_S
    while the loop runs (at the 5 ms default the loop waited for its batches);
    the caller's interval is back afterwards, also when a handler raises."""
    w = World()
    seen: list[float] = []
    w.bus.subscribe(Trade, lambda e: seen.append(sys.getswitchinterval()))
    before = sys.getswitchinterval()
    assert before > READER_SWITCH_INTERVAL_S
    replay_into(w.bus, w.clock, [trades(10, 20)])
    assert seen == [READER_SWITCH_INTERVAL_S] * 2
    assert sys.getswitchinterval() == before

    def boom(_timer: Timer) -> None:
        raise RuntimeError("boom")

    w.clock.set_timer("boom", 35, boom)
    with pytest.raises(RuntimeError):
        replay_into(w.bus, w.clock, [trades(30, 40)])
    assert sys.getswitchinterval() == before


def test_a_sweep_worker_keeps_the_interpreters_switch_interval() -> None:
    """A sweep's workers fill the machine's cores, where the short interval made
    every forced GIL hand-off wait for a thread to be scheduled (64 jobs on 2
    workers: 36.3 s against 29.3 s): once a process is a research worker, its
    replays hold no short interval. In a child: the choice is process-wide."""
    probe = (
        "import sys\n"
        "from replay.driver import reader_switch_interval\n"
        "from daemon.research.job import _ready_worker\n"
        "before = reader_switch_interval(0.005)\n"
        "_ready_worker()\n"
        "print(before, reader_switch_interval(0.005), sys.getswitchinterval())\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=REPO, timeout=120).stdout.split()
    assert [float(x) for x in out] == [READER_SWITCH_INTERVAL_S, 0.005, 0.005], out
