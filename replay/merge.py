"""The k-way merge of sorted runs into one event stream in (ts_event, seq) order.

Each active run buffers one Arrow batch. The watermark is the smallest *last*
key among the buffered batches: no run can later produce a row below it, so
every buffered row at or below it is final. Those rows become events, are
put in order with one `np.lexsort` over the int64 keys when more than one run
contributed, and are emitted. Each step empties at least the batch that set the
watermark, so the merge always progresses and holds at most one batch (plus
one read ahead) per run that overlaps the current time.

Runs not yet reached stay closed (see `replay.runs.DeferredRuns`); the common
case, one part per type per day, runs with no sorting work at all: a single
active run's batches go straight from Arrow to events.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from heapq import heappop, heappush

import numpy as np
import pyarrow as pa

from events.base import Event
from events.columns import TradeBatch, TradeTape
from events.market import Trade
from replay.runs import MIN_TS, DeferredRuns, Run, Source, _int64, ts_column

__all__ = ["MergeStats", "UnsortedRunError", "merge_runs"]

_Prepared = tuple[pa.RecordBatch, np.ndarray, np.ndarray]


class UnsortedRunError(ValueError):
    """A run broke its promise: rows out of (ts_event, seq) order, or below
    its lower bound. Names the run's source."""


@dataclass(slots=True)
class MergeStats:
    """Counters a caller (or a test) can watch; `peak_buffered` counts rows
    received from runs and not yet emitted (read-ahead batches excluded)."""

    runs_opened: int = 0
    rows_in: int = 0
    rows_out: int = 0
    peak_buffered: int = 0


def _pull(batches: Iterator[pa.RecordBatch], source: str) -> _Prepared | None:
    """The next non-empty batch with its key columns as int64 arrays (zero
    copy), checked to be sorted; None at the end. Runs on the read-ahead thread
    when there is one: Parquet decoding there releases the GIL."""
    for batch in batches:
        n = batch.num_rows
        if not n:
            continue
        ts = ts_column(batch)
        seq = _int64(batch.column("seq"))
        if n > 1:
            dts = np.diff(ts)
            if dts.min() < 0 or ((dts == 0) & (np.diff(seq) <= 0)).any():
                raise UnsortedRunError(f"{source}: rows are not sorted by (ts_event, seq)")
        return batch, ts, seq
    return None


# batches read ahead of the merge, shared by the runs open at once (each run
# keeps at least one: a portfolio's day of four parts reads one each)
READ_AHEAD = 3


class _Active:
    """A run being merged: its current batch, read position and last key."""

    __slots__ = (
        "run",
        "it",
        "pool",
        "ahead",
        "batch",
        "ts",
        "seq",
        "pos",
        "n",
        "last_ts",
        "last_seq",
        "depth",
        "columns",
    )

    def __init__(self, run: Run, pool: ThreadPoolExecutor | None) -> None:
        self.run = run
        self.it = iter(run.batches)
        self.pool = pool
        self.ahead: deque[Future[_Prepared | None]] = deque()
        self.depth = READ_AHEAD  # batches in flight: see merge_runs
        self.pos = self.n = 0
        self.last_ts = MIN_TS
        self.last_seq = -1
        self.columns: TradeBatch | None | bool = False  # of `batch`; False: not made yet

    def prime(self) -> None:
        """Start reading the first batches before the merge needs them."""
        if self.pool is not None:
            while len(self.ahead) < self.depth:
                self.ahead.append(self.pool.submit(_pull, self.it, self.run.source))

    def ending(self) -> bool:
        """Whether the read-ahead has already met the end of the run (its last
        batches are buffered or in flight): the time to prime the next source."""
        return self.pool is None or any(
            f.done() and not f.cancelled() and f.exception() is None and f.result() is None
            for f in self.ahead)

    def fill(self, stats: MergeStats) -> bool:
        """Load the next batch; False when the run is exhausted."""
        if self.pool is None:
            item = _pull(self.it, self.run.source)
        else:
            # READ_AHEAD batches in flight: the reading thread needs the GIL a few
            # times per batch and may wait a switch interval (5 ms) for each, so
            # one batch ahead left the loop waiting for it (15% of the SPY loop)
            ahead = self.ahead
            if not ahead:
                self.prime()
            item = ahead.popleft().result()
            if item is None:
                for future in ahead:
                    future.cancel()
                ahead.clear()
            else:
                while len(ahead) < self.depth:
                    ahead.append(self.pool.submit(_pull, self.it, self.run.source))
        if item is None:
            return False
        batch, ts, seq = item
        first_ts, first_seq = int(ts[0]), int(seq[0])
        if first_ts < self.last_ts or (first_ts == self.last_ts and first_seq <= self.last_seq):
            raise UnsortedRunError(f"{self.run.source}: batches are not in (ts_event, seq) order")
        if first_ts < self.run.lower_bound:
            raise UnsortedRunError(
                f"{self.run.source}: ts_event {first_ts} is below the"
                f" run's lower bound {self.run.lower_bound}"
            )
        self.batch, self.ts, self.seq = batch, ts, seq
        self.columns = False
        self.pos, self.n = 0, batch.num_rows
        self.last_ts, self.last_seq = int(ts[-1]), int(seq[-1])
        stats.rows_in += self.n
        buffered = stats.rows_in - stats.rows_out
        if buffered > stats.peak_buffered:
            stats.peak_buffered = buffered
        return True

    def cut(self, w_ts: int, w_seq: int) -> int:
        """End (exclusive) of the buffered rows whose key is <= (w_ts, w_seq)."""
        pos = self.pos
        ts = self.ts[pos:]
        lo = int(np.searchsorted(ts, w_ts, "left"))
        hi = int(np.searchsorted(ts, w_ts, "right"))
        if hi > lo:  # rows at exactly w_ts: their seqs are sorted too
            lo += int(np.searchsorted(self.seq[pos + lo : pos + hi], w_seq, "right"))
        return pos + lo

    def events(self, end: int, lazy: bool = False) -> Sequence[Event]:
        """Rows pos..end as events; with `lazy`, trades of one venue and symbol
        come as a TradeBatch that builds each event only when asked for."""
        pos = self.pos
        whole = pos == 0 and end == self.n
        if lazy and self.run.schema.cls is Trade:
            # one TradeBatch per Arrow batch, sliced: its columns made once
            columns = self.columns
            if columns is False:
                columns = self.columns = TradeBatch.maybe(self.batch)
            if columns is not None:
                assert isinstance(columns, TradeBatch)
                return columns if whole else columns.slice(pos, end)
        batch = self.batch if whole else self.batch.slice(pos, end - pos)
        return self.run.schema.from_table(batch)

    def close(self) -> None:
        close = getattr(self.it, "close", None)
        if close is not None:
            close()


