"""QuantConnect Lean tick trade zips (`YYYYMMDD_trade.zip`) into `Trade` tables.

Each row: ms since midnight in the market's time zone, price in deci-cents
(USD x 10,000), quantity, exchange, sale condition, suspicious flag. Rows
flagged suspicious are dropped (Lean's own readers skip them too); the others
must have a time within the day, a price and a size (rows.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from adapters.files.columns import NS_PER_DAY, constant, event_table, numbers, prices, sizes
from adapters.files.detect import LeanTradeZip
from events.market import AGGRESSOR_UNKNOWN

if TYPE_CHECKING:
    from adapters.files.reader import FileReader

LEAN_EQUITY_TZ = "America/New_York"
DECI_CENTS = 10_000.0
_SLOT_MS = 15 * 60 * 1000  # every zone in use changes offset on a quarter hour
_DAY_END_MS = (24 * 4 + 4) * _SLOT_MS  # the last quarter hour `utc_offsets_ns` knows
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
    rows = reader.checks
    for table in source.tables(list(_TYPES), _TYPES, rows):
        rows.begin(table.num_rows)
        flag = numbers(rows, table, "suspicious").to_numpy(zero_copy_only=False)
        rows.mark(np.isnan(flag), lambda i: "column 'suspicious' is empty")
        suspicious = flag == 1
        # A row dropped as suspicious cannot harm the store: check the others.
        ok = ~suspicious
        ms = numbers(rows, table, "time").to_numpy(zero_copy_only=False)
        rows.mark(ok & ~((ms >= 0) & (ms < _DAY_END_MS) & (ms == np.trunc(ms))), _why_time(ms))
        price = prices(rows, table, "price", ok).to_numpy(zero_copy_only=False)
        size = sizes(rows, table, "quantity", ok).to_numpy(zero_copy_only=False)
        good = rows.done()
        keep = ok if good is None else ok & good
        n_keep = int(keep.sum())
        reader.dropped += int((suspicious if good is None else suspicious & good).sum())
        ms = ms[keep].astype(np.int64)
        ts = pa.array(local_ms_to_utc_ns(source.day, ms))
        price = price[keep] / DECI_CENTS
        size = size[keep]
        yield event_table(
            ts, venue, symbol,
            price=pa.array(price),
            size=pa.array(size),
            aggressor=constant(AGGRESSOR_UNKNOWN, n_keep, pa.int64()),
            trade_id=constant("", n_keep, pa.string()),
        )


def _why_time(ms: np.ndarray) -> Callable[[int], str]:
    def why(i: int) -> str:
        if np.isnan(ms[i]):
            return "column 'time' is empty"
        return f"column 'time': {ms[i]:g} is not a time of the day (ms since midnight)"

    return why
