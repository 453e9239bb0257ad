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
    assert count(data, "symbol = 'SPY' and venue = 'lean' and aggressor = 0") == 1_887_450
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
    assert count(data, "symbol = 'XRP/ETH' and aggressor = 1") == 6_524
    assert count(data, "symbol = 'BTCUSDT'") == 2_001
    assert count(data, "trade_id = '553287559' and aggressor = 2") == 1


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
