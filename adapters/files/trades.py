"""Trade files into `Trade` tables: Binance/nautilus, freqtrade, mapped columns, Lean.

The aggressor is the taker's side. Files say it two ways: a side column
(freqtrade `side` = taker side) or Binance's "buyer is the maker" flag, which
means the taker *sold*.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapters.files.columns import (
    TS_ALIASES,
    ColumnMap,
    Field,
    Timestamps,
    coded,
    constant,
    event_table,
    keep_rows,
    prices,
    resolve,
    sizes,
    text,
    valid_text,
)
from adapters.files.detect import InputError, LeanTradeZip, Source, open_source
from adapters.files.lean import lean_trade_tables
from adapters.files.reader import FileReader
from adapters.files.rows import RowChecks, RowPolicy
from events.market import AGGRESSOR_BUY, AGGRESSOR_SELL, AGGRESSOR_UNKNOWN, Trade

TRADE_FIELDS = (
    Field("ts", TS_ALIASES + ("trade_time", "transact_time")),
    Field("price", ("price", "px", "trade_price")),
    Field("size", ("quantity", "qty", "amount", "size", "trade_size", "volume")),
    Field("side", ("side", "taker_side", "aggressor", "aggressor_side"), required=False),
    Field(
        "maker", ("buyer_maker", "is_buyer_maker", "isbuyermaker", "buyer_is_maker"), required=False
    ),
    Field("id", ("trade_id", "id", "tradeid", "agg_trade_id", "aggtradeid"), required=False),
)

# Known shapes: (columns that identify it, label, unit of integer timestamps).
_PRESETS: tuple[tuple[frozenset[str], str, str | None], ...] = (
    (
        frozenset({"timestamp", "trade_id", "price", "quantity", "buyer_maker"}),
        "nautilus/binance trades",
        None,
    ),
    (frozenset({"timestamp", "id", "side", "price", "amount"}), "freqtrade trades", "ms"),
)

SIDE_CODES: dict[str, int] = {
    "buy": AGGRESSOR_BUY,
    "b": AGGRESSOR_BUY,
    "bid": AGGRESSOR_BUY,
    "buyer": AGGRESSOR_BUY,
    "1": AGGRESSOR_BUY,
    "sell": AGGRESSOR_SELL,
    "s": AGGRESSOR_SELL,
    "ask": AGGRESSOR_SELL,
    "seller": AGGRESSOR_SELL,
    "2": AGGRESSOR_SELL,
    "-1": AGGRESSOR_SELL,
}
# Buyer is the maker, so the seller took liquidity.
MAKER_CODES: dict[str, int] = {
    "true": AGGRESSOR_SELL,
    "t": AGGRESSOR_SELL,
    "1": AGGRESSOR_SELL,
    "yes": AGGRESSOR_SELL,
    "false": AGGRESSOR_BUY,
    "f": AGGRESSOR_BUY,
    "0": AGGRESSOR_BUY,
    "no": AGGRESSOR_BUY,
}


def read_trades(
    path: Path | str,
    venue: str,
    symbol: str,
    columns: ColumnMap | None = None,
    policy: RowPolicy | None = None,
) -> FileReader:
    """Trades from `path` (Parquet, Feather, CSV, optionally gzip/zip, or a Lean
    tick trade zip). Checks the header now; reads lazily. InputError names the
    file when its columns are not recognised and `columns` does not map them,
    and the file and row of a bad row (unless `policy` skips them)."""
    columns = columns or ColumnMap()
    source = open_source(Path(path))
    if isinstance(source, LeanTradeZip):
        if not columns.is_empty():
            raise InputError(f"{source.path}: column options do not apply to Lean tick zips")
        reader = FileReader(
            source,
            Trade,
            source.container,
            lambda r: lean_trade_tables(source, venue, symbol, r),
            policy,
        )
        reader.drop_reason = "suspicious rows"
        return reader
    found = resolve(source, "trade", TRADE_FIELDS, columns)
    lower = {c.strip().lower() for c in source.columns}
    label, unit = "trades", None
    for marker, name, preset_unit in _PRESETS:
        # A mapped column may not mean what the preset assumes (e.g. its unit).
        if columns.is_empty() and marker <= lower:
            label, unit = name, preset_unit
            break
    if label == "trades":
        label = f"trades mapped as ts={found['ts']}, price={found['price']}, size={found['size']}"
    stamps = Timestamps(source, found["ts"] or "", columns.ts_unit or unit)
    side_col = found["side"]
    maker_col = found["maker"]
    if columns.maker is not None and columns.side is None:
        side_col = None  # the user chose the maker flag over a side column
    elif side_col is not None:
        maker_col = None
    reader = FileReader(
        source,
        Trade,
        f"{source.container}, {label}",
        lambda r: _tables(source, found, side_col, maker_col, stamps, venue, symbol, r),
        policy,
    )
    return reader


def _tables(
    source: Source,
    found: dict[str, str | None],
    side_col: str | None,
    maker_col: str | None,
    stamps: Timestamps,
    venue: str,
    symbol: str,
    reader: FileReader,
) -> Iterator[pa.Table]:
    ts_col, price_col, size_col = found["ts"], found["price"], found["size"]
    assert ts_col and price_col and size_col  # resolve() guarantees required fields
    id_col = found["id"]
    wanted = [c for c in (ts_col, price_col, size_col, side_col, maker_col, id_col) if c]
    # Parse text columns as what they become, so a block of integer-looking
    # prices or ids cannot fix a type that a later block contradicts.
    hints: dict[str, pa.DataType] = {price_col: pa.float64(), size_col: pa.float64()}
    hints[ts_col] = stamps.hint
    for c in (side_col, maker_col, id_col):
        if c:
            hints[c] = pa.string()
    rows = reader.checks
    for table in source.tables(list(dict.fromkeys(wanted)), hints, rows):
        n = table.num_rows
        rows.begin(n)
        ts = stamps(table.column(ts_col), rows)
        if side_col:
            aggressor = _side_codes(source, rows, table.column(side_col), side_col)
        elif maker_col:
            aggressor = _maker_codes(rows, table.column(maker_col), maker_col)
        else:
            aggressor = constant(AGGRESSOR_UNKNOWN, n, pa.int64())
        trades = event_table(
            ts, venue, symbol,
            price=prices(rows, table, price_col),
            size=sizes(rows, table, size_col),
            aggressor=aggressor,
            trade_id=text(rows, table.column(id_col), id_col) if id_col
            else constant("", n, pa.string()),
        )
        yield keep_rows(trades, rows.done())
        note = stamps.note()
        if note and note not in reader.notes:
            reader.notes.append(note)


def _side_codes(source: Source, rows: RowChecks, col: pa.ChunkedArray, name: str) -> pa.Array:
    if pa.types.is_boolean(col.type):
        raise InputError(
            f"{source.path}: side column {name!r} is true/false; if it means "
            "'buyer is maker', pass it as --maker-col"
        )
    values = valid_text(rows, col, name)
    if pa.types.is_integer(values.type):
        values = values.cast(pa.string())
    elif pa.types.is_floating(values.type):
        # 1.0 / -1.0 sides; a fraction or NaN is no side we know (unknown aggressor)
        a = pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False)
        whole = np.isfinite(a) & (a == np.trunc(a)) & (np.abs(a) < 2**62)
        words = pa.array(np.where(whole, a, 0).astype(np.int64)).cast(pa.string())
        values = pc.if_else(pa.array(whole), words, pa.scalar(None, pa.string()))
    return coded(values, SIDE_CODES)


def _maker_codes(rows: RowChecks, col: pa.ChunkedArray, name: str) -> pa.Array:
    values = valid_text(rows, col, name)
    if pa.types.is_boolean(values.type) or pa.types.is_integer(values.type):
        values = values.cast(pa.int64()).cast(pa.string())
    return coded(values, MAKER_CODES)