def merge_runs(
    sources: Iterable[Source],
    *,
    batch_rows: int = 65536,
    prefetch: bool = True,
    stats: MergeStats | None = None,
    lazy: bool = False,
) -> Generator[Sequence[Event], None, None]:
    """Every row of every source as events, in global (ts_event, seq) order, in
    lists of at most `batch_rows`. With `prefetch`, each run's next batch is
    read on one background thread while this one builds events. With `lazy`,
    a batch of one run's trades of one venue and symbol comes as a
    `events.columns.TradeBatch` (a sequence that builds events on demand), and
    trades of several runs, each of one instrument, as a `TradeTape`."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, not {batch_rows}")
    stats = stats if stats is not None else MergeStats()
    order = itertools.count()
    pending: list[tuple[int, int, Source]] = []
    for src in sources:
        heappush(pending, (src.lower_bound, next(order), src))
    active: list[_Active] = []
    primed: dict[int, _Active] = {}  # the next source, its first batch read ahead
    pool = ThreadPoolExecutor(1, thread_name_prefix="tapeloop-replay-read") if prefetch else None
    out_ts, out_seq = MIN_TS, -1  # the last key emitted
    try:
        while True:
            lead: _Active | None = None
            for a in active:
                if (
                    lead is None
                    or a.last_ts < lead.last_ts
                    or (a.last_ts == lead.last_ts and a.last_seq < lead.last_seq)
                ):
                    lead = a
            # A source not opened yet may hold rows at or below the watermark:
            # open it first (deferred ones may turn into more sources).
            if pending and (lead is None or pending[0][0] <= lead.last_ts):
                bound, _, src = heappop(pending)
                if isinstance(src, DeferredRuns):
                    for sub in src.open():
                        heappush(pending, (max(sub.lower_bound, bound), next(order), sub))
                else:
                    stats.runs_opened += 1
                    ready: _Active | None = primed.pop(id(src), None)
                    a = ready or _Active(src, pool)
                    for b in (*active, a):
                        b.depth = max(1, READ_AHEAD // (len(active) + 1))
                    if a.fill(stats):
                        active.append(a)
                    else:
                        a.close()
                continue
            if lead is None:
                return
            w_ts, w_seq = lead.last_ts, lead.last_seq
            take: list[tuple[_Active, int]] = []
            for a in active:
                end = a.n if a is lead else a.cut(w_ts, w_seq)
                if end > a.pos:
                    take.append((a, end))
            first = min((int(a.ts[a.pos]), int(a.seq[a.pos])) for a, _ in take)
            if first <= (out_ts, out_seq):
                raise UnsortedRunError(
                    f"row (ts_event={first[0]}, seq={first[1]}) comes after"
                    f" (ts_event={out_ts}, seq={out_seq}), already emitted: a seq appears"
                    " twice, or a run broke its lower bound"
                )
            out = _merged(take, lazy)
            out_ts, out_seq = w_ts, w_seq
            stats.rows_out += len(out)
            for a, end in take:
                a.pos = end
                if end == a.n and not a.fill(stats):
                    active.remove(a)
                    a.close()
            if (lazy and pool is not None and pending and not primed
                    and all(a.ending() for a in active)):
                # Every open run's end is already read: the next source (the next
                # day's part) would otherwise be opened and its first batch read
                # while a replay's loop waits (35-85 ms a day on the SPY week).
                # Only for a replay (lazy): a damaged part ahead is then met a
                # few batches early, where `tapeloop events --limit` must never
                # meet a part it does not reach.
                _prime_next(pending, primed, order, pool)
            if len(out) <= batch_rows or isinstance(out, TradeTape):
                # a tape is not cut: its rows are at most one batch per run
                yield out
            else:
                for i in range(0, len(out), batch_rows):
                    yield out[i : i + batch_rows]
    finally:
        if pool is not None:
            # Let an in-flight read finish before closing the generators it uses.
            pool.shutdown(wait=True, cancel_futures=True)
        for a in [*active, *primed.values()]:
            a.close()


def _prime_next(pending: list[tuple[int, int, Source]], primed: dict[int, _Active],
                order: Iterator[int], pool: ThreadPoolExecutor) -> None:
    """Open the first pending source ahead of time (a deferred one is listed:
    its runs go back to `pending`) and start reading its first batch."""
    bound, _, src = pending[0]
    while isinstance(src, DeferredRuns):  # a day, then its types: list them now
        heappop(pending)
        for sub in src.open():
            heappush(pending, (max(sub.lower_bound, bound), next(order), sub))
        if not pending:
            return
        bound, _, src = pending[0]
    active = _Active(src, pool)
    # every open run's reading has ended: the thread is free (its share is set when it opens)
    active.depth = READ_AHEAD
    active.prime()
    primed[id(src)] = active


def key_order(ts_parts: Sequence[np.ndarray], seq_parts: Sequence[np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
    """The order of the rows of several runs (each sorted by (ts_event, seq)),
    concatenated, by (ts_event, seq): `np.lexsort((seq, ts))` of the
    concatenation, and the sorted ts. Raises `DuplicateSeqError` when two rows
    have the same key.

    Parts of one import or roll hold disjoint ranges of seqs (a portfolio's
    parts of a day, opened in the order they were written): when each run's
    seqs are all below the next run's, rows tied on ts are in run order, so
    one stable sort of the ts (a merge of sorted runs) is the whole order, and
    no two rows can share a seq. Otherwise the two-key sort, and a look for
    equal keys."""
    bounds = [(int(s.min()), int(s.max())) for s in seq_parts if len(s)]
    if all(bounds[i][1] < bounds[i + 1][0] for i in range(len(bounds) - 1)):
        ts = np.concatenate(ts_parts)
        order = np.argsort(ts, kind="stable")
        return order, ts[order]
    ts = np.concatenate(ts_parts)
    seq = np.concatenate(seq_parts)
    order = np.lexsort((seq, ts))
    seq_sorted = seq[order]
    same = seq_sorted[1:] == seq_sorted[:-1]
    if same.any():
        ts_sorted = ts[order]
        same &= ts_sorted[1:] == ts_sorted[:-1]
        if same.any():
            raise DuplicateSeqError(int(seq_sorted[int(np.argmax(same))]))
        return order, ts_sorted
    return order, ts[order]


class DuplicateSeqError(ValueError):
    """Two rows of the runs merged have one key: the seq is `args[0]`."""


def _merged(take: list[tuple[_Active, int]], lazy: bool = False) -> Sequence[Event]:
    """The rows taken from each run, as events in key order."""
    if len(take) == 1:
        a, end = take[0]
        return a.events(end, lazy)
    try:
        perm, ts = key_order([a.ts[a.pos:end] for a, end in take],
                             [a.seq[a.pos:end] for a, end in take])
    except DuplicateSeqError as exc:
        # Seqs are unique store-wide: two runs holding one means a part was
        # written twice, and replaying both would double its events.
        raise UnsortedRunError(
            f"seq {exc.args[0]} appears in more than one run"
            f" ({', '.join(a.run.source for a, _ in take)})"
        ) from None
    events: list[Event] = []
    if lazy and all(a.run.schema.cls is Trade for a, _ in take):
        # several instruments' trades (a portfolio): one tape, events on demand
        parts = [a.events(end, lazy) for a, end in take]
        if all(isinstance(p, TradeBatch) for p in parts):
            tape = TradeTape.merged(parts, perm, ts)  # type: ignore[arg-type]
            if tape is not None:
                return tape
        for p in parts:
            events += p.events() if isinstance(p, TradeBatch) else p
    else:
        for a, end in take:
            events += a.events(end)
    return [events[i] for i in perm.tolist()]  # beats itemgetter and numpy object takes
