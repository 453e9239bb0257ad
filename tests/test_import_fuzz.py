"""Hostile import files: real samples from ../shared/data, mutated by hypothesis
(truncated, bytes flipped or inserted, cells made NaN, negative, empty or not
UTF-8, cells dropped or added, columns swapped, a zip member's deflate data
damaged), imported with `tapeloop import` in process into one store.

The rule every import keeps: exit 0 and every row it stored is valid, or exit 1
with one line on stderr naming the file, no traceback, and the store exactly as
it was (the same part files, byte for byte, and the same manifest).

Seeded: TAPELOOP_FUZZ_SEED (default 1) picks the examples,
TAPELOOP_FUZZ_EXAMPLES (default 25) how many each test runs; a failure prints
the seed and hypothesis's falsifying example.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from adapters.files import TS_MAX, TS_MIN
from daemon.cli import main

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
pytestmark = [
    pytest.mark.skipif(not DATA.is_dir(), reason=f"shared market data directory {DATA} is absent"),
    # An exception a library could only print (e.g. from a callback) is a failure too.
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

SEED = int(os.environ.get("TAPELOOP_FUZZ_SEED", "1"))
EXAMPLES = int(os.environ.get("TAPELOOP_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# A sample: its bytes, the file name to write it under, the import's arguments.
Sample = tuple[bytes, str, list[str]]


def _lean_sample() -> bytes:
    """The first 2,000 rows of a real Lean SPY day, zipped as Lean does."""
    with zipfile.ZipFile(DATA / "lean/equity/usa/tick/spy/20131007_trade.zip") as zf:
        text = zf.read(zf.namelist()[0])
    return _zipped(b"\n".join(text.split(b"\n")[:2000]) + b"\n")


def _zipped(member: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("20131007_spy_Trade_Tick.csv", member)
    return out.getvalue()


def _trades_csv() -> bytes:
    out = io.BytesIO()
    pacsv.write_csv(pq.read_table(DATA / "nautilus_trader/btcusdt-trades.parquet"), out)
    return out.getvalue()


def _bars_csv() -> bytes:
    """The first 1,500 one-minute bars of a real BTC-PERP file (two dates:
    the store writes a part per date, and each part is fsynced)."""
    with open(DATA / "nautilus_trader/btc-perp-20211231-20220201_1m.csv", "rb") as f:
        return b"".join(next(f) for _ in range(1501))


@pytest.fixture(scope="module")
def samples() -> dict[str, Sample]:
    bars = _bars_csv()
    bar_args = ["bars", "--interval", "1m"]
    return {
        "bars.csv": (bars, "bars.csv", bar_args),
        "bars.csv.gz": (gzip.compress(bars), "bars.csv.gz", bar_args),
        "trades.csv": (_trades_csv(), "trades.csv", ["trades"]),
        "lean.zip": (_lean_sample(), "20131007_trade.zip", ["trades"]),
        "trades.parquet": (
            (DATA / "nautilus_trader/btcusdt-trades.parquet").read_bytes(),
            "trades.parquet",
            ["trades"],
        ),
        "bars.feather": (
            (DATA / "freqtrade/XRP_ETH-1m.feather").read_bytes(),
            "bars.feather",
            ["bars", "--interval", "1m"],
        ),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One store for every example, holding an earlier import. In memory
    where the machine has /dev/shm: these tests are about what is written,
    and every import fsyncs its manifest and parts."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        root = Path(tempfile.mkdtemp(prefix="tapeloop-fuzz-", dir=shm))
    else:
        root = tmp_path_factory.mktemp("fuzz")
    data = root / "data"
    rc, _, err = tapeloop(
        "import", "trades", str(DATA / "nautilus_trader/btcusdt-trades.parquet"),
        "--venue", "base", "--symbol", "BASE", "--data", str(data),
    )
    assert rc == 0, err
    yield data
    shutil.rmtree(root, ignore_errors=True)


def tapeloop(*args: str) -> tuple[int, str, str]:
    """`tapeloop ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def snapshot(data: Path) -> dict[str, str]:
    """Every file of the store's parts and its manifest, by content."""
    files = [data / "store.json", *sorted((data / "events").rglob("*"))]
    return {
        str(f.relative_to(data)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in files
        if f.is_file()
    }


def check_rule(store: Path, sample: Sample, content: bytes, extra: list[str]) -> None:
    """Import `content` as `sample` and hold the import to the rule."""
    raw, name, args = sample
    path = store.parent / "in" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    before = snapshot(store)
    rc, out, err = tapeloop(
        "import", *args[:1], str(path), *args[1:], "--venue", "fuzz", "--symbol", "F",
        "--data", str(store), *extra,
    )
    where = f"(seed {SEED}; stdout {out!r}; stderr {err!r})"
    assert "Traceback" not in err, where
    if rc == 0:
        assert err == "", where
        after = snapshot(store)
        new = sorted(set(after) - set(before))
        assert all(before[k] == after[k] for k in before if k != "store.json"), where
        for part in new:
            check_rows(store / part, where)
        return
    assert rc == 1, where
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tapeloop import: {path}"), where
    assert out == "", where
    assert snapshot(store) == before, where


def check_rows(part: Path, where: str) -> None:
    """Every row of a part written by an import is a valid event."""
    table = pq.read_table(part)
    ts = table.column("ts_event").cast(pa.int64()).to_numpy()
    assert ((ts >= TS_MIN) & (ts < TS_MAX)).all(), where

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy()

    if "type=Trade" in str(part):
        assert (np.isfinite(col("price")) & (col("price") > 0)).all(), where
        assert (np.isfinite(col("size")) & (col("size") >= 0)).all(), where
    elif "type=Bar" in str(part):
        for name in ("open", "high", "low", "close"):
            assert (np.isfinite(col(name)) & (col(name) > 0)).all(), where
        volume = col("volume")
        # a file has volumes for every row, or none at all
        assert np.isnan(volume).all() or (np.isfinite(volume) & (volume >= 0)).all(), where
    else:
        raise AssertionError(f"unexpected part {part} {where}")


# -- mutations -----------------------------------------------------------------------

BAD_CELLS = [
    b"nan", b"NaN", b"inf", b"-inf", b"-1", b"0", b"", b"-0.5", b"1e400", b"1e-400",
    b"abc", b"\xff\xfe", b"caf\xc3", b"99999999999999999999", b"2101-01-01", b"NA", b" ",
]


@st.composite
def cell_edits(draw: st.DrawFn, text: bytes) -> bytes:
    """One to three edits of a CSV's cells: a bad value, a cell dropped or
    added, two columns' data swapped under the header, a byte that breaks
    UTF-8."""
    lines = text.split(b"\n")
    body = len(lines) - 2  # the last element is the empty tail after the final newline
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cell", "cell", "drop", "add", "swap", "utf8"]))
        r = draw(st.integers(1, body))
        cells = lines[r].split(b",")
        c = draw(st.integers(0, len(cells) - 1))
        if op == "cell":
            cells[c] = draw(st.sampled_from(BAD_CELLS))
        elif op == "drop":
            del cells[c]
        elif op == "add":
            cells.insert(c, b"1")
        elif op == "utf8":
            at = draw(st.integers(0, len(cells[c])))
            cells[c] = cells[c][:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82"]))
            cells[c] += lines[r].split(b",")[c][at:]
        else:
            d = draw(st.integers(0, len(cells) - 1))
            for i in range(1, body + 1):
                row = lines[i].split(b",")
                if max(c, d) < len(row):
                    row[c], row[d] = row[d], row[c]
                    lines[i] = b",".join(row)
            continue
        lines[r] = b",".join(cells)
    return b"\n".join(lines)


@st.composite
def byte_damage(draw: st.DrawFn, raw: bytes, lo: int = 0, hi: int | None = None) -> bytes:
    """Truncation, flipped bytes or inserted bytes, within raw[lo:hi]."""
    hi = len(raw) if hi is None else hi
    op = draw(st.sampled_from(["truncate", "flip", "flip", "insert"]))
    out = bytearray(raw)
    if op == "truncate":
        return bytes(out[: draw(st.integers(lo, hi - 1))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(lo, hi - 1))
        if op == "flip":
            out[at] ^= draw(st.integers(1, 255))
        else:
            out[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(out)


def _member_data(archive: bytes) -> tuple[int, int]:
    """Where a one-member zip keeps its member's compressed bytes."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return start, start + info.compress_size


# -- the properties ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bars.csv", "trades.csv"])
@pytest.mark.parametrize("skip", [False, True], ids=["refuse", "skip"])
@FUZZ
@seed(SEED)
@given(data=st.data())
def test_csv_with_bad_cells(
    samples: dict[str, Sample], store: Path, name: str, skip: bool, data: st.DataObject
) -> None:
    sample = samples[name]
    content = data.draw(cell_edits(sample[0]), label="mutated csv")
    check_rule(store, sample, content, ["--skip-bad-rows"] if skip else [])


@pytest.mark.parametrize(
    "name", ["bars.csv", "bars.csv.gz", "trades.csv", "lean.zip", "trades.parquet", "bars.feather"]
)
@FUZZ
@seed(SEED)
@given(data=st.data())
def test_damaged_bytes(
    samples: dict[str, Sample], store: Path, name: str, data: st.DataObject
) -> None:
    sample = samples[name]
    content = data.draw(byte_damage(sample[0]), label="damaged file")
    skip = data.draw(st.booleans(), label="--skip-bad-rows")
    check_rule(store, sample, content, ["--skip-bad-rows"] if skip else [])


@FUZZ
@seed(SEED)
@given(data=st.data())
def test_corrupt_zip_member(
    samples: dict[str, Sample], store: Path, data: st.DataObject
) -> None:
    sample = samples["lean.zip"]
    with zipfile.ZipFile(io.BytesIO(sample[0])) as zf:
        text = zf.read(zf.namelist()[0])
    if data.draw(st.booleans(), label="bad cells too"):
        text = data.draw(cell_edits(text), label="mutated member")
    archive = _zipped(text)
    lo, hi = _member_data(archive)
    content = data.draw(byte_damage(archive, lo, hi), label="damaged deflate data")
    check_rule(store, sample, content, [])


def test_the_rule_holds_for_the_samples_as_they_are(
    samples: dict[str, Sample], store: Path
) -> None:
    """The unmutated samples import (with the rule's validity checks), so the
    properties above test mutations, not samples that always fail."""
    for sample in samples.values():
        before = snapshot(store)
        check_rule(store, sample, sample[0], ["--force"])
        assert snapshot(store) != before, sample[1]

