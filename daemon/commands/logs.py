"""`tapeloop logs`: a human view of tapeloop's JSON log lines.

Reads the lines `daemon.logging` writes (from a file, or stdin for `journalctl -o cat
-u tapeloop | tapeloop logs`) and prints each with `daemon.logging.render_console`,
the renderer `tapeloop run` uses on a terminal, so both views read the same
(coloured on a terminal). Lines that are not JSON objects (a crash's traceback, a
stray print) pass through unchanged: hiding what we cannot parse would hide the very
lines someone is looking for. `-f` follows a growing file the way `tail -F` does,
surviving truncation and rotation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from typing import IO

import msgspec

from daemon.errors import UserError
from daemon.logging import render_console

LEVEL_RANK = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "critical": 50}
POLL_S = 0.1  # how often `-f` looks for new data; small enough to feel live
CHUNK = 1 << 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE|-", help="log file (default: stdin)"
    )
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep reading as the file grows"
    )
    parser.add_argument(
        "--level",
        type=str.lower,
        choices=["debug", "info", "warning", "error", "critical"],
        help="show this level and above",
    )
    parser.add_argument(
        "--event",
        action="append",
        metavar="PREFIX",
        help="only events starting with PREFIX (repeatable)",
    )
    parser.add_argument(
        "--strategy", action="append", metavar="ID", help="only lines of this strategy_id"
    )
    parser.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="auto: colour on a terminal unless NO_COLOR is set",
    )


class LineView:
    """Filters and formats one log line at a time."""

    def __init__(
        self,
        *,
        level: str | None = None,
        events: list[str] | None = None,
        strategies: list[str] | None = None,
        colour: bool = False,
    ) -> None:
        self.min_rank = LEVEL_RANK[level] if level else 0
        self.events = tuple(events or ())
        self.strategies = set(strategies or ())
        self.colour = colour
        self._decoder = msgspec.json.Decoder()

    def render(self, line: str) -> str | None:
        """The human form of `line`, `line` itself if it is not JSON, None if filtered out."""
        text = line.strip()
        if not text.startswith("{"):
            return line
        try:
            record = self._decoder.decode(text)
        except msgspec.DecodeError:
            return line
        if not isinstance(record, dict):
            return line
        level = str(record.get("level", "") or "").lower()
        event = str(record.get("event", "") or "")
        # A line with no level we know of is shown: we do not hide what we cannot rank.
        if LEVEL_RANK.get(level, self.min_rank) < self.min_rank:
            return None
        if self.events and not event.startswith(self.events):
            return None
        if self.strategies and str(record.get("strategy_id")) not in self.strategies:
            return None
        return render_console(record, colors=self.colour).rstrip("\n")


def run(args: argparse.Namespace) -> int:
    colour = args.color == "always" or (
        args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    )
    view = LineView(level=args.level, events=args.event, strategies=args.strategy, colour=colour)
    out = sys.stdout
    try:
        chunks = _read_stdin() if args.file == "-" else _read_file(args.file, args.follow)
        pending = b""
        for chunk in chunks:
            if chunk is None:  # the file was rotated or truncated: its last line is done
                _emit(view, [pending] if pending else [], out)
                pending = b""
                continue
            *lines, pending = (pending + chunk).split(b"\n")
            _emit(view, lines, out)
            if len(pending) > 64 * CHUNK:  # a line with no end: show what we have
                _emit(view, [pending], out)
                pending = b""
        if pending:
            _emit(view, [pending], out)
        out.flush()
    except KeyboardInterrupt:
        _quiet_flush(out)
        return 130
    except BrokenPipeError:
        # `tapeloop logs app.log | head`: the reader left. Point stdout at /dev/null so
        # the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
    return 0


def _emit(view: LineView, lines: list[bytes], out: IO[str]) -> None:
    for raw in lines:
        text = view.render(raw.decode("utf-8", errors="replace").removesuffix("\r"))
        if text is not None:
            out.write(text + "\n")
    if lines:
        out.flush()  # followers and pipes see each batch as it arrives


def _quiet_flush(out: IO[str]) -> None:
    try:
        out.flush()
    except (BrokenPipeError, OSError):
        pass


def _read_stdin() -> Iterator[bytes | None]:
    fd = sys.stdin.fileno()
    while chunk := os.read(fd, CHUNK):  # returns what is there: lines show up promptly
        yield chunk


def _read_file(path: str, follow: bool) -> Iterator[bytes | None]:
    """The file's bytes as they come; with `follow`, forever, across truncation/rotation.

    None marks the end of one file's content (rotation, truncation).
    """
    fh = _open(path)
    try:
        while True:
            chunk = fh.read(CHUNK)
            if chunk:
                yield chunk
                continue
            if not follow:
                return
            time.sleep(POLL_S)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue  # rotated away and not yet recreated: the old handle may still grow
            mine = os.fstat(fh.fileno())
            if (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
                # Rotated: finish the old file (the writer may have added a last line),
                # then start the new one from its beginning.
                while rest := fh.read(CHUNK):
                    yield rest
                yield None
                fh.close()
                fh = _open(path)
            elif current.st_size < fh.tell():
                fh.seek(0)  # truncated in place (`> app.log`, copytruncate)
                yield None
    finally:
        fh.close()


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "rb", buffering=0)  # unbuffered: read() returns what is there
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from None
