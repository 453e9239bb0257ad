"""What a market data file is, and its rows as Arrow tables.

A file is recognised by its first bytes, not its name: Parquet, Feather (Arrow
IPC), zip (a Lean tick zip, or one CSV inside), gzip (CSV inside) or plain CSV.
`open_source` returns a `Source` that knows the file's column names and yields
its rows in tables of at most `MAX_ROWS`, reading only the columns asked for.
A Source also names its rows (`row_number`) and says where a damaged file
stops being readable (`damaged`): a Parquet row group, a Feather record batch,
the byte of a zip member or gzip stream. Nothing here knows about trades,
bars or quotes.
"""

from __future__ import annotations

import csv
import re
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from adapters.files.streams import (
    READ_ERRORS,
    DamagedArchive,
    Utf8Text,
    ZipMember,
    locate_damage,
    one_line,
)

if TYPE_CHECKING:
    from adapters.files.rows import RowChecks

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
    # Text cells that were not UTF-8 hold U+FFFD (CSV), for the converters to mark.
    replaced_text = False

    def __init__(self, path: Path, container: str, columns: Sequence[str]) -> None:
        self.path = path
        self.container = container
        self.columns = list(columns)

    def tables(
        self, columns: Sequence[str], types: Mapping[str, pa.DataType], checks: RowChecks
    ) -> Iterator[pa.Table]:
        """The rows of `columns`, at most MAX_ROWS per table. `types` is a hint
        for text formats, so a column is parsed once as what it will become;
        rows the container cannot even split into columns go to `checks`."""
        return rebatch(self._tables(list(columns), dict(types), checks), MAX_ROWS)

    @abstractmethod
    def _tables(
        self, columns: list[str], types: dict[str, pa.DataType], checks: RowChecks
    ) -> Iterator[pa.Table]:
        """The container's own reading (Parquet, Feather, CSV, zip)."""

    def row_number(self, ordinal: int) -> int:
        """How a person finds the file's data row `ordinal` (0-based, in the
        order `tables` yields them): its 1-based row."""
        return ordinal + 1

    def damaged(self, exc: BaseException) -> InputError:
        """The one line for a read that failed part way: the file is damaged."""
        return InputError(f"{self.path}: unreadable ({one_line(exc)})")

    def describe_columns(self) -> str:
        return ", ".join(_short(c) for c in self.columns[:20]) + (
            ", ..." if len(self.columns) > 20 else ""
        )


class ParquetSource(Source):
    def __init__(self, path: Path) -> None:
        self._file = pq.ParquetFile(path)
        super().__init__(path, "parquet", self._file.schema_arrow.names)

    def _tables(
        self, columns: list[str], types: dict[str, pa.DataType], checks: RowChecks
    ) -> Iterator[pa.Table]:
        # Group by group, so a damaged one is named with the rows it holds.
        first = 1
        for group in range(self._file.num_row_groups):
            n = self._file.metadata.row_group(group).num_rows
            try:
                batches = self._file.iter_batches(
                    batch_size=MAX_ROWS, row_groups=[group], columns=columns
                )
                for batch in batches:
                    yield pa.Table.from_batches([batch])
            except READ_ERRORS as exc:
                raise InputError(
                    f"{self.path}: damaged Parquet row group {group} (rows {first}.."
                    f"{first + n - 1}): {one_line(exc)}"
                ) from None
            first += n


class FeatherSource(Source):
    def __init__(self, path: Path) -> None:
        self._reader = pa.ipc.open_file(pa.memory_map(str(path)))
        super().__init__(path, "feather", self._reader.schema.names)

    def _tables(
        self, columns: list[str], types: dict[str, pa.DataType], checks: RowChecks
    ) -> Iterator[pa.Table]:
        first = 1
        for i in range(self._reader.num_record_batches):
            try:
                table = pa.Table.from_batches([self._reader.get_batch(i)]).select(columns)
                # Memory-mapped as written: damaged offsets would read out of bounds.
                table.validate(full=True)
            except READ_ERRORS as exc:
                raise InputError(
                    f"{self.path}: damaged Feather record batch {i} (from row {first}): "
                    f"{one_line(exc)}"
                ) from None
            first += table.num_rows
            yield table


