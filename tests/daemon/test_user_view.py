"""The restart tests' fold of a running daemon's store (tests/daemon/user_view.py) must not
fail by the timing of a background roll: the crash and run-stop-run tests failed under load
with "seq N appears in more than one run" when a roll committed between the reader taking
the journal's tail and listing the Parquet parts."""

from __future__ import annotations

from pathlib import Path

import pytest

import replay.reader
from events.journal import JournalPolicy, list_segments
from events.store import EventStore
from tests.daemon.user_view import fold, fold_running
from tests.replay.helpers import DAY0_NS, make_event


def journal_only_store(data: Path, n: int = 20) -> None:
    """A store whose events are all in one journal segment, as a running daemon's are
    between two rolls."""
    with EventStore.open_writer(data) as store:
        journal = store.open_journal(JournalPolicy(fsync="never"))
        for seq in range(1, n + 1):
            journal.append(make_event("Fill", DAY0_NS + seq, seq))
        journal.close()


def test_a_roll_landing_mid_read_is_read_again(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    journal_only_store(data)
    [(_, segment)] = list_segments(data / "journal")
    real_tail = replay.reader.journal_tail_runs
    rolls: list[int] = []

    def tail_then_a_roll(*args: object, **kwargs: object) -> object:
        runs = real_tail(*args, **kwargs)  # type: ignore[arg-type]
        if not rolls:  # the daemon's roller commits the segment right after this read
            rolls.append(EventStore.attach_for_lock_holder(data).roll_segment(segment))
        return runs

    monkeypatch.setattr(replay.reader, "journal_tail_runs", tail_then_a_roll)
    book, positions = fold_running(data)
    assert rolls == [20], "the roll landed mid-read"
    monkeypatch.undo()
    settled_book, settled_positions = fold(data)
    assert positions == settled_positions
    assert book.orders.keys() == settled_book.orders.keys()
