"""`read_events` and the merge under it: global (ts_event, seq) order across
types, overlapping parts and days; filters; laziness and bounded memory; and
loud failure on stores that break their promises."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.market import Trade
from events.schema import schema_for
from replay.reader import (
    MergeStats,
    Run,
    StoreError,
    UnsortedRunError,
    read_events,
    runs_from_events,
)
from tests.replay.helpers import (
    DAY0,
    DAY0_NS,
    DAY_NS,
    SYMBOLS,
    TYPES,
    flatten,
    key,
    make_event,
    part_path,
    write_part,
    write_store,
)

# (type, offset from DAY0 midnight, symbol); offsets cluster so ts ties happen.
rows = st.lists(
    st.tuples(
        st.sampled_from(TYPES),
        st.one_of(
            st.integers(0, 3 * DAY_NS - 1), st.integers(DAY_NS - 3, DAY_NS + 3), st.integers(0, 5)
        ),
        st.sampled_from(SYMBOLS),
    ),
    min_size=1,
    max_size=120,
)


def build(spec: list[tuple[str, int, str]], seq_seed: int) -> list:
    import random

    seqs = list(range(1, len(spec) + 1))
    random.Random(seq_seed).shuffle(seqs)  # seq order need not follow ts order
    return [
        make_event(t, DAY0_NS + off, seq, sym)
        for (t, off, sym), seq in zip(spec, seqs, strict=True)
    ]


@settings(max_examples=60, deadline=None)
@given(
    spec=rows,
    parts=st.integers(1, 4),
    batch_rows=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    prefetch=st.booleans(),
)
def test_order_across_types_overlapping_parts_and_days(spec, parts, batch_rows, seed, prefetch):
    events = build(spec, seed)
    with tempfile.TemporaryDirectory() as tmp:
        write_store(Path(tmp), events, parts=parts, seed=seed, row_group_size=3)
        stats = MergeStats()
        batches = list(read_events(tmp, batch_rows=batch_rows, prefetch=prefetch, stats=stats))
    assert flatten(batches) == sorted(events, key=key)
    assert all(0 < len(b) <= batch_rows for b in batches)
    assert stats.rows_in == stats.rows_out == len(events)


@settings(max_examples=40, deadline=None)
@given(
    spec=rows,
    seed=st.integers(0, 2**16),
    types=st.none() | st.sets(st.sampled_from(TYPES), min_size=1),
    symbols=st.none() | st.sets(st.sampled_from(SYMBOLS), min_size=1),
    days=st.tuples(st.integers(0, 3), st.integers(0, 3)),
)
def test_filters_match_a_plain_filter(spec, seed, types, symbols, days):
    events = build(spec, seed)
    date_from, date_to = (DAY0 + timedelta(days=min(days)), DAY0 + timedelta(days=max(days)))
    lo, hi = DAY0_NS + min(days) * DAY_NS, DAY0_NS + (max(days) + 1) * DAY_NS

    def wanted(e) -> bool:
        return (
            (types is None or type(e).__name__ in types)
            and (symbols is None or getattr(e, "symbol", None) in symbols)
            and lo <= e.ts_event < hi
        )

    with tempfile.TemporaryDirectory() as tmp:
        write_store(Path(tmp), events, parts=2, seed=seed)
        got = flatten(
            read_events(
                tmp,
                date_from=date_from,
                date_to=date_to,
                types=types,
                symbols=symbols,
                batch_rows=4,
            )
        )
    assert got == sorted(filter(wanted, events), key=key)


def test_symbol_filter_leaves_out_types_without_symbol(tmp_path: Path) -> None:
    events = [
        make_event("VenueStatus", DAY0_NS + 1, 1),
        make_event("Trade", DAY0_NS + 2, 2),
        make_event("Trade", DAY0_NS + 3, 3, "ETHUSDT"),
    ]
    write_store(tmp_path, events)
    assert flatten(read_events(tmp_path, symbols=["BTCUSDT"])) == [events[1]]
    assert flatten(read_events(tmp_path)) == events


def test_extra_runs_are_merged_under_the_same_filters(tmp_path: Path) -> None:
    stored = [make_event("Trade", DAY0_NS + 10 * i, i) for i in range(1, 6)]
    write_store(tmp_path, stored)
    tail = [
        make_event("Quote", DAY0_NS + 15, 10),
        make_event("Trade", DAY0_NS + 35, 11),
        make_event("Quote", DAY0_NS + DAY_NS + 5, 12),  # next day: outside --to
        make_event("VenueStatus", DAY0_NS + 20, 13),
    ]
    got = flatten(
        read_events(
            tmp_path,
            date_to=DAY0,
            types=["Trade", "Quote"],
            extra_runs=runs_from_events(reversed(tail)),
            batch_rows=2,
        )
    )
    assert got == sorted(stored + tail[:2], key=key)


def test_reads_lazily_and_holds_few_batches(tmp_path: Path) -> None:
    # 3 days x 8 sequential parts of 500 rows, plus two parts overlapping them.
    events, seq = [], 1
    for day in range(3):
        for part in range(8):
            rows_ = [
                make_event("Trade", DAY0_NS + day * DAY_NS + part * 1000 + i, seq + i)
                for i in range(500)
            ]
            seq += 500
            write_part(
                part_path(tmp_path, DAY0 + timedelta(days=day), "Trade", day * 10 + part),
                rows_,
                row_group_size=100,
            )
            events += rows_
    late = [make_event("Trade", DAY0_NS + DAY_NS + 3000 + 7 * i, seq + i) for i in range(300)]
    write_part(part_path(tmp_path, DAY0 + timedelta(days=1), "Trade", 99), late)
    quotes = [make_event("Quote", DAY0_NS + 13 * i, seq + 1000 + i) for i in range(600)]
    write_part(part_path(tmp_path, DAY0, "Quote", 98), quotes)
    events += late + quotes

    stats = MergeStats()
    out = []
    for batch in read_events(tmp_path, batch_rows=64, stats=stats):
        out += batch
        # never more than one batch per run that overlaps the current time
        assert stats.rows_in - stats.rows_out <= 2 * 64
    assert out == sorted(events, key=key)
    assert stats.peak_buffered <= 2 * 64
    assert stats.runs_opened == 26


def test_stopping_early_reads_no_further(tmp_path: Path) -> None:
    write_store(tmp_path, [make_event("Trade", DAY0_NS + i, i + 1) for i in range(1000)])
    # A later day that cannot be read: reaching it would raise.
    bad = part_path(tmp_path, DAY0 + timedelta(days=5), "Trade", 7)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet")
    threads_before = threading.active_count()
    stats = MergeStats()
    batches = read_events(tmp_path, batch_rows=10, stats=stats)
    assert len(next(batches)) == 10
    batches.close()
    assert stats.rows_in <= 20
    assert threading.active_count() == threads_before
    with pytest.raises(StoreError, match="not parquet|unreadable"):
        flatten(read_events(tmp_path))


def test_hidden_temporary_and_pending_parts_are_ignored(tmp_path: Path) -> None:
    events = [make_event("Trade", DAY0_NS + i, i + 1) for i in range(5)]
    write_store(tmp_path, events)
    tdir = part_path(tmp_path, DAY0, "Trade", 0).parent
    dup = [make_event("Trade", DAY0_NS + 100, 1)]
    write_part(tdir / ".part-00001.parquet.tmp", dup)
    write_part(tdir / "part-00002.parquet.tmp", dup)
    write_part(tdir / ".hidden.parquet", dup)
    (tmp_path / "events" / ".date=2024-03-02.tmp").mkdir()
    # An unfinished roll: parts numbered from 5 on will be deleted by the writer.
    write_part(tdir / "part-00005.parquet", dup)
    (tmp_path / "store.json").write_bytes(
        msgspec.json.encode(
            {"rolled_seq": 5, "next_part": 6, "pending": {"op": "roll", "first_part": 5}}
        )
    )
    assert flatten(read_events(tmp_path)) == events


def test_parts_missing_new_fields_get_their_defaults(tmp_path: Path) -> None:
    events = [make_event("Trade", DAY0_NS + i, i + 1) for i in range(4)]
    table = schema_for(Trade).to_table(events).drop_columns(["aggressor", "trade_id"])
    path = part_path(tmp_path, DAY0, "Trade", 0)
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    got = flatten(read_events(tmp_path))
    assert got == [msgspec.structs.replace(e, aggressor=0, trade_id="") for e in events]


def test_unsorted_part_and_duplicate_seq_fail_loudly(tmp_path: Path) -> None:
    a, b = make_event("Trade", DAY0_NS + 5, 1), make_event("Trade", DAY0_NS + 1, 2)
    write_part(part_path(tmp_path, DAY0, "Trade", 0), [a, b], sort=False)
    with pytest.raises(UnsortedRunError, match="part-00000"):
        flatten(read_events(tmp_path))

    other = tmp_path / "dup"
    write_part(part_path(other, DAY0, "Trade", 0), [a, b])
    write_part(part_path(other, DAY0, "Trade", 1), [a])
    with pytest.raises(UnsortedRunError, match="seq 1"):
        flatten(read_events(other))


def test_bad_arguments_and_empty_stores(tmp_path: Path) -> None:
    assert flatten(read_events(tmp_path)) == []  # nothing rolled yet
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "missing")
    with pytest.raises(ValueError, match="'Nope'"):
        read_events(tmp_path, types=["Trade", "Nope"])
    with pytest.raises(ValueError, match="after"):
        read_events(tmp_path, date_from=date(2024, 3, 2), date_to=date(2024, 3, 1))
    (tmp_path / "events" / "date=2024-02-30").mkdir(parents=True)
    with pytest.raises(StoreError, match="date=2024-02-30"):
        read_events(tmp_path)


def test_a_run_is_any_sorted_batch_iterator() -> None:
    sch = schema_for(Trade)
    evs = [make_event("Trade", DAY0_NS + i, 100 + i) for i in range(6)]

    def batches() -> Iterator[pa.RecordBatch]:
        yield from sch.to_table(evs).to_batches(max_chunksize=4)

    from replay.merge import merge_runs

    other = runs_from_events([make_event("Quote", DAY0_NS + 2, 1)])
    got = flatten(merge_runs([Run(sch, batches(), "gen"), *other], batch_rows=3))
    assert [e.seq for e in got] == [100, 101, 1, 102, 103, 104, 105]


def test_nullable_decimals_string_lists_and_bytes_survive(tmp_path: Path) -> None:
    from decimal import Decimal

    from events.orders import OrderSubmitted
    from events.state import Snapshot

    orders = [
        OrderSubmitted(
            ts_event=DAY0_NS + i,
            ts_recv=DAY0_NS + i,
            seq=i + 1,
            venue="sim",
            symbol="BTCUSDT",
            strategy_id="s",
            client_order_id=f"c{i}",
            side="BUY",
            order_type="LIMIT" if i % 2 else "MARKET",
            qty=Decimal("0.5"),
            price=Decimal("101.25") if i % 2 else None,
            linked_order_ids=[f"c{j}" for j in range(i % 3)],
        )
        for i in range(100)
    ]
    snaps = [
        Snapshot(
            ts_event=DAY0_NS + 50,
            ts_recv=0,
            seq=500,
            component="oms",
            upto_seq=49,
            state=b"\x00\xffstate",
        )
    ]
    write_store(tmp_path, orders + snaps)
    assert flatten(read_events(tmp_path, batch_rows=7)) == sorted(orders + snaps, key=key)
