"""Historical market data files into event tables, ready for the event store.

    read_trades(path, venue, symbol, columns=None, policy=None) -> FileReader of Trade tables
    read_quotes(path, venue, symbol, columns=None, policy=None) -> FileReader of Quote tables
    read_bars(path, venue, symbol, interval=None, stamp="open", columns=None, policy=None)
                                                                -> FileReader of Bar tables
    read_funding(path, venue, symbol, columns=None, policy=None) -> FileReader of FundingRate tables
    read_marks(path, venue, symbol, columns=None, policy=None)   -> FileReader of MarkPrice tables

Each reader checks the file's header when called (InputError, one line naming
the file, if it is not recognised) and then yields `pa.Table`s of at most ~1M
rows with every column of the event's Arrow schema (`seq` = 0, `ts_recv` =
`ts_event`: historical files have no receive time). Files are recognised by
content: Parquet, Feather, CSV (plain, gzip or zipped) and Lean tick trade zips.
Every row is checked (rows.py): the first bad one is an InputError naming the
file and the row, unless `policy` (a RowPolicy) skips bad rows; damaged data
is an InputError naming the file and where it breaks.
"""

from __future__ import annotations

from adapters.files.bars import interval_name, modal_spacing, parse_interval, read_bars
from adapters.files.columns import ColumnMap, option_name
from adapters.files.detect import MAX_ROWS, InputError
from adapters.files.lean import local_ms_to_utc_ns, utc_offsets_ns
from adapters.files.perp import read_funding, read_marks
from adapters.files.quotes import read_quotes
from adapters.files.reader import FileReader
from adapters.files.rows import TS_MAX, TS_MIN, RowPolicy
from adapters.files.trades import read_trades

__all__ = [
    "MAX_ROWS",
    "ColumnMap",
    "FileReader",
    "InputError",
    "RowPolicy",
    "TS_MAX",
    "TS_MIN",
    "interval_name",
    "local_ms_to_utc_ns",
    "modal_spacing",
    "option_name",
    "parse_interval",
    "read_bars",
    "read_funding",
    "read_marks",
    "read_quotes",
    "read_trades",
    "utc_offsets_ns",
]
