"""Checking a data directory by reading all of it back: `check_store`.

Reads the manifest (`store.json`), every Parquet part in full (each page against
its checksum, each row decoded into its event, rows sorted by (ts_event, seq) and
on their partition's date) and every journal segment (magic, frame checksums,
each frame's seq), then checks the sequence itself: every seq from 1 to the last
one is in exactly one place, Parquet up to the manifest's `rolled_seq` and the
journal after it.

What it finds is a list of `Finding`s, one line each. A *damage* is something no
start repairs: a part that cannot be read, a seq missing or held twice, a journal
segment damaged before its end. A *note* is something the next start of the
daemon handles as designed (a torn journal tail from a crash, an interrupted roll
or import, a segment already rolled but not yet deleted).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from events.codec import decode
from events.faults import DataFault
from events.registry import BY_NAME
from events.schema import schema_by_name
from events.segments import (
    HEADER_SIZE,
    MAGIC,
    _frames,
    frames_after,
    list_segments,
    zeros_from,
)
from events.store import NS_PER_DAY, Manifest, list_parts, read_manifest
from replay.reader import day_start_ns
from replay.runs import StoreError, open_part, ts_column

MAX_RANGES = 5  # missing seq ranges named in the one line about them


@dataclass(frozen=True, slots=True)
class Finding:
    path: Path
    message: str
    damage: bool = True

    def line(self) -> str:
        return f"{'damaged' if self.damage else 'note'}: {self.path}: {self.message}"


@dataclass(slots=True)
class Report:
    root: Path
    findings: list[Finding] = field(default_factory=list)
    parts: int = 0
    rows: int = 0
    segments: int = 0
    frames: int = 0

    @property
    def damaged(self) -> list[Finding]:
        return [f for f in self.findings if f.damage]

    def add(self, path: Path, message: str, damage: bool = True) -> None:
        self.findings.append(Finding(path, " ".join(message.split()), damage))

    def summary(self) -> str:
        state = f"{len(self.damaged)} damaged" if self.damaged else "clean"
        return (f"{self.root}: {state} ({self.parts} parts, {self.rows} rows; "
                f"{self.segments} journal segments, {self.frames} frames)")


class _Seqs:
    """Which seqs were seen, one byte per seq (the store's seqs are dense)."""

    def __init__(self, expected_last: int) -> None:
        self.limit = 2 * expected_last + 10_000_000  # a seq beyond it is itself damage
        self.seen = np.zeros(expected_last + 2, dtype=np.uint8)

    def add(self, seqs: np.ndarray) -> tuple[int, int]:
        """Mark `seqs`; returns (how many were already marked, one of them)."""
        if not len(seqs):
            return 0, 0
        top = int(seqs.max())
        if top >= len(self.seen):
            grown = np.zeros(max(top + 1, 2 * len(self.seen)), dtype=np.uint8)
            grown[: len(self.seen)] = self.seen
            self.seen = grown
        before = self.seen[seqs]
        self.seen[seqs] = 1
        twice = np.flatnonzero(before)
        return len(twice), int(seqs[twice[0]]) if len(twice) else 0

    def missing(self, last: int) -> list[tuple[int, int]]:
        """Ranges (first, last) of seqs in 1..last never marked."""
        holes = np.flatnonzero(self.seen[1 : last + 1] == 0) + 1
        if not len(holes):
            return []
        breaks = np.flatnonzero(np.diff(holes) != 1)
        starts = np.concatenate(([holes[0]], holes[breaks + 1]))
        ends = np.concatenate((holes[breaks], [holes[-1]]))
        return list(zip(starts.tolist(), ends.tolist(), strict=True))


def check_store(root: Path | str) -> Report:
    """Read every part, the journal and the manifest of `root` (see the module doc)."""
    root = Path(root)
    report = Report(root)
    manifest = _check_manifest(root, report)
    rolled = manifest.rolled_seq if manifest is not None else 0
    pending_from = _pending_from(manifest)
    segments = list_segments(root / "journal")
    journal_last = max((first for first, _ in segments), default=0)
    seqs = _Seqs(max(rolled, journal_last))
    part_last = _check_parts(root / "events", report, seqs, rolled, pending_from)
    last = _check_journal(segments, report, seqs, rolled)
    if manifest is not None:
        _check_sequence(root, report, seqs, rolled, max(last, part_last, rolled),
                        unreadable=bool(report.damaged))
    return report


def _check_manifest(root: Path, report: Report) -> Manifest | None:
    try:
        manifest = read_manifest(root)
    except DataFault as exc:
        report.add(root / "store.json", str(exc).removeprefix(f"{root / 'store.json'}: "))
        return None
    if manifest.pending is not None:
        report.add(root / "store.json", f"an interrupted {manifest.pending.get('op', 'operation')}"
                   f" (parts numbered from {manifest.pending.get('first_part')} on are"
                   " removed at the next start)", damage=False)
    return manifest


def _pending_from(manifest: Manifest | None) -> int | None:
    if manifest is None or manifest.pending is None:
        return None
    first = manifest.pending.get("first_part")
    return first if isinstance(first, int) else None


def _check_parts(events_dir: Path, report: Report, seqs: _Seqs, rolled: int,
                 pending_from: int | None) -> int:
    """Every part, read in full; returns the highest seq found in Parquet."""
    _check_tree(events_dir, report)
    top = 0
    for part in list_parts(events_dir):
        if part.type not in BY_NAME or (pending_from is not None and part.number >= pending_from):
            continue
        report.parts += 1
        found = _check_part(part.path, part.type, day_start_ns(part.date), report)
        if found is None:
            continue
        if len(found) and int(found.max()) > seqs.limit:
            report.add(part.path, f"holds seq {int(found.max())}, far beyond the store's last")
            continue
        twice, example = seqs.add(found)
        if twice:
            report.add(part.path, f"{twice} of its seqs are also in another part (seq {example})")
        beyond = int(found.max()) if len(found) else 0
        top = max(top, beyond)
        if beyond > rolled:
            report.add(part.path, f"holds seq {beyond}, beyond the manifest's rolled_seq "
                       f"{rolled}: the next start would number new events from {rolled + 1}")
    return top


def _check_tree(events_dir: Path, report: Report) -> None:
    """Directories the reader cannot place (a bad date, an unknown type)."""
    from datetime import date

    try:
        days = list(os.scandir(events_dir))
    except FileNotFoundError:
        return
    for day in days:
        if not day.is_dir() or not day.name.startswith("date="):
            continue
        try:
            date.fromisoformat(day.name[5:])
        except ValueError:
            report.add(Path(day.path), "not a date=YYYY-MM-DD partition (its parts are not read)")
            continue
        for tdir in os.scandir(day.path):
            if tdir.is_dir() and tdir.name.startswith("type=") and tdir.name[5:] not in BY_NAME:
                report.add(Path(tdir.path), f"unknown event type {tdir.name[5:]!r}")


def _check_part(path: Path, type_name: str, day_first: int, report: Report
                ) -> np.ndarray | None:
    """Read one part in full; its seqs, or None when it cannot be read."""
    schema = schema_by_name(type_name)
    found: list[np.ndarray] = []
    last = (-(2**63), -1)
    try:
        for run in open_part(path, schema, batch_rows=65_536):
            for batch in run.batches:
                schema.from_table(batch)  # every value decodes into its event
                ts = ts_column(batch)
                seq = batch.column("seq").to_numpy().astype(np.int64, copy=False)
                if not len(ts):
                    continue
                if (ts < day_first).any() or (ts >= day_first + NS_PER_DAY).any():
                    report.add(path, "holds rows of another date than its partition")
                    return None
                keys_sorted = (np.diff(ts) >= 0).all() and not (
                    (np.diff(ts) == 0) & (np.diff(seq) <= 0)).any()
                if not keys_sorted or (int(ts[0]), int(seq[0])) <= last:
                    report.add(path, "rows are not sorted by (ts_event, seq)")
                    return None
                last = (int(ts[-1]), int(seq[-1]))
                found.append(seq)
                report.rows += len(seq)
    except StoreError as exc:
        report.add(path, str(exc).removeprefix(f"{path}: "))
        return None
    except (ValueError, TypeError, ArithmeticError, pa.ArrowException) as exc:
        report.add(path, f"rows cannot be decoded into {type_name} events ({exc!r})")
        return None
    out = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    if len(np.unique(out)) != len(out):
        report.add(path, "holds a seq twice")
        return None
    return out


def _check_journal(segments: Iterable[tuple[int, Path]], report: Report, seqs: _Seqs,
                   rolled: int) -> int:
    """Every segment, frame by frame; returns the highest seq in the journal."""
    last = 0
    for first_seq, path in segments:
        report.segments += 1
        data = path.read_bytes()
        if data[: len(MAGIC)] != MAGIC:
            if len(data) < len(MAGIC) and MAGIC.startswith(data):
                report.add(path, "an empty segment cut short (the next start drops it)",
                           damage=False)
            else:
                _damaged_segment(path, 0, report, "its magic is damaged")
            continue
        good = len(MAGIC)
        found: list[int] = []
        for i, (body, stop) in enumerate(_frames(data, len(MAGIC))):
            seq = decode(data[body:stop]).seq
            if seq != first_seq + i:
                report.add(path, f"frame {i} at byte {body - HEADER_SIZE} holds seq {seq}, "
                           f"not {first_seq + i}")
                good = len(data)  # reported: no torn tail to look for
                break
            found.append(seq)
            good = stop
        report.frames += len(found)
        if good != len(data) and not zeros_from(data, good):  # zeros: preallocated, unwritten
            _damaged_segment(path, good, report, "")
        live = np.array([s for s in found if s > rolled], dtype=np.int64)
        if len(live) < len(found):
            report.add(path, f"{len(found) - len(live)} frames already rolled into Parquet "
                       "(the next start deletes the segment once rolled)", damage=False)
        twice, example = seqs.add(live)
        if twice:
            report.add(path, f"{twice} of its seqs are also in a part or another segment "
                       f"(seq {example})")
        if found:
            last = max(last, found[-1])
    return last


def _damaged_segment(path: Path, at: int, report: Report, what: str) -> None:
    """A segment bad from byte `at`: a torn tail, or damage when whole frames follow."""
    after = frames_after(path, at)
    size = path.stat().st_size
    if after:
        first, last = after[0][1].seq, after[-1][1].seq
        report.add(path, f"{what or 'a damaged frame'} at byte {at}, followed by {len(after)}"
                   f" whole frames (seq {first}..{last}) that truncating would lose")
    elif what:
        report.add(path, what)
    else:
        report.add(path, f"a torn tail: {size - at} bytes after the last whole frame at byte "
                   f"{at} (the next start truncates it)", damage=False)


def _check_sequence(root: Path, report: Report, seqs: _Seqs, rolled: int, last: int,
                    unreadable: bool) -> None:
    """Every seq from 1 to the last is somewhere: one line for all that are not."""
    holes = seqs.missing(last)
    if not holes:
        return
    count = sum(end - first + 1 for first, end in holes)
    shown = ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in holes[:MAX_RANGES])
    more = f" and {len(holes) - MAX_RANGES} more ranges" if len(holes) > MAX_RANGES else ""
    where = ("Parquet" if holes[-1][1] <= rolled else "the journal" if holes[0][0] > rolled
             else "Parquet and the journal")
    why = ("some in the damaged files above, maybe all" if unreadable
           else "a part or a segment was lost")
    report.add(root, f"{count} seqs missing from {where} ({shown}{more}): {why}")
