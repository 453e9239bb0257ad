"""OHLCV files into `Bar` tables, and bar intervals (parsing, inferring).

A file stamps each bar with one time, its open (the usual case) or its close;
a `Bar` carries both: `ts_open`, and `ts_event` = the close, the moment the bar
is known, so no replay can see a bar before it ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapters.files.columns import (
    TS_ALIASES,
    ColumnMap,
    Field,
    Timestamps,
    constant,
    event_table,
    keep_rows,
    optional_sizes,
    prices,
    resolve,
)
from adapters.files.detect import InputError, LeanTradeZip, Source, open_source
from adapters.files.reader import FileReader, first_table
from adapters.files.rows import RowChecks, RowPolicy
from events.market import Bar

Stamp = Literal["open", "close"]

BAR_FIELDS = (
    Field("ts", TS_ALIASES + ("bar_time", "open_time")),
    Field("open", ("open", "o")),
    Field("high", ("high", "h")),
    Field("low", ("low", "l")),
    Field("close", ("close", "c")),
    Field("volume", ("volume", "vol", "v", "base_volume"), required=False),
)

_UNITS_NS = {
    "w": 7 * 86_400 * 10**9,
    "d": 86_400 * 10**9,
    "h": 3_600 * 10**9,
    "m": 60 * 10**9,
    "s": 10**9,
    "ms": 10**6,
    "us": 10**3,
    "ns": 1,
}
_INTERVAL = re.compile(r"^\s*(\d+)\s*(w|d|h|min|ms|us|ns|m|s)\s*$")
_LONGEST = 366 * _UNITS_NS["d"]  # a year's bar; longer ones would push times out of range


def parse_interval(text: str) -> tuple[str, int]:
    """("1h", 3_600_000_000_000) for "1h" or "60m": the canonical name (largest
    whole unit) and the length in ns. InputError for anything else."""
    match = _INTERVAL.match(text)
    if not match or int(match.group(1)) == 0:
        hint = " (months vary in length; use days)" if text.strip().endswith("M") else ""
        raise InputError(
            f"--interval {text!r}: expected a number and a unit (s, m, h, d, w) "
            f"(e.g. 1m, 5m, 1h, 1d){hint}"
        )
    unit = "m" if match.group(2) == "min" else match.group(2)
    length = int(match.group(1)) * _UNITS_NS[unit]
    if length > _LONGEST:
        raise InputError(f"--interval {text!r}: longer than a year (366d)")
    return interval_name(length), length


def interval_name(ns: int) -> str:
    """The canonical name of an interval of `ns` (e.g. 3_600e9 -> "1h", 90e9 -> "90s")."""
    for unit, size in _UNITS_NS.items():
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise AssertionError("unreachable: every length is a whole number of ns")


def modal_spacing(ts_ns: np.ndarray) -> int | None:
    """The most common gap between distinct sorted timestamps (ties: the
    shortest), or None with fewer than two distinct timestamps."""
    distinct = np.unique(ts_ns)
    if len(distinct) < 2:
        return None
    gaps, counts = np.unique(np.diff(distinct), return_counts=True)
    return int(gaps[np.argmax(counts)])


def read_bars(
    path: Path | str,
    venue: str,
    symbol: str,
    interval: str | None = None,
    stamp: Stamp = "open",
    columns: ColumnMap | None = None,
    policy: RowPolicy | None = None,
) -> FileReader:
    """Bars from `path`. `stamp` says whether the file's time is each bar's
    open or close. Without `interval` it is inferred from the modal spacing
    of the first ~1M timestamps (the reader's notes say so); with one, bars
    spaced closer than it are refused (they would overlap). Bad rows refuse
    the file, or are skipped as `policy` says."""
    if stamp not in ("open", "close"):
        raise InputError(f"--stamp {stamp!r}: expected open or close")
    columns = columns or ColumnMap()
    source = open_source(Path(path))
    if isinstance(source, LeanTradeZip):
        raise InputError(f"{source.path}: a Lean tick trade zip holds trades, not bars")
    found = resolve(source, "bar", BAR_FIELDS, columns)
    ts_col = found["ts"]
    assert ts_col
    stamps = Timestamps(source, ts_col, columns.ts_unit)
    # The spacing of the valid rows; the bad ones are named when the file is read.
    look = RowChecks(source, RowPolicy(skip_bad_rows=True))
    first = first_table(source, [ts_col], {ts_col: stamps.hint}, look)
    spacing = None
    if first is not None:
        look.begin(first.num_rows)
        ts = stamps(first.column(ts_col), look).to_numpy()
        good = look.done()
        spacing = modal_spacing(ts if good is None else ts[good])
    notes = []
    if interval is None:
        if spacing is None:
            raise InputError(
                f"{source.path}: cannot infer the bar interval (fewer than two distinct "
                "timestamps); give --interval"
            )
        name, length = interval_name(spacing), spacing
        notes.append(f"interval {name} inferred from the modal spacing of the timestamps")
    else:
        name, length = parse_interval(interval)
        if spacing is not None and spacing < length:
            raise InputError(
                f"{source.path}: bars are {interval_name(spacing)} apart but --interval is "
                f"{name}: they would overlap"
            )
        if spacing is not None and spacing != length:
            notes.append(f"the file's bars are mostly {interval_name(spacing)} apart")
    reader = FileReader(
        source,
        Bar,
        f"{source.container}, {name} bars stamped at {stamp}",
        lambda r: _tables(source, found, stamps, name, length, stamp, venue, symbol, r),
        policy,
    )
    reader.notes.extend(notes)
    if found["volume"] is None:
        reader.notes.append("no volume column: volumes stored as NaN")
    return reader


def _tables(
    source: Source,
    found: dict[str, str | None],
    stamps: Timestamps,
    name: str,
    length: int,
    stamp: Stamp,
    venue: str,
    symbol: str,
    reader: FileReader,
) -> Iterator[pa.Table]:
    ohlc = [found[f] for f in ("open", "high", "low", "close")]
    wanted = [c for c in (found["ts"], *ohlc, found["volume"]) if c]
    hints: dict[str, pa.DataType] = {c: pa.float64() for c in (*ohlc, found["volume"]) if c}
    hints[found["ts"] or ""] = stamps.hint
    rows = reader.checks
    for table in source.tables(list(dict.fromkeys(wanted)), hints, rows):
        n = table.num_rows
        rows.begin(n)
        ts = stamps(table.column(found["ts"] or ""), rows)
        if stamp == "open":
            ts_open, ts_close = ts, pc.add_checked(ts, length)
        else:
            ts_open, ts_close = pc.subtract_checked(ts, length), ts
        bars = event_table(
            ts_close, venue, symbol,
            interval=constant(name, n, pa.string()),
            ts_open=ts_open,
            open=prices(rows, table, found["open"] or ""),
            high=prices(rows, table, found["high"] or ""),
            low=prices(rows, table, found["low"] or ""),
            close=prices(rows, table, found["close"] or ""),
            volume=optional_sizes(rows, table, found["volume"]),
        )
        yield keep_rows(bars, rows.done())
        note = stamps.note()
        if note and note not in reader.notes:
            reader.notes.append(note)
