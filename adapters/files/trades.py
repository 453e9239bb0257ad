"""Trade files into `Trade` tables: Binance/nautilus, freqtrade, mapped columns, Lean.

The aggressor is the taker's side. Files say it two ways: a side column
(freqtrade `side` = taker side) or Binance's "buyer is the maker" flag, which
means the taker *sold*.
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
    coded,
    constant,
    event_table,
    numbers,
    resolve,
    text,
)
from adapters.files.detect import InputError, LeanTradeZip, Source, open_source
from adapters.files.lean import lean_trade_tables
from adapters.files.reader import FileReader
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
    path: Path | str, venue: str, symbol: str, columns: ColumnMap | None = None
) -> FileReader:
    """Trades from `path` (Parquet, Feather, CSV, optionally gzip/zip, or a Lean
    tick trade zip). Checks the header now; reads lazily. InputError names the
    file when its columns are not recognised and `columns` does not map them."""
    columns = columns or ColumnMap()
    source = open_source(Path(path))
    if isinstance(source, LeanTradeZip):
        if not columns.is_empty():
            raise InputError(f"{source.path}: column options do not apply to Lean tick zips")
        reader = FileReader(
            source.path,
            Trade,
            source.container,
            lambda r: lean_trade_tables(source, venue, symbol, r),
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
        source.path,
        Trade,
        f"{source.container}, {label}",
        lambda r: _tables(source, found, side_col, maker_col, stamps, venue, symbol, r),
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
    for table in source.tables(list(dict.fromkeys(wanted)), hints):
        n = table.num_rows
        ts = stamps(table.column(ts_col))
        if side_col:
            aggressor = _side_codes(source, table.column(side_col), side_col)
        elif maker_col:
            aggressor = _maker_codes(table.column(maker_col))
        else:
            aggressor = constant(AGGRESSOR_UNKNOWN, n, pa.int64())
        yield event_table(
            ts, venue, symbol,
            price=numbers(source, table, price_col),
            size=numbers(source, table, size_col),
            aggressor=aggressor,
            trade_id=text(table.column(id_col)) if id_col else constant("", n, pa.string()),
        )
        note = stamps.note()
        if note and note not in reader.notes:
            reader.notes.append(note)


def _side_codes(source: Source, col: pa.ChunkedArray, name: str) -> pa.Array:
    if pa.types.is_boolean(col.type):
        raise InputError(
            f"{source.path}: side column {name!r} is true/false; if it means "
            "'buyer is maker', pass it as --maker-col"
        )
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        col = col.cast(pa.int64()).cast(pa.string())
    return coded(col, SIDE_CODES)


def _maker_codes(col: pa.ChunkedArray) -> pa.Array:
    if pa.types.is_boolean(col.type) or pa.types.is_integer(col.type):
        col = col.cast(pa.int64()).cast(pa.string())
    return coded(col, MAKER_CODES)
