"""What a sweep needs to know of its store before any job runs: the days it holds,
and a fingerprint of the parts of each window (a result is reused only for the same
data). Local directories and object stores (`s3://bucket/prefix`) alike, through
pyarrow's filesystems: listing only, no part is read.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import date

from daemon.errors import UserError

_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, slots=True)
class _Part:
    day: date
    name: str  # relative to the store
    size: int
    mtime_ns: int


class StoreListing:
    """The parts of a store (one listing), by day."""

    def __init__(self, data: str) -> None:
        self.data = data
        self.parts: list[_Part] = []
        self.manifest = ""
        self._list()

    def _list(self) -> None:
        import pyarrow.fs as pafs

        if "://" in self.data:
            try:
                fs, root = pafs.FileSystem.from_uri(self.data)
            except (OSError, ValueError) as exc:
                raise UserError(f"--data {self.data}: {exc}") from None
        else:
            fs, root = pafs.LocalFileSystem(), os.path.abspath(self.data)
        events = f"{root.rstrip('/')}/events"
        try:
            infos = fs.get_file_info(pafs.FileSelector(events, recursive=True,
                                                       allow_not_found=True))
            manifest = fs.get_file_info(f"{root.rstrip('/')}/store.json")
        except OSError as exc:
            raise UserError(f"--data {self.data}: cannot list the store ({exc})") from None
        if not infos and manifest.type == pafs.FileType.NotFound:
            raise UserError(f"--data {self.data}: no events/ (import or record data first)")
        if manifest.type == pafs.FileType.File:
            self.manifest = f"{manifest.size}:{manifest.mtime_ns}"
        prefix = len(root.rstrip("/")) + 1
        for info in infos:
            if info.type != pafs.FileType.File or not info.path.endswith(".parquet"):
                continue
            rel = info.path[prefix:]
            parts = rel.split("/")
            match = _DATE_DIR.match(parts[1]) if len(parts) > 2 else None
            if match is None:
                continue
            self.parts.append(_Part(date.fromisoformat(match.group(1)), rel, info.size or 0,
                                    info.mtime_ns or 0))
        self.parts.sort(key=lambda p: p.name)

    def days(self, date_from: date | None = None, date_to: date | None = None) -> list[date]:
        return sorted({p.day for p in self.parts if _within(p.day, date_from, date_to)})

    def fingerprint(self, date_from: date | None, date_to: date | None) -> str:
        """A hash of the window's parts (name, size, modification time) and the manifest."""
        h = hashlib.sha256(self.manifest.encode())
        for p in self.parts:
            if _within(p.day, date_from, date_to):
                h.update(f"{p.name}:{p.size}:{p.mtime_ns}\n".encode())
        return h.hexdigest()[:16]


def _within(day: date, lo: date | None, hi: date | None) -> bool:
    return (lo is None or day >= lo) and (hi is None or day <= hi)
