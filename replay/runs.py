"""Sorted runs: the sources the replay merge consumes.

A `Run` is record batches of one event type, sorted by `(ts_event, seq)` within
and across batches (one Parquet part, or the journal's unrolled tail). A
`DeferredRuns` stands for sources not worth opening yet: the merge calls its
`open()` only once the replay reaches its `lower_bound`, so a store with many
days, or a day with many sequential part files, keeps only the parts that
overlap in time open and buffered.

This module also owns the row filters (symbol, time range) applied to Arrow
batches before any row becomes an event, and the reading of one part file: its
pages' checksums are verified, and a part that cannot be read is a `StoreError`
naming it, or, for a reader that asked to go on (`on_damaged`), reported and left
out from the point of the damage. With the column cache on (`replay.cache`), a
part read to the end is kept decoded and served from memory next time.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from events.base import Event
from events.faults import DataFault
from events.schema import TS_TYPE, TypeSchema, schema_for
from replay import cache as column_cache

MIN_TS = -(2**63)


class StoreError(DataFault, ValueError):
    """The store holds something the reader cannot use (names the file, one line)."""


# Told about a damaged part instead of raising: (what was damaged, one line).
OnDamaged = Callable[[StoreError], None]


@dataclass(eq=False, slots=True)
class Run:
    """Record batches of one event type, sorted by (ts_event, seq).

    `lower_bound` is a promise that no row has `ts_event` below it; the merge
    does not pull from the run before the replay gets there. `source` names the
    run in errors.
    """

    schema: TypeSchema
    batches: Iterator[pa.RecordBatch]
    source: str = "<run>"
    lower_bound: int = MIN_TS


@dataclass(eq=False, slots=True)
class DeferredRuns:
    """Sources opened only when the merge reaches `lower_bound` (no row they
    yield has a smaller ts_event). `open()` may return more deferred sources."""

    lower_bound: int
    open: Callable[[], Iterable[Run | DeferredRuns]]
    source: str = "<deferred>"


Source = Run | DeferredRuns


# -- filters ----------------------------------------------------------------------


def ts_column(batch: pa.RecordBatch) -> np.ndarray:
    """`ts_event` as int64 ns, zero-copy."""
    return _int64(batch.column("ts_event"))


def _int64(col: pa.Array) -> np.ndarray:
    if pa.types.is_timestamp(col.type):
        col = col.view(pa.int64())
    return col.to_numpy()  # type: ignore[no-any-return]


def filter_batches(
    batches: Iterable[pa.RecordBatch],
    *,
    symbols: pa.Array | None = None,
    ts_from: int | None = None,
    ts_to: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Rows with a symbol in `symbols` and `ts_from <= ts_event < ts_to`.

    The batches are sorted, so the time range is a slice found by bisection,
    and the first batch past `ts_to` ends the iteration without reading on.
    """
    wanted = frozenset(s.encode() for s in symbols.to_pylist()) if symbols is not None \
        else frozenset()
    for batch in batches:
        past_end = False
        if ts_from is not None or ts_to is not None:
            ts = ts_column(batch)
            lo = 0 if ts_from is None else int(np.searchsorted(ts, ts_from, "left"))
            hi = len(ts) if ts_to is None else int(np.searchsorted(ts, ts_to, "left"))
            past_end = hi < len(ts)
            if lo or past_end:
                batch = batch.slice(lo, max(hi - lo, 0))
        if symbols is not None and batch.num_rows:
            batch = _by_symbol(batch, symbols, wanted)
        if batch.num_rows:
            yield batch
        if past_end:
            return


def _by_symbol(batch: pa.RecordBatch, symbols: pa.Array,
               wanted: frozenset[bytes]) -> pa.RecordBatch:
    col = batch.column("symbol")
    if all_in(col, wanted):
        return batch  # one instrument's part, read for it: the common case
    if none_in(col, wanted):
        return batch.slice(0, 0)  # another instrument's part
    # here, not at start-up: ~30 ms and ~17 MB of RSS that most replays never use
    # (a portfolio's parts, one instrument each, pass all_in)
    import pyarrow.compute as pc

    mask = pc.is_in(col, value_set=symbols)
    kept = pc.sum(mask).as_py() or 0
    if kept == batch.num_rows:
        return batch
    return batch.filter(mask) if kept else batch.slice(0, 0)


