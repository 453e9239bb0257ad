"""Finding the columns an event needs in a file's header, and converting them.

Each event kind declares its `Field`s: a name, the header names that mean it
(matched case-insensitively) and the option that maps it by hand. A
`ColumnMap` holds what the user mapped. Conversions are column-wise (Arrow
compute / numpy): never a Python loop per row. A cell that does not convert is
marked on the file's `RowChecks` (rows.py), which refuses the file or skips
the row; the conversion goes on with that cell null.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapters.files.detect import InputError, Source
from adapters.files.rows import (
    EPOCH_MIN,
    TS_MAX,
    TS_MIN,
    RowChecks,
    Why,
    as_mask,
    failing,
    shown,
    ts_range_text,
    without,
)

NS_PER_DAY = 86_400 * 1_000_000_000
UNIT_NS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

TS_ALIASES = ("timestamp", "ts_event", "ts", "time", "datetime", "date", "open_time", "ts_open")


@dataclass(frozen=True)
class ColumnMap:
    """Column names the user gave for a file whose header is not recognised
    (None: find it by its usual names)."""

    ts: str | None = None
    ts_unit: str | None = None
    price: str | None = None
    size: str | None = None
    side: str | None = None
    maker: str | None = None
    id: str | None = None
    open: str | None = None
    high: str | None = None
    low: str | None = None
    close: str | None = None
    volume: str | None = None
    bid: str | None = None
    ask: str | None = None
    bid_size: str | None = None
    ask_size: str | None = None
    rate: str | None = None
    mark: str | None = None

    def given(self) -> dict[str, str]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def is_empty(self) -> bool:
        return not self.given()


def option_name(field: str) -> str:
    """The command-line option that maps `field` (`bid_size` -> `--bid-size-col`)."""
    if field == "ts_unit":
        return "--ts-unit"
    return f"--{field.replace('_', '-')}-col"


@dataclass(frozen=True)
class Field:
    name: str
    aliases: tuple[str, ...]
    required: bool = True


def resolve(
    source: Source, kind: str, wanted: Sequence[Field], given: ColumnMap
) -> dict[str, str | None]:
    """{field: column name or None} for `source`; InputError naming the file
    when a mapped column is absent or a required field is not found."""
    known = {f.name for f in wanted} | {"ts_unit"}
    stray = [option_name(k) for k in given.given() if k not in known]
    if stray:
        verb = "does" if len(stray) == 1 else "do"
        raise InputError(f"{', '.join(stray)} {verb} not apply to {kind} files")
    by_lower: dict[str, str] = {}
    for header in source.columns:
        by_lower.setdefault(header.strip().lower(), header)
    found: dict[str, str | None] = {}
    missing: list[Field] = []
    for field in wanted:
        name: str | None = getattr(given, field.name)
        col: str | None
        if name is not None:
            col = name if name in source.columns else by_lower.get(name.strip().lower())
            if col is None:
                raise InputError(
                    f"{source.path}: {option_name(field.name)} {name!r} is not a column "
                    f"(columns: {source.describe_columns()})"
                )
            found[field.name] = col
            continue
        col = next((by_lower[a] for a in field.aliases if a in by_lower), None)
        found[field.name] = col
        if col is None and field.required:
            missing.append(field)
    if missing:
        needs = ", ".join(f"{f.name} ({option_name(f.name)})" for f in missing)
        raise InputError(
            f"{source.path}: {kind} columns not recognised (columns: "
            f"{source.describe_columns()}); missing {needs}"
        )
    return found


def check_unit(unit: str | None) -> str | None:
    if unit is not None and unit not in UNIT_NS:
        raise InputError(f"--ts-unit {unit!r}: expected one of s, ms, us, ns")
    return unit


class Timestamps:
    """Converts one file's timestamp column to int64 ns UTC, batch after batch.

    Typed timestamps carry their unit; naive ones are UTC. Numbers use
    `unit`, or one inferred from the first batch's magnitude and then kept, so
    every batch of a file is read the same way. Text is ISO 8601; without a
    zone offset it is UTC. A cell that is empty, unreadable or outside the
    sane range (rows.py) is marked bad; its row gets a placeholder time."""

    # CSV readers pass the column as text: Arrow infers a CSV column's type from
    # its first block, and a later block of the same column may not fit it
    # (whole seconds first, fractions later; naive first, zoned later).
    hint = pa.string()

    def __init__(self, source: Source, column: str, unit: str | None) -> None:
        self.source = source
        self.column = column
        self.unit = check_unit(unit)
        self.inferred = False

    def note(self) -> str | None:
        if self.inferred:
            return f"timestamp unit {self.unit} inferred from the values (--ts-unit overrides)"
        return None

    def __call__(self, col: pa.ChunkedArray | pa.Array, rows: RowChecks) -> pa.Array:
        col = _array(col)
        if col.null_count:
            rows.mark(
                col.is_null().to_numpy(zero_copy_only=False),
                lambda i: f"column {self.column!r} is empty",
            )
        t = col.type
        if pa.types.is_timestamp(t):
            return self._epoch(col.cast(pa.int64()), rows, UNIT_NS[t.unit], TS_MIN, col)
        if pa.types.is_date32(t):
            days = col.cast(pa.int32()).cast(pa.int64())
            return self._epoch(days, rows, NS_PER_DAY, TS_MIN, col)
        if pa.types.is_date64(t):
            return self._epoch(col.cast(pa.int64()), rows, UNIT_NS["ms"], TS_MIN, col)
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return self._text(pc.utf8_trim_whitespace(valid_text(rows, col, self.column)), rows)
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return self._epoch(col, rows, None, EPOCH_MIN, col)
        raise InputError(
            f"{self.source.path}: column {self.column!r} of type {t} is not a timestamp"
        )

    def _text(self, text: pa.Array, rows: RowChecks) -> pa.Array:
        # Epoch numbers written as text are the common case: read them as numbers.
        present = len(text) - text.null_count
        integer = pc.match_substring_regex(text, _INTEGER)
        if (pc.sum(integer).as_py() or 0) == present:
            try:
                ints = text.cast(pa.int64())
            except pa.ArrowInvalid:
                ints = None  # beyond int64: read as floats below, and marked out of range
            if ints is not None:
                return self._epoch(ints, rows, None, EPOCH_MIN, text)
        number = pc.match_substring_regex(text, _DECIMAL)
        n_numbers = pc.sum(number).as_py() or 0
        if n_numbers * 2 >= present:
            # Mostly numbers: the others are bad cells, not another format.
            odd = pc.fill_null(pc.invert(number), False).to_numpy(zero_copy_only=False)
            if odd.any():
                rows.mark(odd, self._unreadable(text))
                rows.refuse_now()
                text = without(text, odd)
            # Whole numbers stay integers: ns since the epoch do not fit a float exactly.
            if (pc.sum(integer).as_py() or 0) == n_numbers:
                try:
                    return self._epoch(text.cast(pa.int64()), rows, None, EPOCH_MIN, text)
                except pa.ArrowInvalid:
                    pass  # beyond int64: as floats, marked out of range
            return self._epoch(text.cast(pa.float64()), rows, None, EPOCH_MIN, text)
        try:
            parsed = _parse_iso(text)
        except pa.ArrowInvalid:
            bad = failing(text, _parse_iso, first_only=rows.refusing)
            mask = as_mask(bad, len(text))
            rows.mark(mask, self._unreadable(text))
            rows.refuse_now()
            parsed = _parse_iso(without(text, mask))
        return self._epoch(parsed, rows, 1, TS_MIN, text)

    def _unreadable(self, text: pa.Array) -> Why:
        def why(i: int) -> str:
            return (
                f"column {self.column!r}: cannot read {shown(text, i)} as a timestamp "
                "(ISO 8601 text, or epoch numbers)"
            )

        return why

    def _epoch(
        self, col: pa.Array, rows: RowChecks, factor: int | None, lo: int, raw: pa.Array
    ) -> pa.Array:
        """Numbers in a unit (`factor` ns; None: this file's unit) as ns,
        marking those outside lo..TS_MAX; `raw` is the column as read, for
        error lines."""
        floating = not pa.types.is_integer(col.type)
        if pa.types.is_decimal(col.type):
            col = col.cast(pa.float64())
        missing = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
        values = (pc.fill_null(col, 0) if col.null_count else col).to_numpy(zero_copy_only=False)
        as_float = values.astype(np.float64, copy=False)
        if factor is None:
            factor = UNIT_NS[self._unit_for(as_float, missing)]
        # NaN fails both comparisons; bounds in the file's unit, so nothing overflows.
        bad = ~((as_float >= lo / factor) & (as_float < TS_MAX / factor))
        if missing is not None:
            bad &= ~missing
        if bad.any():
            unit = next((u for u, f in UNIT_NS.items() if f == factor), None)
            hint = f" (read as {unit} since the epoch: wrong --ts-unit?)" if lo == EPOCH_MIN else ""
            rows.mark(bad, lambda i: (
                f"column {self.column!r}: {shown(raw, i)} is not a time in "
                f"{ts_range_text(lo)}{hint}"
            ))
            values = np.where(bad, 0, values)
        if floating:
            return pa.array(np.rint(values * factor).astype(np.int64))
        return pa.array(values.astype(np.int64, copy=False) * factor)

    def _unit_for(self, values: np.ndarray, missing: np.ndarray | None) -> str:
        if self.unit is None:
            known = values if missing is None else values[~missing]
            known = np.abs(known[np.isfinite(known)])
            if not len(known):
                return "ns"  # every cell is bad: nothing to scale, nothing to infer from
            # Epoch values of today's dates: ~1.7e9 s, 1.7e12 ms, 1.7e15 us, 1.7e18 ns.
            # The median, so a few wild cells cannot change the whole file's unit.
            typical = float(np.median(known))
            self.unit = next(
                (u for u, top in (("s", 1e11), ("ms", 1e14), ("us", 1e17)) if typical < top),
                "ns",
            )
            self.inferred = True
        return self.unit


_INTEGER = r"^[+-]?\d+$"
_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_ZONED = r"\d:\d\d(:\d\d(\.\d*)?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)$"


def _parse_iso(text: pa.Array) -> pa.Array:
    """ISO 8601 text as int64 ns (UTC when it has no offset); ArrowInvalid if
    any cell is not a timestamp."""
    # Arrow parses text with a zone (Z, +02:00) only as zoned and naive text
    # only as naive (which we read as UTC): split the column between the two.
    zoned = pc.match_substring_regex(text, _ZONED)
    n_zoned = pc.sum(zoned).as_py() or 0
    if n_zoned == len(text) - text.null_count:
        parsed = text.cast(pa.timestamp("ns", tz="UTC"))
    elif n_zoned == 0:
        parsed = text.cast(pa.timestamp("ns"))
    else:
        zoned = pc.fill_null(zoned, False)
        as_zoned = pc.if_else(zoned, text, "1970-01-01T00:00:00Z")
        as_naive = pc.if_else(zoned, "1970-01-01 00:00:00", text)
        return pc.if_else(
            zoned,
            as_zoned.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()),
            as_naive.cast(pa.timestamp("ns")).cast(pa.int64()),
        )
    return parsed.cast(pa.int64())


def _array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return col


def valid_text(rows: RowChecks, col: pa.ChunkedArray | pa.Array, column: str) -> pa.Array:
    """A text column with the cells that are not UTF-8 marked bad (and null):
    Parquet does not check its text, and CSV bytes that were not UTF-8 come
    as U+FFFD."""
    col = _array(col)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return col
    if rows.source.replaced_text:
        hit = pc.fill_null(pc.match_substring(col, "\ufffd"), False)
        mask = hit.to_numpy(zero_copy_only=False)
        if not mask.any():
            return col
    else:
        try:
            _check_utf8(col)
            return col
        except pa.ArrowInvalid:
            mask = as_mask(failing(col, _check_utf8, first_only=rows.refusing), len(col))
    rows.mark(mask, lambda i: f"column {column!r}: {shown(col, i)} is not UTF-8 text")
    rows.refuse_now()
    return without(col, mask)


def _check_utf8(text: pa.Array) -> None:
    text.validate(full=True)  # ArrowInvalid naming the first bad string


def numbers(rows: RowChecks, table: pa.Table, column: str) -> pa.Array:
    """A column as float64, with empty cells null; a cell that is not a
    number is marked bad (and made null)."""
    col = _array(table.column(column))
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        col = pc.utf8_trim_whitespace(valid_text(rows, col, column))
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        raise InputError(f"{rows.source.path}: column {column!r} of type {t} holds no numbers")

    def cast(part: pa.Array) -> pa.Array:
        return part.cast(pa.float64())

    try:
        return cast(col)
    except pa.ArrowException:
        pass
    mask = as_mask(failing(col, cast, first_only=rows.refusing), len(col))
    rows.mark(mask, lambda i: f"column {column!r}: {shown(col, i)} is not a number")
    rows.refuse_now()
    return cast(without(col, mask))


def prices(
    rows: RowChecks, table: pa.Table, column: str, only: np.ndarray | None = None
) -> pa.Array:
    """A price column: every row has a finite price, above zero unless the
    import allows otherwise."""
    values = numbers(rows, table, column)
    rows.prices(values, column, only)
    return values


def sizes(
    rows: RowChecks, table: pa.Table, column: str, only: np.ndarray | None = None
) -> pa.Array:
    """A size column: every row has a finite size of zero or more."""
    values = numbers(rows, table, column)
    rows.sizes(values, column, only)
    return values


def optional_sizes(rows: RowChecks, table: pa.Table, column: str | None) -> pa.Array:
    """A size column the file may lack: NaN (unknown) when it has no such
    column, or when the column is empty throughout the file's first table
    (pandas writes a missing column as NaN). Otherwise every row has a size."""
    if column is None:
        return pa.array(np.full(table.num_rows, np.nan))
    values = numbers(rows, table, column)
    if rows.first_table and table.num_rows and _no_values(values):
        rows.empty_columns.add(column)
        rows.notes.append(f"column {column!r} holds no values: stored as NaN")
    absent = column in rows.empty_columns
    rows.sizes(values, column, missing_ok=absent)
    return pc.fill_null(values, np.nan) if values.null_count else values


def _no_values(values: pa.Array) -> bool:
    if values.null_count == len(values):
        return True
    return bool(np.isnan(pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False)).all())


def text(rows: RowChecks, col: pa.ChunkedArray | pa.Array, column: str) -> pa.Array:
    """Ids as text: integers print without a fraction; empty cells become ""."""
    col = valid_text(rows, col, column)
    if pa.types.is_floating(col.type):
        # fractional ids stay as printed floats
        with contextlib.suppress(pa.ArrowInvalid):
            col = col.cast(pa.int64())
    out = col.cast(pa.string())
    return pc.fill_null(out, "") if out.null_count else out


def coded(col: pa.Array, codes: dict[str, int], default: int = 0) -> pa.Array:
    """Map a low-cardinality text column through `codes` (keys lower case):
    each distinct value is looked up once and the result gathered by index."""
    if not pa.types.is_dictionary(col.type):
        col = col.cast(pa.string()).dictionary_encode()
    words = col.dictionary.cast(pa.string()).to_pylist()
    lut = pa.array([codes.get((w or "").strip().lower(), default) for w in words], pa.int64())
    out = lut.take(col.indices)
    return pc.fill_null(out, default) if out.null_count else out


def keep_rows(table: pa.Table, keep: np.ndarray | None) -> pa.Table:
    """`table` without the rows a RowChecks verdict leaves out."""
    return table if keep is None else table.filter(pa.array(keep))


def constant(value: object, n: int, type_: pa.DataType) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), n)


def event_table(ts: pa.Array, venue: str, symbol: str, **columns: pa.Array) -> pa.Table:
    """A table of events of one instrument stamped `ts` (event and receive time:
    history has no receive time), `seq` left for the store to assign, followed
    by the type's own `columns`."""
    n = len(ts)
    return pa.table({
        "ts_event": ts,
        "ts_recv": ts,
        "seq": constant(0, n, pa.int64()),
        "venue": constant(venue, n, pa.string()),
        "symbol": constant(symbol, n, pa.string()),
        **columns,
    })

