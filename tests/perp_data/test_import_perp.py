"""`tapeloop import funding|marks|bars` of Freqtrade's futures data as it is, and
funding-rate CSVs: counts, first and last values exact, and bad files as one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay.reader import read_events
from tests.conftest import SHARED_DATA
from tests.test_cli_import import run_in_process

FUTURES = SHARED_DATA / "freqtrade" / "futures"
pytestmark = pytest.mark.skipif(not FUTURES.is_dir(), reason=f"{FUTURES} is absent")
SYM = "XRP/USDT:USDT"
VENUE = "binance-usdm"
MS = 1_000_000


def stored(data: Path, name: str) -> list:
    return [e for batch in read_events(data, types=[name]) for e in batch]


def imported(tmp_path: Path, kind: str, file: Path | str, *more: str) -> tuple[Path, str]:
    data = tmp_path / "data"
    rc, out, err = run_in_process("import", kind, file, "--venue", VENUE, "--symbol", SYM,
                                  "--data", data, *more)
    assert rc == 0, err
    return data, out


def test_freqtrade_funding_rates(tmp_path: Path) -> None:
    data, out = imported(tmp_path, "funding", FUTURES / "XRP_USDT_USDT-8h-funding_rate.feather")
    assert "91 FundingRate rows" in out and "rate from 'open'" in out
    events = stored(data, "FundingRate")
    assert len(events) == 91
    first, last = events[0], events[-1]
    # 2021-11-18 00:00:00.017 and 2021-12-18 00:00:00.014 UTC, as the file stamps them
    assert first.funding_ts == first.ts_event == 1_637_193_600_017 * MS
    assert last.funding_ts == last.ts_event == 1_639_785_600_014 * MS
    assert (first.rate, last.rate) == (0.0001, 0.0001)
    assert {e.mark for e in events} == {0.0}  # not known: the venue's last mark is used
    assert {(e.venue, e.symbol) for e in events} == {(VENUE, SYM)}


@pytest.mark.parametrize(("name", "rows", "first", "last"), [
    ("XRP_USDT_USDT-8h-mark.feather", 91, (1_637_193_600_000, 1.0959),
     (1_639_785_600_000, 0.7963)),
    ("XRP_USDT_USDT-1h-mark.feather", 100, (1_636_956_000_000, 1.20932),
     (1_637_312_400_000, 1.05721)),
])
def test_freqtrade_mark_candles_are_marks_at_their_open(
    tmp_path: Path, name: str, rows: int, first: tuple[int, float], last: tuple[int, float]
) -> None:
    data, out = imported(tmp_path, "marks", FUTURES / name)
    assert f"{rows} MarkPrice rows" in out
    events = stored(data, "MarkPrice")
    assert len(events) == rows
    assert (events[0].ts_event, events[0].mark) == (first[0] * MS, first[1])
    assert (events[-1].ts_event, events[-1].mark) == (last[0] * MS, last[1])
    assert all(e.next_funding_ts == 0 and e.index == 0.0 for e in events)


def test_freqtrade_futures_candles_are_bars(tmp_path: Path) -> None:
    data, out = imported(tmp_path, "bars", FUTURES / "XRP_USDT_USDT-5m-futures.feather")
    assert "1999 Bar rows" in out and "5m bars" in out
    bars = stored(data, "Bar")
    assert len(bars) == 1999
    # 2021-11-15 00:00 open 1.1893 .. 2021-11-21 22:30 close 1.0713; stamped at the close
    assert (bars[0].ts_open, bars[0].open) == (1_636_934_400_000 * MS, 1.1893)
    assert bars[0].ts_event == bars[0].ts_open + 300_000 * MS
    assert (bars[-1].ts_open, bars[-1].close) == (1_637_533_800_000 * MS, 1.0713)


def test_funding_csv_and_negative_rates(tmp_path: Path) -> None:
    csv = tmp_path / "funding.csv"
    csv.write_text("timestamp,rate\n1700000000000,0.0001\n1700028800000,-0.00025\n")
    data, out = imported(tmp_path, "funding", csv)
    assert "2 FundingRate rows" in out
    events = stored(data, "FundingRate")
    assert [(e.funding_ts, e.rate) for e in events] == [
        (1_700_000_000_000 * MS, 0.0001), (1_700_028_800_000 * MS, -0.00025)]


def test_the_same_file_as_marks_and_as_bars_are_two_imports(tmp_path: Path) -> None:
    mark = FUTURES / "XRP_USDT_USDT-8h-mark.feather"
    data, _ = imported(tmp_path, "marks", mark)
    _, out = imported(tmp_path, "bars", mark)
    assert "already imported" not in out
    _, again = imported(tmp_path, "marks", mark)
    assert "already imported" in again
    assert len(stored(data, "MarkPrice")) == 91 and len(stored(data, "Bar")) == 91


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("funding", "timestamp,rate\n1700000000000,0.0001\n1700028800000,nan\n",
     "row 3: column 'rate' is NaN"),
    ("funding", "timestamp,rate\n1700000000000,abc\n",
     "row 2: column 'rate': 'abc' is not a number"),
    ("funding", "when,what\n1,2\n", "funding rate columns not recognised"),
    ("marks", "timestamp,mark\n1700000000000,-1\n", "row 2: column 'mark': -1 is not positive"),
    ("marks", "timestamp,close\n1700000000000,1\n", "missing mark (--mark-col)"),
])
def test_a_bad_file_is_one_line_and_nothing_is_written(
    tmp_path: Path, kind: str, text: str, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    data = tmp_path / "data"
    rc, out, err = run_in_process("import", kind, bad, "--venue", VENUE, "--symbol", SYM,
                                  "--data", data)
    assert rc != 0
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert str(bad) in err
    assert not list((data / "events").rglob("*.parquet")) if data.exists() else True


def test_options_of_other_kinds_are_refused(tmp_path: Path) -> None:
    rc, _, err = run_in_process("import", "funding", FUTURES / "XRP_USDT_USDT-8h-funding_rate"
                                ".feather", "--venue", VENUE, "--symbol", SYM, "--data",
                                tmp_path / "d", "--mark-col", "open")
    assert rc != 0 and "--mark-col does not apply to funding rate files" in err
    rc, _, err = run_in_process("import", "marks", FUTURES / "XRP_USDT_USDT-8h-mark.feather",
                                "--venue", VENUE, "--symbol", SYM, "--data", tmp_path / "d",
                                "--interval", "8h")
    assert rc != 0 and "--interval applies to bars only" in err


def test_skip_bad_rows_leaves_out_a_funding_row_that_is_not_a_rate(tmp_path: Path) -> None:
    csv = tmp_path / "funding.csv"
    csv.write_text("time,funding_rate\n1700000000000,0.0001\n1700028800000,inf\n"
                   "1700057600000,\n1700086400000,-0.0003\n")
    data, out = imported(tmp_path, "funding", csv, "--skip-bad-rows")
    assert "2 FundingRate rows" in out and "2 bad rows skipped (rows 3, 4;" in out
    assert "column 'funding_rate' is infinite" in out
    assert [e.rate for e in stored(data, "FundingRate")] == [0.0001, -0.0003]


def test_the_help_says_how_marks_are_stamped(capsys: pytest.CaptureFixture[str]) -> None:
    # a "%" in an option's help made `tapeloop import --help` a traceback
    from daemon.cli import main

    with pytest.raises(SystemExit) as done:
        main(["import", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "stamped at the candle OPEN with mark = `open`" in text
    assert "--rate-col NAME funding rate column (a fraction: 0.0001 is 0.01 %)" in text
