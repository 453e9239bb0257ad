"""Finding the columns an event needs in a file's header, and converting them.

Each event kind declares its `Field`s: a name, the header names that mean it
(matched case-insensitively) and the option that maps it by hand. A
`ColumnMap` holds what the user mapped. Conversions are column-wise (Arrow
compute / numpy): never a Python loop per row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapters.files.detect import InputError, Source

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
    zone offset it is UTC."""

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

    def __call__(self, col: pa.ChunkedArray | pa.Array) -> pa.Array:
        if col.null_count:
            raise InputError(
                f"{self.source.path}: {col.null_count} rows have no {self.column!r} timestamp"
            )
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        t = col.type
        if pa.types.is_timestamp(t):
            return _scale(col.cast(pa.int64()), UNIT_NS[t.unit])
        if pa.types.is_date32(t):
            return _scale(col.cast(pa.int32()).cast(pa.int64()), NS_PER_DAY)
        if pa.types.is_date64(t):
            return _scale(col.cast(pa.int64()), UNIT_NS["ms"])
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            col = pc.utf8_trim_whitespace(col)
            if len(col) and pc.all(pc.match_substring_regex(col, _INTEGER)).as_py():
                col = col.cast(pa.int64())
            elif len(col) and pc.all(pc.match_substring_regex(col, _DECIMAL)).as_py():
                col = col.cast(pa.float64())
            else:
                return self._parse_text(col)
        if pa.types.is_integer(col.type):
            return _scale(col.cast(pa.int64()), UNIT_NS[self._unit_for(col)])
        if pa.types.is_floating(col.type) or pa.types.is_decimal(col.type):
            values = col.cast(pa.float64()).to_numpy()
            factor = UNIT_NS[self._unit_for(col)]
            return pa.array(np.rint(values * factor).astype(np.int64))
        raise InputError(
            f"{self.source.path}: column {self.column!r} of type {t} is not a timestamp"
        )

    def _unit_for(self, col: pa.Array) -> str:
        if self.unit is None:
            peak = abs(pc.max(pc.abs(col.cast(pa.float64()))).as_py() or 0.0)
            # Epoch values of today's dates: ~1.7e9 s, 1.7e12 ms, 1.7e15 us, 1.7e18 ns.
            self.unit = next(
                (u for u, top in (("s", 1e11), ("ms", 1e14), ("us", 1e17)) if peak < top), "ns"
            )
            self.inferred = True
        return self.unit

    def _parse_text(self, col: pa.Array) -> pa.Array:
        text = pc.utf8_trim_whitespace(col)
        # Arrow parses text with a zone (Z, +02:00) only as zoned and naive text
        # only as naive (which we read as UTC): split the column between the two.
        zoned = pc.match_substring_regex(text, _ZONED)
        n_zoned = pc.sum(zoned).as_py() or 0
        try:
            if n_zoned == len(text):
                parsed = text.cast(pa.timestamp("ns", tz="UTC"))
            elif n_zoned == 0:
                parsed = text.cast(pa.timestamp("ns"))
            else:
                as_zoned = pc.if_else(zoned, text, "1970-01-01T00:00:00Z")
                as_naive = pc.if_else(zoned, "1970-01-01 00:00:00", text)
                parsed = pc.if_else(
                    zoned,
                    as_zoned.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()),
                    as_naive.cast(pa.timestamp("ns")).cast(pa.int64()),
                )
        except pa.ArrowInvalid:
            raise InputError(
                f"{self.source.path}: column {self.column!r}: cannot read "
                f"{_first_bad(text)!r} as a timestamp (ISO 8601 text, or epoch numbers)"
            ) from None
        return parsed.cast(pa.int64())


_INTEGER = r"^[+-]?\d+$"
_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_ZONED = r"\d:\d\d(:\d\d(\.\d*)?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)$"


def _first_bad(text: pa.Array) -> str:
    """The first value Arrow cannot parse as a timestamp, for the error line."""
    for value in text.slice(0, 10_000).to_pylist():
        for t in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
            try:
                pa.array([value]).cast(t)
                break
            except pa.ArrowInvalid:
                continue
        else:
            return str(value)
    return str(text[0].as_py())


def _scale(values: pa.Array, factor: int) -> pa.Array:
    if factor == 1:
        return values
    try:
        return pc.multiply_checked(values, factor)
    except pa.ArrowInvalid:
        raise InputError("timestamps overflow int64 nanoseconds: wrong --ts-unit?") from None


def numbers(source: Source, table: pa.Table, column: str) -> pa.Array:
    """A numeric column as float64; text must hold numbers."""
    col = table.column(column)
    if col.null_count:
        raise InputError(f"{source.path}: {col.null_count} rows have no {column!r} value")
    return _float64(source, column, col)


def optional_numbers(source: Source, table: pa.Table, column: str | None) -> pa.Array:
    """Like `numbers`; NaN (unknown) for a missing column or empty cells."""
    if column is None:
        return pa.array(np.full(table.num_rows, np.nan))
    values = _float64(source, column, table.column(column))
    return pc.fill_null(values, np.nan) if values.null_count else values


def _float64(source: Source, column: str, col: pa.ChunkedArray) -> pa.Array:
    try:
        return col.combine_chunks().cast(pa.float64())
    except pa.ArrowException:  # invalid text, or a type Arrow cannot cast to a number
        raise InputError(f"{source.path}: column {column!r} holds non-numbers") from None


def text(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Ids as text: integers print without a fraction; empty cells become ""."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_floating(col.type):
        # fractional ids stay as printed floats
        with contextlib.suppress(pa.ArrowInvalid):
            col = col.cast(pa.int64())
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    out = col.cast(pa.string())
    return pc.fill_null(out, "") if out.null_count else out


def coded(col: pa.ChunkedArray | pa.Array, codes: dict[str, int], default: int = 0) -> pa.Array:
    """Map a low-cardinality text column through `codes` (keys lower case):
    each distinct value is looked up once and the result gathered by index."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_dictionary(col.type):
        col = col.cast(pa.string()).dictionary_encode()
    words = col.dictionary.cast(pa.string()).to_pylist()
    lut = pa.array([codes.get((w or "").strip().lower(), default) for w in words], pa.int64())
    out = lut.take(col.indices)
    return pc.fill_null(out, default) if out.null_count else out


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
