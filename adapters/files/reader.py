"""What every file reader hands back: an iterator of event tables that keeps count.

A `FileReader` is created once the file's header has been checked, so a bad
file is refused before anything is written; its tables are produced lazily,
conformed to the event type's exact Arrow schema, and counted (rows, dropped
rows, skipped bad rows, first and last `ts_event`) for the one-line summary.
A file that turns out damaged part way is an InputError naming the file and
where it breaks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from adapters.files.detect import READ_ERRORS, InputError, Source
from adapters.files.rows import RowChecks, RowPolicy
from events.base import Event, event_type_name
from events.schema import schema_for


class FileReader(Iterator[pa.Table]):
    """Tables of one event type read from one file (at most ~1M rows each)."""

    def __init__(
        self,
        source: Source,
        cls: type[Event],
        fmt: str,
        produce: Callable[[FileReader], Iterator[pa.Table]],
        policy: RowPolicy | None = None,
    ) -> None:
        self.source = source
        self.path = source.path
        self.event_type = event_type_name(cls)
        self.format = fmt
        self.checks = RowChecks(source, policy or RowPolicy())
        self.rows = 0
        self.dropped = 0
        self.drop_reason = ""
        self.notes: list[str] = []
        self.ts_first: int | None = None
        self.ts_last: int | None = None
        self._schema = schema_for(cls)
        self._produce = produce
        self._tables: Iterator[pa.Table] | None = None

    def __next__(self) -> pa.Table:
        if self._tables is None:
            self._tables = self._produce(self)
        try:
            table = next(self._tables)
        except (StopIteration, InputError):
            raise
        except READ_ERRORS as exc:
            raise self.source.damaged(exc) from exc
        table = self._schema.conform(table)
        if table.num_rows:
            lo, hi = pc.min_max(table.column("ts_event").cast(pa.int64())).values()
            first, last = lo.as_py(), hi.as_py()
            self.ts_first = first if self.ts_first is None else min(self.ts_first, first)
            self.ts_last = last if self.ts_last is None else max(self.ts_last, last)
            self.rows += table.num_rows
        return table

    def span(self) -> str:
        """First and last ts_event, as UTC text."""
        if self.ts_first is None or self.ts_last is None:
            return "no rows"
        return f"{_utc(self.ts_first)} .. {_utc(self.ts_last)} UTC"

    def summary(self) -> str:
        """One line: what was read from the file, and what was left out."""
        parts = [f"{self.path}: {self.rows} {self.event_type} rows ({self.format}), {self.span()}"]
        if self.dropped:
            parts.append(f"{self.dropped} {self.drop_reason or 'rows'} dropped")
        skipped = self.checks.summary()
        if skipped:
            parts.append(skipped)
        parts.extend(self.notes)
        parts.extend(self.checks.notes)
        return "; ".join(parts)


def first_table(
    source: Source, columns: list[str], types: dict[str, pa.DataType], checks: RowChecks
) -> pa.Table | None:
    """The file's first table, read while its header is checked (to infer
    something from it); a damaged file is an InputError."""
    try:
        return next(source.tables(columns, types, checks), None)
    except READ_ERRORS as exc:
        raise source.damaged(exc) from None


def _utc(ns: int) -> str:
    seconds, rem = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{rem // 1_000_000:03d}" if rem else text