def all_in(col: pa.Array, wanted: frozenset[bytes]) -> bool:
    """Whether every row of a string column is one of `wanted` (True means so;
    False may also be said of a column whose rows all are, and the caller then
    checks with pyarrow.compute): a dictionary column (as the reader reads
    `symbol`) whose entries all are, or a plain one holding one value that is."""
    if col.null_count or not len(col):
        return False
    if pa.types.is_dictionary(col.type):
        names = col.dictionary
        return names.null_count == 0 and all(
            name.as_py().encode() in wanted for name in names)
    if col.type != pa.string():
        return False
    first = col[0].as_py().encode()
    return first in wanted and _all_equal(col, first)


def _all_equal(col: pa.Array, value: bytes) -> bool:
    """Whether every row of a string column is `value`, without pyarrow.compute:
    a dictionary column (as the reader reads `symbol`) whose only entry is
    `value`, or a plain one whose offsets all step by `len(value)` over `value`
    repeated."""
    if col.null_count or not value:
        return False
    if pa.types.is_dictionary(col.type):
        names = col.dictionary
        return len(names) == 1 and names[0].as_py().encode() == value
    if col.type != pa.string():
        return False
    n = len(col)
    offsets, data = col.buffers()[1:3]
    steps = np.frombuffer(offsets, np.int32, n + 1, col.offset * 4)
    start, end = int(steps[0]), int(steps[-1])
    if end - start != n * len(value) or not (np.diff(steps) == len(value)).all():
        return False
    return memoryview(data)[start:end] == value * n  # type: ignore[index]


def none_in(col: pa.Array, wanted: frozenset[bytes]) -> bool:
    """Whether no row of a dictionary column is one of `wanted` (its entries
    are none of them; False for a plain column: the caller checks)."""
    if not pa.types.is_dictionary(col.type):
        return False
    return not any(name.as_py() is not None and name.as_py().encode() in wanted
                   for name in col.dictionary)


def symbol_set(symbols: Collection[str] | None) -> pa.Array | None:
    return None if symbols is None else pa.array(sorted(set(symbols)), pa.string())


def restrict(
    run: Run,
    *,
    types: Collection[str] | None = None,
    symbols: pa.Array | None = None,
    ts_from: int | None = None,
    ts_to: int | None = None,
) -> Run | None:
    """`run` with the reader's filters applied, or None when they exclude its
    type (not in `types`, or no `symbol` column while filtering by symbol)."""
    if types is not None and run.schema.name not in types:
        return None
    if symbols is not None and "symbol" not in run.schema.fields:
        return None
    if symbols is None and ts_from is None and ts_to is None:
        return run
    batches = filter_batches(run.batches, symbols=symbols, ts_from=ts_from, ts_to=ts_to)
    lower = run.lower_bound if ts_from is None else max(run.lower_bound, ts_from)
    return Run(run.schema, batches, run.source, lower)


def runs_from_events(events: Iterable[Event]) -> list[Run]:
    """In-memory events (e.g. the journal's unrolled tail) as one run per type."""
    by_type: dict[type[Event], list[Event]] = defaultdict(list)
    for event in events:
        by_type[type(event)].append(event)
    runs = []
    for cls, group in by_type.items():
        group.sort(key=lambda e: (e.ts_event, e.seq))
        sch = schema_for(cls)
        table = sch.to_table(group)
        runs.append(Run(sch, iter(table.to_batches()), f"<{sch.name} events>", group[0].ts_event))
    return runs


# -- part files -------------------------------------------------------------------


