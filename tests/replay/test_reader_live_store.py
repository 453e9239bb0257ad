"""Reading a running daemon's store while it rolls its journal into Parquet: every event
once, from the journal or from Parquet, never twice (`tapeloop events` on a running
daemon, and recovery, read this way). Before, a roll finishing between the journal's
tail being read and the parts being reached showed its events twice, which the merge
refuses ("seq N appears in more than one run"): `tapeloop events` then failed, and now
that would read as a damaged store."""

from __future__ import annotations

from pathlib import Path

from events.bus import Bus
from events.store import EventStore
from replay.reader import read_events
from tests.replay.helpers import DAY0_NS, make_event


def test_a_roll_while_reading_shows_each_event_once(tmp_path: Path) -> None:
    store = EventStore.open_writer(tmp_path)
    journal = store.open_journal()
    bus = Bus(next_seq=journal.next_seq, journal=journal.append)
    for i in range(300):
        bus.publish(make_event(("Trade", "Fill", "Quote")[i % 3], DAY0_NS + i * 1000, 0))
        if i == 99:  # the first hundred are rolled already
            first = journal.rotate()
            assert first is not None
            store.roll_segment(first)
    segment = journal.rotate()
    assert segment is not None
    journal.flush()
    want = [e for batch in read_events(tmp_path, journal=True) for e in batch]
    assert [e.seq for e in sorted(want, key=lambda e: e.seq)] == list(range(1, 301))
    reading = read_events(tmp_path, journal=True, batch_rows=7)
    store.roll_segment(segment)  # the daemon's roller finishes meanwhile
    assert [e for batch in reading for e in batch] == want
    fills = read_events(tmp_path, journal=True, types=["Fill"])  # all rolled now
    assert [e for batch in fills for e in batch] == [e for e in want
                                                     if type(e).__name__ == "Fill"]
    store.close()
