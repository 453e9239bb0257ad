"""Reading the event store back in time order: `read_events`.

The store is `DATA/events/date=YYYY-MM-DD/type=<T>/part-NNNNN.parquet`, each
part sorted by (ts_event, seq), `date` the UTC date of ts_event, seqs unique
store-wide. Parts of one (date, type) may overlap in time (late data), so they
are merged, never concatenated. This module turns the directory tree into
sources for `replay.merge.merge_runs`, lazily: a date is listed, and a part's
footer read, only when the replay reaches that date.

Parts named in an unfinished store operation (`store.json` `pending`) are
skipped: the writer deletes them on its next start, and their events are still
in the journal.

A part (or partition directory) that cannot be read is a `StoreError` naming it:
recovery and replays refuse to go on without it. A reader that prefers the rest
(`tapeloop events`) passes `on_damaged`, which is told about each one (possibly from
the read-ahead thread) while the reading goes on without it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Generator, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

import msgspec
import pyarrow as pa

from events.base import Event
from events.registry import BY_NAME
from events.schema import TypeSchema, schema_by_name
from replay.merge import MergeStats, UnsortedRunError, merge_runs
from replay.runs import (
    DeferredRuns,
    OnDamaged,
    Run,
    Source,
    StoreError,
    open_part,
    restrict,
    runs_from_events,
    symbol_set,
)

__all__ = [
    "DeferredRuns",
    "MergeStats",
    "OnDamaged",
    "Run",
    "StoreError",
    "UnsortedRunError",
    "day_start_ns",
    "read_events",
    "runs_from_events",
]

# the smallest batch a part of a many-part day is read in (see `_open_day`)
MIN_PART_BATCH_ROWS = 8192

_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_PART_NUMBER = re.compile(r"^part-(\d+)\.parquet$")


def day_start_ns(day: date) -> int:
    """Midnight UTC of `day` in ns since the epoch."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000


def _hidden(name: str) -> bool:
    # A writer's in-progress files; the rename that publishes them is atomic.
    return name.startswith(".") or name.endswith(".tmp")


def read_events(
    data_dir: str | os.PathLike[str],
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    types: Collection[str] | None = None,
    symbols: Collection[str] | None = None,
    batch_rows: int = 65536,
    extra_runs: Iterable[Run] = (),
    prefetch: bool = True,
    stats: MergeStats | None = None,
    lazy: bool = False,
    on_damaged: OnDamaged | None = None,
    journal: bool = False,
) -> Generator[Sequence[Event], None, None]:
    """The store's events from `date_from` to `date_to` (inclusive, UTC dates
    of ts_event), in (ts_event, seq) order, as lists of at most `batch_rows`.

    `types` and `symbols` filter rows before they become events; with a symbol
    filter, types without a `symbol` field are left out. `extra_runs` are
    merged in under the same filters (e.g. the journal's unrolled tail).
    Raises ValueError for an unknown type name or an empty date range, and
    StoreError (a ValueError) for an unreadable store, unless `on_damaged` is
    given: then a damaged part or partition is reported to it and left out (an
    unreadable manifest is still raised: which parts count is unknown).

    With `journal`, the journal's events not rolled yet (a running daemon's
    latest) are merged in, consistently with the parts even while a roll runs:
    the journal is read first, then the manifest; events it says are rolled come
    from Parquet, the others from the journal, and parts a roll writes after that
    are left out (their events are the journal's).
    """
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ValueError(f"date_from {date_from} is after date_to {date_to}")
    if types is not None:
        types = frozenset(types)
        unknown = sorted(t for t in types if t not in BY_NAME)
        if unknown:
            known = ", ".join(sorted(BY_NAME))
            raise ValueError(f"unknown event type {unknown[0]!r} (known: {known})")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, not {batch_rows}")
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data directory")
    wanted_symbols = symbol_set(symbols)
    ts_from = None if date_from is None else day_start_ns(date_from)
    ts_to = None if date_to is None else day_start_ns(date_to + timedelta(days=1))

    sources: list[Source] = []
    tail = _journal_events(root, types, ts_from, ts_to) if journal else []
    manifest = _read_manifest(root)  # after the journal: see the docstring
    skip_from = manifest.first_pending()
    if journal:
        if manifest.exists and (skip_from is None or manifest.next_part < skip_from):
            skip_from = manifest.next_part
        extra_runs = [*runs_from_events(e for e in tail if e.seq > manifest.rolled_seq),
                      *extra_runs]
    events_dir = root / "events"
    for day, path in _date_dirs(events_dir, on_damaged):
        if (date_from is not None and day < date_from) or (date_to is not None and day > date_to):
            continue
        open_day = partial(
            _open_day, path, day_start_ns(day), types, wanted_symbols, batch_rows, skip_from,
            on_damaged,
        )
        sources.append(DeferredRuns(day_start_ns(day), open_day, str(path)))
    for run in extra_runs:
        kept = restrict(run, types=types, symbols=wanted_symbols, ts_from=ts_from, ts_to=ts_to)
        if kept is not None:
            sources.append(kept)
    return merge_runs(sources, batch_rows=batch_rows, prefetch=prefetch, stats=stats, lazy=lazy)