def read_footer(path: Path) -> pq.FileMetaData:
    """A part's footer, checked to agree with itself, or StoreError naming the part.

    The footer carries no checksum: a flipped bit in a row count would make rows
    vanish without an error (a row group of 0 rows reads as empty), so the counts
    are checked against each other here and against the rows read in `open_part`."""
    try:
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: unreadable Parquet file ({exc})") from None
    except UnicodeDecodeError:  # a flipped bit in a column's name
        raise StoreError(f"{path}: damaged footer (a column's name is not UTF-8)") from None
    # (Only the row groups' counts: pyarrow aborts the process on some damaged
    # column chunk metadata, so this check reads none.)
    if sum(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) != meta.num_rows:
        raise StoreError(f"{path}: damaged footer (its row counts disagree)")
    return meta


def open_part(
    path: Path,
    schema: TypeSchema,
    *,
    batch_rows: int,
    symbols: pa.Array | None = None,
    lower_bound: int = MIN_TS,
    on_damaged: OnDamaged | None = None,
) -> list[Run]:
    """One Parquet part as a run (none if it is empty).

    Reads only the footer now: its `ts_event` statistics tighten the run's lower
    bound, so sequential parts of a day are opened one after another rather
    than all at once. The data is read batch by batch when the merge pulls,
    each page checked against its checksum. A damaged part raises StoreError,
    or with `on_damaged` is reported there and yields nothing more.
    """
    cache = column_cache.active()
    identity: os.stat_result | None = None
    if cache is not None:
        try:
            # before the footer: a file replaced after this stat is read as a miss and,
            # its rows disagreeing with this footer, never kept under this key
            identity = os.stat(path)
        except OSError:
            identity = None  # read_footer names the problem
    try:
        meta = read_footer(path)
        if meta.num_rows == 0:
            return []
        file_schema = meta.schema.to_arrow_schema()
        adapt = _adapter(file_schema, schema, path)
    except StoreError as exc:
        if on_damaged is None:
            raise
        on_damaged(exc)
        return []
    columns = [f for f in schema.fields if f in file_schema.names]
    # Strings come back dictionary-encoded: Parquet usually stores them so, and
    # decoding into a dictionary (on the read-ahead thread, without the GIL)
    # spares `from_table` hashing every value on the thread that builds events.
    strings = [f.name for f in schema.schema if f.name in columns and pa.types.is_string(f.type)]
    promised = _min_ts(meta)
    bound = max(lower_bound, promised)
    key = None if cache is None or identity is None else (
        str(path), identity.st_size, identity.st_mtime_ns, tuple(columns), tuple(strings),
        batch_rows, schema.name)

    def batches() -> Iterator[pa.RecordBatch]:
        if key is not None and cache is not None:
            cached = cache.get(key)
            if cached is not None:
                yield from cached  # read to the end and checked when it was kept
                return
        # decoded batches kept for the cache, until they outgrow its whole budget
        kept: list[pa.RecordBatch] | None = [] if cache is not None and key is not None else None
        kept_bytes = 0
        rows = 0
        try:
            # No pre-buffering: it reads every row group of the part up front and
            # keeps it (a day's whole file, ~5 MB for SPY) while the part is open,
            # once per open part (a portfolio's day is one part per instrument); a
            # local file gains nothing from it.
            reader = pq.ParquetFile(path, metadata=meta, read_dictionary=strings,
                                    page_checksum_verification=True, pre_buffer=False)
            for batch in reader.iter_batches(batch_size=batch_rows, columns=columns,
                                              use_threads=False):
                # Page headers carry no checksum either: a damaged one can give a
                # dictionary index past its dictionary. ~10 ns a row, on the
                # read-ahead thread.
                batch.validate(full=True)
                if rows == 0 and batch.num_rows and _first_ts(batch) < promised:
                    # nor does the footer: its statistics promised a later start
                    raise StoreError(f"{path}: its footer's ts_event statistics disagree "
                                     "with its rows: a damaged footer")
                rows += batch.num_rows
                out = adapt(batch) if adapt is not None else batch
                if kept is not None and cache is not None:
                    kept.append(out)
                    kept_bytes += out.get_total_buffer_size()
                    if kept_bytes > cache.max_bytes:
                        kept = None
                        cache.reject()
                yield out
            if rows != meta.num_rows:
                raise StoreError(f"{path}: {rows} rows read where its footer says "
                                 f"{meta.num_rows}")
            if kept is not None and cache is not None:
                cache.put(key, kept, kept_bytes)
        except (OSError, pa.ArrowException, StoreError) as exc:
            error = exc if isinstance(exc, StoreError) else StoreError(
                f"{path}: unreadable Parquet file ({exc})")
            if on_damaged is None:
                raise error from None
            on_damaged(error)

    stream: Iterator[pa.RecordBatch] = batches()
    if symbols is not None:
        stream = filter_batches(stream, symbols=symbols)
    return [Run(schema, stream, str(path), bound)]


