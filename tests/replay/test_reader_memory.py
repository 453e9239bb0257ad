"""An open part holds about one row group's worth of Arrow memory, not the whole
file (issue 15: a portfolio's day opens one part per instrument at once, and
Parquet's pre-buffering kept each whole file read in memory: ~20 MB of the
4-symbol SPY replay's peak RSS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from events.market import Trade
from events.schema import schema_by_name
from replay.runs import open_part

ROWS = 200_000
ROW_GROUP = 10_000
T0 = 1_700_000_000 * 10**9


def _part(path: Path, seed: int) -> Path:
    """A part of random trades (incompressible: the file is as big as its data)
    in many row groups."""
    rng = np.random.default_rng(seed)
    print("seed", seed)
    schema = schema_by_name("Trade")
    prices, sizes = rng.random(ROWS) * 100, rng.random(ROWS)
    trades = [Trade(ts_event=T0 + i * 1000, ts_recv=T0 + i * 1000, seq=i + 1, venue="sim",
                    symbol="AAA", price=float(p), size=float(q))
              for i, (p, q) in enumerate(zip(prices, sizes, strict=True))]
    pq.write_table(schema.to_table(trades), path, row_group_size=ROW_GROUP,
                   write_page_checksum=True)
    return path


def test_an_open_part_holds_one_row_group_not_its_file(tmp_path: Path) -> None:
    path = _part(tmp_path / "part-00000.parquet", seed=15)
    size = path.stat().st_size
    schema = schema_by_name("Trade")
    before = pa.total_allocated_bytes()
    (run,) = open_part(path, schema, batch_rows=4096)
    batches = iter(run.batches)
    first = next(batches)
    held = pa.total_allocated_bytes() - before
    group = pq.read_metadata(path).row_group(0).total_byte_size
    # the batch, the row group being decoded (compressed and not), and slack;
    # a pre-buffered reader holds the whole file (20 row groups) on top
    assert held < first.get_total_buffer_size() + 4 * group + (1 << 20), (held, size, group)
    assert size > 8 * group  # the file is big enough for the bound to tell
    rows = first.num_rows + sum(b.num_rows for b in batches)
    assert rows == ROWS


def test_the_parts_a_store_writes_are_read_side_by_side_in_little_more_than_their_batches(
        tmp_path: Path) -> None:
    """A portfolio's day holds one part per instrument open at once. A part the
    store wrote (an import here; a roll writes the same way) holds little more
    than the batch it gives: times and seqs are deltas, not a dictionary per row
    group as large as the column (~2.5 MB an open part, before, whatever the
    batch: a portfolio's replay grew by that much per instrument)."""
    from events.store import EventStore

    rng = np.random.default_rng(16)
    print("seed", 16)
    schema = schema_by_name("Trade")
    symbols = ("AAA", "BBB", "CCC", "DDD")
    with EventStore.open_writer(tmp_path) as store:
        for symbol in symbols:
            ticks = rng.integers(10_000, 10_100, ROWS)  # prices on a cent grid
            trades = [Trade(ts_event=T0 + i * 97_000 + int(j), ts_recv=T0 + i * 97_000 + int(j),
                            seq=0, venue="sim", symbol=symbol, price=int(t) / 100,
                            size=float(s))
                      for i, (j, t, s) in enumerate(zip(rng.integers(0, 1000, ROWS), ticks,
                                                        rng.integers(1, 500, ROWS), strict=True))]
            store.append_tables("Trade", [schema.to_table(trades)])
    parts = sorted(tmp_path.glob("events/date=*/type=Trade/*.parquet"))
    day = [p for p in parts if p.parent.parent == parts[0].parent.parent]
    assert len(day) == len(symbols)
    encodings = pq.read_metadata(day[0]).row_group(0).column(0).encodings
    before = pa.total_allocated_bytes()
    firsts = []
    for path in day:
        (run,) = open_part(path, schema, batch_rows=16_384)
        firsts.append((run, next(iter(run.batches))))
    held = pa.total_allocated_bytes() - before
    batches = sum(first.get_total_buffer_size() for _, first in firsts)
    # each part: its batch, the page being decoded (compressed and not) and slack
    assert held < 2 * batches + len(day) * (256 << 10), (held, batches, encodings)
