"""The event store: a data directory holding the journal and its Parquet segments.

    DATA/LOCK                                   single-writer flock (events.lock)
    DATA/store.json                             manifest: rolled_seq, next_part, pending op
    DATA/journal/seg-<first seq>.tlj            frames not yet rolled (events.journal)
    DATA/events/date=YYYY-MM-DD/type=<T>/part-NNNNN.parquet

Parquet parts are Hive-partitioned so pyarrow.dataset, DuckDB and Polars read
them directly; one schema per event type, zstd, each part sorted by
(ts_event, seq); `date` is the UTC date of `ts_event`. Read one type at a
time: a dataset over the whole of events/ takes one file's schema for every
type. `dataset(DATA, "Trade")` is that one type, with its own schema
(docs/store-recipes.md shows it from pyarrow, DuckDB and Polars).

Every seq in the store is unique: Parquet holds seqs up to `rolled_seq`, the
journal holds the ones after. Part numbers come from one counter in the
manifest, so an interrupted roll or import is undone exactly: the manifest
records the operation and its first part number before any part is written,
and recovery deletes parts numbered from there on, then redoes the roll (an
interrupted import is dropped whole; the source file is still there).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from events.base import Event, event_type_name
from events.client_ids import new_client_id_prefix
from events.faults import ManifestError
from events.journal import Journal, JournalPolicy
from events.lock import DirLock, StoreLocked
from events.schema import int64_view, schema_by_name, schema_for
from events.segments import ScanResult, _fsync_dir, read_segment

if TYPE_CHECKING:
    import pyarrow.dataset as ds

log = structlog.get_logger("tapeloop.store")

NS_PER_DAY = 86_400 * 1_000_000_000
ROW_GROUP_ROWS = 65_536
DICTIONARY_BYTES = 64 * 1024


def column_encodings(schema: pa.Schema) -> dict[str, object]:
    """How a part's columns are encoded (each page then zstd'd): integers and
    times as deltas; the rest as a dictionary of at most `DICTIONARY_BYTES` per row
    group, past which Parquet writes the column's pages plain.

    Parquet's default dictionary-encodes every column with up to 1 MB of
    dictionary per row group. A column of nearly unique values (`ts_event`,
    `ts_recv`, `seq`, a venue's trade ids) then carries a dictionary about as large
    as its data, which a reader decodes and keeps while it reads that row group:
    ~5 MB per open part for a day of trades, whatever the batch, so a portfolio's
    replay, which holds one part per instrument open side by side, grew by that
    much per instrument. Deltas of sorted times are a few bits each: a day of
    trades is a third the size and reads as fast, with a reader holding ~1.5 MB
    per open part, its batch included. Columns of a few values (venue, symbol,
    side, a tick-sized price) keep their dictionary."""
    deltas = {f.name: "DELTA_BINARY_PACKED" for f in schema
              if pa.types.is_integer(f.type) or pa.types.is_timestamp(f.type)}
    dictionary = [f.name for f in schema if f.name not in deltas]
    return {"use_dictionary": dictionary, "column_encoding": deltas,
            "dictionary_pagesize_limit": DICTIONARY_BYTES}


PART_RE = re.compile(r"^part-(\d+)\.parquet$")

__all__ = ["EventStore", "Part", "StoreLocked", "dataset", "list_parts"]


class Manifest(msgspec.Struct, kw_only=True):
    rolled_seq: int = 0  # every seq <= this is in Parquet
    next_part: int = 0
    pending: dict[str, str | int] | None = None  # {"op": "roll"|"import", "first_part": n}
    # source fingerprint -> [first seq, last seq] of the import that wrote it, so
    # importing the same file again is recognised instead of doubling its rows
    imports: dict[str, list[int]] = {}
    # Starts every client order id this data directory's daemon sends (random, made
    # once, when a daemon first runs on it, and never changed), so two data directories
    # trading one account never send the same id: a look-up by client order id can
    # only find our own order. Lower-case letters and digits (events.client_ids).
    client_id_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Part:
    date: date
    type: str
    number: int
    path: Path


def _date_of(ns: int) -> date:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).date()


def list_parts(events_dir: Path, *, types: Iterable[str] | None = None,
               date_from: date | None = None, date_to: date | None = None) -> list[Part]:
    """Every committed part file, sorted by (date, type, number)."""
    wanted = set(types) if types is not None else None
    out: list[Part] = []
    try:
        date_dirs = list(os.scandir(events_dir))
    except FileNotFoundError:
        return []
    for ddir in date_dirs:
        if not ddir.name.startswith("date=") or not ddir.is_dir():
            continue
        try:
            d = date.fromisoformat(ddir.name[5:])
        except ValueError:
            continue
        if (date_from and d < date_from) or (date_to and d > date_to):
            continue
        for tdir in os.scandir(ddir.path):
            if not tdir.name.startswith("type=") or not tdir.is_dir():
                continue
            tname = tdir.name[5:]
            if wanted is not None and tname not in wanted:
                continue
            for f in os.scandir(tdir.path):
                m = PART_RE.match(f.name)
                if m:
                    out.append(Part(d, tname, int(m.group(1)), Path(f.path)))
    out.sort(key=lambda p: (p.date, p.type, p.number))
    return out


def dataset(data: Path | str, type_name: str) -> ds.Dataset:
    """A pyarrow dataset of one event type's committed parts in the data
    directory `data`, with that type's schema and the hive partition `date`
    (date32) as a column; rows in no particular order (each part is sorted by
    ts_event, seq). Parts written before a column was stored by name (a
    trade's aggressor as 1/2) are read converted. Unknown type: ValueError."""
    import pyarrow.dataset as ds  # only here: the daemon never needs it

    from events.registry import type_by_name

    try:
        sch = schema_for(type_by_name(type_name))
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    events_dir = Path(data) / "events"
    schema = sch.schema.append(pa.field("date", pa.date32()))
    partitioning = ds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")
    current: list[str] = []
    older: list[pa.Table] = []
    for part in list_parts(events_dir, types=[type_name]):
        file_schema = pq.read_schema(part.path)
        if any(pa.types.is_integer(file_schema.field(f).type) for f in sch.enums
               if f in file_schema.names):
            # stored as codes: converted through the reader's own schema evolution
            table = sch.conform(pq.read_table(part.path))
            older.append(table.append_column(
                "date", pa.repeat(pa.scalar(part.date, pa.date32()), table.num_rows)))
        else:
            current.append(str(part.path))
    files = ds.dataset(current, schema=schema, format="parquet", partitioning=partitioning,
                       partition_base_dir=str(events_dir))
    if not older:
        return files
    return ds.dataset([files, ds.InMemoryDataset(pa.concat_tables(older), schema=schema)])


def _atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)


class EventStore:
    """A data directory opened for writing (holding its lock)."""

    def __init__(self, root: Path, lock: DirLock | None, *, durable: bool = True) -> None:
        self.root = Path(root)
        # False for a replay's run directory: derived data, re-made by running the
        # replay again, so its parts and manifest are written without fsync (the
        # renames keep every file whole; a power cut may lose the run, not damage
        # a recorded store). The SPY week's run made 63 fsyncs.
        self.durable = durable
        self.events_dir = self.root / "events"
        self.journal_dir = self.root / "journal"
        self.manifest_path = self.root / "store.json"
        self._lock = lock
        self.manifest = self._load_manifest()
        self.journal_scans: list[ScanResult] = []

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open_writer(cls, root: Path | str, *, roll: bool = True,
                    durable: bool = True) -> EventStore:
        """Lock `root`, undo any interrupted roll/import, recover the journal and
        (with `roll`) roll every journal segment left by earlier runs into Parquet.

        Raises StoreLocked when another process holds the directory.
        """
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        lock = DirLock(root)
        lock.acquire()
        try:
            store = cls(root, lock, durable=durable)
            store._recover(roll=roll)
        except BaseException:
            lock.release()
            raise
        return store

    @classmethod
    def attach_for_lock_holder(cls, root: Path) -> EventStore:
        """Open `root` without locking, for a child process working on behalf of
        the lock holder (see events.roll). Never call it from anywhere else."""
        return cls(Path(root), None)

    def reload_manifest(self) -> None:
        """Re-read the manifest after a child process changed it."""
        self.manifest = self._load_manifest()

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_manifest(self) -> Manifest:
        try:
            raw = self.manifest_path.read_bytes()
        except FileNotFoundError:
            return Manifest()
        return _decode_manifest(self.manifest_path, raw)

    def _save_manifest(self) -> None:
        _atomic_write(self.manifest_path, msgspec.json.encode(self.manifest), self.durable)

    def _recover(self, *, roll: bool) -> None:
        if self.manifest.pending is not None:
            op, removed = self.abort_pending()
            log.warning("store.undo_interrupted", op=op, parts_removed=removed)
        self._remove_temp_files()
        from events.journal import recover

        self.journal_dir.mkdir(parents=True, exist_ok=True)
        self.journal_scans = recover(self.journal_dir, durable=self.durable)
        if roll:
            for scan in self.journal_scans:
                self.roll_segment(scan.path)
            self.journal_scans = []

    def abort_pending(self) -> tuple[str, int]:
        """Undo the roll or import in progress: delete the parts it wrote.
        Returns (operation, parts removed)."""
        pending = self.manifest.pending
        if pending is None:
            return "", 0
        first = int(pending["first_part"])
        removed = 0
        for part in list_parts(self.events_dir):
            if part.number >= first:
                part.path.unlink()
                removed += 1
        self.manifest.pending = None
        self.manifest.next_part = first
        self._save_manifest()
        self._remove_temp_files()
        return str(pending.get("op", "")), removed

    def _remove_temp_files(self) -> None:
        if not self.events_dir.exists():
            return
        for dirpath, _dirs, files in os.walk(self.events_dir):
            for name in files:
                if name.endswith(".tmp"):
                    os.unlink(os.path.join(dirpath, name))

    def client_id_prefix(self) -> str:
        """This data directory's client-order-id prefix, made (and saved) on first use."""
        if not self.manifest.client_id_prefix:
            self.manifest.client_id_prefix = new_client_id_prefix()
            self._save_manifest()
        return self.manifest.client_id_prefix

    # -- sequence --------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The highest seq in the store (Parquet or journal)."""
        journal_last = max((s.last_seq for s in self.journal_scans), default=0)
        return max(self.manifest.rolled_seq, journal_last)

    def open_journal(self, policy: JournalPolicy | None = None) -> Journal:
        """A journal writer continuing the store's sequence."""
        journal = Journal(self.journal_dir, next_seq=self.last_seq + 1, policy=policy,
                          durable=self.durable)
        return journal

    # -- writing Parquet ---------------------------------------------------------------

    def _begin(self, op: str) -> None:
        self.manifest.pending = {"op": op, "first_part": self.manifest.next_part}
        self._save_manifest()

    def imported(self, source: str) -> tuple[int, int] | None:
        """The seq range an earlier import of `source` (a fingerprint) wrote."""
        found = self.manifest.imports.get(source)
        return (found[0], found[1]) if found else None

    def _commit(self, rolled_seq: int) -> None:
        self.manifest.rolled_seq = max(self.manifest.rolled_seq, rolled_seq)
        self.manifest.pending = None
        self._save_manifest()

    def _write_part(self, type_name: str, day: date, table: pa.Table,
                    later: list[Callable[[], Path]] | None = None) -> Path:
        """Write `table` as the next part of `type_name` on `day`. With `later`,
        the part's number and directory are taken now and the writing is
        appended to `later` for the caller to run (parts are independent files:
        a roll writes its many small ones on two threads)."""
        number = self.manifest.next_part
        self.manifest.next_part += 1
        pdir = self.events_dir / f"date={day.isoformat()}" / f"type={type_name}"
        pdir.mkdir(parents=True, exist_ok=True)
        path = pdir / f"part-{number:05d}.parquet"
        tmp = pdir / f".part-{number:05d}.parquet.tmp"

        def write() -> Path:
            # Page checksums: without them a flipped bit in a part decodes silently
            # into another price or quantity; with them every reader can tell.
            with pq.ParquetWriter(tmp, table.schema, compression="zstd",
                                  write_page_checksum=True,
                                  **column_encodings(table.schema)) as writer:
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            if self.durable:
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
            if self.durable:
                _fsync_dir(pdir)
            return path

        if later is None:
            return write()
        later.append(write)
        return path

    def _write_sorted(self, type_name: str, table: pa.Table,
                      later: list[Callable[[], Path]] | None = None) -> list[Path]:
        """Split `table` by UTC date of ts_event, sort each day by (ts_event, seq)
        and write one part per day."""
        if table.num_rows == 0:
            return []
        ts = int64_view(table.column("ts_event"))  # not cast: it imports pyarrow.compute
        seq = table.column("seq").to_numpy()
        order = np.lexsort((seq, ts))
        if not (order == np.arange(len(order))).all():
            table = table.take(pa.array(order))
            ts = ts[order]
        days = ts // NS_PER_DAY
        paths = []
        bounds = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(days)]))
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            day = _date_of(int(ts[a]))
            paths.append(self._write_part(type_name, day, table.slice(a, b - a), later))
        return paths

    def roll_segment(self, segment: Path, chunk_events: int = 100_000) -> int:
        """Move one closed journal segment into Parquet, then delete it.
        Returns the number of events rolled. Memory stays bounded: every
        `chunk_events` events are written as parts of their own (a type may get
        several sorted parts per day; the reader merges them)."""
        by_type: dict[type[Event], list[Event]] = defaultdict(list)
        last_seq = 0
        count = pending = 0
        begun = False
        for event in read_segment(segment):
            if event.seq <= self.manifest.rolled_seq:
                continue  # already rolled before a crash deleted the segment
            by_type[type(event)].append(event)
            last_seq = event.seq
            count += 1
            pending += 1
            if pending >= chunk_events:
                begun = self._write_chunk(by_type, begun)
                pending = 0
        if pending:
            begun = self._write_chunk(by_type, begun)
        if begun:
            self._commit(last_seq)
        segment.unlink(missing_ok=True)  # a roller killed after its commit unlinked it
        if self.durable:
            _fsync_dir(segment.parent)
        log.info("store.segment_rolled", segment=segment.name, events=count,
                 rolled_seq=self.manifest.rolled_seq)
        return count

    def _write_chunk(self, by_type: dict[type[Event], list[Event]], begun: bool) -> bool:
        if not begun:
            self._begin("roll")
        writes: list[Callable[[], Path]] = []
        for cls, events in by_type.items():
            self._write_sorted(event_type_name(cls), schema_for(cls).to_table(events), writes)
        by_type.clear()
        _run_all(writes)
        return True

    def append_tables(self, type_name: str, tables: Iterable[pa.Table],
                      sources: Iterable[str] = ()) -> int:
        """Import tables of one event type (every schema column; `seq` is
        assigned here, in ts_event order within each table). Returns rows
        written. `sources` (fingerprints of the input files) are recorded with
        the import's seq range, atomically with it. The journal must be empty
        (open_writer rolls it)."""
        if self.journal_scans:
            raise RuntimeError("append_tables needs a rolled journal")
        sch = schema_by_name(type_name)
        self._begin("import")
        total = 0
        try:
            for table in tables:
                if table.num_rows == 0:
                    continue
                ts = table.column("ts_event").cast(pa.int64())
                import pyarrow.compute as pc  # only an import needs it (start-up cost)

                order = pc.sort_indices(ts, options=pc.SortOptions([("", "ascending")]))  # stable
                table = table.take(order)
                first = self.manifest.rolled_seq + total + 1
                seqs = pa.array(np.arange(first, first + table.num_rows, dtype=np.int64))
                if "seq" in table.column_names:
                    table = table.set_column(table.column_names.index("seq"), "seq", seqs)
                else:
                    table = table.append_column("seq", seqs)
                self._write_sorted(type_name, sch.conform(table))
                total += table.num_rows
        except BaseException:
            # leave `pending` set: the next open removes the partial import
            raise
        first = self.manifest.rolled_seq + 1
        for source in sources:
            self.manifest.imports[source] = [first, first + total - 1]
        self._commit(self.manifest.rolled_seq + total)
        return total