def _first_ts(batch: pa.RecordBatch) -> int:
    """The first row's ts_event as integer ns (rows are sorted by ts_event)."""
    col = batch.column(batch.schema.get_field_index("ts_event"))
    # a view, not `cast`: Array.cast imports pyarrow.compute (~30 ms of start-up)
    return int(col.slice(0, 1).view(pa.int64())[0].as_py())


def _min_ts(meta: pq.FileMetaData) -> int:
    """The smallest ts_event the footer's statistics promise, or MIN_TS."""
    col = next(
        (k for k in range(meta.num_columns) if meta.schema.column(k).path == "ts_event"), None
    )
    if col is None:
        return MIN_TS
    lows = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:
            return MIN_TS
        lows.append(stats.min_raw)
    return min(lows) if lows else MIN_TS


def _adapter(
    file_schema: pa.Schema, schema: TypeSchema, path: Path
) -> Callable[[pa.RecordBatch], pa.RecordBatch] | None:
    """Conversion of an older part's batches to the current schema: fields
    added since get their struct default (the schema evolution rule), columns
    stored under another type are cast, and enum codes (an aggressor stored as
    1/2) become their names. None when nothing differs."""
    defaults = {f.name: f for f in msgspec.structs.fields(schema.cls)}
    # Fields are only ever added: a column the type does not know is a damaged
    # footer (a flipped bit renamed `seq` to `se`, and the evolution rule below would
    # have read every seq as its default 0), never an older part.
    unknown = [name for name in file_schema.names if name not in defaults]
    if unknown:
        raise StoreError(f"{path}: column {unknown[0]!r} is not a field of "
                         f"{schema.cls.__name__}: a damaged footer")
    missing: list[tuple[str, pa.DataType, Any]] = []
    casts: list[tuple[str, pa.DataType]] = []
    for field in schema.schema:
        if field.name not in file_schema.names:
            info = defaults[field.name]
            if info.default is not msgspec.NODEFAULT:
                value = info.default
            elif info.default_factory is not msgspec.NODEFAULT:
                value = info.default_factory()
            else:
                raise StoreError(f"{path}: no column {field.name!r} and it has no default")
            missing.append((field.name, field.type, value))
            continue
        have = file_schema.field(field.name).type
        if _stringlike(field.type) and _bytes(have):
            # Parts never store text as bytes: a flipped bit in the footer dropped the
            # column's String annotation, and its values would be read as bytes
            raise StoreError(f"{path}: column {field.name!r} is stored as bytes, not "
                             "text: a damaged footer")
        if field.name in schema.enums and pa.types.is_integer(have):
            casts.append((field.name, field.type))  # a part from before: codes to names
        elif have != field.type and not (_stringlike(have) and _stringlike(field.type)):
            casts.append((field.name, field.type))
    if not missing and not casts:
        return None

    def adapt(batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = {name: batch.column(name) for name in batch.schema.names}
        for name, atype in casts:
            col = columns[name]
            if name in schema.enums:
                columns[name] = schema.enums[name].encode(col)
                continue
            if atype == TS_TYPE and pa.types.is_integer(col.type):
                col = col.cast(pa.int64())
            columns[name] = col.cast(atype)
        for name, atype, value in missing:
            if name in schema.enums:
                columns[name] = schema.enums[name].encode([value] * batch.num_rows)
                continue
            if isinstance(value, Decimal):
                value = str(value)
            columns[name] = pa.repeat(pa.scalar(value, atype), batch.num_rows)
        return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))

    return adapt


def _stringlike(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t))


def _bytes(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t))
