"""Group commit: the bus with `Journal.stage`/`Journal.commit` makes every critical
event durable before any subscriber sees it, with one fdatasync for all the events
staged by then. The fdatasync is instrumented at the last inch (`_datasync`, the call
that reaches the disk): it records what it covered, and every delivery of a critical
event is checked against it."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import events.journal as journal_mod
from events import Fill, Trade
from events.base import Event
from events.bus import Bus
from events.faults import JournalWriteError
from events.journal import Journal, JournalPolicy, read_journal
from events.registry import CRITICAL_TYPES

# A plan: the events a handler run publishes, each (critical?, via publish_many?, the
# plan its own delivery runs).
Plan = list[tuple[bool, bool, Any]]
plans: st.SearchStrategy[Plan] = st.recursive(
    st.just([]),
    lambda inner: st.lists(st.tuples(st.booleans(), st.booleans(), inner), max_size=3),
    max_leaves=20)


def fill(key: int) -> Fill:
    return Fill(ts_event=key, ts_recv=key, venue="v", symbol="S", strategy_id="s",
                client_order_id=f"c{key}", trade_id=str(key), side="BUY",
                qty=Decimal("0.001"), price=Decimal("100.5"), fee=Decimal(0),
                fee_currency="USD", liquidity="TAKER")


def trade(key: int) -> Trade:
    return Trade(ts_event=key, ts_recv=key, venue="v", symbol="S", price=1.0, size=1.0,
                 trade_id=str(key))


class Rig:
    """A bus wired as the daemon wires it, a journal whose fdatasync records the last
    seq it made durable, and a subscriber that checks every critical delivery."""

    def __init__(self, journal_dir: Path, *, write: bool = False) -> None:
        self.journal, _ = Journal.open(journal_dir, policy=JournalPolicy(
            segment_max_bytes=1 << 20))
        self.bus = Bus(next_seq=self.journal.next_seq, journal=self.journal.stage,
                       commit=self.journal.commit, on_error=self._on_error,
                       write=self.journal.flush if write else None)
        self.durable = 0  # highest seq an fdatasync has covered
        self.datasyncs = 0
        self.late: list[int] = []  # critical seqs delivered before they were durable
        self.errors: list[BaseException] = []
        self.seen: list[int] = []
        self.unwritten: list[int] = []  # critical seqs delivered before the OS had them
        self.bus.subscribe_all(self._check)

    def datasync(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def sync(fd: int) -> None:
            real(fd)
            self.datasyncs += 1
            self.durable = self.journal.written_seq  # what was handed to the OS by now
        return sync

    def _check(self, event: Event) -> None:
        self.seen.append(event.seq)
        if type(event) in CRITICAL_TYPES and event.seq > self.durable:
            self.late.append(event.seq)
        if type(event) in CRITICAL_TYPES and event.seq > self.journal.written_seq:
            self.unwritten.append(event.seq)

    def _on_error(self, event: Event, handler: Any, exc: BaseException) -> None:
        self.errors.append(exc)


@contextmanager
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, write: bool = False
        ) -> Iterator[Rig]:
    r = Rig(tmp_path, write=write)
    with monkeypatch.context() as m:
        m.setattr(journal_mod, "_datasync", r.datasync(journal_mod._datasync))
        yield r
    r.journal.close()


def run_plan(r: Rig, plan: Plan, after_each: Callable[[], object] = lambda: None
             ) -> tuple[int, int]:
    """Publish `plan` from outside any dispatch (`after_each` after each top-level
    publish); returns (events published, handler runs or top-level publish calls
    that published at least one critical event)."""
    children: dict[int, Plan] = {}
    count = [0, 0]
    keys = iter(range(10**9))

    def publish(step_plan: Plan) -> None:
        batch: list[Event] = []
        if any(critical for critical, _, _ in step_plan):
            count[1] += 1
        for critical, many, sub in step_plan:
            key = next(keys)
            children[key] = sub
            event = fill(key) if critical else trade(key)
            count[0] += 1
            if many:
                batch.append(event)
            else:
                r.bus.publish(event)
        if batch:
            r.bus.publish_many(batch)

    def react(event: Event) -> None:
        sub = children.pop(int(event.trade_id))  # type: ignore[attr-defined]
        if sub:
            publish(sub)

    r.bus.subscribe(Fill, react)
    r.bus.subscribe(Trade, react)
    for critical, many, sub in plan:  # each top-level event on its own, as the loop does
        publish([(critical, many, sub)])
        after_each()
    return count[0], count[1]


@given(plan=plans)
def test_no_critical_event_is_seen_before_the_fdatasync_covering_it(
        tmp_path_factory: pytest.TempPathFactory, plan: Plan) -> None:
    tmp = tmp_path_factory.mktemp("group")
    with pytest.MonkeyPatch.context() as monkeypatch, rig(tmp, monkeypatch) as r:
        published, critical_runs = run_plan(r, plan)
        assert not r.errors, r.errors
        assert r.late == [], f"seen before durable: {r.late}"
        assert sorted(r.seen) == r.seen == list(range(1, published + 1))
        # never more fdatasyncs than publishing runs with a critical event in them
        assert r.datasyncs <= critical_runs, (r.datasyncs, critical_runs)
    assert [e.seq for e in read_journal(tmp)] == list(range(1, published + 1))


def test_the_orders_one_callback_submits_share_one_fdatasync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with rig(tmp_path, monkeypatch) as r:
        # a trade whose handler submits three orders, one of which yields a fill at once
        published, _ = run_plan(r, [(False, False, [(True, False, []),
                                                    (True, False, [(True, False, [])]),
                                                    (True, True, [])])])
        assert published == 5 and r.late == [] and not r.errors
        assert r.datasyncs == 2  # the three orders together, then the fill they caused
        # published from outside a dispatch, a critical event is committed at once
        r.bus.publish(fill(10**6))
        assert r.datasyncs == 3 and r.durable == published + 1


def test_a_commit_the_disk_refuses_drops_what_it_would_have_covered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with rig(tmp_path, monkeypatch) as r:
        def refused(fd: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(journal_mod, "_datasync", refused)
        run_plan(r, [(False, False, [(True, False, []), (False, False, [])])])
        assert [type(e) for e in r.errors] == [JournalWriteError]
        assert r.seen == [1], "nothing staged after the trade was delivered"
        with pytest.raises(JournalWriteError):
            r.bus.publish(trade(99))


def test_the_events_of_one_answer_share_one_commit_before_the_group_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`Bus.grouped()`: the critical events one incoming message yields, published one
    by one, are committed once, when the group ends; an order a handler submits in
    reaction still waits for a commit covering everything before it."""
    with rig(tmp_path, monkeypatch) as r:
        reactions: list[int] = []

        def react(event: Event) -> None:
            if event.trade_id == "1":  # type: ignore[attr-defined]
                reactions.append(r.bus.publish(fill(100)).seq)

        r.bus.subscribe(Fill, react)
        with r.bus.grouped():
            for key in range(3):
                r.bus.publish(fill(key))
            assert r.datasyncs == 1, "the reaction's commit covered 1..3"
            assert r.durable == 3 and reactions == [3]
        assert r.datasyncs == 2 and r.durable == 4, "the rest at the end of the group"
        assert r.late == [1, 2, 4], "only the group's own events were seen before their commit"
        assert not r.errors
        with r.bus.grouped():
            r.bus.publish(trade(7))  # nothing critical: no fdatasync
        assert r.datasyncs == 2
    assert [e.seq for e in read_journal(tmp_path)] == list(range(1, 6))


