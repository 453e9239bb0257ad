"""Trades as columns: what a replay hands components for a quiet run.

`TradeColumns` is a run of trades of one venue and symbol as parallel lists
(`ts`, `price`, `size`, `seq`), indexed like the batch they come from: the
quiet-run protocol (see `replay.driver`) works on these, never on event
objects. `TradeBatch` is also a sequence of `Trade` events over one Arrow
record batch that builds an event only when that row is asked for (in bulk,
through the schema's generated constructor, when all of them are): in a replay
most trades are absorbed in runs and never become objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
import pyarrow as pa

from events.market import Trade
from events.schema import TypeSchema, schema_for


class TradeColumns:
    __slots__ = ("venue", "symbol", "ts", "price", "size", "seq")

    def __init__(self, venue: str, symbol: str, ts: Sequence[int], price: Sequence[float],
                 size: Sequence[float], seq: Sequence[int]) -> None:
        self.venue = venue
        self.symbol = symbol
        self.ts = ts
        self.price = price
        self.size = size
        self.seq = seq

    @classmethod
    def of_events(cls, events: Sequence[Trade], start: int, stop: int) -> TradeColumns:
        """Columns of events[start:stop] (same venue and symbol), indexed from 0."""
        run = events[start:stop]
        first = run[0]
        return cls(first.venue, first.symbol, [e.ts_event for e in run], [e.price for e in run],
                   [e.size for e in run], [e.seq for e in run])


def _single(column: pa.Array) -> str | None:
    """The one value of a dictionary-encoded column that holds only one, else None."""
    if pa.types.is_dictionary(column.type) and len(column.dictionary) == 1 \
            and column.null_count == 0:
        return column.dictionary[0].as_py()  # type: ignore[no-any-return]
    return None


class TradeBatch(TradeColumns, Sequence[Trade]):
    """Trades of one venue and symbol over an Arrow batch, built lazily."""

    __slots__ = ("_batch", "_schema", "_events", "_recv", "_aggressor", "_ids")

    def __init__(self, batch: pa.RecordBatch, venue: str, symbol: str) -> None:
        ts = batch.column("ts_event").to_numpy().view(np.int64)
        super().__init__(venue, symbol, ts.tolist(), batch.column("price").to_numpy().tolist(),
                         batch.column("size").to_numpy().tolist(),
                         batch.column("seq").to_numpy().tolist())
        self._batch = batch
        self._schema: TypeSchema = schema_for(Trade)
        self._events: list[Any] | None = None
        self._recv = batch.column("ts_recv").to_numpy().view(np.int64)
        # stored by name ('buy'/'sell'/null; an older part: the int code)
        self._aggressor = self._schema.enums["aggressor"].decode(batch.column("aggressor"))
        self._ids = batch.column("trade_id")

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

    def events(self) -> list[Any]:
        """Every row as a Trade (built once, in bulk)."""
        if self._events is None:
            self._events = self._schema.from_table(self._batch)
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
        # one row: the same values from_table would give it
        return Trade(ts_event=self.ts[i], ts_recv=int(self._recv[i]), seq=self.seq[i],
                     venue=self.venue, symbol=self.symbol, price=self.price[i],
                     size=self.size[i], aggressor=int(self._aggressor[i]),
                     trade_id=self._ids[i].as_py())

    def __iter__(self) -> Iterator[Trade]:
        return iter(self.events())
