"""The merge of several sorted runs (a portfolio's parts of a day): `key_order`,
its fast path for runs of disjoint seq ranges against the plain reference
(`np.lexsort` of the concatenation), duplicates named loudly, and the batches
`merge_runs` emits for a replay: every row once, in key order, each tape's
lanes at the rows they name."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.columns import TradeTape
from events.market import Trade
from events.schema import schema_for
from replay.merge import DuplicateSeqError, UnsortedRunError, key_order, merge_runs
from replay.runs import Run
from tests.replay.helpers import DAY0_NS, key, make_event

# one run: its rows' (ts offset, seq), any order (sorted when built); small
# ranges so ties on ts, and equal seqs across runs, are frequent
run_rows = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40)), max_size=12,
                    unique_by=lambda r: r[1])


@st.composite
def runs_of_rows(draw: st.DrawFn) -> list[list[tuple[int, int]]]:
    """Sorted runs: either seqs drawn freely (overlapping, duplicated across
    runs, out of run order) or disjoint ranges in run order (the fast path),
    optionally touching (the last seq of a run the first of the next)."""
    runs = draw(st.lists(run_rows, min_size=1, max_size=5))
    if draw(st.booleans()):
        touching = draw(st.booleans())
        base = 0
        for i, rows in enumerate(runs):
            rows.sort(key=lambda r: r[1])
            rows[:] = [(ts, base + j) for j, (ts, _) in enumerate(rows)]
            base += len(rows) - (1 if touching and rows else 0)
            runs[i] = rows
    return [sorted(rows) for rows in runs]


def _duplicate(runs: list[list[tuple[int, int]]]) -> tuple[int, int] | None:
    every = sorted(r for rows in runs for r in rows)
    return next((a for a, b in zip(every, every[1:], strict=False) if a == b), None)


@settings(max_examples=400, deadline=None)
@given(runs=runs_of_rows())
def test_key_order_is_lexsort_of_the_concatenation(runs) -> None:
    ts_parts = [np.array([t for t, _ in rows], np.int64) for rows in runs]
    seq_parts = [np.array([s for _, s in rows], np.int64) for rows in runs]
    ts, seq = np.concatenate(ts_parts), np.concatenate(seq_parts)
    dup = _duplicate(runs)
    if dup is not None:
        with pytest.raises(DuplicateSeqError) as err:
            key_order(ts_parts, seq_parts)
        assert err.value.args[0] == dup[1]
        return
    order, ts_sorted = key_order(ts_parts, seq_parts)
    reference = np.lexsort((seq, ts))
    assert order.tolist() == reference.tolist()
    assert ts_sorted.tolist() == ts[reference].tolist()


def test_key_order_takes_the_fast_path_only_for_disjoint_ranges_in_order() -> None:
    ts = [np.array([5, 5], np.int64), np.array([5, 5], np.int64)]
    # disjoint, in run order: ties on ts in run order
    order, _ = key_order(ts, [np.array([1, 2], np.int64), np.array([3, 4], np.int64)])
    assert order.tolist() == [0, 1, 2, 3]
    # disjoint, out of run order: the second run's rows first
    order, _ = key_order(ts, [np.array([3, 4], np.int64), np.array([1, 2], np.int64)])
    assert order.tolist() == [2, 3, 0, 1]
    with pytest.raises(DuplicateSeqError):
        key_order(ts, [np.array([1, 2], np.int64), np.array([2, 3], np.int64)])


def _trades(symbol: str, rows: list[tuple[int, int]]) -> list[Trade]:
    return [make_event("Trade", DAY0_NS + t, s, symbol) for t, s in rows]  # type: ignore[misc]


def _run(events: list[Trade], name: str, chunk: int) -> Run:
    """A run as a part reads: venue and symbol dictionary-encoded, its lower
    bound its first row's ts (so runs open as the merge reaches them)."""
    sch = schema_for(Trade)
    table = sch.to_table(events)
    for col in ("venue", "symbol"):
        i = table.schema.get_field_index(col)
        table = table.set_column(i, col, table.column(col).dictionary_encode())

    def batches() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=chunk)

    return Run(sch, batches(), name, events[0].ts_event)


@settings(max_examples=150, deadline=None)
@given(runs=runs_of_rows(), chunk=st.integers(1, 5), prefetch=st.booleans())
def test_a_replays_merge_is_every_row_once_in_key_order(runs, chunk, prefetch) -> None:
    """merge_runs(lazy=True) over one run per instrument: the rows of the runs
    in (ts_event, seq) order, each batch of several instruments a tape whose
    lanes hold each instrument's rows at the tape rows they name; a seq held by
    two runs raises, naming them."""
    runs = [rows for rows in runs if rows]
    if not runs:
        return
    events = [_trades(f"S{i}", rows) for i, rows in enumerate(runs)]
    sources = [_run(evs, f"part-{i}", chunk) for i, evs in enumerate(events)]
    dup = _duplicate(runs)
    if dup is not None:
        with pytest.raises(UnsortedRunError, match=f"seq {dup[1]} appears") as err:
            for _ in merge_runs(sources, lazy=True, prefetch=prefetch):
                pass
        holders = [f"part-{i}" for i, rows in enumerate(runs) if dup in rows]
        assert all(h in str(err.value) for h in holders)
        return
    out = []
    for batch in merge_runs(sources, lazy=True, prefetch=prefetch):
        if isinstance(batch, TradeTape):
            for lane, rows in zip(batch.lanes, batch.rows, strict=True):
                assert [batch.code[i] for i in rows] == [batch.lanes.index(lane)] * len(rows)
                assert [batch.ts[i] for i in rows] == list(lane.ts)
            assert [batch[i] for i in range(len(batch))] == batch.events()
        out += list(batch)
    assert out == sorted((e for evs in events for e in evs), key=key)
