"""TradeBatch: lazily built trades must equal what the schema builds in bulk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import Trade
from events.columns import TradeBatch, TradeColumns, TradeTape
from events.market import Quote
from events.schema import schema_for


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2**62), st.integers(0, 2**62),
                               st.floats(0.01, 1e6), st.floats(0, 1e4), st.integers(0, 2),
                               st.text(max_size=8)), min_size=1, max_size=50))
def test_rows_built_one_by_one_equal_the_bulk_build(rows, tmp_path_factory) -> None:
    events = [Trade(ts_event=ts, ts_recv=recv, seq=i + 1, venue="v", symbol="S", price=p,
                    size=q, aggressor=a, trade_id=tid)
              for i, (ts, recv, p, q, a, tid) in enumerate(rows)]
    path = Path(tmp_path_factory.mktemp("cols")) / "t.parquet"
    pq.write_table(schema_for(Trade).to_table(events), path)
    batch = next(pq.ParquetFile(path, read_dictionary=["venue", "symbol", "trade_id"])
                 .iter_batches())
    lazy = TradeBatch.maybe(batch)
    assert lazy is not None and len(lazy) == len(events)
    assert [lazy[i] for i in range(len(events))] == events  # one by one
    assert lazy[-1] == events[-1] and lazy[1:3] == events[1:3]
    assert list(lazy) == events  # in bulk
    # the columns are arrays (indexed like lists, items Python ints and floats)
    assert (list(lazy.ts), list(lazy.price), list(lazy.size), list(lazy.seq)) == (
        [e.ts_event for e in events], [e.price for e in events], [e.size for e in events],
        [e.seq for e in events])
    assert type(lazy.ts[0]) is int and type(lazy.price[0]) is float


@pytest.mark.parametrize(("ids", "dictionary"), [(300, True), (300, False), (3, False)])
def test_rows_built_one_by_one_take_each_rows_trade_id(ids: int, dictionary: bool,
                                                       tmp_path: Path) -> None:
    """Trade ids decoded once from a small dictionary, or read row by row from a
    large one or a plain column: each row's own."""
    events = [Trade(ts_event=i, ts_recv=i, seq=i + 1, venue="v", symbol="S", price=1.0,
                    size=1.0, trade_id=f"id{i % ids}") for i in range(600)]
    path = tmp_path / "t.parquet"
    pq.write_table(schema_for(Trade).to_table(events), path)
    read = ["venue", "symbol", "trade_id"] if dictionary else ["venue", "symbol"]
    lazy = TradeBatch.maybe(next(pq.ParquetFile(path, read_dictionary=read).iter_batches()))
    assert lazy is not None
    assert [lazy[i] for i in range(len(events))] == events


def test_a_batch_of_two_symbols_is_not_a_trade_batch(tmp_path: Path) -> None:
    events = [Trade(ts_event=i, ts_recv=i, seq=i + 1, venue="v", symbol=s, price=1.0, size=1.0)
              for i, s in enumerate("AB")]
    path = tmp_path / "t.parquet"
    pq.write_table(schema_for(Trade).to_table(events), path)
    batch = next(pq.ParquetFile(path, read_dictionary=["venue", "symbol"]).iter_batches())
    assert TradeBatch.maybe(batch) is None
    cols = TradeColumns.of_events(events, 0, 1)
    assert (cols.venue, cols.symbol, cols.ts) == ("v", "A", [0])


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.floats(0.01, 1e6)),
                     min_size=2, max_size=60),
       cut=st.tuples(st.integers(0, 60), st.integers(0, 60)))
