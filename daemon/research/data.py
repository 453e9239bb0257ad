"""What a sweep needs to know of its store before any job runs: the days it holds,
and a fingerprint of the parts of each window (a result is reused only for the same
data). Local directories and object stores (`s3://bucket/prefix`, through
`events.remote`) alike: listing only, no part is read.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import date

from daemon.errors import UserError
from events.registry import MARKET_TYPES

_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, slots=True)
class _Part:
    day: date
    name: str  # relative to the store
    size: int
    mtime_ns: int


class StoreListing:
    """The market-data parts of a store (one listing), by day."""

    def __init__(self, data: str) -> None:
        self.data = data
        self.parts: list[_Part] = []
        self.manifest = ""
        files = _remote(data) if "://" in data else _local(data)
        for rel, (size, mtime_ns) in files.items():
            if rel == "store.json":
                self.manifest = f"{size}:{mtime_ns}"
                continue
            segments = rel.split("/")  # events/date=D/type=T/part-N.parquet
            match = _DATE_DIR.match(segments[1]) if len(segments) == 4 else None
            if match is not None:
                self.parts.append(_Part(date.fromisoformat(match.group(1)), rel, size,
                                        mtime_ns))
        self.parts.sort(key=lambda p: p.name)

    def days(self, date_from: date | None = None, date_to: date | None = None) -> list[date]:
        return sorted({p.day for p in self.parts if _within(p.day, date_from, date_to)})

    def fingerprint(self, date_from: date | None, date_to: date | None) -> str:
        """A hash of the window's parts (name, size, modification time: a mirrored
        part keeps the remote's) and of the manifest."""
        h = hashlib.sha256(self.manifest.encode())
        for p in self.parts:
            if _within(p.day, date_from, date_to):
                h.update(f"{p.name}:{p.size}:{p.mtime_ns}\n".encode())
        return h.hexdigest()[:16]


def _market() -> list[str]:
    return [t.__name__ for t in MARKET_TYPES]


def _remote(url: str) -> dict[str, tuple[int, int]]:
    from events.remote import list_store

    return list_store(url, types=_market())


def _local(data: str) -> dict[str, tuple[int, int]]:
    root = os.path.abspath(data)
    if not os.path.isdir(os.path.join(root, "events")):
        raise UserError(f"--data {data}: no events/ (import or record data first)")
    wanted = {f"type={t}" for t in _market()}
    out: dict[str, tuple[int, int]] = {}
    try:
        st = os.stat(os.path.join(root, "store.json"))
        out["store.json"] = (st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        pass
    for dirpath, _dirs, files in os.walk(os.path.join(root, "events")):
        if os.path.basename(dirpath) not in wanted:
            continue
        for name in files:
            if name.endswith(".parquet") and not name.startswith("."):
                path = os.path.join(dirpath, name)
                st = os.stat(path)
                out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return out


def _within(day: date, lo: date | None, hi: date | None) -> bool:
    return (lo is None or day >= lo) and (hi is None or day <= hi)
