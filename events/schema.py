"""Arrow schemas for event types, derived from the struct definitions.

One schema per event type; columns are named as the struct fields. `ts_*`
fields are `timestamp[ns, UTC]` (int64 underneath, so exact), Decimals are
decimal text (exact; `CAST(x AS DECIMAL(38,18))` in DuckDB), `seq` is int64.
Enum-like int fields (`ENUMS`: a trade's aggressor) are stored by name, as
dictionary-encoded strings ('buy', 'sell'; null for unknown), so SQL reads
`aggressor = 'buy'`; the struct keeps its int code. Parts written before
stored the codes: `from_table` reads both.

`to_table` and `from_table` are the only converters between events and Arrow,
built once per type: the column-wise loop that rebuilds structs is generated
code, the cheapest way to call a kw-only constructor a million times.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import cache
from itertools import repeat
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from events.base import Event
from events.market import AGGRESSOR_BUY, AGGRESSOR_SELL, AGGRESSOR_UNKNOWN

TS_TYPE = pa.timestamp("ns", tz="UTC")
ENUM_TYPE = pa.dictionary(pa.int8(), pa.string())


class EnumColumn:
    """An int field stored by name: code <-> name, vectorised (one numpy take
    per batch, nothing per row). The `unknown` code is stored as null."""

    def __init__(self, field: str, names: dict[int, str], unknown: int) -> None:
        self.field, self.unknown = field, unknown
        self.names = dict(names)
        self.codes = {name: code for code, name in names.items()}
        self.dictionary = pa.array(list(names.values()), pa.string())
        size = max([*names, unknown]) + 1
        self._index = np.full(size, -1, dtype=np.int8)  # code -> dictionary index
        for i, code in enumerate(names):
            self._index[code] = i

    def encode(self, codes: pa.Array | pa.ChunkedArray | Sequence[int]) -> pa.Array:
        """Int codes -> the dictionary-encoded names (unknown -> null)."""
        if isinstance(codes, pa.ChunkedArray):
            codes = codes.combine_chunks()
        if isinstance(codes, pa.Array):
            arr = int_codes(codes, self.unknown)
        else:
            arr = np.asarray(codes, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self._index.size
                         or ((self._index[arr] < 0) & (arr != self.unknown)).any()):
            bad = next(int(c) for c in arr if not 0 <= c < self._index.size
                       or (self._index[c] < 0 and c != self.unknown))
            raise ValueError(f"{self.field}: no name for code {bad}")
        index = self._index[arr] if arr.size else np.zeros(0, np.int8)
        return pa.DictionaryArray.from_arrays(pa.array(index, pa.int8(), mask=index < 0),
                                              self.dictionary)

    def decode(self, col: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """A stored column (names, or an older part's int codes) -> int64 codes."""
        if isinstance(col, pa.ChunkedArray):
            parts = [self.decode(c) for c in col.chunks]
            return np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if pa.types.is_integer(col.type):
            return int_codes(col, self.unknown)
        if not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        try:
            lookup = np.array([self.codes[name] for name in col.dictionary.to_pylist()]
                              + [self.unknown], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{self.field}: no code for name {exc.args[0]!r}") from None
        # nulls index the appended `unknown`
        idx = int_codes(col.indices, len(lookup) - 1)
        return lookup[idx]  # type: ignore[no-any-return]


def int_codes(values: pa.Array, fill: int) -> np.ndarray:
    """An integer column's values as int64, nulls as `fill`, from its buffers:
    pyarrow.compute's fill_null would import that module (about 30 ms, with
    pydoc) into every command's start-up for the aggressor column alone."""
    n = len(values)
    if values.null_count == 0:
        return np.asarray(values.to_numpy(), dtype=np.int64)
    if values.null_count == n:
        return np.full(n, fill, dtype=np.int64)
    validity, data = values.buffers()[:2]
    dtype = np.dtype(values.type.to_pandas_dtype())
    raw = np.frombuffer(data, dtype, n, values.offset * dtype.itemsize)
    bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
    valid = bits[values.offset:values.offset + n].astype(bool)
    return np.where(valid, raw, fill).astype(np.int64)


# (event type, field) -> how it is stored by name
ENUMS: dict[tuple[str, str], EnumColumn] = {
    ("Trade", "aggressor"): EnumColumn(
        "Trade.aggressor", {AGGRESSOR_BUY: "buy", AGGRESSOR_SELL: "sell"}, AGGRESSOR_UNKNOWN),
}

_SCALARS: dict[Any, pa.DataType] = {
    int: pa.int64(),
    float: pa.float64(),
    str: pa.string(),
    bool: pa.bool_(),
    bytes: pa.binary(),
    Decimal: pa.string(),
}


def _arrow_type(name: str, annotation: Any) -> tuple[pa.DataType, bool]:
    """(arrow type, nullable) for one struct field."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"field {name}: only Optional[X] unions are storable")
        return _arrow_type(name, args[0])[0], True
    if origin is list:
        (item,) = typing.get_args(annotation)
        return pa.list_(_SCALARS[item]), False
    if annotation is int and name.startswith("ts_"):
        return TS_TYPE, False
    return _SCALARS[annotation], False


class TypeSchema:
    """Everything needed to move one event type in and out of Arrow."""

    def __init__(self, cls: type[Event]) -> None:
        self.cls = cls
        self.name: str = cls.__struct_config__.tag  # type: ignore[assignment]
        hints = typing.get_type_hints(cls)
        fields: list[pa.Field] = []
        self.decimal_fields: list[str] = []
        self.optional_decimals: set[str] = set()
        self.enums: dict[str, EnumColumn] = {}
        for fname in cls.__struct_fields__:
            atype, nullable = _arrow_type(fname, hints[fname])
            enum = ENUMS.get((self.name, fname))
            if enum is not None:
                atype, nullable = ENUM_TYPE, True
                self.enums[fname] = enum
            fields.append(pa.field(fname, atype, nullable=nullable))
            base = hints[fname]
            if base is Decimal or (nullable and Decimal in typing.get_args(base)):
                self.decimal_fields.append(fname)
                if nullable:
                    self.optional_decimals.add(fname)
        self.schema = pa.schema(fields, metadata={b"tapeloop.type": self.name.encode()})
        self.fields: tuple[str, ...] = cls.__struct_fields__
        self._build = self._compile()

    def _compile(self) -> Callable[..., list[Event]]:
        # def build(cls, c0, c1, ...):
        #     return [cls(ts_event=a0, ...) for a0, a1, ... in zip(c0, c1, ...)]
        n = len(self.fields)
        args = ", ".join(f"c{i}" for i in range(n))
        loop_vars = ", ".join(f"a{i}" for i in range(n))
        kwargs = ", ".join(f"{f}=a{i}" for i, f in enumerate(self.fields))
        src = (
            f"def build(cls, {args}):\n"
            f"    return [cls({kwargs}) for {loop_vars}{',' if n == 1 else ''} in zip({args})]\n"
        )
        namespace: dict[str, Any] = {}
        exec(compile(src, f"<tapeloop.schema.{self.name}>", "exec"), namespace)  # noqa: S102
        return namespace["build"]  # type: ignore[no-any-return]

    # -- events -> arrow ----------------------------------------------------------

    def to_table(self, events: Sequence[Event]) -> pa.Table:
        """A table of `events` (all of this type) in the order given."""
        columns = []
        for field in self.schema:
            values = [getattr(e, field.name) for e in events]
            if field.name in self.enums:
                columns.append(self.enums[field.name].encode(values))
                continue
            if field.name in self.decimal_fields:
                values = [None if v is None else str(v) for v in values]
            if field.type == TS_TYPE:
                # a view, not cast: Array.cast imports pyarrow.compute (start-up)
                columns.append(pa.array(values, pa.int64()).view(TS_TYPE))
            else:
                columns.append(pa.array(values, field.type))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def conform(self, table: pa.Table) -> pa.Table:
        """Cast a table with the right column names to exactly this schema."""
        missing = [f.name for f in self.schema if f.name not in table.column_names]
        if missing:
            raise ValueError(f"{self.name}: table lacks columns {missing}")
        arrays = []
        for field in self.schema:
            col = table.column(field.name)
            if field.name in self.enums and col.type != field.type:
                enum = self.enums[field.name]
                col = enum.encode(col) if pa.types.is_integer(col.type) \
                    else enum.encode(enum.decode(col))  # names checked, index type fixed
            if col.type != field.type:
                if field.type == TS_TYPE and pa.types.is_integer(col.type):
                    col = col.cast(pa.int64()).cast(TS_TYPE)
                else:
                    col = col.cast(field.type)
            arrays.append(col)
        return pa.Table.from_arrays(arrays, schema=self.schema)

    # -- arrow -> events ----------------------------------------------------------

    def from_table(self, table: pa.Table | pa.RecordBatch) -> list[Event]:
        """Rebuild events from a table of this type, row order kept."""
        cols: list[Iterable[Any]] = []
        ts_event: np.ndarray | None = None
        for f in self.fields:
            col = table.column(f)
            if f == "ts_recv" and ts_event is not None and col.null_count == 0:
                # Imported history has no receive time (ts_recv == ts_event):
                # share the one list instead of building a second.
                recv = int64_view(col)
                if np.array_equal(recv, ts_event):
                    cols.append(cols[0])
                    continue
                cols.append(recv.tolist())
                continue
            if f == "ts_event" and col.null_count == 0:
                ts_event = int64_view(col)
                cols.append(ts_event.tolist())
                continue
            if f in self.enums:
                cols.append(self.enums[f].decode(col).tolist())
                continue
            cols.append(_column_values(col, f in self.decimal_fields))
        return self._build(self.cls, *cols)


def int64_view(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A timestamp or integer column as int64 numpy, without a cast when possible."""
    arr = col.to_numpy()
    return arr.view(np.int64) if arr.dtype.kind == "M" else arr.astype(np.int64, copy=False)


def _column_values(col: pa.Array | pa.ChunkedArray, decimal: bool) -> Iterable[Any]:
    """A column's values (a list, or a `repeat` for a single-valued string
    column), using the fastest path for its type."""
    t = col.type
    if pa.types.is_timestamp(t) and col.null_count == 0:
        return int64_view(col).tolist()  # type: ignore[no-any-return]
    if pa.types.is_timestamp(t):
        col = col.cast(pa.int64())
        t = col.type
    if (pa.types.is_integer(t) or pa.types.is_floating(t)) and col.null_count == 0:
        return col.to_numpy().tolist()  # type: ignore[no-any-return]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        if (not decimal and pa.types.is_dictionary(t) and isinstance(col, pa.Array)
                and len(col.dictionary) == 1 and col.null_count == 0):
            return repeat(col.dictionary[0].as_py())  # venue, symbol: one value per file
        values = _strings(col)
        if decimal:
            return [None if v is None else Decimal(v) for v in values]
        return values
    return col.to_pylist()  # type: ignore[no-any-return]


def _strings(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """String columns repeat a few values (venue, symbol): decode each distinct
    value once and index into them, far cheaper than `to_pylist`."""
    if isinstance(col, pa.ChunkedArray):
        out: list[Any] = []
        for chunk in col.chunks:
            out.extend(_strings(chunk))
        return out
    if not pa.types.is_dictionary(col.type):
        if len(col) < 64:
            return col.to_pylist()  # type: ignore[no-any-return]
        col = col.dictionary_encode()
    words = col.dictionary.to_pylist()
    if col.null_count:
        return [None if i is None else words[i] for i in col.indices.to_pylist()]
    return [words[i] for i in col.indices.to_numpy().tolist()]


@cache
def schema_for(cls: type[Event]) -> TypeSchema:
    return TypeSchema(cls)


def schema_by_name(name: str) -> TypeSchema:
    from events.registry import type_by_name

    return schema_for(type_by_name(name))


def roundtrip_check(cls: type[Event], events: Sequence[Event]) -> bool:
    """True when `events` survive Arrow unchanged (used by tests)."""
    sch = schema_for(cls)
    return sch.from_table(sch.to_table(events)) == list(events)


__all__ = ["TS_TYPE", "TypeSchema", "msgspec", "schema_by_name", "schema_for"]
