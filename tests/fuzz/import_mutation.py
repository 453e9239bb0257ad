"""Import files to fuzz: small real samples cut from `../shared/data`, and the damage
done to them: a cell replaced (NaN, a negative price, an empty volume, text, a comma
that adds a column), a cell dropped or added, invalid UTF-8, a table cell set to NaN or
null, or the file's bytes damaged (a truncated zip, corrupt deflate data, a cut
Parquet footer)."""

from __future__ import annotations

import functools
import gzip
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
from hypothesis import strategies as st

from tests.conftest import SHARED_DATA
from tests.fuzz.damage import Damage, damages

ROWS = 150  # rows kept of each sample: enough to infer a bar interval, cheap to import

HOSTILE_CELLS = (
    "nan", "NaN", "inf", "-inf", "Infinity", "-1", "-0.5", "0", "-0", "", " ", "abc", "1e400",
    "-1e400", "1,2", "\"", "0x10", "1_000", "99999999999999999999999", "1e-400", "null",
    "2020-13-45 00:00:00", "9999-12-31 23:59:59", "-1700000000000", "\x00",
)


class Mutated:
    """A damaged file's bytes, shown in a failure report by what was done to them."""

    def __init__(self, what: str, body: bytes) -> None:
        self.what = what
        self.body = body

    def __repr__(self) -> str:
        return self.what


@dataclass(frozen=True)
class Sample:
    """A sample file: its name, `tapeloop import` kind and options, and how to make it."""

    name: str
    kind: str  # trades | bars | quotes | binance-stream
    options: tuple[str, ...]
    shape: str  # csv | zip-csv | gz-lines | parquet | feather
    make: Callable[[], bytes]

    def argv(self, path: Path, data: Path) -> list[str]:
        return ["import", self.kind, str(path), *self.options, "--data", str(data)]

    def original(self) -> bytes:
        return _original(self.name)


def _csv_head(path: Path, rows: int = ROWS) -> bytes:
    with open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(rows + 1))


def _lean_zip() -> bytes:
    src = SHARED_DATA / "lean" / "equity" / "usa" / "tick" / "spy" / "20131007_trade.zip"
    with zipfile.ZipFile(src) as zf, zf.open("20131007_spy_Trade_Tick.csv") as member:
        rows = b"".join(member.readline() for _ in range(ROWS))
    return zip_member("20131007_spy_Trade_Tick.csv", rows)


def zip_member(name: str, body: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, body)
    return out.getvalue()


def _recording() -> bytes:
    src = SHARED_DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"
    with gzip.open(src, "rb") as f:
        lines = b"".join(f.readline() for _ in range(ROWS))  # the REST snapshot is line 55
    return gzip.compress(lines, mtime=0)


def _table_file(path: Path, rows: int = ROWS) -> Callable[[], bytes]:
    def make() -> bytes:
        out = io.BytesIO()
        if path.suffix == ".parquet":
            pq.write_table(pq.read_table(path).slice(0, rows), out)
        else:
            feather.write_feather(feather.read_table(path).slice(0, rows), out)
        return out.getvalue()

    return make


SAMPLES = (
    Sample("binance_btcusdt_day_2020.csv", "bars", ("--venue", "binance", "--symbol", "BTCUSDT"),
           "csv", lambda: _csv_head(SHARED_DATA / "basana" / "binance_btcusdt_day_2020.csv")),
    Sample("btc-perp-1m.csv", "bars", ("--venue", "binance", "--symbol", "BTC-PERP"), "csv",
           lambda: _csv_head(SHARED_DATA / "nautilus_trader"
                             / "btc-perp-20211231-20220201_1m.csv")),
    Sample("20131007_trade.zip", "trades", ("--venue", "lean", "--symbol", "SPY"), "zip-csv",
           _lean_zip),
    Sample("btcusdt-trades.parquet", "trades", ("--venue", "binance", "--symbol", "BTCUSDT"),
           "parquet", _table_file(SHARED_DATA / "nautilus_trader" / "btcusdt-trades.parquet")),
    Sample("XRP_ETH-trades.parquet", "trades", ("--venue", "binance", "--symbol", "XRP/ETH"),
           "parquet", _table_file(SHARED_DATA / "freqtrade" / "XRP_ETH-trades.parquet")),
    Sample("XRP_ETH-1m.feather", "bars", ("--venue", "binance", "--symbol", "XRP/ETH"),
           "feather", _table_file(SHARED_DATA / "freqtrade" / "XRP_ETH-1m.feather")),
    Sample("btcusdt_20240808.gz", "binance-stream", ("--symbol", "BTCUSDT"), "gz-lines",
           _recording),
)

