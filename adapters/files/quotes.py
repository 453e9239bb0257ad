"""Best bid/offer files (CSV, Parquet, Feather) into `Quote` tables.

Sizes are optional: FX tick files often carry prices only. A missing size is
NaN (unknown), not 0, which would claim an empty book.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from adapters.files.columns import (
    TS_ALIASES,
    ColumnMap,
    Field,
    Timestamps,
    event_table,
    keep_rows,
    optional_sizes,
    prices,
    resolve,
)
from adapters.files.detect import InputError, LeanTradeZip, Source, open_source
from adapters.files.reader import FileReader
from adapters.files.rows import RowPolicy
from events.market import Quote

QUOTE_FIELDS = (
    Field("ts", TS_ALIASES),
    Field("bid", ("bid", "bid_price", "bidprice", "best_bid", "bid_px", "bid_px_00")),
    Field("ask", ("ask", "ask_price", "askprice", "best_ask", "ask_px", "ask_px_00", "offer")),
    Field(
        "bid_size",
        (
            "bid_size",
            "bid_qty",
            "bidsize",
            "bid_quantity",
            "bid_volume",
            "bid_amount",
            "bid_sz_00",
            "bidqty",
        ),
        required=False,
    ),
    Field(
        "ask_size",
        (
            "ask_size",
            "ask_qty",
            "asksize",
            "ask_quantity",
            "ask_volume",
            "ask_amount",
            "ask_sz_00",
            "askqty",
            "offer_size",
        ),
        required=False,
    ),
)


def read_quotes(
    path: Path | str,
    venue: str,
    symbol: str,
    columns: ColumnMap | None = None,
    policy: RowPolicy | None = None,
) -> FileReader:
    """Quotes from `path`; checks the header now, reads lazily (bad rows
    refuse the file, or are skipped as `policy` says)."""
    columns = columns or ColumnMap()
    source = open_source(Path(path))
    if isinstance(source, LeanTradeZip):
        raise InputError(f"{source.path}: a Lean tick trade zip holds trades, not quotes")
    found = resolve(source, "quote", QUOTE_FIELDS, columns)
    stamps = Timestamps(source, found["ts"] or "", columns.ts_unit)
    missing = [f for f in ("bid_size", "ask_size") if found[f] is None]
    reader = FileReader(
        source,
        Quote,
        f"{source.container}, quotes",
        lambda r: _tables(source, found, stamps, venue, symbol, r),
        policy,
    )
    if missing:
        reader.notes.append(f"no {' or '.join(missing)} column: sizes stored as NaN")
    return reader


def _tables(
    source: Source,
    found: dict[str, str | None],
    stamps: Timestamps,
    venue: str,
    symbol: str,
    reader: FileReader,
) -> Iterator[pa.Table]:
    ts_col, bid_col, ask_col = found["ts"], found["bid"], found["ask"]
    assert ts_col and bid_col and ask_col
    sizes = [c for c in (found["bid_size"], found["ask_size"]) if c]
    wanted = list(dict.fromkeys([ts_col, bid_col, ask_col, *sizes]))
    hints: dict[str, pa.DataType] = {c: pa.float64() for c in (bid_col, ask_col, *sizes)}
    hints[ts_col] = stamps.hint
    rows = reader.checks
    for table in source.tables(wanted, hints, rows):
        rows.begin(table.num_rows)
        ts = stamps(table.column(ts_col), rows)
        quotes = event_table(
            ts, venue, symbol,
            bid=prices(rows, table, bid_col),
            ask=prices(rows, table, ask_col),
            bid_size=optional_sizes(rows, table, found["bid_size"]),
            ask_size=optional_sizes(rows, table, found["ask_size"]),
        )
        yield keep_rows(quotes, rows.done())
        note = stamps.note()
        if note and note not in reader.notes:
            reader.notes.append(note)
