"""Raw Binance recordings: `<local receive ns> <combined-stream JSON>` per line,
plain or gzip. A line without a stream envelope is a REST depth snapshot (the
recorder fetched it to sync the book). A USD-M `markPrice` line that passes the
funding time also gives the settled `FundingRate` (adapters.binance.parse)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec

from adapters.binance.parse import StreamParser, parse_depth_snapshot
from events.base import Event


def open_recording(path: Path):  # noqa: ANN201 - a binary file object
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_recording(path: Path, venue: str, symbol: str) -> Iterator[tuple[int, Event]]:
    """(line number, event) for every market event in a recording, in file
    order; `ts_recv` is the recorder's local time. Unknown streams are skipped;
    a malformed line or damaged compressed data raises ValueError naming the file and
    the line."""
    parser = StreamParser(venue)
    lineno = 0
    with open_recording(Path(path)) as f:
        try:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                stamp, _, body = line.partition(b" ")
                try:
                    ts_recv = int(stamp)
                    if body.startswith(b'{"stream"'):
                        events = parser.parse_events(body, ts_recv)
                    else:
                        events = [parse_depth_snapshot(body, venue, ts_recv, symbol)]
                except (ValueError, msgspec.DecodeError) as exc:
                    raise ValueError(
                        f"{path}:{lineno}: not a Binance recording line ({exc})") from None
                for event in events:
                    yield lineno, event
        except (zlib.error, EOFError, gzip.BadGzipFile) as exc:
            # zlib's own error is neither OSError nor ValueError: name the file here
            raise ValueError(f"{path}: damaged compressed data after line {lineno} "
                             f"({type(exc).__name__}: {exc})") from None
