"""What a market data file is, and its rows as Arrow tables.

A file is recognised by its first bytes, not its name: Parquet, Feather (Arrow
IPC), zip (a Lean tick zip, or one CSV inside), gzip (CSV inside) or plain CSV.
`open_source` returns a `Source` that knows the file's column names and yields
its rows in tables of at most `MAX_ROWS`, reading only the columns asked for.
Nothing here knows about trades, bars or quotes.
"""

from __future__ import annotations

import csv
import re
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

MAX_ROWS = 1_000_000
CSV_BLOCK_BYTES = 32 << 20  # ~0.5-1M rows of a typical tick CSV per block
_SNIFF_BYTES = 64 << 10

# Lean tick trades: `20131007_trade.zip` holding `20131007_spy_Trade_Tick.csv`.
# The member name tells tick data from Lean's minute/second bars, which use the
# same zip name.
_LEAN_MEMBER = re.compile(r"^(\d{8})_([^_]+)_(trade|quote)_tick\.csv$", re.IGNORECASE)
_LEAN_BARS_MEMBER = re.compile(r"^\d{8}_[^_]+_(minute|second)_(trade|quote)\.csv$", re.IGNORECASE)

LEAN_TRADE_COLUMNS = ("time", "price", "quantity", "exchange", "condition", "suspicious")


class InputError(ValueError):
    """A problem the user can fix in an input file or a reading option.

    The message is one line naming the file or the option."""


class Source(ABC):
    """A readable table-shaped file.

    `kind` is "table" for self-describing files, "lean-trade" for Lean tick
    trade zips; `container` names the encoding for summaries."""

    kind = "table"

    def __init__(self, path: Path, container: str, columns: Sequence[str]) -> None:
        self.path = path
        self.container = container
        self.columns = list(columns)

    def tables(
        self, columns: Sequence[str], types: Mapping[str, pa.DataType] | None = None
    ) -> Iterator[pa.Table]:
        """The rows of `columns`, at most MAX_ROWS per table. `types` is a hint
        for text formats, so a column is parsed once as what it will become."""
        return rebatch(self._tables(list(columns), dict(types or {})), MAX_ROWS)

    @abstractmethod
    def _tables(self, columns: list[str], types: dict[str, pa.DataType]) -> Iterator[pa.Table]:
        """The container's own reading (Parquet, Feather, CSV, zip)."""

    def describe_columns(self) -> str:
        return ", ".join(_short(c) for c in self.columns[:20]) + (
            ", ..." if len(self.columns) > 20 else ""
        )


class ParquetSource(Source):
    def __init__(self, path: Path) -> None:
        self._file = pq.ParquetFile(path)
        super().__init__(path, "parquet", self._file.schema_arrow.names)

    def _tables(self, columns: list[str], types: dict[str, pa.DataType]) -> Iterator[pa.Table]:
        for batch in self._file.iter_batches(batch_size=MAX_ROWS, columns=columns):
            yield pa.Table.from_batches([batch])


class FeatherSource(Source):
    def __init__(self, path: Path) -> None:
        self._reader = pa.ipc.open_file(pa.memory_map(str(path)))
        super().__init__(path, "feather", self._reader.schema.names)

    def _tables(self, columns: list[str], types: dict[str, pa.DataType]) -> Iterator[pa.Table]:
        for i in range(self._reader.num_record_batches):
            yield pa.Table.from_batches([self._reader.get_batch(i)]).select(columns)


class CsvSource(Source):
    """Delimited text, read block by block by Arrow's streaming CSV reader."""

    def __init__(
        self,
        path: Path,
        container: str,
        opener: Callable[[], BinaryIO | pa.NativeFile],
        column_names: Sequence[str] | None = None,
    ) -> None:
        self._opener = opener
        with opener() as f:
            head = f.read(_SNIFF_BYTES)
        text = head.decode("utf-8-sig", errors="replace")
        first = text.splitlines()[0] if text.strip() else ""
        if not first:
            raise InputError(f"{path}: the file is empty")
        self.delimiter = max(",;\t|", key=first.count)
        row = next(csv.reader([first], delimiter=self.delimiter))
        self.first_row = [c.strip() for c in row]
        self._given_names = list(column_names) if column_names else None
        # A first row of numbers is data, not a header.
        self.headerless = self._given_names is not None or all(_is_number(c) for c in row)
        names = self._given_names or (
            [f"column{i + 1}" for i in range(len(row))] if self.headerless else self.first_row
        )
        super().__init__(path, container, names)

    def describe_columns(self) -> str:
        if self.headerless and self._given_names is None:
            shown = ", ".join(_short(c) for c in self.first_row[:12])
            return f"no header row, so column1..column{len(self.first_row)}; first row: {shown}"
        return super().describe_columns()

    def _tables(self, columns: list[str], types: dict[str, pa.DataType]) -> Iterator[pa.Table]:
        # Our names, not Arrow's: the header's were stripped of spaces and BOM.
        read = pacsv.ReadOptions(
            block_size=CSV_BLOCK_BYTES,
            column_names=self.columns,
            skip_rows=0 if self.headerless else 1,
        )
        parse = pacsv.ParseOptions(delimiter=self.delimiter)
        convert = pacsv.ConvertOptions(
            include_columns=columns,
            column_types={c: t for c, t in types.items() if c in columns},
            strings_can_be_null=True,
        )
        with self._opener() as f:
            reader = pacsv.open_csv(
                f, read_options=read, parse_options=parse, convert_options=convert
            )
            for batch in reader:
                yield pa.Table.from_batches([batch])