class CsvSource(Source):
    """Delimited text, read block by block by Arrow's streaming CSV reader.

    Rows are numbered as the file's lines: the header is row 1 (blank lines
    are not counted). Bytes that are not UTF-8 reach Arrow as U+FFFD
    (`Utf8Text`), so the converters can name the row of such a cell."""

    def __init__(
        self,
        path: Path,
        container: str,
        opener: Callable[[], BinaryIO | pa.NativeFile],
        column_names: Sequence[str] | None = None,
        member: str | None = None,
    ) -> None:
        self.path = path
        self.container = container
        self._opener = opener
        self._member = member
        self._malformed: list[int] = []  # row numbers of rows with the wrong number of cells
        self._reported = 0  # the last of them told to a RowChecks
        try:
            with opener() as f:
                head = f.read(_SNIFF_BYTES)
        except READ_ERRORS as exc:
            raise self.damaged(exc) from None
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

    def _tables(
        self, columns: list[str], types: dict[str, pa.DataType], checks: RowChecks
    ) -> Iterator[pa.Table]:
        self._reported = 0
        delivered = 0
        try:
            for table in self._read(columns, types, checks):
                delivered += table.num_rows
                yield table
            return
        except pa.ArrowInvalid as exc:
            if "conversion error" not in str(exc):
                raise
        # A cell Arrow could not convert to its column's type: read the file
        # again with every column as text, from where the typed read stopped,
        # so the converters name that cell's row (or skip it).
        text = {c: pa.string() for c in columns}
        for table in self._read(columns, text, checks):
            if delivered >= table.num_rows:
                delivered -= table.num_rows
                continue
            yield table.slice(delivered) if delivered else table
            delivered = 0

    def _read(
        self, columns: list[str], types: dict[str, pa.DataType], checks: RowChecks
    ) -> Iterator[pa.Table]:
        self._malformed = []
        found: list[tuple[int | None, int, int]] = []

        def malformed(row: pacsv.InvalidRow) -> str:
            # Never raise here: Arrow would print the exception and read on.
            found.append((row.number, row.expected_columns, row.actual_columns))
            if row.number is not None:
                self._malformed.append(row.number)
            return "skip"

        # Our names, not Arrow's: the header's were stripped of spaces and BOM.
        # One thread, so Arrow knows each row's number.
        read = pacsv.ReadOptions(
            block_size=CSV_BLOCK_BYTES,
            column_names=self.columns,
            skip_rows=0 if self.headerless else 1,
            use_threads=False,
        )
        parse = pacsv.ParseOptions(delimiter=self.delimiter, invalid_row_handler=malformed)
        convert = pacsv.ConvertOptions(
            include_columns=columns,
            column_types={c: t for c, t in types.items() if c in columns},
            strings_can_be_null=True,
            null_values=[""],  # "NaN" is a NaN, for the checks to see; "NA" is not a number
            check_utf8=False,  # Utf8Text made it UTF-8
        )
        with self._opener() as raw:
            f = Utf8Text(raw)
            reader = pacsv.open_csv(
                f, read_options=read, parse_options=parse, convert_options=convert
            )
            for batch in reader:
                self._report(found, checks)
                self.replaced_text = self.replaced_text or f.replaced
                yield pa.Table.from_batches([batch])
            self._report(found, checks)

    def _report(self, found: list[tuple[int | None, int, int]], checks: RowChecks) -> None:
        for number, expected, actual in found:
            if number is not None and number <= self._reported:
                continue  # already told, before a second read of the file
            self._reported = max(self._reported, number or 0)
            has = "the header has" if not self.headerless else "the first row has"
            checks.malformed(number, f"{actual} cells where {has} {expected}")
        found.clear()

    def row_number(self, ordinal: int) -> int:
        number = ordinal + (1 if self.headerless else 2)
        for skipped in self._malformed:  # in file order
            if skipped > number:
                break
            number += 1
        return number

    def damaged(self, exc: BaseException) -> InputError:
        if self.container == "csv":
            return super().damaged(exc)  # plain text: the error says it all
        cause = exc.__cause__ if isinstance(exc, DamagedArchive) and exc.__cause__ else exc
        what = f"member {self._member!r}" if self._member else "the gzip stream"
        if "CRC" in str(cause):  # it all decompressed, into something else
            return InputError(f"{self.path}: {what} fails its CRC check: the file is damaged")
        # Find the last byte that still decompresses.
        where = locate_damage(self._opener)
        if where is None:
            return super().damaged(exc)  # it decompresses: the text itself is the problem
        offset, lines = where
        return InputError(
            f"{self.path}: {what} is damaged after byte {offset} of its text "
            f"(line {lines + 1}): {one_line(cause)}"
        )


class LeanTradeZip(CsvSource):
    """A Lean tick trade zip; `day` is the trading date in the file name."""

    kind = "lean-trade"

    def __init__(self, path: Path, zf: zipfile.ZipFile, member: str, day: date) -> None:
        self.day = day
        super().__init__(
            path,
            "lean tick trades",
            lambda: ZipMember(zf, member),
            column_names=LEAN_TRADE_COLUMNS,
            member=member,
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
    if magic.startswith(b"PAR1"):
        try:
            return ParquetSource(path)
        except READ_ERRORS as exc:
            raise InputError(
                f"{path}: damaged or truncated Parquet file ({one_line(exc)})"
            ) from None
    if magic.startswith(b"ARROW1"):
        try:
            return FeatherSource(path)
        except READ_ERRORS as exc:
            raise InputError(
                f"{path}: damaged or truncated Feather file ({one_line(exc)})"
            ) from None
    try:
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
    except READ_ERRORS as exc:
        raise InputError(f"{path}: unreadable ({one_line(exc)})") from None


def _open_zip(path: Path) -> Source:
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # whatever zipfile makes of a damaged directory
        raise InputError(f"{path}: damaged zip archive ({one_line(exc)})") from None
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
    return CsvSource(
        path, f"csv in zip ({name})", lambda: ZipMember(zf, member), member=member
    )


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
    shorter), merging small ones so per-table costs stay amortised. Tables of
    another schema (a CSV read again as text) are not merged with earlier ones."""
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        if table.num_rows == 0:
            continue
        if pending and not table.schema.equals(pending[0].schema):
            yield pa.concat_tables(pending) if len(pending) > 1 else pending[0]
            pending, count = [], 0
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


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
