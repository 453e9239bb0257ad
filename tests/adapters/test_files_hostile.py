"""adapters.files against hostile input: malformed and invalid rows, text that is
not UTF-8, damaged archives and binary files.

Each bad row is refused with one line naming the file and the row, or, with
`RowPolicy(skip_bad_rows=True)`, left out and counted; damaged data names the
file and where it breaks. The real samples of ../shared/data are the starting
point where a test damages a real file.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from adapters.files import (
    ColumnMap,
    FileReader,
    InputError,
    RowPolicy,
    detect,
    parse_interval,
    read_bars,
    read_quotes,
    read_trades,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"shared market data directory {DATA} is absent"
)
# An exception a library could only print (from a callback) is a failure too.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

SKIP = RowPolicy(skip_bad_rows=True)
MS = 1_000_000
T0 = 1_700_000_000_000  # ms since the epoch: 2023-11-14


def read_all(reader: FileReader) -> pa.Table:
    return pa.concat_tables(list(reader))


def ts(table: pa.Table) -> list[int]:
    return table.column("ts_event").cast(pa.int64()).to_pylist()


def one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def trades_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("timestamp,price,quantity\n" + "".join(r + "\n" for r in rows))
    return path


def good_rows(n: int) -> list[str]:
    return [f"{T0 + i},{100 + i % 7}.5,{1 + i % 3}" for i in range(n)]


# -- malformed rows ------------------------------------------------------------------


def test_a_row_with_the_wrong_number_of_cells_names_its_row(tmp_path: Path) -> None:
    # A bars file with a short row ended in a traceback (ArrowInvalid from the
    # header check); trades named no row.
    bars = tmp_path / "bars.csv"
    bars.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2020-01-01,1,2,1,2,10\n2020-01-02,1,2,1\n2020-01-03,1,2,1,2,5\n"
    )
    with pytest.raises(InputError) as err:
        read_all(read_bars(bars, "v", "s"))
    assert one_line(err).startswith(f"{bars}: row 3: 4 cells where the header has 6")
    rows = good_rows(3)
    rows[1] += ",7"
    trades = trades_csv(tmp_path / "t.csv", rows)
    with pytest.raises(InputError, match=r"t\.csv: row 3: 4 cells where the header has 3"):
        read_all(read_trades(trades, "v", "s"))
    reader = read_trades(trades, "v", "s", policy=SKIP)
    table = read_all(reader)
    assert ts(table) == [T0 * MS, (T0 + 2) * MS]
    assert "1 bad row skipped (row 3: 4 cells where the header has 3)" in reader.summary()


def test_row_numbers_hold_across_blocks_and_skipped_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small blocks: the bad cells are many blocks in, after a malformed row,
    # and the number in a later block forces a second, all-text read.
    monkeypatch.setattr(detect, "CSV_BLOCK_BYTES", 512)
    rows = good_rows(400)
    rows[49] = rows[49].rsplit(",", 1)[0]  # line 51: a cell short
    rows[149] = f"{T0 + 149},1x,1"  # line 151: not a number
    rows[299] = f"{T0 + 299},-3,1"  # line 301: not a positive price
    path = trades_csv(tmp_path / "t.csv", rows)
    with pytest.raises(InputError, match=r"t\.csv: row 51: 2 cells where the header has 3"):
        read_all(read_trades(path, "v", "s"))
    reader = read_trades(path, "v", "s", policy=SKIP)
    table = read_all(reader)
    kept = [i for i in range(400) if i not in (49, 149, 299)]
    assert ts(table) == [(T0 + i) * MS for i in kept]
    assert reader.checks.skipped == 3 and reader.rows == 397
    assert "3 bad rows skipped (rows 51, 151, 301; the first: 2 cells" in reader.summary()
    del rows[49]
    path = trades_csv(tmp_path / "t.csv", rows)
    with pytest.raises(InputError) as err:
        read_all(read_trades(path, "v", "s"))
    assert "t.csv: row 150: column 'price': '1x' is not a number" in one_line(err)


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (f"{T0 + 1},1.5,\xff2", "quantity"),  # a number column
        ("1700000000\xe9001,1.5,2", "timestamp"),  # the text timestamp column
        (f"{T0 + 1},1.5,\xc3", "quantity"),  # a truncated sequence
    ],
)
def test_text_that_is_not_utf8_names_its_row(tmp_path: Path, row: str, column: str) -> None:
    path = tmp_path / "t.csv"
    body = ["timestamp,price,quantity", f"{T0},1.5,2", row, f"{T0 + 2},1.5,2", ""]
    path.write_bytes("\n".join(body).encode("latin-1"))
    with pytest.raises(InputError) as err:
        read_all(read_trades(path, "v", "s"))
    assert one_line(err).startswith(f"{path}: row 3: column {column!r}: ")
    assert "is not UTF-8 text" in one_line(err)
    table = read_all(read_trades(path, "v", "s", policy=SKIP))
    assert ts(table) == [T0 * MS, (T0 + 2) * MS]


def test_a_malformed_row_that_is_not_utf8(tmp_path: Path) -> None:
    # Arrow decodes a malformed row's text strictly before our callback sees
    # it: undecodable, it printed an ignored exception and stopped.
    path = tmp_path / "t.csv"
    path.write_bytes(f"timestamp,price,quantity\n{T0},1,1\n{T0 + 1},\xff1\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"t\.csv: row 3: 2 cells where the header has 3"):
        read_all(read_trades(path, "v", "s"))
    assert read_all(read_trades(path, "v", "s", policy=SKIP)).num_rows == 1


def test_text_in_parquet_that_is_not_utf8(tmp_path: Path) -> None:
    ids = pa.Array.from_buffers(
        pa.string(), 2, [None, pa.py_buffer(np.array([0, 1, 3], np.int32).tobytes()),
                         pa.py_buffer(b"7\xff8")]
    )
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"timestamp": [T0, T0 + 1], "price": [1.0, 1.0],
                             "quantity": [1.0, 1.0], "trade_id": ids}), path)
    with pytest.raises(InputError, match=r"t\.parquet: row 2: column 'trade_id': .* not UTF-8"):
        read_all(read_trades(path, "v", "s"))


# -- values that are not market data -------------------------------------------------

BAD_TRADES = [
    ("price", "nan", "column 'price' is NaN"),
    ("price", "inf", "column 'price' is infinite"),
    ("price", "-inf", "column 'price' is -infinite"),
    ("price", "-5", "column 'price': -5 is not positive"),
    ("price", "0", "column 'price': 0 is not positive"),
    ("price", "", "column 'price' is empty"),
    ("price", "abc", "column 'price': 'abc' is not a number"),
    ("quantity", "-0.5", "column 'quantity': -0.5 is negative"),
    ("quantity", "1e400", "column 'quantity' is infinite"),
    ("quantity", "NaN", "column 'quantity' is NaN"),
    ("quantity", "NA", "column 'quantity': 'NA' is not a number"),
]


@pytest.mark.parametrize(
    ("container", "column", "cell", "message"),
    [("csv", *case) for case in BAD_TRADES]
    # a Parquet number column holds numbers (its empty cells: see below)
    + [("parquet", *case) for case in BAD_TRADES if case[1] not in ("abc", "NA", "")],
)
def test_bad_trade_values_are_refused_or_skipped(
    tmp_path: Path, container: str, column: str, cell: str, message: str
) -> None:
    rows = [r.split(",") for r in good_rows(5)]
    rows[3][1 if column == "price" else 2] = cell
    path = trades_csv(tmp_path / "t.csv", [",".join(r) for r in rows])
    row = 5  # the header is row 1 of a CSV
    if container == "parquet":
        table = pa.table({
            "timestamp": [int(r[0]) for r in rows],
            "price": [float(r[1]) for r in rows],
            "quantity": [float(r[2]) for r in rows],
        })
        path = tmp_path / "t.parquet"
        pq.write_table(table, path)
        row = 4
    with pytest.raises(InputError) as err:
        read_all(read_trades(path, "v", "s"))
    assert one_line(err).startswith(f"{path}: row {row}: {message}")
    assert "--skip-bad-rows" in one_line(err)
    reader = read_trades(path, "v", "s", policy=SKIP)
    assert read_all(reader).num_rows == 4 and reader.checks.skipped == 1
    assert f"1 bad row skipped (row {row}: {message}" in reader.summary()


def test_empty_cells_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"timestamp": [T0, T0 + 1], "price": [1.0, None],
                             "quantity": [1.0, 1.0]}), path)
    with pytest.raises(InputError, match=r"t\.parquet: row 2: column 'price' is empty"):
        read_all(read_trades(path, "v", "s"))


def test_nonpositive_prices_when_the_instrument_allows_them(tmp_path: Path) -> None:
    path = trades_csv(tmp_path / "t.csv", [f"{T0},-1.25,1", f"{T0 + 1},0,2", f"{T0 + 2},3,1"])
    allow = RowPolicy(allow_nonpositive_prices=True)
    table = read_all(read_trades(path, "v", "s", policy=allow))
    assert table.column("price").to_pylist() == [-1.25, 0.0, 3.0]
    path = trades_csv(tmp_path / "t.csv", [f"{T0},-1.25,1", f"{T0 + 1},nan,2"])
    with pytest.raises(InputError, match="row 3: column 'price' is NaN"):
        read_all(read_trades(path, "v", "s", policy=allow))


@pytest.mark.parametrize(
    ("cell", "iso", "message"),
    [
        ("99999999999999", False, "'99999999999999' is not a time in 1971-01-01..2100-01-01 "
         "(read as ms since the epoch: wrong --ts-unit?)"),
        ("0", False, "'0' is not a time in 1971-01-01..2100-01-01"),
        ("-1700000000000", False, "'-1700000000000' is not a time in 1971-01-01"),
        ("99999999999999999999999", False, "is not a time in 1971-01-01"),
        ("", False, "column 'timestamp' is empty"),
        ("2150-01-01T00:00:00", True, "'2150-01-01T00:00:00' is not a time in 1900-01-01..2100"),
        ("1850-06-01", True, "'1850-06-01' is not a time in 1900-01-01..2100-01-01"),
        ("soon", True, "cannot read 'soon' as a timestamp"),
    ],
)
def test_timestamps_out_of_any_sane_range(
    tmp_path: Path, cell: str, iso: bool, message: str
) -> None:
    # In epoch ms, one wild value: the unit is still inferred from the typical
    # value (from the peak it was "us", every row in 1970), and the row named.
    rows = [f"{f'2023-11-14T22:13:2{i}' if iso else T0 + i},1,1" for i in range(5)]
    rows[2] = f"{cell},1,1"
    path = trades_csv(tmp_path / "t.csv", rows)
    with pytest.raises(InputError) as err:
        read_all(read_trades(path, "v", "s"))
    assert one_line(err).startswith(f"{path}: row 4: column 'timestamp'")
    assert message in one_line(err)
    assert read_all(read_trades(path, "v", "s", policy=SKIP)).num_rows == 4


def test_typed_timestamps_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    ts = pa.array([T0, 4_200_000_000_000], pa.timestamp("ms", tz="UTC"))  # 2103
    pq.write_table(pa.table({"timestamp": ts, "price": [1.0, 1.0], "quantity": [1.0, 1.0]}), path)
    with pytest.raises(InputError, match=r"row 2: column 'timestamp': '4200000000000 ms' is not a "
                       r"time in 1900-01-01\.\.2100-01-01"):
        read_all(read_trades(path, "v", "s"))


def test_bars_need_every_volume_or_none(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2020-01-01,1,2,1,2,10\n"
                    "2020-01-02,1,2,1,2,\n2020-01-03,1,2,1,2,5\n")
    with pytest.raises(InputError, match=r"bars\.csv: row 3: column 'volume' is empty"):
        read_all(read_bars(path, "v", "s"))
    reader = read_bars(path, "v", "s", policy=SKIP)
    assert read_all(reader).column("volume").to_pylist() == [10.0, 5.0]
    path.write_text("timestamp,open,high,low,close,volume\n2020-01-01,1,2,1,2,-1\n"
                    "2020-01-02,1,2,-1,2,1\n2020-01-03,1,2,1,2,1\n")
    with pytest.raises(InputError, match="row 2: column 'volume': -1 is negative"):
        read_all(read_bars(path, "v", "s", interval="1d"))
    spreads = RowPolicy(allow_nonpositive_prices=True, skip_bad_rows=True)
    reader = read_bars(path, "v", "s", interval="1d", policy=spreads)
    assert read_all(reader).column("low").to_pylist() == [-1.0, 1.0]
    assert reader.checks.skipped == 1
    path.write_text("timestamp,open,high,low,close,volume\n2020-01-01,1,2,1,2,\n"
                    "2020-01-02,1,2,1,2,\n")
    reader = read_bars(path, "v", "s", interval="1d")
    assert np.isnan(read_all(reader).column("volume").to_numpy()).all()
    assert "column 'volume' holds no values: stored as NaN" in reader.summary()


@needs_data
def test_mark_price_bars_without_volume() -> None:
    # freqtrade writes mark-price candles with a volume column of NaN
    reader = read_bars(DATA / "freqtrade/futures/XRP_USDT_USDT-1h-mark.feather", "v", "s")
    table = read_all(reader)
    assert table.num_rows == 100 and np.isnan(table.column("volume").to_numpy()).all()
    assert "holds no values" in reader.summary()


def test_quote_sizes_every_row_or_none(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("time,bid,ask,bid_size,ask_size\n2024-01-01 00:00:00,1,2,3,4\n"
                    "2024-01-01 00:00:01,1,2,,4\n")
    with pytest.raises(InputError, match=r"q\.csv: row 3: column 'bid_size' is empty"):
        read_all(read_quotes(path, "v", "s"))
    path.write_text("time,bid,ask\n2024-01-01 00:00:00,1,-2\n")
    with pytest.raises(InputError, match="row 2: column 'ask': -2 is not positive"):
        read_all(read_quotes(path, "v", "s"))


@needs_data
def test_lean_rows_are_checked(tmp_path: Path) -> None:
    with zipfile.ZipFile(DATA / "lean/equity/usa/tick/spy/20131007_trade.zip") as zf:
        lines = zf.read(zf.namelist()[0]).decode().splitlines()[:100]
    lines[10] = "14400464,0,100,P,20002000,0"  # a price of 0
    lines[20] = "14400464,-5,100,P,20002000,1"  # suspicious: dropped as before, not checked
    lines[30] = "99999999,1674100,100,P,20002000,0"  # after the day's end
    path = tmp_path / "20131007_trade.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("20131007_spy_Trade_Tick.csv", "\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"row 11: column 'price': 0 is not positive"):
        read_all(read_trades(path, "lean", "SPY"))
    reader = read_trades(path, "lean", "SPY", policy=SKIP)
    assert read_all(reader).num_rows == 97 and reader.dropped == 1
    assert "2 bad rows skipped (rows 11, 31;" in reader.summary()


# -- damaged archives and binary files -----------------------------------------------


def _deflated(member: bytes, name: str = "t.csv") -> tuple[bytearray, int]:
    """A one-member zip and where its member's compressed data starts."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, member)
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
        info = zf.infolist()[0]
    return bytearray(out.getvalue()), info.header_offset + 30 + len(name)