def _date_dirs(events_dir: Path, on_damaged: OnDamaged | None = None
               ) -> list[tuple[date, Path]]:
    try:
        entries = list(os.scandir(events_dir))
    except FileNotFoundError:
        return []  # a data directory nothing has been rolled into yet
    out = []
    for entry in entries:
        if _hidden(entry.name) or not entry.is_dir():
            continue
        m = _DATE_DIR.match(entry.name)
        if m is None and not entry.name.startswith("date="):
            continue
        try:
            if m is None:
                raise ValueError
            day = date.fromisoformat(m.group(1))
        except ValueError:
            _damaged(StoreError(f"{entry.path}: not a date=YYYY-MM-DD partition"), on_damaged)
            continue
        out.append((day, Path(entry.path)))
    out.sort()
    return out


def _open_day(
    path: Path,
    day_start: int,
    types: frozenset[str] | None,
    symbols: pa.Array | None,
    batch_rows: int,
    skip_from: int | None,
    on_damaged: OnDamaged | None = None,
) -> list[Source]:
    """One date partition's parts, each deferred until its footer is needed.
    The parts of a day are merged side by side: each reads batches of its share
    of `batch_rows` (a portfolio's four parts a day hold a batch's worth in
    memory, not four)."""
    sources: list[Source] = []
    parts: list[tuple[os.DirEntry[str], TypeSchema]] = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if _hidden(entry.name) or not entry.is_dir() or not entry.name.startswith("type="):
            continue
        name = entry.name[5:]
        if types is not None and name not in types:
            continue
        if name not in BY_NAME:
            _damaged(StoreError(f"{entry.path}: unknown event type {name!r}"), on_damaged)
            continue
        schema = schema_by_name(name)
        if symbols is not None and "symbol" not in schema.fields:
            continue
        for part in sorted(os.scandir(entry.path), key=lambda e: e.name):
            if _hidden(part.name) or not part.name.endswith(".parquet"):
                continue
            m = _PART_NUMBER.match(part.name)
            if skip_from is not None and m is not None and int(m.group(1)) >= skip_from:
                continue
            parts.append((part, schema))
    share = max(MIN_PART_BATCH_ROWS, batch_rows // max(1, len(parts)))
    for part, schema in parts:
        opener = partial(
            open_part,
            Path(part.path),
            schema,
            batch_rows=min(batch_rows, share),
            symbols=symbols,
            lower_bound=day_start,
            on_damaged=on_damaged,
        )
        sources.append(DeferredRuns(day_start, opener, part.path))
    return sources


def _damaged(error: StoreError, on_damaged: OnDamaged | None) -> None:
    if on_damaged is None:
        raise error
    on_damaged(error)


class _Manifest(msgspec.Struct):
    pending: dict[str, str | int] | None = None
    next_part: int = 0
    rolled_seq: int = 0
    exists: bool = False

    def first_pending(self) -> int | None:
        """First part number of an unfinished roll/import, if any."""
        if self.pending is None:
            return None
        first = self.pending.get("first_part")
        return first if isinstance(first, int) else None


def _read_manifest(root: Path) -> _Manifest:
    try:
        raw = (root / "store.json").read_bytes()
    except FileNotFoundError:
        return _Manifest()
    try:
        manifest = msgspec.json.decode(raw, type=_Manifest)
    except msgspec.DecodeError as exc:
        raise StoreError(f"{root / 'store.json'}: unreadable manifest ({exc})") from None
    manifest.exists = True
    return manifest


def _journal_events(root: Path, types: Collection[str] | None, lo: int | None,
                    hi: int | None) -> list[Event]:
    """Every event in the journal's segments, under the reader's filters."""
    from events.journal import read_journal

    wanted = frozenset(types) if types is not None else None
    kept = []
    for event in read_journal(root / "journal"):
        if wanted is not None and type(event).__name__ not in wanted:
            continue
        if (lo is not None and event.ts_event < lo) or (hi is not None and event.ts_event >= hi):
            continue
        kept.append(event)
    return kept


def journal_tail_runs(
    data_dir: Path | str,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    types: Collection[str] | None = None,
) -> list[Run]:
    """The journal's events not yet rolled into Parquet (a running daemon's
    latest), as runs for `read_events(extra_runs=...)`.

    Only events past the manifest's `rolled_seq` are taken. A roll that
    finishes between this call and the reader reaching that day's parts shows
    its events twice (from the journal and from Parquet), which the merge
    refuses: `read_events(journal=True)` reads both consistently."""
    from events.store import read_manifest

    root = Path(data_dir)
    rolled = read_manifest(root).rolled_seq
    lo = day_start_ns(date_from) if date_from is not None else None
    hi = day_start_ns(date_to + timedelta(days=1)) if date_to is not None else None
    return runs_from_events(e for e in _journal_events(root, types, lo, hi) if e.seq > rolled)