def test_a_tape_of_several_instruments_is_its_trades_in_order(rows, cut,
                                                             tmp_path_factory) -> None:
    """TradeTape.merged (one part per instrument, as the replay's merge gives it):
    every row, one by one, in bulk or a span, is the trade it stands for; each
    lane holds its instrument's trades in order, at the rows it names."""
    ts = 0
    events = []
    for i, (k, dt, price) in enumerate(rows):
        ts += dt
        events.append(Trade(ts_event=ts, ts_recv=ts, seq=i + 1, venue="v", symbol="ABCD"[k],
                            price=price, size=1.0 + i, trade_id=str(i)))
    path = Path(tmp_path_factory.mktemp("tape"))
    parts = []
    for symbol in sorted({e.symbol for e in events}):
        pq.write_table(schema_for(Trade).to_table([e for e in events if e.symbol == symbol]),
                       path / f"{symbol}.parquet")
        parts.append(TradeBatch.maybe(next(pq.ParquetFile(
            path / f"{symbol}.parquet", read_dictionary=["venue", "symbol", "trade_id"])
            .iter_batches())))
    ts_all = np.concatenate([np.asarray(p.ts) for p in parts])
    seq_all = np.concatenate([np.asarray(p.seq) for p in parts])
    perm = np.lexsort((seq_all, ts_all))
    tape = TradeTape.merged(parts, perm, ts_all[perm])
    if len(parts) == 1:
        assert tape is not None and len(tape.lanes) == 1
    assert tape is not None and list(tape.ts) == [e.ts_event for e in events]
    a, b = sorted(min(c, len(events)) for c in cut)
    assert tape.events_between(a, b) == events[a:b]
    assert [tape[i] for i in range(len(events))] == events
    for lane, lane_rows in zip(tape.lanes, tape.rows, strict=True):
        assert [events[i].symbol for i in lane_rows] == [lane.symbol] * len(lane_rows)
        assert list(lane.seq) == [events[i].seq for i in lane_rows]
    assert list(tape) == events
    assert TradeTape.merged(parts + parts[:1], np.arange(len(events) + len(parts[0])),
                            np.zeros(len(events) + len(parts[0]), np.int64)) is None


def test_a_list_of_several_instruments_trades_is_a_tape() -> None:
    events = [Trade(ts_event=i, ts_recv=i, seq=i + 1, venue="v", symbol=s, price=1.0 + i,
                    size=1.0) for i, s in enumerate("ABAAB")]
    tape = TradeTape.of_events(events)
    assert isinstance(tape, TradeTape)
    assert [lane.symbol for lane in tape.lanes] == ["A", "B"]
    assert [list(r) for r in tape.rows] == [[0, 2, 3], [1, 4]]
    assert tape.lanes[1].price == [2.0, 5.0] and tape[4] == events[4]
    assert isinstance(TradeTape.of_events(events[:1]), TradeColumns)
    quote = Quote(ts_event=9, ts_recv=9, venue="v", symbol="A", bid=1.0, ask=2.0,
                  bid_size=1.0, ask_size=1.0)
    assert TradeTape.of_events([*events, quote]) is None


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2**62), st.floats(0.01, 1e6), st.integers(0, 2),
                               st.integers(0, 400)), min_size=1, max_size=60),
       cuts=st.lists(st.integers(0, 60), min_size=2, max_size=6), built=st.booleans(),
       ids=st.sampled_from([["venue", "symbol", "trade_id"], ["venue", "symbol"]]))
def test_a_slice_of_a_trade_batch_is_the_trade_batch_of_the_slice(
        rows, cuts, built, ids, tmp_path_factory) -> None:
    """`TradeBatch.slice` (a merge's cut of one Arrow batch, sharing its columns)
    holds and builds what a TradeBatch of the sliced Arrow batch does: columns,
    each row alone, every row in bulk, a span, the marks."""
    events = [Trade(ts_event=ts, ts_recv=ts + 1, seq=i + 1, venue="v", symbol="S", price=p,
                    size=1.0 + i, aggressor=a, trade_id=f"t{tid}")
              for i, (ts, p, a, tid) in enumerate(rows)]
    path = Path(tmp_path_factory.mktemp("cols")) / "t.parquet"
    pq.write_table(schema_for(Trade).to_table(events), path)
    batch = next(pq.ParquetFile(path, read_dictionary=ids).iter_batches())
    whole = TradeBatch.maybe(batch)
    assert whole is not None
    if built:
        whole.events()
    n = len(events)
    bounds = sorted(min(c, n) for c in cuts)
    for start, stop in zip(bounds, bounds[1:], strict=False):
        if stop == start:
            continue
        part = whole.slice(start, stop)
        plain = TradeBatch.maybe(batch.slice(start, stop - start))
        assert plain is not None and len(part) == len(plain) == stop - start
        for name in ("ts", "price", "size", "seq"):
            assert list(getattr(part, name)) == list(getattr(plain, name)), name
        assert [part[i] for i in range(len(part))] == events[start:stop]
        assert part.events_between(0, len(part)) == events[start:stop]
        assert part.events() == plain.events() == events[start:stop]
        ts, price, valid = part.marks()
        assert ts.tolist() == [e.ts_event for e in events[start:stop]]
        assert price.tolist() == [e.price for e in events[start:stop]] and valid
