"""`tapeloop import`: market data files into the event store.

    tapeloop import trades|quotes|bars|funding|marks|binance-stream FILE [FILE ...]
                    --venue V --symbol S
                    [--interval 1m] [--stamp open|close] [column options]
                    [--skip-bad-rows] [--allow-nonpositive-prices] --data DIR

FILE may be a directory (its files, sorted) or a glob. Every file's header is
checked before anything is written; all files then go into the store as one
import, so a file that fails half way (a bad row, damaged data) leaves the
store as it was. With --skip-bad-rows bad rows are left out and counted.

Perpetuals: `funding` reads funding rates (Freqtrade's `*-funding_rate.feather`,
rate in `open`; or a CSV of timestamp, rate) into FundingRate events settled at
each row's time; `marks` reads mark prices (Freqtrade's `*-mark.feather`
candles) into one MarkPrice per row, stamped at the candle OPEN with the mark =
`open`, the mark at that moment. Freqtrade's `*-futures.feather` are bars.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.errors import EXIT_LOCKED, UserError

if TYPE_CHECKING:
    import pyarrow as pa

    from adapters.files import ColumnMap, FileReader, RowPolicy

KINDS = ("trades", "quotes", "bars", "funding", "marks", "binance-stream")
_EVENT_TYPES = {"trades": "Trade", "quotes": "Quote", "bars": "Bar", "funding": "FundingRate",
                "marks": "MarkPrice"}
_KIND_HELP = (
    "what the files hold: trades, quotes, bars (OHLCV; Freqtrade's *-futures.feather "
    "too), funding (funding rates: Freqtrade's *-funding_rate.feather with the rate in "
    "`open`, or a CSV of timestamp, rate; each row is settled at its time), marks (mark "
    "prices: one MarkPrice per row of Freqtrade's *-mark.feather, stamped at the candle "
    "OPEN with mark = `open`, the mark at that moment), binance-stream (a raw Binance "
    "recording, USD-M markPrice streams included)"
)
_STREAM_CHUNK = 100_000

# (ColumnMap field, the kinds it maps, help); the option is --<field>-col
_COLUMN_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("ts", "trades, quotes, bars, funding, marks", "timestamp column"),
    ("price", "trades", "trade price column"),
    ("size", "trades", "trade quantity column"),
    ("side", "trades", "taker side column (buy/sell)"),
    ("maker", "trades", "'buyer is maker' flag column (true means the taker sold)"),
    ("id", "trades", "trade id column"),
    ("open", "bars", "bar open column"),
    ("high", "bars", "bar high column"),
    ("low", "bars", "bar low column"),
    ("close", "bars", "bar close column"),
    ("volume", "bars", "bar volume column"),
    ("bid", "quotes", "best bid price column"),
    ("ask", "quotes", "best ask price column"),
    ("bid_size", "quotes", "best bid size column"),
    ("ask_size", "quotes", "best ask size column"),
    ("rate", "funding", "funding rate column (a fraction: 0.0001 is 0.01 %%)"),
    ("mark", "marks", "mark price column"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help=_KIND_HELP)
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="files, directories or globs to import"
    )
    parser.add_argument("--venue", help="venue name the events carry")
    parser.add_argument("--symbol", help="symbol the events carry")
    parser.add_argument("--data", metavar="DIR", help="data directory (the event store)")
    parser.add_argument("--force", action="store_true",
                        help="import files again even if this store already holds them")
    rows = parser.add_argument_group("bad rows (by default one refuses the import)")
    rows.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="leave out rows that fail a check (malformed, empty, NaN, out of range) "
        "and count them, instead of refusing the import",
    )
    rows.add_argument(
        "--allow-nonpositive-prices",
        action="store_true",
        help="accept prices at or below zero (spreads, some futures)",
    )
    bars = parser.add_argument_group("bars")
    bars.add_argument(
        "--interval",
        help="bar length, e.g. 1m, 5m, 1h, 1d "
        "(inferred from the file's modal spacing when omitted)",
    )
    bars.add_argument(
        "--stamp",
        default="open",
        choices=("open", "close"),
        help="what the file's bar time means (default: open)",
    )
    cols = parser.add_argument_group("column mapping (for files whose header is not recognised)")
    cols.add_argument(
        "--ts-unit",
        choices=("s", "ms", "us", "ns"),
        help="unit of numeric timestamps (default: inferred from magnitude)",
    )
    for field, kinds, text in _COLUMN_OPTIONS:
        cols.add_argument(
            f"--{field.replace('_', '-')}-col",
            dest=f"col_{field}",
            metavar="NAME",
            help=f"{text} ({kinds})",
        )


def run(args: argparse.Namespace) -> int:
    from adapters.files import ColumnMap, InputError

    data = _require(args.data, "--data")
    policy = _policy(args)
    if Path(data).exists() and not Path(data).is_dir():
        raise UserError(f"--data {data}: not a directory")
    paths = expand_paths(args.files)
    columns = ColumnMap(
        ts_unit=args.ts_unit,
        **{field: getattr(args, f"col_{field}") for field, _, _ in _COLUMN_OPTIONS},
    )
    paths, sources = _skip_already_imported(args, paths, Path(data), columns)
    if not paths:
        return 0
    if args.kind == "binance-stream":
        if not columns.is_empty():
            raise UserError("column options do not apply to binance-stream")
        for flag, value in (("--skip-bad-rows", policy.skip_bad_rows),
                            ("--allow-nonpositive-prices", policy.allow_nonpositive_prices)):
            if value:
                raise UserError(f"{flag} does not apply to binance-stream")
        return _run_binance_stream(args, paths, Path(data))
    venue = _require(args.venue, "--venue")
    symbol = _require(args.symbol, "--symbol")
    if args.kind != "bars":
        for opt, value, default in (
            ("--interval", args.interval, None),
            ("--stamp", args.stamp, "open"),
        ):
            if value != default:
                raise UserError(f"{opt} applies to bars only")
    started = time.perf_counter()
    try:
        # Check every header first (and let each file close again: a directory
        # may hold more files than we may keep open), then read them for real.
        for path in paths:
            _open_reader(args, path, venue, symbol, columns, policy)
        readers: list[FileReader] = []

        def tables() -> Iterator[pa.Table]:
            for path in paths:
                reader = _open_reader(args, path, venue, symbol, columns, policy)
                readers.append(reader)
                yield from reader

        event_type = _EVENT_TYPES[args.kind]
        written = _append(Path(data), [(event_type, tables())], sources)[event_type]
    except InputError as exc:
        raise UserError(str(exc)) from None
    for reader in readers:
        print(reader.summary())
    if len(readers) > 1:
        skipped = sum(r.checks.skipped for r in readers)
        print(
            f"total: {written} {event_type} rows from {len(readers)} files "
            f"in {time.perf_counter() - started:.1f} s"
            + (f"; {skipped} bad rows skipped" if skipped else "")
        )
    return 0


def _policy(args: argparse.Namespace) -> RowPolicy:
    from adapters.files import RowPolicy

    return RowPolicy(
        skip_bad_rows=args.skip_bad_rows, allow_nonpositive_prices=args.allow_nonpositive_prices
    )


def _open_reader(
    args: argparse.Namespace,
    path: Path,
    venue: str,
    symbol: str,
    columns: ColumnMap,
    policy: RowPolicy,
) -> FileReader:
    from adapters.files import read_bars, read_funding, read_marks, read_quotes, read_trades

    if args.kind == "trades":
        return read_trades(path, venue, symbol, columns, policy)
    if args.kind == "quotes":
        return read_quotes(path, venue, symbol, columns, policy)
    if args.kind == "funding":
        return read_funding(path, venue, symbol, columns, policy)
    if args.kind == "marks":
        return read_marks(path, venue, symbol, columns, policy)
    return read_bars(path, venue, symbol, args.interval, args.stamp, columns, policy)


def _fingerprint(args: argparse.Namespace, path: Path, columns: ColumnMap) -> str:
    """Identity of one import: the file's bytes and every option that shapes
    the events made from it."""
    digest = hashlib.sha256()
    options: tuple[object, ...] = (
        args.kind, args.venue, args.symbol, args.interval, args.stamp, repr(columns)
    )
    # Allowing non-positive prices admits other rows, so it is another import;
    # skipping bad rows is not (a file either imports the same rows or is
    # refused). Added only when set, so earlier imports keep their identity.
    if args.allow_nonpositive_prices:
        options += ("allow_nonpositive_prices",)
    digest.update(repr(options).encode())
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _skip_already_imported(args: argparse.Namespace, paths: list[Path], data: Path,
                           columns: ColumnMap) -> tuple[list[Path], list[str]]:
    """Drop files this store already imported with the same options (unless
    --force), saying so; returns the remaining paths and their fingerprints."""
    from events.store import read_manifest

    fingerprints = [_fingerprint(args, p, columns) for p in paths]
    if args.force:
        return paths, fingerprints
    done = read_manifest(data).imports
    keep: list[Path] = []
    sources: list[str] = []
    for path, fp in zip(paths, fingerprints, strict=True):
        if fp in done:
            first, last = done[fp]
            print(f"{path}: already imported as seq {first}..{last}; skipped "
                  "(--force imports it again)")
        else:
            keep.append(path)
            sources.append(fp)
    return keep, sources


def _append(data: Path, batches: Iterable[tuple[str, Iterable[pa.Table]]],
            sources: list[str]) -> dict[str, int]:
    """Append each (event type, tables) to the store under its writer lock;
    `sources` are recorded with the last batch.

    If reading fails half way the parts already written are removed at once,
    still under the lock, so no reader of the directory sees part of it."""
    from adapters.files import InputError
    from events.store import EventStore, StoreLocked

    counts: dict[str, int] = {}
    try:
        with EventStore.open_writer(data) as store:
            try:
                batches = list(batches)
                for i, (event_type, tables) in enumerate(batches):
                    last = i == len(batches) - 1
                    counts[event_type] = counts.get(event_type, 0) + store.append_tables(
                        event_type, tables, sources if last else ()
                    )
            except InputError:
                store.abort_pending()
                raise
    except StoreLocked as exc:
        raise UserError(str(exc), code=EXIT_LOCKED) from None
    except OSError as exc:
        # Input files' read errors arrive as InputError: this one is the store's.
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(data) else ""
        raise UserError(f"--data {data}: {exc.strerror or exc}{where}") from None
    return counts


def _run_binance_stream(args: argparse.Namespace, paths: list[Path], data: Path) -> int:
    import importlib.util

    if importlib.util.find_spec("adapters.binance.stream") is None:
        raise UserError("binance-stream import arrives with the Binance adapter")
    from adapters.binance.stream import read_recording
    from adapters.files import InputError
    from events.base import Event, event_type_name
    from events.schema import schema_for

    venue = _require(args.venue or "binance", "--venue")
    # The REST depth snapshot in a recording names no symbol.
    symbol = _require(args.symbol, "--symbol")
    from adapters.files import ColumnMap

    paths, sources = _skip_already_imported(args, paths, data, ColumnMap())
    if not paths:
        return 0
    # A recording interleaves event types and the store imports one type per
    # call: gather each type as compact Arrow tables (not Python objects),
    # then append type by type.
    tables: dict[str, list[pa.Table]] = {}
    lines: list[str] = []
    for path in paths:
        counts: dict[str, int] = {}
        pending: dict[type[Event], list[Event]] = {}

        def flush(cls: type[Event], bucket: list[Event], counts: dict[str, int] = counts) -> None:
            name = event_type_name(cls)
            tables.setdefault(name, []).append(schema_for(cls).to_table(bucket))
            counts[name] = counts.get(name, 0) + len(bucket)
            bucket.clear()

        try:
            for _, event in read_recording(path, venue, symbol):
                bucket = pending.setdefault(type(event), [])
                bucket.append(event)
                if len(bucket) >= _STREAM_CHUNK:
                    flush(type(event), bucket)
        except (ValueError, OSError, EOFError) as exc:
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(text if str(path) in text else f"{path}: {text}") from None
        for cls, bucket in pending.items():
            if bucket:
                flush(cls, bucket)
        detail = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
        lines.append(f"{path}: {sum(counts.values())} events ({detail or 'none'})")
    try:
        _append(data, list(tables.items()), sources)
    except InputError as exc:
        raise UserError(str(exc)) from None
    for line in lines:
        print(line)
    return 0


def expand_paths(items: Iterable[str]) -> list[Path]:
    """FILE arguments as files: a directory gives its visible files (sorted), a
    pattern that is not an existing path is a glob. Duplicates are dropped."""
    out: dict[Path, None] = {}
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not found:
                raise UserError(f"{path}: the directory holds no files")
        elif not path.exists() and any(ch in item for ch in "*?["):
            found = [Path(p) for p in sorted(glob.glob(item)) if Path(p).is_file()]
            if not found:
                raise UserError(f"{item}: no file matches")
        elif not path.exists():
            raise UserError(f"{path}: no such file")
        else:
            found = [path]
        for p in found:
            out.setdefault(p, None)
    return list(out)


def _require(value: str | None, option: str) -> str:
    if value is None or not value.strip():
        raise UserError(f"{option} is required")
    return value.strip()
