"""TradeBatch: lazily built trades must equal what the schema builds in bulk."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from events import Trade
from events.columns import TradeBatch, TradeColumns
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


def test_a_batch_of_two_symbols_is_not_a_trade_batch(tmp_path: Path) -> None:
    events = [Trade(ts_event=i, ts_recv=i, seq=i + 1, venue="v", symbol=s, price=1.0, size=1.0)
              for i, s in enumerate("AB")]
    path = tmp_path / "t.parquet"
    pq.write_table(schema_for(Trade).to_table(events), path)
    batch = next(pq.ParquetFile(path, read_dictionary=["venue", "symbol"]).iter_batches())
    assert TradeBatch.maybe(batch) is None
    cols = TradeColumns.of_events(events, 0, 1)
    assert (cols.venue, cols.symbol, cols.ts) == ("v", "A", [0])