class LeanTradeZip(CsvSource):
    """A Lean tick trade zip; `day` is the trading date in the file name."""

    kind = "lean-trade"

    def __init__(self, path: Path, zf: zipfile.ZipFile, member: str, day: date) -> None:
        self.day = day
        super().__init__(
            path, "lean tick trades", lambda: zf.open(member), column_names=LEAN_TRADE_COLUMNS
        )


def open_source(path: Path) -> Source:
    """The file at `path` as a Source; InputError when it is missing or of an
    unknown kind."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if magic.startswith(b"PAR1"):
            return ParquetSource(path)
        if magic.startswith(b"ARROW1"):
            return FeatherSource(path)
        if magic.startswith(b"FEA1"):
            raise InputError(f"{path}: Feather v1 is not supported; rewrite it as Feather v2")
        if magic.startswith(b"PK\x03\x04"):
            return _open_zip(path)
        if magic.startswith(b"\x1f\x8b"):
            source = CsvSource(
                path, "csv.gz", lambda: pa.CompressedInputStream(pa.OSFile(str(path)), "gzip")
            )
            _reject_recording(source)
            return source
        if b"\x00" in magic:
            raise InputError(f"{path}: unknown binary format (not Parquet, Feather, zip or gzip)")
        source = CsvSource(path, "csv", lambda: pa.OSFile(str(path)))
        _reject_recording(source)
        return source
    except (pa.ArrowException, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path}: unreadable ({one_line(exc)})") from None


def _open_zip(path: Path) -> Source:
    zf = zipfile.ZipFile(path)
    members = [
        i.filename
        for i in zf.infolist()
        if not i.is_dir() and not i.filename.startswith("__MACOSX/")
    ]
    if len(members) != 1:
        raise InputError(
            f"{path}: a zip must hold exactly one data file (this one holds {len(members)})"
        )
    member = members[0]
    name = Path(member).name
    lean = _LEAN_MEMBER.match(name)
    if lean:
        if lean.group(3).lower() != "trade":
            raise InputError(f"{path}: Lean quote tick zips are not supported yet")
        try:
            day = date(int(lean.group(1)[:4]), int(lean.group(1)[4:6]), int(lean.group(1)[6:]))
        except ValueError:
            raise InputError(f"{path}: bad date in member name {name!r}") from None
        return LeanTradeZip(path, zf, member, day)
    if _LEAN_BARS_MEMBER.match(name):
        raise InputError(f"{path}: Lean minute/second bar zips are not supported yet")
    return CsvSource(path, f"csv in zip ({name})", lambda: zf.open(member))


def _reject_recording(source: CsvSource) -> None:
    """A websocket recording split on commas makes a confusing column list:
    say what it is instead."""
    if source.first_row and '{"stream"' in source.first_row[0]:
        raise InputError(
            f"{source.path}: this is a Binance websocket recording; "
            "use `tapeloop import binance-stream`"
        )


def rebatch(tables: Iterable[pa.Table], max_rows: int) -> Iterator[pa.Table]:
    """Regroup tables into tables of at most `max_rows` rows (the last may be
    shorter), merging small ones so per-table costs stay amortised."""
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        if table.num_rows == 0:
            continue
        pending.append(table)
        count += table.num_rows
        if count < max_rows:
            continue
        whole = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
        while whole.num_rows >= max_rows:
            yield whole.slice(0, max_rows)
            whole = whole.slice(max_rows)
        pending = [whole] if whole.num_rows else []
        count = whole.num_rows
    if pending:
        yield pa.concat_tables(pending) if len(pending) > 1 else pending[0]


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
