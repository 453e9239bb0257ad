"""`tapeloop events`: stored events as JSON lines, in (ts_event, seq) order.

    tapeloop events --data DIR [--date D | --from D --to D] [--type T ...]
                    [--symbol S ...] [--limit N]

One JSON object per line (`events.codec.to_json`: "type" first, Decimals as
strings). Reading stops as soon as `--limit` lines are out, so peeking at a
large store is cheap.

A damaged part (or partition) is skipped with one line on stderr naming it, and
everything else is printed; the exit code is then 6 (EXIT_DATA), so a script sees
the output is incomplete even when the damaged part was all it asked for.
`tapeloop store check` lists every damaged file.
"""

from __future__ import annotations

import argparse
import re
from datetime import date
from pathlib import Path

from daemon.errors import EXIT_DATA, UserError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Few enough lines per write to stream, many enough to amortise the syscall.
_CHUNK_ROWS = 16384


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="data directory (the one holding events/)"
    )
    parser.add_argument("--date", metavar="D", help="one UTC date, YYYY-MM-DD")
    parser.add_argument("--from", dest="date_from", metavar="D", help="first UTC date, inclusive")
    parser.add_argument("--to", dest="date_to", metavar="D", help="last UTC date, inclusive")
    parser.add_argument(
        "--type",
        dest="types",
        action="extend",
        nargs="+",
        metavar="T",
        help="only these event types (e.g. Trade Quote)",
    )
    parser.add_argument(
        "--symbol",
        dest="symbols",
        action="extend",
        nargs="+",
        metavar="S",
        help="only events for these symbols (types without one are left out)",
    )
    parser.add_argument("--limit", metavar="N", help="stop after N events")


def _parse_date(option: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        if not _DATE.match(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {text}: not a date (expected YYYY-MM-DD)") from None


def _parse_limit(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        limit = int(text)
    except ValueError:
        limit = -1
    if limit < 0:
        raise UserError(f"--limit {text}: expected a whole number >= 0")
    return limit


def _parse_types(names: list[str] | None) -> list[str] | None:
    if names is None:
        return None
    from events.registry import BY_NAME

    by_lower = {name.lower(): name for name in BY_NAME}
    out = []
    for name in names:
        known = by_lower.get(name.lower())
        if known is None:
            raise UserError(
                f"--type {name}: unknown event type (known: {', '.join(sorted(BY_NAME))})"
            )
        out.append(known)
    return out


def run(args: argparse.Namespace) -> int:
    import sys
    from contextlib import closing

    from events.codec import to_json
    from replay.reader import StoreError, UnsortedRunError, read_events

    root = Path(args.data)
    if not root.is_dir():
        raise UserError(f"--data {args.data}: no such directory")
    if not any((root / name).exists() for name in ("events", "journal", "store.json")):
        raise UserError(f"--data {args.data}: not a tapeloop data directory (no events/)")
    day = _parse_date("--date", args.date)
    date_from = _parse_date("--from", args.date_from)
    date_to = _parse_date("--to", args.date_to)
    if day is not None:
        if date_from is not None or date_to is not None:
            raise UserError(f"--date {args.date}: use either --date or --from/--to, not both")
        date_from = date_to = day
    if date_from is not None and date_to is not None and date_from > date_to:
        raise UserError(f"--from {args.date_from} is after --to {args.date_to}")
    types = _parse_types(args.types)
    limit = _parse_limit(args.limit)
    if limit == 0:
        return 0

    batch_rows = _CHUNK_ROWS if limit is None else min(_CHUNK_ROWS, limit)
    skipped: list[str] = []

    def skip(error: StoreError) -> None:
        # called from the read-ahead thread too: one whole line per write
        skipped.append(str(error))
        sys.stderr.write(f"tapeloop events: skipped a damaged part: {error}\n")
        sys.stderr.flush()

    try:
        batches = read_events(
            root,
            date_from=date_from,
            date_to=date_to,
            types=types,
            symbols=args.symbols,
            batch_rows=batch_rows,
            journal=True,  # a running daemon's latest events are still in its journal
            on_damaged=skip,
        )
    except (StoreError, UnsortedRunError) as exc:  # the store's complaint, naming the file
        raise UserError(str(exc), code=EXIT_DATA) from None
    out = sys.stdout.buffer
    remaining = limit
    try:
        with closing(batches):
            for batch in batches:
                if remaining is not None:
                    batch = batch[:remaining]
                    remaining -= len(batch)
                if batch:
                    out.write(b"\n".join([to_json(e) for e in batch]) + b"\n")
                if remaining == 0:
                    break
    except (StoreError, UnsortedRunError) as exc:
        raise UserError(str(exc), code=EXIT_DATA) from None
    out.flush()
    return EXIT_DATA if skipped else 0
