"""adapters.files against the real data files in /work/shared/data, used as they are.

Expected values come from SOURCES.md or are read from the raw file with a
different tool (zipfile + csv, gzip + json) than the reader under test.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from adapters.files import (
    MAX_ROWS,
    ColumnMap,
    FileReader,
    InputError,
    detect,
    local_ms_to_utc_ns,
    modal_spacing,
    parse_interval,
    read_bars,
    read_quotes,
    read_trades,
    utc_offsets_ns,
)
from events.market import AGGRESSOR_BUY, AGGRESSOR_SELL, AGGRESSOR_UNKNOWN, Bar, Quote, Trade
from events.schema import schema_for

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"shared market data directory {DATA} is absent"
)

NAUTILUS_TRADES = DATA / "nautilus_trader" / "btcusdt-trades.parquet"
XRP_TRADES = DATA / "freqtrade" / "XRP_ETH-trades.parquet"
NAUTILUS_BARS = DATA / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
XRP_BARS = DATA / "freqtrade" / "XRP_ETH-1m.feather"
BASANA_BARS = DATA / "basana" / "binance_btcusdt_day_2020.csv"
RECORDING = DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"
SPY = DATA / "lean" / "equity" / "usa" / "tick" / "spy"
SPY_DAYS = {
    "20131007": 250_601,
    "20131008": 451_545,
    "20131009": 439_677,
    "20131010": 460_032,
    "20131011": 285_605,
}
S = 1_000_000_000


def ns(text: str) -> int:
    """ISO text (UTC) -> ns since the epoch."""
    dt = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(dt.timestamp()) * S + dt.microsecond * 1000


def whole(reader: FileReader) -> pa.Table:
    tables = list(reader)
    assert all(t.num_rows <= MAX_ROWS for t in tables)
    return pa.concat_tables(tables)


def sides(table: pa.Table) -> list[int]:
    """The aggressor codes of a trades table (stored by name: 'buy', 'sell', null)."""
    return schema_for(Trade).enums["aggressor"].decode(table.column("aggressor")).tolist()


def ints(table: pa.Table, column: str) -> list[int]:
    return table.column(column).cast(pa.int64()).to_pylist()


# -- trades -----------------------------------------------------------------------


def test_nautilus_trades() -> None:
    reader = read_trades(NAUTILUS_TRADES, "binance", "BTCUSDT")
    table = whole(reader)
    assert table.schema == schema_for(Trade).schema
    assert table.num_rows == reader.rows == 2_001
    raw = pq.read_table(NAUTILUS_TRADES)
    assert table.column("trade_id").to_pylist() == [str(i) for i in range(553287559, 553289560)]
    raw_ms = ints(raw, "timestamp")  # timestamp[ms, UTC]
    assert ints(table, "ts_event") == ints(table, "ts_recv") == [t * 1_000_000 for t in raw_ms]
    assert ints(table, "ts_event")[0] == ns("2021-01-08 00:00:00.278")
    assert ints(table, "ts_event")[-1] == ns("2021-01-08 00:00:46.355")
    assert table.column("price")[0].as_py() == 39432.48
    assert table.column("size")[0].as_py() == 0.000263
    assert set(table.column("seq").to_pylist()) == {0}
    assert set(table.column("venue").to_pylist()) == {"binance"}
    assert set(table.column("symbol").to_pylist()) == {"BTCUSDT"}
    assert reader.span() == "2021-01-08 00:00:00.278 .. 2021-01-08 00:00:46.355 UTC"


def test_buyer_is_maker_means_the_aggressor_sold() -> None:
    table = whole(read_trades(NAUTILUS_TRADES, "binance", "BTCUSDT"))
    maker = pq.read_table(NAUTILUS_TRADES).column("buyer_maker").to_pylist()
    expected = [AGGRESSOR_SELL if m == "True" else AGGRESSOR_BUY for m in maker]
    assert sides(table) == expected
    assert expected[:2] == [AGGRESSOR_SELL, AGGRESSOR_BUY]  # the file's first two rows


def test_freqtrade_trades_and_taker_side() -> None:
    reader = read_trades(XRP_TRADES, "binance", "XRP/ETH")
    table = whole(reader)
    assert table.num_rows == 12_477
    assert "freqtrade" in reader.format
    counts = pc.value_counts(table.column("aggressor")).to_pylist()
    by_side = {c["values"]: c["counts"] for c in counts}
    assert by_side == {"buy": 6_524, "sell": 5_953}
    raw = pq.read_table(XRP_TRADES)
    assert sides(table) == [AGGRESSOR_BUY if s == "buy" else AGGRESSOR_SELL
                            for s in raw.column("side").to_pylist()]
    first = table.slice(0, 1).to_pylist()[0]
    assert ints(table, "ts_event")[0] == ns("2019-10-11 00:00:11.620")
    assert ints(table, "ts_event")[-1] == ns("2019-10-13 11:19:28.844")
    assert (first["price"], first["size"], first["trade_id"]) == (0.00141342, 23.0, "13519807")
    assert table.column("trade_id").to_pylist() == raw.column("id").to_pylist()
    assert reader.notes == []  # freqtrade's ms timestamps are known, not guessed


def _as_csv(table: pa.Table, path: Path) -> Path:
    pacsv.write_csv(table, path)
    return path


def _gzip(src: Path, path: Path) -> Path:
    path.write_bytes(gzip.compress(src.read_bytes()))
    return path


def _zip(src: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(src, src.name)
    return path


@pytest.fixture(params=["parquet", "csv", "csv.gz", "zip", "feather"])
def container(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("source", [NAUTILUS_TRADES, XRP_TRADES], ids=["nautilus", "freqtrade"])
def test_the_same_trades_in_every_container(source: Path, container: str, tmp_path: Path) -> None:
    raw = pq.read_table(source)
    if container == "parquet":
        path = source
    elif container == "feather":
        path = tmp_path / "t.feather"
        feather.write_feather(raw, path)
    else:
        path = _as_csv(raw, tmp_path / "t.csv")
        if container == "csv.gz":
            path = _gzip(path, tmp_path / "t.csv.gz")
        elif container == "zip":
            path = _zip(path, tmp_path / "t.zip")
    expected = whole(read_trades(source, "v", "s"))
    got = whole(read_trades(path, "v", "s"))
    assert got.equals(expected)


def test_large_csv_comes_in_tables_of_at_most_max_rows(tmp_path: Path) -> None:
    n = 2 * MAX_ROWS + 5
    t0 = ns("2024-01-01 00:00:00")
    table = pa.table(
        {
            "ts": np.arange(n, dtype=np.int64) * 1000 + t0 // 1000,  # us since the epoch
            "px": np.full(n, 1.5),
            "qty": np.ones(n),
        }
    )
    path = _as_csv(table, tmp_path / "big.csv")
    reader = read_trades(path, "v", "s", ColumnMap(ts="ts", price="px", size="qty"))
    sizes = [t.num_rows for t in reader]
    assert sum(sizes) == n and max(sizes) <= MAX_ROWS
    assert reader.ts_first == t0 and reader.ts_last == t0 + (n - 1) * 1_000_000
    assert reader.notes == ["timestamp unit us inferred from the values (--ts-unit overrides)"]


def test_column_mapping_and_units(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("when;px;q;taker;tid\n1700000000;10.5;2;SELL;7\n1700000001;10.25;1;Buy;8\n")
    unmapped = pytest.raises(InputError, match=r"odd\.csv: trade columns not recognised")
    with unmapped as err:
        read_trades(path, "v", "s")
    assert "when, px, q, taker, tid" in str(err.value) and "\n" not in str(err.value)
    cols = ColumnMap(ts="when", ts_unit="s", price="px", size="q", side="taker", id="tid")
    table = whole(read_trades(path, "v", "s", cols))
    assert ints(table, "ts_event") == [1_700_000_000 * S, 1_700_000_001 * S]
    assert sides(table) == [AGGRESSOR_SELL, AGGRESSOR_BUY]
    assert table.column("trade_id").to_pylist() == ["7", "8"]
    assert table.column("price").to_pylist() == [10.5, 10.25]
    with pytest.raises(InputError, match="--price-col 'nope' is not a column"):
        read_trades(path, "v", "s", ColumnMap(price="nope"))
    with pytest.raises(InputError, match="--bid-col does not apply to trade files"):
        read_trades(path, "v", "s", ColumnMap(bid="px"))


def test_text_timestamps_without_zone_are_utc(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("time,price,qty\n2024-03-10 12:00:00.5,1,1\n2024-03-10T12:00:01Z,1,1\n")
    # Arrow infers a column per block: mixed zoned/naive text must still read.
    table = whole(read_trades(path, "v", "s"))
    assert ints(table, "ts_event") == [ns("2024-03-10 12:00:00.500"), ns("2024-03-10 12:00:01")]
    assert sides(table) == [AGGRESSOR_UNKNOWN] * 2
    assert table.column("trade_id").to_pylist() == ["", ""]


def test_csv_columns_that_change_shape_after_the_first_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrow fixes a CSV column's type from its first block: whole seconds and
    # integer prices there must not make later fractions unreadable.
    monkeypatch.setattr(detect, "CSV_BLOCK_BYTES", 256)
    rows = [f"2024-01-01 00:00:{i:02d},{100 + i},1" for i in range(20)]
    rows += [f"2024-01-01 00:01:{i:02d}.25+00:00,{100 + i}.5,0.5" for i in range(20)]
    path = tmp_path / "t.csv"
    path.write_text("time,price,qty\n" + "\n".join(rows) + "\n")
    table = whole(read_trades(path, "v", "s"))
    assert table.num_rows == 40
    assert ints(table, "ts_event")[-1] == ns("2024-01-01 00:01:19.250")
    assert table.column("price").to_pylist()[-1] == 119.5
    epoch = tmp_path / "e.csv"
    epoch.write_text("ts,price,qty\n1700000000,1,1\n1700000000.5,1,1\n")
    table = whole(read_trades(epoch, "v", "s", ColumnMap(ts_unit="s")))
    assert ints(table, "ts_event") == [1_700_000_000 * S, 1_700_000_000 * S + S // 2]


def test_headers_with_spaces_and_headerless_csv(tmp_path: Path) -> None:
    spaced = tmp_path / "spaced.csv"
    spaced.write_bytes(b"\xef\xbb\xbf Timestamp , Price , Qty \n1700000000000,1.5,2\n")
    table = whole(read_trades(spaced, "v", "s"))
    assert ints(table, "ts_event") == [1_700_000_000_000 * 1_000_000]
    bare = tmp_path / "bare.csv"
    bare.write_text("1700000000000,1.5,2\n1700000000001,1.5,3\n")
    with pytest.raises(InputError, match="no header row, so column1..column3"):
        read_trades(bare, "v", "s")
    cols = ColumnMap(ts="column1", price="column2", size="column3")
    reader = read_trades(bare, "v", "s", cols)
    table = whole(reader)
    assert table.column("size").to_pylist() == [2.0, 3.0]
    assert "timestamp unit ms inferred" in reader.summary()


def test_unreadable_timestamps_name_the_value(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("time,price,qty\n2024-03-10 12:00:00,1,1\nyesterday,1,1\n")
    with pytest.raises(InputError, match=r"t\.csv: row 3: column 'time': cannot read 'yesterday'"):
        list(read_trades(path, "v", "s"))


def test_unknown_files_fail_with_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_trades(tmp_path / "missing.parquet", "v", "s")
    with pytest.raises(InputError, match="websocket recording"):
        read_trades(RECORDING, "v", "s")
    with pytest.raises(InputError, match=r"btc-perp.*trade columns not recognised"):
        read_trades(NAUTILUS_BARS, "v", "s")
    with pytest.raises(InputError, match="holds trades, not bars"):
        read_bars(SPY / "20131007_trade.zip", "v", "s")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(InputError, match="junk.bin: unknown binary format"):
        read_trades(junk, "v", "s")


# -- Lean tick zips ---------------------------------------------------------------


def _raw_lean_rows(path: Path) -> list[list[str]]:
    with zipfile.ZipFile(path) as zf, zf.open(zf.namelist()[0]) as f:
        return list(csv.reader(io.TextIOWrapper(f)))


@pytest.mark.parametrize("day", list(SPY_DAYS))
def test_spy_day(day: str) -> None:
    path = SPY / f"{day}_trade.zip"
    reader = read_trades(path, "lean", "SPY")
    table = whole(reader)
    dropped = 10 if day == "20131010" else 0
    assert reader.dropped == dropped
    assert table.num_rows == reader.rows == SPY_DAYS[day] - dropped
    raw = [r for r in _raw_lean_rows(path) if r[5] != "1"]
    assert len(raw) == table.num_rows
    # October 2013 is daylight time: ET = UTC-4.
    midnight_utc = ns(f"{day[:4]}-{day[4:6]}-{day[6:]} 04:00:00")
    for i in (0, len(raw) // 2, -1):
        ms, price, qty = int(raw[i][0]), int(raw[i][1]), int(raw[i][2])
        row = table.slice(i % table.num_rows, 1).to_pylist()[0]
        assert ints(table, "ts_event")[i] == midnight_utc + ms * 1_000_000
        assert row["price"] == price / 10_000 and row["size"] == qty
        assert (row["aggressor"], row["trade_id"]) == (None, "")  # unknown: null


def test_first_spy_trade_of_the_week() -> None:
    # The raw first line is `14400464,1674100,100,P,20002000,0`: 14,400,464 ms
    # after midnight ET is 04:00:00.464 EDT, 08:00:00.464 UTC.
    assert _raw_lean_rows(SPY / "20131007_trade.zip")[0][:3] == ["14400464", "1674100", "100"]
    first = next(read_trades(SPY / "20131007_trade.zip", "lean", "SPY")).slice(0, 1)
    row = first.to_pylist()[0]
    assert ints(first, "ts_event") == [ns("2013-10-07 08:00:00.464")]
    assert (row["price"], row["size"]) == (167.41, 100.0)


def test_spy_suspicious_rows_are_dropped() -> None:
    raw = _raw_lean_rows(SPY / "20131010_trade.zip")
    assert sum(r[5] == "1" for r in raw) == 10
    kept = [r for r in raw if r[5] != "1"]
    reader = read_trades(SPY / "20131010_trade.zip", "lean", "SPY")
    table = whole(reader)
    assert reader.rows == 460_022 and "10 suspicious rows dropped" in reader.summary()
    midnight_utc = ns("2013-10-10 04:00:00")
    assert ints(table, "ts_event") == [midnight_utc + int(r[0]) * 1_000_000 for r in kept]
    assert table.column("price").to_pylist() == [int(r[1]) / 10_000 for r in kept]
    assert table.column("size").to_pylist() == [float(r[2]) for r in kept]


def test_dst_offsets() -> None:
    hour = 3_600 * S
    assert set(utc_offsets_ns(date(2013, 10, 7)).tolist()) == {-4 * hour}
    assert set(utc_offsets_ns(date(2013, 12, 2)).tolist()) == {-5 * hour}
    at_4am = np.array([4 * 3_600_000])
    assert local_ms_to_utc_ns(date(2013, 10, 7), at_4am)[0] == ns("2013-10-07 08:00:00")
    assert local_ms_to_utc_ns(date(2013, 12, 2), at_4am)[0] == ns("2013-12-02 09:00:00")
    # Fall back on 2013-11-03 at 02:00 EDT: 01:30 is still EDT (first occurrence),
    # 03:00 is EST.
    fall = np.array([1_800_000, 5_400_000, 3 * 3_600_000])
    assert local_ms_to_utc_ns(date(2013, 11, 3), fall).tolist() == [
        ns("2013-11-03 04:30:00"),
        ns("2013-11-03 05:30:00"),
        ns("2013-11-03 08:00:00"),
    ]
    # Spring forward on 2013-03-10 at 02:00 EST.
    spring = np.array([3_600_000, 3 * 3_600_000])
    assert local_ms_to_utc_ns(date(2013, 3, 10), spring).tolist() == [
        ns("2013-03-10 06:00:00"),
        ns("2013-03-10 07:00:00"),
    ]


def test_lean_zip_on_a_dst_change_day(tmp_path: Path) -> None:
    path = tmp_path / "20131103_trade.zip"
    rows = "1800000,1000000,1,P,0,0\n10800000,1010000,2,P,0,0\n10800001,1,1,P,0,1\n"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("20131103_spy_Trade_Tick.csv", rows)
    reader = read_trades(path, "lean", "SPY")
    table = whole(reader)
    assert ints(table, "ts_event") == [ns("2013-11-03 04:30:00"), ns("2013-11-03 08:00:00")]
    assert table.column("price").to_pylist() == [100.0, 101.0]
    assert reader.dropped == 1


# -- bars -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rows", "interval", "first_open", "last_open"),
    [
        (NAUTILUS_BARS, 45_031, "1m", "2021-12-31 23:01:00", "2022-02-01 05:31:00"),
        (XRP_BARS, 2_469, "1m", "2019-10-11 00:00:00", "2019-10-13 11:19:00"),
        (BASANA_BARS, 366, "1d", "2020-01-01 00:00:00", "2020-12-31 00:00:00"),
    ],
    ids=["nautilus", "freqtrade", "basana"],
)
def test_bar_files(path: Path, rows: int, interval: str, first_open: str, last_open: str) -> None:
    reader = read_bars(path, "v", "s")
    table = whole(reader)
    assert table.schema == schema_for(Bar).schema
    assert table.num_rows == rows
    assert f"interval {interval} inferred from the modal spacing" in reader.summary()
    assert set(table.column("interval").to_pylist()) == {interval}
    length = parse_interval(interval)[1]
    opens = ints(table, "ts_open")
    assert (opens[0], opens[-1]) == (ns(first_open), ns(last_open))
    assert ints(table, "ts_event") == [t + length for t in opens]
    assert ints(table, "ts_recv") == ints(table, "ts_event")


def test_bar_values_match_the_raw_file() -> None:
    table = whole(read_bars(NAUTILUS_BARS, "ftx", "BTC-PERP", interval="1m"))
    lines = NAUTILUS_BARS.read_text().splitlines()
    for line, i in ((lines[1], 0), (lines[-1], -1)):
        _, o, h, low, c, v = line.split(",")
        row = table.slice(i % table.num_rows, 1).to_pylist()[0]
        assert [row["open"], row["high"], row["low"], row["close"], row["volume"]] == [
            float(x) for x in (o, h, low, c, v)
        ]
    feather_raw = feather.read_table(XRP_BARS)
    xrp = whole(read_bars(XRP_BARS, "binance", "XRP/ETH", interval="1m"))
    for col in ("open", "high", "low", "close", "volume"):
        assert xrp.column(col).to_pylist() == feather_raw.column(col).to_pylist()


@pytest.mark.parametrize("stamp", ["open", "close"])
def test_bar_stamp(stamp: str) -> None:
    table = whole(read_bars(BASANA_BARS, "binance", "BTCUSDT", interval="1d", stamp=stamp))  # type: ignore[arg-type]
    file_time = ns("2020-01-01 00:00:00")
    day = 86_400 * S
    first_open, first_close = ints(table, "ts_open")[0], ints(table, "ts_event")[0]
    if stamp == "open":
        assert (first_open, first_close) == (file_time, file_time + day)
    else:
        assert (first_open, first_close) == (file_time - day, file_time)


def test_interval_option() -> None:
    assert parse_interval("60m") == ("1h", 3_600 * S)
    assert parse_interval("1min") == ("1m", 60 * S)
    assert parse_interval("90s") == ("90s", 90 * S)
    for bad in ("1M", "0m", "m", "1x"):
        with pytest.raises(InputError, match="--interval"):
            parse_interval(bad)
    with pytest.raises(InputError, match="bars are 1m apart but --interval is 5m"):
        read_bars(NAUTILUS_BARS, "v", "s", interval="5m")
    reader = read_bars(BASANA_BARS, "v", "s", interval="1h")
    assert "mostly 1d apart" in reader.summary()
    assert modal_spacing(np.array([0, 60, 120, 300, 360])) == 60
    assert modal_spacing(np.array([5, 5])) is None


# -- quotes -----------------------------------------------------------------------


def _book_tickers(path: Path) -> pa.Table:
    """bookTicker messages of the hftbacktest recording as Binance's own columns."""
    rows: dict[str, list[float | int]] = {k: [] for k in ("T", "b", "B", "a", "A")}
    with gzip.open(RECORDING, "rt") as f:
        for line in f:
            _, _, body = line.partition(" ")
            if '@bookTicker"' not in body[:40]:
                continue
            data = json.loads(body)["data"]
            for k in rows:
                rows[k].append(data[k])
    table = pa.table(rows)
    pacsv.write_csv(table, path)
    return table


