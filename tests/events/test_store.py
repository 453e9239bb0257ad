from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from events import Trade
from events.bus import Bus
from events.journal import JournalPolicy
from events.schema import schema_for
from events.store import EventStore, list_parts

DAY = 86_400 * 10**9
T0 = 1_723_161_255_030_314_667  # 2024-08-08 23:54 UTC


def trade(ts: int, i: int) -> Trade:
    return Trade(ts_event=ts, ts_recv=ts, venue="v", symbol="S", price=float(i), size=1.0,
                 trade_id=str(i))


def test_roll_writes_hive_parts_readable_by_pyarrow_and_duckdb(tmp_path: Path) -> None:
    with EventStore.open_writer(tmp_path) as store:
        journal = store.open_journal()
        bus = Bus(next_seq=journal.next_seq)
        bus.subscribe_all(journal.append)
        for i in range(1000):
            bus.publish(trade(T0 + i * 10**9, i))  # crosses midnight after ~6 minutes
        store.roll_segment(journal.close())
    parts = list_parts(tmp_path / "events")
    assert [(str(p.date), p.type) for p in parts] == [("2024-08-08", "Trade"),
                                                      ("2024-08-09", "Trade")]
    dataset = ds.dataset(tmp_path / "events", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 1000 and sorted(table["seq"].to_pylist()) == list(range(1, 1001))
    assert table.schema.field("ts_event").type == pa.timestamp("ns", tz="UTC")
    rows = duckdb.sql(
        f"select type, count(*), min(seq), max(seq) from read_parquet("
        f"'{tmp_path}/events/*/*/*.parquet', hive_partitioning=true) group by type").fetchall()
    assert rows == [("Trade", 1000, 1, 1000)]
    meta = parts[0].path.open("rb").read(4)
    assert meta == b"PAR1"


def test_a_large_segment_rolls_in_bounded_chunks_and_reads_back_in_order(
        tmp_path: Path) -> None:
    """Rolling holds at most `chunk_events` events at once: a type gets several
    sorted parts per day, and the reader merges them back into (ts, seq) order."""
    from replay.reader import read_events

    with EventStore.open_writer(tmp_path) as store:
        journal = store.open_journal()
        bus = Bus(next_seq=journal.next_seq)
        bus.subscribe_all(journal.append)
        for i in range(1000):  # out of time order across chunks
            bus.publish(trade(T0 - (i % 7) * 10**9 + i, i))
        assert store.roll_segment(journal.close(), chunk_events=300) == 1000
        assert store.manifest.rolled_seq == 1000 and not store.manifest.pending
    assert len([p for p in list_parts(tmp_path / "events")]) == 4
    got = [(e.ts_event, e.seq) for batch in read_events(tmp_path) for e in batch]
    assert len(got) == 1000 and got == sorted(got)


def test_import_assigns_seq_in_time_order_after_the_journal(tmp_path: Path) -> None:
    with EventStore.open_writer(tmp_path) as store:
        journal = store.open_journal()
        bus = Bus(next_seq=journal.next_seq)
        bus.subscribe_all(journal.append)
        bus.publish(trade(T0, 0))
        journal.close()
    with EventStore.open_writer(tmp_path) as store:  # rolls the leftover segment
        assert store.last_seq == 1
        sch = schema_for(Trade)
        table = sch.to_table([trade(T0 + 5 * DAY - i, i) for i in range(10)])  # reversed time
        assert store.append_tables("Trade", [table]) == 10
        assert store.last_seq == 11
        journal = store.open_journal()
        assert journal.next_seq == 12
    t = ds.dataset(tmp_path / "events", partitioning="hive").to_table().sort_by("seq")
    ts = t["ts_event"].cast(pa.int64()).to_pylist()
    assert t["seq"].to_pylist() == list(range(1, 12))
    assert ts[1:] == sorted(ts[1:])


def test_interrupted_import_is_undone_on_open(tmp_path: Path) -> None:
    sch = schema_for(Trade)

    def tables():
        yield sch.to_table([trade(T0 + i, i) for i in range(5)])
        raise KeyboardInterrupt  # the import dies half way

    with EventStore.open_writer(tmp_path) as store, pytest.raises(KeyboardInterrupt):
        store.append_tables("Trade", tables())
    assert len(list_parts(tmp_path / "events")) == 1  # the partial part is on disk
    with EventStore.open_writer(tmp_path) as store:
        assert store.last_seq == 0
        assert list_parts(tmp_path / "events") == []
        assert store.manifest.pending is None


def test_a_store_opened_not_durable_writes_whole_files_without_fsync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay's run directory (derived data) skips the fsyncs, its opening's and
    its journal's (the segment made, closed, rolled and deleted) as well as its
    roll's; what
    it writes reads back the same as a durable store's."""
    import os

    def roll(root: Path, durable: bool) -> list[int]:
        synced: list[int] = []
        real = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
        with EventStore.open_writer(root, durable=durable) as store:  # (recovery: none)
            journal = store.open_journal(JournalPolicy(fsync="never"))
            bus = Bus(next_seq=journal.next_seq)
            bus.subscribe_all(journal.append)
            for i in range(500):
                bus.publish(trade(T0 + i * 10**9, i))
            segment = journal.close()
            assert segment is not None and segment.exists()
            store.roll_segment(segment)
            monkeypatch.setattr(os, "fsync", real)
            return synced

    assert roll(tmp_path / "durable", True), "a durable roll fsyncs its parts"
    assert roll(tmp_path / "run", False) == []
    tables = [ds.dataset(tmp_path / d / "events", partitioning="hive").to_table().sort_by("seq")
              for d in ("durable", "run")]
    assert tables[0].equals(tables[1]) and tables[0].num_rows == 500
    assert not list((tmp_path / "run").rglob("*.tmp"))


def test_a_roll_whose_part_write_fails_on_its_thread_is_undone_and_redone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A roll writes its parts on two threads when there are several: one failing
    write raises from roll_segment after every write has ended, the segment stays,
    and the next open undoes the partial roll and rolls it again: every event
    once, in order, in the same part files as a roll that never failed."""
    import pyarrow.parquet as pq

    from replay.reader import read_events

    def fill(root: Path) -> tuple[Path, EventStore]:
        store = EventStore.open_writer(root)
        journal = store.open_journal()
        bus = Bus(next_seq=journal.next_seq)
        bus.subscribe_all(journal.append)
        for i in range(600):  # 23:54 plus six days: seven parts, on two threads
            bus.publish(trade(T0 + i * (DAY // 100), i))
        segment = journal.close()
        assert segment is not None
        return segment, store

    segment, store = fill(tmp_path / "a")
    real = pq.ParquetWriter.write_table
    calls = []

    def failing(self: pq.ParquetWriter, table: pa.Table, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", failing)
    with pytest.raises(OSError, match="No space"):
        store.roll_segment(segment)
    assert len(calls) == 7, "every part write ran before the error was raised"
    assert segment.exists() and store.manifest.pending is not None
    store.close()
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real)
    EventStore.open_writer(tmp_path / "a").close()  # undoes the partial roll, rolls again
    got = [e.seq for batch in read_events(tmp_path / "a") for e in batch]
    assert got == list(range(1, 601))
    segment_b, store_b = fill(tmp_path / "b")
    store_b.roll_segment(segment_b)
    store_b.close()
    names = sorted(p.path.relative_to(tmp_path / "a")
                   for p in list_parts(tmp_path / "a" / "events"))
    assert len(names) == 7
    for name in names:  # the redone roll wrote what an unbroken one writes
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))
