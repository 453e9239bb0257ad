"""`tapeloop import` end to end: a real child process writing a real store,
read back with pyarrow.dataset and DuckDB."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from daemon.errors import EXIT_LOCKED

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"shared market data directory {DATA} is absent"
)
SPY = DATA / "lean" / "equity" / "usa" / "tick" / "spy"


def tapeloop(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def count(data: Path, where: str = "true") -> int:
    glob = f"{data}/events/*/*/*.parquet"
    sql = f"select count(*) from read_parquet('{glob}', hive_partitioning=true) where {where}"
    [(n,)] = duckdb.sql(sql).fetchall()
    return int(n)


def parts(data: Path) -> list[Path]:
    return sorted((data / "events").rglob("*.parquet"))


def test_import_the_spy_week(tmp_path: Path) -> None:
    data = tmp_path / "data"
    zips = sorted(SPY.glob("*_trade.zip"))
    proc = tapeloop("import", "trades", *zips, "--venue", "lean", "--symbol", "SPY", "--data", data)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 6  # one per file, then the total
    assert lines[0].startswith(f"{zips[0]}: 250601 Trade rows")
    assert "2013-10-07 08:00:00.464 .. 2013-10-07 23:59:59.536 UTC" in lines[0]
    assert "10 suspicious rows dropped" in lines[3]
    assert lines[-1].startswith("total: 1887450 Trade rows from 5 files")

    dataset = ds.dataset(data / "events", partitioning="hive")
    assert dataset.count_rows() == 1_887_450
    table = dataset.to_table(columns=["date", "seq", "ts_event"])
    by_date = table.group_by("date").aggregate([("seq", "count")]).sort_by("date").to_pylist()
    assert [r["seq_count"] for r in by_date] == [250_601, 451_545, 439_677, 460_022, 285_605]
    seqs = table.column("seq").to_numpy()
    assert sorted(seqs.tolist()) == list(range(1, 1_887_451))

    assert count(data) == 1_887_450
    assert count(data, "symbol = 'SPY' and venue = 'lean' and aggressor IS NULL") == 1_887_450
    [first] = duckdb.sql(
        "select epoch_ns(ts_event), price, size "
        f"from read_parquet('{data}/events/*/*/*.parquet') order by ts_event, seq limit 1"
    ).fetchall()
    # 2013-10-07 04:00:00.464 EDT = 08:00:00.464 UTC
    assert first == (1_381_132_800_464_000_000, 167.41, 100.0)


def test_import_crypto_trades_into_one_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    xrp = tapeloop(
        "import",
        "trades",
        DATA / "freqtrade" / "XRP_ETH-trades.parquet",
        "--venue",
        "binance",
        "--symbol",
        "XRP/ETH",
        "--data",
        data,
    )
    assert xrp.returncode == 0, xrp.stderr
    assert "12477 Trade rows (parquet, freqtrade trades)" in xrp.stdout
    btc = tapeloop(
        "import",
        "trades",
        DATA / "nautilus_trader" / "btcusdt-trades.parquet",
        "--venue",
        "binance",
        "--symbol",
        "BTCUSDT",
        "--data",
        data,
    )
    assert btc.returncode == 0, btc.stderr
    assert ds.dataset(data / "events", partitioning="hive").count_rows() == 14_478
    assert count(data, "symbol = 'XRP/ETH'") == 12_477
    assert count(data, "symbol = 'XRP/ETH' and aggressor = 'buy'") == 6_524
    assert count(data, "symbol = 'BTCUSDT'") == 2_001
    assert count(data, "trade_id = '553287559' and aggressor = 'sell'") == 1


@pytest.mark.parametrize("stamp", ["open", "close"])
def test_import_bars(tmp_path: Path, stamp: str) -> None:
    data = tmp_path / "data"
    proc = tapeloop(
        "import",
        "bars",
        DATA / "basana" / "binance_btcusdt_day_2020.csv",
        "--venue",
        "binance",
        "--symbol",
        "BTCUSDT",
        "--stamp",
        stamp,
        "--data",
        data,
    )
    assert proc.returncode == 0, proc.stderr
    assert "366 Bar rows" in proc.stdout
    assert "interval 1d inferred from the modal spacing" in proc.stdout
    table = ds.dataset(data / "events", partitioning="hive").to_table()
    assert table.num_rows == 366
    first = table.sort_by("ts_event").slice(0, 1).to_pylist()[0]
    day = "2020-01-01" if stamp == "open" else "2019-12-31"
    assert str(first["ts_open"])[:10] == day
    assert (first["ts_event"] - first["ts_open"]).days == 1
    assert first["interval"] == "1d" and first["open"] == 7195.24


def test_import_every_bar_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for path, symbol, rows in (
        (DATA / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv", "BTC-PERP", 45_031),
        (DATA / "freqtrade" / "XRP_ETH-1m.feather", "XRP/ETH", 2_469),
    ):
        proc = tapeloop(
            "import",
            "bars",
            path,
            "--venue",
            "v",
            "--symbol",
            symbol,
            "--interval",
            "1m",
            "--data",
            data,
        )
        assert proc.returncode == 0, proc.stderr
        assert count(data, f"symbol = '{symbol}' and interval = '1m'") == rows


def test_a_bad_file_is_one_line_on_stderr(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bars = DATA / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
    good = DATA / "freqtrade" / "XRP_ETH-trades.parquet"
    # The good file comes first: nothing may be written when a later one is bad.
    proc = tapeloop("import", "trades", good, bars, "--venue", "v", "--symbol", "s", "--data", data)
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith(f"tapeloop import: {bars}: trade columns not recognised")
    assert "timestamp, open, high, low, close, volume" in err[0]
    assert parts(data) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trades", "/no/such/file.csv", "--venue", "v", "--symbol", "s"], "no such file"),
        (
            ["trades", str(DATA / "SOURCES.md"), "--venue", "v", "--symbol", "s"],
            "SOURCES.md: trade columns not recognised",
        ),
        (
            [
                "bars",
                str(DATA / "basana" / "binance_btcusdt_day_2020.csv"),
                "--venue",
                "v",
                "--symbol",
                "s",
                "--interval",
                "1M",
            ],
            "--interval '1M'",
        ),
        (
            ["trades", str(DATA / "freqtrade" / "XRP_ETH-trades.parquet"), "--symbol", "s"],
            "--venue is required",
        ),
        (
            [
                "quotes",
                str(DATA / "freqtrade" / "XRP_ETH-trades.parquet"),
                "--venue",
                "v",
                "--symbol",
                "s",
            ],
            "quote columns not recognised",
        ),
        (
            [
                "trades",
                str(DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"),
                "--venue",
                "v",
                "--symbol",
                "s",
            ],
            "use `tapeloop import binance-stream`",
        ),
    ],
)
def test_user_mistakes(tmp_path: Path, args: list[str], message: str) -> None:
    proc = tapeloop("import", *args, "--data", tmp_path / "data")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_damaged_zip_mid_import_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    data = tmp_path / "data"
    good = SPY / "20131007_trade.zip"
    # A Lean zip whose CSV breaks after its first rows: the header check passes.
    damaged = tmp_path / "20131008_trade.zip"
    with zipfile.ZipFile(good) as zf:
        body = zf.read(zf.namelist()[0])
    with zipfile.ZipFile(damaged, "w") as zf:
        zf.writestr("20131008_spy_Trade_Tick.csv", body[:10_000] + b"\nnot,a,lean,row,,\n")
    proc = tapeloop(
        "import", "trades", good, damaged, "--venue", "lean", "--symbol", "SPY", "--data", data
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "20131008_trade.zip" in proc.stderr
    assert parts(data) == []


def test_a_locked_store(tmp_path: Path) -> None:
    from events.lock import DirLock

    data = tmp_path / "data"
    with DirLock(data):
        proc = tapeloop(
            "import",
            "trades",
            DATA / "freqtrade" / "XRP_ETH-trades.parquet",
            "--venue",
            "v",
            "--symbol",
            "s",
            "--data",
            data,
        )
    assert proc.returncode == EXIT_LOCKED
    assert "in use by" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_directory_and_glob_arguments(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = tapeloop(
        "import",
        "trades",
        SPY / "2013100[78]_trade.zip",
        "--venue",
        "lean",
        "--symbol",
        "SPY",
        "--data",
        data,
    )
    assert proc.returncode == 0, proc.stderr
    assert count(data) == 250_601 + 451_545


def test_binance_stream(tmp_path: Path) -> None:
    if importlib.util.find_spec("adapters.binance.stream") is None:
        proc = tapeloop(
            "import",
            "binance-stream",
            DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz",
            "--symbol",
            "BTCUSDT",
            "--data",
            tmp_path,
        )
        assert proc.returncode == 1 and "arrives with the Binance adapter" in proc.stderr
        return
    data = tmp_path / "data"
    proc = tapeloop(
        "import",
        "binance-stream",
        DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz",
        "--symbol",
        "BTCUSDT",
        "--data",
        data,
    )
    assert proc.returncode == 0, proc.stderr
    assert "93954 events" in proc.stdout
    dataset = ds.dataset(data / "events", partitioning="hive")
    types = dataset.to_table(columns=["type"]).column("type")
    counts = {r["values"]: r["counts"] for r in pa.compute.value_counts(types).to_pylist()}
    assert counts == {"Trade": 21_313, "Quote": 66_089, "BookDelta": 6_551, "BookSnapshot": 1}


def test_importing_the_same_file_again_is_recognised(tmp_path: Path) -> None:
    data = tmp_path / "data"
    src = DATA / "nautilus_trader" / "btcusdt-trades.parquet"
    args = ("import", "trades", src, "--venue", "binance", "--symbol", "BTCUSDT", "--data", data)
    assert tapeloop(*args).returncode == 0
    again = tapeloop(*args)
    assert again.returncode == 0, again.stderr
    assert "already imported as seq 1..2001; skipped" in again.stdout
    assert count(data) == 2_001
    # other options make another import (a different symbol is a different series)
    other = tapeloop("import", "trades", src, "--venue", "binance", "--symbol", "BTC2",
                     "--data", data)
    assert other.returncode == 0 and count(data) == 4_002
    forced = tapeloop(*args, "--force")
    assert forced.returncode == 0 and count(data) == 6_003


# -- hostile files: one line naming the file and the row, and nothing written ----------


def run_in_process(*args: str | Path) -> tuple[int, str, str]:
    """`tapeloop ARGS` in this process (fast): (exit code, stdout, stderr)."""
    import contextlib
    import io

    from daemon.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def store_files(data: Path) -> dict[str, bytes]:
    """The manifest and every part, by content."""
    files = [data / "store.json", *(data / "events").rglob("*")]
    return {str(f.relative_to(data)): f.read_bytes() for f in files if f.is_file()}


@pytest.fixture(scope="module")
def used_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("hostile") / "data"
    src = DATA / "nautilus_trader" / "btcusdt-trades.parquet"
    rc, _, err = run_in_process("import", "trades", src, "--venue", "b", "--symbol", "B",
                                "--data", data)
    assert rc == 0, err
    return data


TRADES = "timestamp,trade_id,price,quantity,buyer_maker\n1610064000278,1,39432.48,0.1,true\n"
BARS = "timestamp,open,high,low,close,volume\n2020-01-01,1,2,1,2,10\n"
HOSTILE: dict[str, tuple[str, bytes, str]] = {
    # name: (kind, file content, what the one line says after "FILE: ")
    "a short row": ("trades", f"{TRADES}1610064000279,2,39432.49,0.2\n".encode(),
                    "row 3: 4 cells where the header has 5"),
    "a long row": ("trades", f"{TRADES}1610064000279,2,39432.49,0.2,false,x\n".encode(),
                   "row 3: 6 cells where the header has 5"),
    "not UTF-8": ("trades", f"{TRADES}1610064000279,2,39432.49,0.2,f".encode() + b"\xffalse\n",
                  "row 3: column 'buyer_maker': 'f\ufffdalse' is not UTF-8 text"),
    "a NaN price": ("trades", f"{TRADES}1610064000279,2,nan,0.2,false\n".encode(),
                    "row 3: column 'price' is NaN"),
    "a negative price": ("trades", f"{TRADES}1610064000279,2,-5,0.2,false\n".encode(),
                         "row 3: column 'price': -5 is not positive"),
    "a zero price": ("trades", f"{TRADES}1610064000279,2,0,0.2,false\n".encode(),
                     "row 3: column 'price': 0 is not positive"),
    "a negative size": ("trades", f"{TRADES}1610064000279,2,5,-0.2,false\n".encode(),
                        "row 3: column 'quantity': -0.2 is negative"),
    "an infinite size": ("trades", f"{TRADES}1610064000279,2,5,inf,false\n".encode(),
                         "row 3: column 'quantity' is infinite"),
    "an unparsable number": ("trades", f"{TRADES}1610064000279,2,5x,1,false\n".encode(),
                             "row 3: column 'price': '5x' is not a number"),
    "a timestamp in year 5138": ("trades", f"{TRADES}99999999999999,2,5,1,false\n".encode(),
                                 "row 3: column 'timestamp': '99999999999999' is not a time"),
    "an empty volume": ("bars", f"{BARS}2020-01-02,1,2,1,2,\n2020-01-03,1,2,1,2,5\n".encode(),
                        "row 3: column 'volume' is empty"),
    "a short bar": ("bars", f"{BARS}2020-01-02,1,2,1\n2020-01-03,1,2,1,2,5\n".encode(),
                    "row 3: 4 cells where the header has 6"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_bad_row_is_one_line_naming_the_file_and_the_row(
    tmp_path: Path, used_store: Path, case: str
) -> None:
    kind, content, says = HOSTILE[case]
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    before = store_files(used_store)
    rc, out, err = run_in_process("import", kind, path, "--venue", "v", "--symbol", "s",
                                  "--data", used_store)
    assert "Traceback" not in err
    assert (rc, out) == (1, ""), err
    [line] = err.splitlines()
    assert line.startswith(f"tapeloop import: {path}: {says}"), line
    assert line.endswith("; --skip-bad-rows skips such rows"), line
    assert store_files(used_store) == before


def test_corrupt_deflate_data_is_one_line(tmp_path: Path, used_store: Path) -> None:
    # zlib.error from the header check was a traceback and exit 70
    raw = bytearray((SPY / "20131007_trade.zip").read_bytes())
    with zipfile.ZipFile(SPY / "20131007_trade.zip") as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 10, start + 40):
        raw[i] ^= 0x55
    path = tmp_path / "20131008_trade.zip"
    path.write_bytes(bytes(raw))
    before = store_files(used_store)
    proc = tapeloop("import", "trades", path, "--venue", "lean", "--symbol", "SPY",
                    "--data", used_store)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"tapeloop import: {path}: member '20131007_spy_Trade_Tick.csv' is damaged after "
        "byte 0 of its text (line 1): Error -3 while decompressing data: invalid bit length "
        "repeat"
    ]
    assert store_files(used_store) == before


def test_a_short_bar_row_is_not_a_crash(tmp_path: Path) -> None:
    # the real process: this was a traceback and exit 70 (ArrowInvalid)
    path = tmp_path / "bars.csv"
    path.write_bytes(HOSTILE["a short bar"][1])
    proc = tapeloop("import", "bars", path, "--venue", "v", "--symbol", "s",
                    "--data", tmp_path / "data")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"tapeloop import: {path}: row 3: 4 cells where the header has 6; "
        "--skip-bad-rows skips such rows"
    ]


def test_skip_bad_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rows = [f"{1610064000278 + i},{i},{100 + i},1,true" for i in range(20)]
    for i, bad in ((3, "nan"), (7, "-1"), (12, "x")):
        rows[i] = f"{1610064000278 + i},{i},{bad},1,true"
    rows[15] = "1610064000293,15,1"
    path = tmp_path / "t.csv"
    path.write_text("timestamp,trade_id,price,quantity,buyer_maker\n" + "\n".join(rows) + "\n")
    rc, out, err = run_in_process("import", "trades", path, "--venue", "v", "--symbol", "s",
                                  "--data", data, "--skip-bad-rows")
    assert (rc, err) == (0, "")
    assert out.startswith(f"{path}: 16 Trade rows (csv")
    assert "4 bad rows skipped (rows 5, 9, 14, 17; the first: column 'price' is NaN)" in out
    ids = ds.dataset(data / "events", partitioning="hive").to_table().column("trade_id")
    assert sorted(map(int, ids.to_pylist())) == [i for i in range(20) if i not in (3, 7, 12, 15)]


def test_allow_nonpositive_prices_is_another_import(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = tmp_path / "spread.csv"
    path.write_text("timestamp,price,quantity\n1610064000278,-0.25,1\n1610064000279,0.5,1\n")
    args = ("import", "trades", path, "--venue", "v", "--symbol", "s", "--data", data)
    rc, _, err = run_in_process(*args)
    assert rc == 1 and "row 2: column 'price': -0.25 is not positive" in err
    rc, out, err = run_in_process(*args, "--allow-nonpositive-prices")
    assert (rc, err) == (0, "") and "2 Trade rows" in out
    assert count(data, "price < 0") == 1
    rc, out, _ = run_in_process(*args, "--allow-nonpositive-prices")
    assert rc == 0 and "already imported" in out


def test_damaged_gzip_recording_is_one_line(tmp_path: Path, used_store: Path) -> None:
    # found by tests/fuzz (seed 0): zlib.error escaped read_recording, a traceback and 70
    raw = bytearray((DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz").read_bytes())
    raw[385:388] = bytes.fromhex("7fdf9c")
    path = tmp_path / "btcusdt_20240808.gz"
    path.write_bytes(bytes(raw))
    before = store_files(used_store)
    proc = tapeloop("import", "binance-stream", path, "--symbol", "BTCUSDT",
                    "--data", used_store)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"tapeloop import: {path}: damaged compressed data after line "), line
    assert store_files(used_store) == before
