"""The column cache (`replay.cache`): a second read of the same parts in one process
takes their decoded batches from memory, gives exactly the same events and replay,
never serves a changed file stale, and never holds more than its budget."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.market import Trade
from events.schema import schema_for
from replay import cache
from replay.reader import read_events
from tests.conftest import REPO, SHARED_DATA, import_spy
from tests.replay.helpers import (
    DAY0,
    DAY0_NS,
    DAY_NS,
    SYMBOLS,
    TYPES,
    flatten,
    make_event,
    part_path,
    write_part,
    write_store,
)

LEAN_SPY = SHARED_DATA / "lean" / "equity" / "usa" / "tick" / "spy"


@pytest.fixture(autouse=True)
def cache_off() -> Iterator[None]:
    """The cache is process-wide: every test starts and ends with it off."""
    cache.disable()
    yield
    cache.disable()


def encoded(events: list) -> list[bytes]:
    return [msgspec.msgpack.encode(e) for e in events]


rows = st.lists(st.tuples(st.sampled_from(TYPES), st.integers(0, 2 * DAY_NS - 1),
                          st.sampled_from(SYMBOLS)), min_size=1, max_size=80)


@settings(max_examples=40, deadline=None)
@given(spec=rows, parts=st.integers(1, 3), batch_rows=st.integers(1, 7),
       types=st.none() | st.sets(st.sampled_from(TYPES), min_size=1),
       symbols=st.none() | st.sets(st.sampled_from(SYMBOLS), min_size=1),
       lazy=st.booleans())
def test_reads_with_the_cache_give_the_same_events_and_the_second_hits(
        tmp_path_factory: pytest.TempPathFactory, spec, parts, batch_rows, types, symbols,
        lazy) -> None:
    root = tmp_path_factory.mktemp("store")
    events = [make_event(t, DAY0_NS + off, seq, sym)
              for seq, (t, off, sym) in enumerate(spec, start=1)]
    write_store(root, events, parts=parts, seed=len(spec))

    def read() -> list[bytes]:
        return encoded(flatten(read_events(root, types=types, symbols=symbols,
                                           batch_rows=batch_rows, lazy=lazy)))

    cache.disable()
    plain = read()
    cache.enable(1 << 30)
    first = read()
    after_first = cache.stats()
    second = read()
    after_second = cache.stats()
    cache.disable()
    assert first == plain and second == plain
    assert after_first.hits == 0
    # every part the first read opened is served from memory the second time
    assert after_second.hits == after_first.misses
    assert after_second.misses == after_first.misses


def test_a_changed_part_is_read_again_not_served_stale(tmp_path: Path) -> None:
    path = part_path(tmp_path, DAY0, "Trade", 0)
    write_part(path, [make_event("Trade", DAY0_NS + i, i + 1) for i in range(50)])
    cache.enable(1 << 24)
    assert len(flatten(read_events(tmp_path))) == 50
    old = path.stat()

    # rewritten with other rows (and, to rule out the mtime, given the old one back)
    write_part(path, [make_event("Trade", DAY0_NS + i, i + 1) for i in range(30)])
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert path.stat().st_size != old.st_size
    assert len(flatten(read_events(tmp_path))) == 30
    assert cache.stats().hits == 0

    # rewritten with the same size: the mtime tells
    events = [make_event("Trade", DAY0_NS + i, i + 1) for i in range(30)]
    events[0] = msgspec.structs.replace(events[0], trade_id="xx")  # same length as "t1"
    write_part(path, events)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns + 1))
    got = flatten(read_events(tmp_path))
    assert got[0].trade_id == "xx"
    assert cache.stats().hits == 0
    assert len(flatten(read_events(tmp_path))) == 30
    assert cache.stats().hits == 1  # and that version is kept


def test_a_part_read_only_in_part_is_not_kept(tmp_path: Path) -> None:
    path = part_path(tmp_path, DAY0, "Trade", 0)
    write_part(path, [make_event("Trade", DAY0_NS + i, i + 1) for i in range(100)],
               row_group_size=10)
    cache.enable(1 << 24)
    reader = read_events(tmp_path, batch_rows=10, prefetch=False)
    next(reader)
    reader.close()
    assert cache.stats().entries == 0
    assert len(flatten(read_events(tmp_path))) == 100
    assert cache.stats().entries == 1


def _batch(rows: int) -> pa.RecordBatch:
    return pa.record_batch({"x": pa.array(range(rows), pa.int64())})


@settings(max_examples=200, deadline=None)
@given(budget=st.integers(1, 4000),
       ops=st.lists(st.tuples(st.booleans(), st.integers(0, 9), st.integers(0, 600)),
                    max_size=60))
def test_the_cache_never_holds_more_than_its_budget_and_evicts_the_least_recent(
        budget: int, ops: list[tuple[bool, int, int]]) -> None:
    c = cache.ColumnCache(budget)
    model: dict[int, int] = {}  # key -> bytes, in recency order (a dict keeps insertion)
    for is_put, key, rows in ops:
        if is_put:
            batches = [_batch(rows)] if rows else []
            size = cache.batches_nbytes(batches)
            kept = c.put(key, batches)
            assert kept == (size <= budget)
            if kept:
                model.pop(key, None)
                while model and sum(model.values()) + size > budget:
                    del model[next(iter(model))]
                model[key] = size
        else:
            got = c.get(key)
            assert (got is not None) == (key in model)
            if key in model:
                model[key] = model.pop(key)
        s = c.stats()
        assert s.bytes <= budget
        assert (s.bytes, s.entries) == (sum(model.values()), len(model))


# -- a real replay --------------------------------------------------------------------


@pytest.fixture(scope="module")
def spy_two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_spy(tmp_path_factory.mktemp("spy") / "data", "20131007", "20131011")


def _replay(data: Path, out: Path) -> dict[str, bytes]:
    from daemon.backtest import ReplaySpec, run_replay
    from daemon.config import load_config

    run_replay(load_config(REPO / "configs" / "replay-spy.toml"),
               ReplaySpec(data_dir=data, out_dir=out))
    report = json.loads((out / "report.json").read_text())
    for machine_dependent in ("wall_s", "events_per_s"):
        report.pop(machine_dependent)
    files = {name: (out / name).read_bytes() for name in ("fills.csv", "equity.csv")}
    return {"report.json": json.dumps(report, sort_keys=True).encode(), **files}


@pytest.mark.timeout(300)
def test_a_second_replay_in_the_process_reuses_the_columns_and_is_byte_identical(
        spy_two_days: Path, tmp_path: Path) -> None:
    plain = _replay(spy_two_days, tmp_path / "plain")
    assert b"BUY" in plain["fills.csv"]

    cache.enable(1 << 30)
    filling = _replay(spy_two_days, tmp_path / "filling")
    filled = cache.stats()
    assert (filled.hits, filled.misses, filled.entries) == (0, 2, 2)
    reusing = _replay(spy_two_days, tmp_path / "reusing")
    assert cache.stats().hits == 2
    assert filling == plain and reusing == plain

    # a budget that holds one of the two days: the older one is evicted, the bound holds
    budget = filled.bytes - 1
    cache.enable(budget)
    assert _replay(spy_two_days, tmp_path / "bounded") == plain
    bounded = cache.stats()
    assert bounded.bytes <= budget and bounded.entries == 1 and bounded.evictions == 1
    # a budget smaller than any day: nothing kept, nothing changes
    cache.enable(1 << 20)
    assert _replay(spy_two_days, tmp_path / "tiny") == plain
    tiny = cache.stats()
    assert (tiny.entries, tiny.bytes, tiny.rejected) == (0, 0, 2)


def test_a_damaged_part_is_never_kept(tmp_path: Path) -> None:
    path = part_path(tmp_path, DAY0, "Trade", 0)
    path.parent.mkdir(parents=True)
    events = [make_event("Trade", DAY0_NS + i, i + 1) for i in range(500)]
    pq.write_table(schema_for(Trade).to_table(events), path, write_page_checksum=True)
    raw = bytearray(path.read_bytes())
    raw[120] ^= 0x10  # inside the first column chunk's first page: its checksum fails
    path.write_bytes(bytes(raw))
    cache.enable(1 << 24)
    told: list[str] = []
    for reads in (1, 2):  # reported each time: the first read kept nothing
        flatten(read_events(tmp_path, on_damaged=lambda e: told.append(str(e))))
        assert len(told) == reads and str(path) in told[-1]
    assert cache.stats().entries == 0