# -- the daemon's wiring: `Bus(write=Journal.flush)` ---------------------------------------
#
# A critical event is handed to the OS before anyone sees it (a kill -9 loses none) and
# fsynced by `Bus.durable()`: by what sends a request on its account from inside the
# dispatch (the Binance venue, just before the request leaves), and at the latest when
# the outermost dispatch ends, before the event loop runs anything else.


@given(plan=plans)
def test_written_before_it_is_seen_and_durable_before_the_dispatch_returns_or_a_send(
        tmp_path_factory: pytest.TempPathFactory, plan: Plan) -> None:
    tmp = tmp_path_factory.mktemp("written")
    with pytest.MonkeyPatch.context() as monkeypatch, \
            rig(tmp, monkeypatch, write=True) as r:
        sends: list[tuple[int, int]] = []  # (highest critical seq seen, durable then)

        def seen_critical() -> int:
            return max((seq for seq in r.seen if seq in critical), default=0)

        def send_now(event: Event) -> None:
            # a venue sending from inside the dispatch, on every third event's account
            if event.seq % 3 == 0:
                r.bus.durable()
                sends.append((seen_critical(), r.durable))

        critical: set[int] = set()
        stage = r.bus.journal
        assert stage is not None

        def journal(event: Event) -> object:
            if type(event) in CRITICAL_TYPES:
                critical.add(event.seq)
            return stage(event)

        r.bus.journal = journal
        r.bus.subscribe_all(send_now)
        outermost: list[tuple[int, int]] = []
        run_plan(r, plan, lambda: outermost.append((max(critical, default=0), r.durable)))
        assert not r.errors, r.errors
        assert r.unwritten == [], f"seen before the OS had it: {r.unwritten}"
        assert all(durable >= top for top, durable in outermost), \
            f"a dispatch returned with a critical event not durable: {outermost}"
        assert all(durable >= top for top, durable in sends), \
            f"a send found a critical event not durable: {sends}"
        published = r.bus.next_seq - 1
        assert sorted(r.seen) == r.seen == list(range(1, published + 1))
    assert [e.seq for e in read_journal(tmp)] == list(range(1, published + 1))


