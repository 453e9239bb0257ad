"""QuantConnect Lean tick trade zips (`YYYYMMDD_trade.zip`) into `Trade` tables.

Each row: ms since midnight in the market's time zone, price in deci-cents
(USD x 10,000), quantity, exchange, sale condition, suspicious flag. Rows
flagged suspicious are dropped (Lean's own readers skip them too).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from adapters.files.columns import NS_PER_DAY, constant, event_table
from adapters.files.detect import InputError, LeanTradeZip
from events.market import AGGRESSOR_UNKNOWN

if TYPE_CHECKING:
    from adapters.files.reader import FileReader

LEAN_EQUITY_TZ = "America/New_York"
DECI_CENTS = 10_000.0
_SLOT_MS = 15 * 60 * 1000  # every zone in use changes offset on a quarter hour
_MS = 1_000_000

_TYPES = {
    "time": pa.int64(),
    "price": pa.float64(),
    "quantity": pa.float64(),
    "suspicious": pa.int64(),
}


def utc_offsets_ns(day: date, tz: str = LEAN_EQUITY_TZ) -> np.ndarray:
    """UTC offset (ns) of each quarter hour of `day`'s local wall clock, 0:00
    to 24:45, so the ms-since-midnight of a DST change day maps right on both
    sides of the change (an ambiguous hour reads as its first occurrence)."""
    zone = ZoneInfo(tz)
    midnight = datetime(day.year, day.month, day.day)
    slots = []
    for k in range(24 * 4 + 4):
        wall = (midnight + timedelta(milliseconds=k * _SLOT_MS)).replace(tzinfo=zone)
        offset = wall.utcoffset()
        assert offset is not None
        slots.append(int(offset.total_seconds()) * 1_000_000_000)
    return np.array(slots, dtype=np.int64)


def local_ms_to_utc_ns(day: date, ms: np.ndarray, tz: str = LEAN_EQUITY_TZ) -> np.ndarray:
    """ms since local midnight of `day` in `tz` -> int64 ns since the epoch, UTC."""
    offsets = utc_offsets_ns(day, tz)
    midnight_wall = (day - date(1970, 1, 1)).days * NS_PER_DAY
    slot = np.clip(ms // _SLOT_MS, 0, len(offsets) - 1)
    return midnight_wall + ms.astype(np.int64) * _MS - offsets[slot]


def lean_trade_tables(
    source: LeanTradeZip, venue: str, symbol: str, reader: FileReader
) -> Iterator[pa.Table]:
    for table in source.tables(list(_TYPES), _TYPES):
        for name in _TYPES:
            if table.column(name).null_count:
                raise InputError(f"{source.path}: empty {name!r} cells in a Lean tick file")
        keep = table.column("suspicious").to_numpy() != 1
        n_keep = int(keep.sum())
        reader.dropped += table.num_rows - n_keep
        ms = table.column("time").to_numpy()[keep]
        ts = pa.array(local_ms_to_utc_ns(source.day, ms))
        price = table.column("price").to_numpy()[keep] / DECI_CENTS
        size = table.column("quantity").to_numpy()[keep]
        yield event_table(
            ts, venue, symbol,
            price=pa.array(price),
            size=pa.array(size),
            aggressor=constant(AGGRESSOR_UNKNOWN, n_keep, pa.int64()),
            trade_id=constant("", n_keep, pa.string()),
        )