def test_corrupt_deflate_data_at_the_start_of_a_zip(tmp_path: Path) -> None:
    # The header check read it: zlib.error escaped as a traceback.
    body = ("timestamp,price,quantity\n" + "\n".join(good_rows(5000)) + "\n").encode()
    archive, start = _deflated(body)
    for i in range(start + 10, start + 40):
        archive[i] ^= 0x55
    path = tmp_path / "t.zip"
    path.write_bytes(bytes(archive))
    with pytest.raises(InputError) as err:
        read_trades(path, "v", "s")
    assert one_line(err).startswith(f"{path}: member 't.csv' is damaged after byte 0 of its text")


def _zip_breaking_at(text: bytes, at: int) -> bytes:
    """A one-member zip (`t.csv`) whose deflate data turns invalid where the
    text reaches byte `at`: a full flush there, then a block of the reserved
    type, whatever zlib compresses the rest into."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = c.compress(text[:at]) + c.flush(zlib.Z_FULL_FLUSH) + b"\x07"
    data += c.compress(text[at:]) + c.flush()
    name, crc = b"t.csv", zlib.crc32(text)
    sizes = (crc, len(data), len(text), len(name))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, *sizes, 0) + name
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, *sizes, 0, 0, 0, 0, 0, 0
    ) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def test_corrupt_deflate_data_in_the_middle_of_a_zip(tmp_path: Path) -> None:
    body = ("timestamp,price,quantity\n" + "\n".join(good_rows(50_000)) + "\n").encode()
    at = len(body) // 2
    path = tmp_path / "t.zip"
    path.write_bytes(_zip_breaking_at(body, at))
    with pytest.raises(InputError) as err:
        read_all(read_trades(path, "v", "s"))
    text = one_line(err)
    assert text.startswith(f"{path}: member 't.csv' is damaged after byte "), text
    assert "invalid block type" in text
    offset = int(text.split("after byte ")[1].split()[0])
    line = int(text.split("(line ")[1].split(")")[0])
    # found within the few KiB read at a time, and the line is that byte's
    assert at - 16_384 < offset <= at and body[:offset].count(b"\n") + 1 == line


def test_a_zip_whose_crc_does_not_match(tmp_path: Path) -> None:
    body = ("timestamp,price,quantity\n" + "\n".join(good_rows(10)) + "\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("t.csv", body)
    archive = out.getvalue().replace(b"100.5", b"900.5", 1)  # stored: the text itself
    path = tmp_path / "t.zip"
    path.write_bytes(archive)
    with pytest.raises(InputError, match=r"t\.zip: member 't.csv' fails its CRC check"):
        read_all(read_trades(path, "v", "s"))


def test_a_truncated_gzip(tmp_path: Path) -> None:
    body = ("timestamp,price,quantity\n" + "\n".join(good_rows(20_000)) + "\n").encode()
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(body)[:20_000])
    with pytest.raises(InputError) as err:
        read_all(read_trades(path, "v", "s"))
    assert one_line(err).startswith(f"{path}: the gzip stream is damaged after byte ")


@needs_data
def test_a_damaged_parquet_row_group_is_named(tmp_path: Path) -> None:
    raw = bytearray((DATA / "nautilus_trader/btcusdt-trades.parquet").read_bytes())
    for i in range(200, 260):  # inside the first column chunk's compressed pages
        raw[i] ^= 0xFF
    path = tmp_path / "t.parquet"
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError) as err:
        read_all(read_trades(path, "v", "s"))
    assert one_line(err).startswith(f"{path}: damaged Parquet row group 0 (rows 1..2001): ")


def test_a_truncated_parquet_or_feather(tmp_path: Path) -> None:
    table = pa.table({"timestamp": [T0, T0 + 1], "price": [1.0, 2.0], "quantity": [1.0, 1.0]})
    for name, write in (("t.parquet", pq.write_table), ("t.feather", feather.write_feather)):
        whole = tmp_path / f"whole-{name}"
        write(table, whole)
        path = tmp_path / name
        path.write_bytes(whole.read_bytes()[:-20])
        with pytest.raises(InputError) as err:
            read_trades(path, "v", "s")
        kind = "Parquet" if name.endswith("parquet") else "Feather"
        assert one_line(err).startswith(f"{path}: damaged or truncated {kind} file (")


def test_a_damaged_feather_record_batch_is_named(tmp_path: Path) -> None:
    n = 10_000
    table = pa.table({
        "timestamp": np.arange(T0, T0 + n), "price": np.full(n, 1.5), "quantity": np.ones(n),
    })
    whole = tmp_path / "whole.feather"
    feather.write_feather(table, whole, compression="lz4", chunksize=n // 2)
    raw = bytearray(whole.read_bytes())
    middle = len(raw) // 2
    for i in range(middle - 200, middle + 200):
        raw[i] ^= 0x5A
    path = tmp_path / "t.feather"
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError) as err:
        read_all(read_trades(path, "v", "s"))
    assert one_line(err).startswith(f"{path}: damaged Feather record batch ")


def test_an_interval_longer_than_a_year() -> None:
    assert parse_interval("366d")[0] == "366d"
    with pytest.raises(InputError, match="--interval '100000w': longer than a year"):
        parse_interval("100000w")


def test_mapped_columns_are_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("when;px;q\n1700000000;10.5;2\n1700000001;-10.25;1\n")
    cols = ColumnMap(ts="when", ts_unit="s", price="px", size="q")
    with pytest.raises(InputError, match=r"odd\.csv: row 3: column 'px': -10\.25 is not positive"):
        read_all(read_trades(path, "v", "s", cols))
