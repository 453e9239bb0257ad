"""Perpetual-futures history files into `FundingRate` and `MarkPrice` tables.

Funding rates: one row per funding time, a time column and a rate. Freqtrade's
`<pair>-<tf>-funding_rate.feather` holds the rate in `open` (the other price
columns are 0), a CSV may name it `rate` / `funding_rate`. `funding_ts` and
`ts_event` are the row's time: funding is settled then. A rate may be negative;
it must be finite.

Mark prices: Freqtrade's `<pair>-<tf>-mark.feather` are OHLC candles of the mark.
One `MarkPrice` per candle, stamped at the candle's OPEN with `mark` = `open`:
the mark at that moment (the candle's later prices are not known then, so no
replay sees a mark before it happened). A file with a `mark` / `mark_price`
column is read the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from adapters.files.columns import (
    TS_ALIASES,
    ColumnMap,
    Field,
    Timestamps,
    event_table,
    keep_rows,
    numbers,
    prices,
    resolve,
)
from adapters.files.detect import InputError, LeanTradeZip, Source, open_source
from adapters.files.reader import FileReader
from adapters.files.rows import RowChecks, RowPolicy
from events.perp import FundingRate, MarkPrice

# Freqtrade's funding file keeps the rate in `open`: the last alias.
FUNDING_FIELDS = (
    Field("ts", TS_ALIASES + ("funding_time", "fundingtime", "funding_ts", "calc_time")),
    Field("rate", ("rate", "funding_rate", "fundingrate", "last_funding_rate", "open")),
)
MARK_FIELDS = (
    Field("ts", TS_ALIASES),
    Field("mark", ("mark", "mark_price", "markprice", "open")),
)


def read_funding(
    path: Path | str,
    venue: str,
    symbol: str,
    columns: ColumnMap | None = None,
    policy: RowPolicy | None = None,
) -> FileReader:
    """Funding rates from `path` (see the module docstring); checks the header
    now, reads lazily."""
    source, found, stamps = _open(path, "funding rate", FUNDING_FIELDS, columns)
    reader = FileReader(
        source, FundingRate, f"{source.container}, funding rates (rate from {found['rate']!r})",
        lambda r: _funding(source, found, stamps, venue, symbol, r), policy,
    )
    return reader


def read_marks(
    path: Path | str,
    venue: str,
    symbol: str,
    columns: ColumnMap | None = None,
    policy: RowPolicy | None = None,
) -> FileReader:
    """Mark prices from `path`, one per row, stamped at the row's time (a
    candle's open) with the mark from `open` / `mark` (see the module docstring)."""
    source, found, stamps = _open(path, "mark price", MARK_FIELDS, columns)
    return FileReader(
        source, MarkPrice, f"{source.container}, mark prices from {found['mark']!r} "
        "stamped at the row's time",
        lambda r: _marks(source, found, stamps, venue, symbol, r), policy,
    )


def _open(
    path: Path | str, kind: str, fields: tuple[Field, ...], columns: ColumnMap | None
) -> tuple[Source, dict[str, str | None], Timestamps]:
    columns = columns or ColumnMap()
    source = open_source(Path(path))
    if isinstance(source, LeanTradeZip):
        raise InputError(f"{source.path}: a Lean tick trade zip holds trades, not {kind}s")
    found = resolve(source, kind, fields, columns)
    return source, found, Timestamps(source, found["ts"] or "", columns.ts_unit)


def _funding(
    source: Source, found: dict[str, str | None], stamps: Timestamps, venue: str,
    symbol: str, reader: FileReader,
) -> Iterator[pa.Table]:
    ts_col, rate_col = found["ts"] or "", found["rate"] or ""
    rows = reader.checks
    for table in source.tables(list(dict.fromkeys([ts_col, rate_col])),
                               {ts_col: stamps.hint, rate_col: pa.float64()}, rows):
        rows.begin(table.num_rows)
        ts = stamps(table.column(ts_col), rows)
        rates = _rates(rows, table, rate_col)
        out = event_table(ts, venue, symbol, rate=rates, funding_ts=ts,
                          mark=pa.array(np.zeros(table.num_rows)))
        yield keep_rows(out, rows.done())
        _note(stamps, reader)


def _marks(
    source: Source, found: dict[str, str | None], stamps: Timestamps, venue: str,
    symbol: str, reader: FileReader,
) -> Iterator[pa.Table]:
    ts_col, mark_col = found["ts"] or "", found["mark"] or ""
    rows = reader.checks
    for table in source.tables(list(dict.fromkeys([ts_col, mark_col])),
                               {ts_col: stamps.hint, mark_col: pa.float64()}, rows):
        n = table.num_rows
        rows.begin(n)
        ts = stamps(table.column(ts_col), rows)
        zeros = pa.array(np.zeros(n))
        out = event_table(ts, venue, symbol, mark=prices(rows, table, mark_col),
                          index=zeros, funding_rate=zeros,
                          next_funding_ts=pa.array(np.zeros(n, dtype=np.int64)))
        yield keep_rows(out, rows.done())
        _note(stamps, reader)


def _rates(rows: RowChecks, table: pa.Table, column: str) -> pa.Array:
    """A rate column: every row has a finite rate (of either sign)."""
    values = numbers(rows, table, column)
    a = values.to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(a)  # a null (empty cell) reads as NaN here
    if bad.any():
        missing = values.is_null().to_numpy(zero_copy_only=False)

        def why(i: int) -> str:
            if missing[i]:
                return f"column {column!r} is empty"
            if np.isnan(a[i]):
                return f"column {column!r} is NaN"
            return f"column {column!r} is {'-' if a[i] < 0 else ''}infinite"

        rows.mark(bad, why)
    return values


def _note(stamps: Timestamps, reader: FileReader) -> None:
    note = stamps.note()
    if note and note not in reader.notes:
        reader.notes.append(note)
