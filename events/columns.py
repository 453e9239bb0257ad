"""Trades as columns: what a replay hands components for a quiet run.

`TradeColumns` is a run of trades of one venue and symbol as parallel
sequences (`ts`, `price`, `size`, `seq`: lists, or `memoryview`s of the numpy
views of Arrow columns, indexed and bisected alike), indexed like the batch they come from: the
quiet-run protocol (see `replay.driver`) works on these, never on event
objects. `TradeBatch` is also a sequence of `Trade` events over one Arrow
record batch that builds an event only when that row is asked for (in bulk,
through the schema's generated constructor, when all of them are): in a replay
most trades are absorbed in runs and never become objects.

`TradeTape` is a batch of trades of several venues and symbols interleaved in
time (a portfolio's instruments): the batch's timestamps (`ts`) and one lane per
(venue, symbol), `lanes[k]` a `TradeColumns` of that instrument's trades in
order and `rows[k]` their indices in the tape. Owners of the quiet-run protocol
are handed lanes, so each sees one instrument's run as before. A `TradeColumns`
is a tape of one lane (`lanes`, `rows`), so code that walks lanes takes both.
"""

from __future__ import annotations

import builtins
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import pyarrow as pa

from events.market import Trade
from events.schema import TypeSchema, schema_for


class TradeColumns:
    __slots__ = ("venue", "symbol", "ts", "price", "size", "seq", "_marks")

    def __init__(self, venue: str, symbol: str, ts: Sequence[int], price: Sequence[float],
                 size: Sequence[float], seq: Sequence[int]) -> None:
        self.venue = venue
        self.symbol = symbol
        self.ts = ts
        self.price = price
        self.size = size
        self.seq = seq
        self._marks: tuple[np.ndarray, np.ndarray, bool] | None = None

    def marks(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """`ts` and `price` as numpy int64 and float64 (views, no copy, of a replay's
        columns) and whether every price is a valid mark (0 < price < inf): what
        vectorised readers of a run take (`daemon.trading.risk_ticks`). Built on
        first use, once per batch, not per run."""
        if self._marks is None:
            ts, price = _numpy(self.ts, np.int64), _numpy(self.price, np.float64)
            # two reductions, no temporaries (a NaN fails both comparisons)
            valid = not len(price) or bool(price.min() > 0 and price.max() < np.inf)
            self._marks = (ts, price, valid)
        return self._marks

    @classmethod
    def of_events(cls, events: Sequence[Trade], start: int, stop: int) -> TradeColumns:
        """Columns of events[start:stop] (same venue and symbol), indexed from 0."""
        run = events[start:stop]
        first = run[0]
        return cls(first.venue, first.symbol, [e.ts_event for e in run], [e.price for e in run],
                   [e.size for e in run], [e.seq for e in run])

    @property
    def lanes(self) -> tuple[TradeColumns]:
        """As a tape: one lane, itself."""
        return (self,)

    @property
    def rows(self) -> tuple[range]:
        """As a tape: its lane's rows are its own indices."""
        return (range(len(self.ts)),)


def _numpy(values: Sequence[Any], dtype: type) -> np.ndarray:
    if isinstance(values, array | memoryview):
        return np.frombuffer(values, dtype=dtype)
    return np.asarray(values, dtype=dtype)


_ARANGE = np.arange(0, dtype=np.int64)


def _arange(n: int) -> np.ndarray:
    """`np.arange(n)` as a view of one kept array (grown to the largest n asked)."""
    global _ARANGE
    if len(_ARANGE) < n:
        _ARANGE = np.arange(n, dtype=np.int64)
    return _ARANGE[:n]


def ints(values: np.ndarray) -> memoryview:
    """A numpy column as a `memoryview` of int64: indexed and bisected like a list
    (each item a Python int), no object per row and no copy of the bytes (an
    Arrow column's numpy view stays where Arrow read it: two copies of four
    columns cost 1.3 ms a batch of 65,536 rows). `.data` is `memoryview(array)`,
    typed: numpy's stubs declare ndarray a buffer only from Python 3.12."""
    return np.ascontiguousarray(values, dtype=np.int64).data


def floats(values: np.ndarray) -> memoryview:
    """A numpy column as a `memoryview` of float64 (see `ints`)."""
    return np.ascontiguousarray(values, dtype=np.float64).data


def _values(column: pa.Array) -> Callable[[int], Any]:
    """Row i's value of `column` as Python, for rows built one at a time: a
    dictionary-encoded column's few values decoded once (an Arrow scalar of a
    dictionary row costs 5 us, a tenth of the row)."""
    if pa.types.is_dictionary(column.type) and len(column.dictionary) <= 256 \
            and column.null_count == 0:
        values = column.dictionary.to_pylist()
        codes = column.indices.to_numpy()
        return lambda i: values[codes[i]]
    return lambda i: column[i].as_py()


def _single(column: pa.Array) -> str | None:
    """The one value of a dictionary-encoded column that holds only one, else None."""
    if pa.types.is_dictionary(column.type) and len(column.dictionary) == 1 \
            and column.null_count == 0:
        return column.dictionary[0].as_py()  # type: ignore[no-any-return]
    return None


class TradeBatch(TradeColumns, Sequence[Trade]):
    """Trades of one venue and symbol over an Arrow batch, built lazily."""

    __slots__ = ("_batch", "_schema", "_events", "_recv", "_aggressor", "_ids", "_id_of")

    def __init__(self, batch: pa.RecordBatch, venue: str, symbol: str) -> None:
        ts = batch.column("ts_event").to_numpy().view(np.int64)
        super().__init__(venue, symbol, ints(ts), floats(batch.column("price").to_numpy()),
                         floats(batch.column("size").to_numpy()),
                         ints(batch.column("seq").to_numpy()))
        self._batch = batch
        self._schema: TypeSchema = schema_for(Trade)
        self._events: list[Any] | None = None
        self._recv = batch.column("ts_recv").to_numpy().view(np.int64)
        # stored by name ('buy'/'sell'/null; an older part: the int code)
        self._aggressor = self._schema.enums["aggressor"].decode(batch.column("aggressor"))
        self._ids = batch.column("trade_id")
        self._id_of: Callable[[int], Any] | None = None

    @classmethod
    def maybe(cls, batch: pa.RecordBatch) -> TradeBatch | None:
        """A TradeBatch if `batch` holds trades of a single venue and symbol."""
        if batch.num_rows == 0:
            return None
        venue = _single(batch.column("venue"))
        symbol = _single(batch.column("symbol"))
        if venue is None or symbol is None:
            return None
        return cls(batch, venue, symbol)

    def slice(self, start: int, stop: int) -> TradeBatch:
        """Rows start..stop as a TradeBatch of their own (indexed from 0), sharing
        this one's columns: a merge cuts one Arrow batch into many slices (a
        portfolio's watermark), and a TradeBatch of each slice converted and
        decoded its columns again (the aggressor's names, row by row)."""
        part = TradeBatch.__new__(TradeBatch)
        part.venue = self.venue
        part.symbol = self.symbol
        part.ts = self.ts[start:stop]
        part.price = self.price[start:stop]
        part.size = self.size[start:stop]
        part.seq = self.seq[start:stop]
        part._marks = None
        part._batch = self._batch.slice(start, stop - start)
        part._schema = self._schema
        part._events = None if self._events is None else self._events[start:stop]
        part._recv = self._recv[start:stop]
        part._aggressor = self._aggressor[start:stop]
        part._ids = self._ids.slice(start, stop - start)
        # rows built one at a time take their trade ids from this batch's decode
        id_of = self._id_of
        if id_of is None:
            id_of = self._id_of = _values(self._ids)
        part._id_of = lambda i: id_of(start + i)
        return part

    def events(self) -> list[Any]:
        """Every row as a Trade (built once, in bulk)."""
        if self._events is None:
            self._events = self._schema.from_table(self._batch)
        return self._events

    def events_between(self, start: int, stop: int) -> list[Any]:
        """Rows start..stop as Trades, in bulk, without building the others."""
        if self._events is not None:
            return self._events[start:stop]
        return self._schema.from_table(self._batch.slice(start, stop - start))

    def __len__(self) -> int:
        return len(self.ts)

    @overload
    def __getitem__(self, i: int) -> Trade: ...
    @overload
    def __getitem__(self, i: builtins.slice) -> list[Trade]: ...

    # builtins.slice: in this class body `slice` names the method above
    def __getitem__(self, i: int | builtins.slice) -> Trade | list[Trade]:
        if self._events is not None or isinstance(i, slice):
            return self.events()[i]
        if i < 0:
            i += len(self.ts)
        # one row: the same values from_table would give it
        id_of = self._id_of
        if id_of is None:
            id_of = self._id_of = _values(self._ids)
        return Trade(ts_event=self.ts[i], ts_recv=int(self._recv[i]), seq=self.seq[i],
                     venue=self.venue, symbol=self.symbol, price=self.price[i],
                     size=self.size[i], aggressor=int(self._aggressor[i]),
                     trade_id=id_of(i))

    def __iter__(self) -> Iterator[Trade]:
        return iter(self.events())


class TradeTape(Sequence[Trade]):
    """Trades of several venues and symbols in one time order (see the module doc).

    `ts[i]` is row i's ts_event; `lanes[k]`/`rows[k]` one instrument's trades and
    their rows; `code[i]` row i's lane. Events are built only when asked for:
    one row from its lane (a `TradeBatch` builds it alone), every row in bulk."""

    __slots__ = ("ts", "lanes", "rows", "code", "_events", "_build")

    def __init__(self, ts: Sequence[int], lanes: Sequence[TradeColumns],
                 rows: Sequence[Sequence[int]],
                 code: np.ndarray | list[int], events: list[Any] | None = None,
                 build: Callable[[], list[Any]] | None = None) -> None:
        self.ts = ts
        self.lanes = tuple(lanes)
        self.rows = tuple(rows)
        self.code = code
        self._events = events
        self._build = build

    @classmethod
    def of_events(cls, events: Sequence[Any]) -> TradeTape | TradeColumns | None:
        """The trades `events` as a tape (as `TradeColumns` when they are of one
        instrument), or None when anything else is among them."""
        lane_of: dict[tuple[str, str], int] = {}
        rows: list[list[int]] = []
        code: list[int] = []
        for i, e in enumerate(events):
            if e.__class__ is not Trade:
                return None
            key = (e.venue, e.symbol)
            k = lane_of.get(key)
            if k is None:
                k = lane_of[key] = len(rows)
                rows.append([])
            rows[k].append(i)
            code.append(k)
        if not rows:
            return None
        if len(rows) == 1:
            return TradeColumns.of_events(events, 0, len(events))
        lanes = []
        for (venue, symbol), k in lane_of.items():
            run = [events[i] for i in rows[k]]
            lanes.append(TradeColumns(venue, symbol, [e.ts_event for e in run],
                                      [e.price for e in run], [e.size for e in run],
                                      [e.seq for e in run]))
        return cls([e.ts_event for e in events], lanes, rows, code, events=list(events))

    @classmethod
    def merged(cls, parts: Sequence[TradeBatch], perm: np.ndarray,
               ts: np.ndarray) -> TradeTape | None:
        """The rows of `parts` (each one instrument, concatenated in this order)
        taken in the order `perm`, whose timestamps are `ts`; None when two
        parts hold the same instrument (their rows would share a lane)."""
        keys = {(p.venue, p.symbol) for p in parts}
        if len(keys) != len(parts):
            return None
        # row j of part k is at inverse[offset_k + j]: each part's rows in the
        # tape are one slice of the inverse permutation (a view; no scan per lane)
        n = len(perm)
        inverse = np.empty(n, np.int64)
        inverse[perm] = _arange(n)
        code = np.empty(n, np.int16)
        rows = []
        offset = 0
        for k, p in enumerate(parts):
            at = inverse[offset:offset + len(p)]
            code[at] = k
            rows.append(ints(at))
            offset += len(p)

        def build() -> list[Any]:
            every: list[Any] = []
            for p in parts:
                every += p.events()
            return [every[i] for i in perm.tolist()]

        return cls(ints(ts), parts, rows, code, build=build)

    def events_between(self, start: int, stop: int) -> list[Any]:
        """Rows start..stop as Trades in tape order, each lane's built in bulk,
        without building the others."""
        if self._events is not None:
            return self._events[start:stop]
        parts = []
        for lane, rows in zip(self.lanes, self.rows, strict=True):
            lo = bisect_left(rows, start)
            hi = bisect_left(rows, stop, lo)
            parts.append(iter(lane.events_between(lo, hi)))  # type: ignore[attr-defined]
        codes = self.code[start:stop]
        if isinstance(codes, np.ndarray):
            codes = codes.tolist()
        return [next(parts[k]) for k in codes]

    def events(self) -> list[Any]:
        """Every row as a Trade, in tape order (built once, in bulk)."""
        if self._events is None:
            assert self._build is not None
            self._events = self._build()
            self._build = None
        return self._events

    def __len__(self) -> int:
        return len(self.ts)

    @overload
    def __getitem__(self, i: int) -> Trade: ...
    @overload
    def __getitem__(self, i: slice) -> list[Trade]: ...

    def __getitem__(self, i: int | slice) -> Trade | list[Trade]:
        if self._events is not None or isinstance(i, slice):
            return self.events()[i]
        if i < 0:
            i += len(self.ts)
        k = int(self.code[i])
        rows = self.rows[k]
        lane: Any = self.lanes[k]  # a TradeBatch: it builds one row alone
        return lane[bisect_left(rows, i)]  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Trade]:
        return iter(self.events())