def test_quotes_with_mapped_columns(tmp_path: Path) -> None:
    raw = _book_tickers(tmp_path / "book.csv")
    assert raw.num_rows == 66_089
    with pytest.raises(InputError, match="quote columns not recognised"):
        read_quotes(tmp_path / "book.csv", "binance", "BTCUSDT")
    cols = ColumnMap(ts="T", ts_unit="ms", bid="b", bid_size="B", ask="a", ask_size="A")
    table = whole(read_quotes(tmp_path / "book.csv", "binance", "BTCUSDT", cols))
    assert table.schema == schema_for(Quote).schema
    assert table.num_rows == 66_089
    assert ints(table, "ts_event") == [t * 1_000_000 for t in raw.column("T").to_pylist()]
    for ours, theirs in (("bid", "b"), ("bid_size", "B"), ("ask", "a"), ("ask_size", "A")):
        assert table.column(ours).to_pylist() == [float(x) for x in raw.column(theirs).to_pylist()]


def test_quotes_recognised_by_header(tmp_path: Path) -> None:
    path = tmp_path / "q.parquet"
    pq.write_table(
        pa.table(
            {
                "timestamp": pa.array([1, 2], pa.timestamp("ms", tz="UTC")),
                "bid": [1.0, 1.5],
                "ask": [2.0, 2.5],
                "bid_qty": [3.0, 3.5],
                "ask_qty": [4.0, 4.5],
            }
        ),
        path,
    )
    table = whole(read_quotes(path, "v", "s"))
    assert ints(table, "ts_event") == [1_000_000, 2_000_000]
    assert table.column("ask_size").to_pylist() == [4.0, 4.5]
    no_sizes = tmp_path / "q.csv"
    no_sizes.write_text("time,bid,ask\n2024-01-01 00:00:00,1,2\n")
    reader = read_quotes(no_sizes, "v", "s")
    row = whole(reader).to_pylist()[0]
    assert np.isnan(row["bid_size"]) and np.isnan(row["ask_size"])
    assert "sizes stored as NaN" in reader.summary()