def iter_part_events(part: Part, batch_rows: int = ROW_GROUP_ROWS) -> Iterator[list[Event]]:
    """A part's events in stored order, batch by batch."""
    sch = schema_by_name(part.type)
    pf = pq.ParquetFile(part.path, page_checksum_verification=True)
    for batch in pf.iter_batches(batch_size=batch_rows):
        yield sch.from_table(batch)


def read_manifest(root: Path) -> Manifest:
    """The store's manifest, read without the lock (a snapshot for decisions
    such as skipping an already imported file); an empty one when there is none.
    Raises ManifestError when it cannot be read."""
    path = Path(root) / "store.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Manifest()
    return _decode_manifest(path, raw)


def _decode_manifest(path: Path, raw: bytes) -> Manifest:
    try:
        return msgspec.json.decode(raw, type=Manifest)
    except msgspec.DecodeError as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from None


def _run_all(writes: list[Callable[[], Path]]) -> None:
    """Run the part writes, on two threads when there are several (Parquet's
    encoder and zstd release the GIL); the first error is raised once all have
    ended, so the roll's parts are all settled before the caller moves on."""
    if len(writes) < 4:
        for write in writes:
            write()
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2, thread_name_prefix="tapeloop-part") as pool:
        futures = [pool.submit(write) for write in writes]
    for future in futures:
        future.result()