BY_NAME = {s.name: s for s in SAMPLES}


@functools.cache
def _original(name: str) -> bytes:
    return BY_NAME[name].make()


# -- mutations of the text inside (CSV rows, recording lines) ---------------------------


def _text_of(sample: Sample, blob: bytes) -> bytes:
    if sample.shape == "zip-csv":
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            return zf.read(zf.namelist()[0])
    if sample.shape == "gz-lines":
        return gzip.decompress(blob)
    return blob


def _with_text(sample: Sample, blob: bytes, text: bytes) -> bytes:
    if sample.shape == "zip-csv":
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            return zip_member(zf.namelist()[0], text)
    if sample.shape == "gz-lines":
        return gzip.compress(text, mtime=0)
    return text


@st.composite
def cell_mutation(draw: st.DrawFn, sample: Sample, blob: bytes) -> Mutated:
    """A CSV cell (or a recording's JSON value) replaced, dropped or added, or a row's
    bytes made invalid UTF-8."""
    lines = _text_of(sample, blob).split(b"\n")
    first = 0 if sample.shape in ("zip-csv", "gz-lines") else 1  # keep the header
    row = draw(st.integers(first, len([x for x in lines if x]) - 1), label="row")
    if sample.shape == "gz-lines":  # `"p":"61800.30"` -> `"p":"<hostile>"`
        cells = lines[row].split(b'":"')
        col = draw(st.integers(0, len(cells) - 1), label="value")
        value = draw(st.sampled_from(HOSTILE_CELLS)).encode()
        if col > 0:
            rest = cells[col].split(b'"', 1)
            cells[col] = value + b'"' + (rest[1] if len(rest) > 1 else b"")
        lines[row] = b'":"'.join(cells)
        what = f"line {row + 1} value {col} := {value!r}"
    else:
        cells = lines[row].split(b",")
        col = draw(st.integers(0, len(cells) - 1), label="column")
        op = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add", "utf8"]))
        if op == "replace":
            cells[col] = draw(st.sampled_from(HOSTILE_CELLS)).encode()
        elif op == "drop":
            del cells[col]
        elif op == "add":
            cells.insert(col, b"1")
        else:
            broken = draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\x80"]))
            cells[col] = cells[col] + broken
        lines[row] = b",".join(cells)
        what = f"row {row + 1} column {col}: {op} -> {lines[row][:80]!r}"
    return Mutated(f"{sample.name}: {what}", _with_text(sample, blob, b"\n".join(lines)))


# -- mutations of a table file (Parquet, Feather) ---------------------------------------


@st.composite
def table_mutation(draw: st.DrawFn, sample: Sample, blob: bytes) -> Mutated:
    """One numeric cell of a Parquet or Feather file set to NaN, an infinity, a
    negative, zero or null."""
    read = pq.read_table if sample.shape == "parquet" else feather.read_table
    table = read(io.BytesIO(blob))
    numeric = [i for i, f in enumerate(table.schema) if pa.types.is_floating(f.type)]
    col = draw(st.sampled_from(numeric), label="column")
    row = draw(st.integers(0, table.num_rows - 1), label="row")
    value = draw(st.sampled_from([float("nan"), float("inf"), float("-inf"), -1.0, 0.0, None,
                                  -0.0, 1e308]))
    cells = table.column(col).to_pylist()
    cells[row] = value
    table = table.set_column(col, table.schema.field(col), pa.array(cells, pa.float64()))
    out = io.BytesIO()
    if sample.shape == "parquet":
        pq.write_table(table, out)
    else:
        feather.write_feather(table, out)
    return Mutated(f"{sample.name}: {table.schema.field(col).name}[{row}] := {value}",
                   out.getvalue())


@st.composite
def import_mutation(draw: st.DrawFn, sample: Sample) -> Mutated:
    """Any damage that fits the sample: inside its text or table, or to its bytes."""
    blob = sample.original()
    inner = table_mutation if sample.shape in ("parquet", "feather") else cell_mutation
    if draw(st.booleans(), label="inside"):
        return draw(inner(sample, blob))
    damage: Damage = draw(damages(len(blob)), label="bytes")
    return Mutated(f"{sample.name}: bytes {damage}", damage.apply(blob))