def test_one_fdatasync_per_dispatch_and_one_per_send_that_needs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with rig(tmp_path, monkeypatch, write=True) as r:
        # a trade whose handler submits three orders, one of which yields a fill at once
        published, _ = run_plan(r, [(False, False, [(True, False, []),
                                                    (True, False, [(True, False, [])]),
                                                    (True, True, [])])])
        assert published == 5 and r.unwritten == [] and not r.errors
        assert r.datasyncs == 1 and r.durable == 5, "all five, once, as the dispatch ended"
        assert r.late == [2, 3, 4, 5], "seen written, before their fdatasync"
        sent: list[int] = []

        def send(event: Event) -> None:
            r.bus.durable()
            sent.append(r.durable)
            r.bus.durable()  # nothing new: no second fdatasync

        r.bus.subscribe(Fill, send)
        r.bus.publish(fill(10**6))  # from outside a dispatch: written, sent, done
        assert sent == [6] and r.datasyncs == 2
        r.bus.publish(trade(10**6 + 1))  # nothing critical: no fdatasync
        assert r.datasyncs == 2


def test_a_refused_fdatasync_raises_from_the_publish_and_the_journal_keeps_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with rig(tmp_path, monkeypatch, write=True) as r:
        r.bus.publish(fill(0))
        assert r.durable == 1

        def refused(fd: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(journal_mod, "_datasync", refused)
        sent: list[int] = []

        def send(event: Event) -> None:
            r.bus.durable()  # raises: the request never leaves
            sent.append(event.seq)

        r.bus.subscribe(Fill, send)
        r.bus.publish(trade(5))  # nothing critical: no fdatasync
        r.bus.publish(fill(6))  # written; the send's fdatasync is refused
        assert sent == [] and [type(e) for e in r.errors] == [JournalWriteError]
        with pytest.raises(JournalWriteError):
            r.bus.publish(trade(7))
        other = Rig(tmp_path / "other", write=True)
        try:
            with pytest.raises(JournalWriteError):  # refused as the dispatch ends
                other.bus.publish(fill(8))
        finally:
            other.journal.close()
    # what the last good fdatasync covered and nothing after it
    assert [e.seq for e in read_journal(tmp_path)] == [1]
