"""`tapeloop import` of damaged real sample files (`tests.fuzz.import_mutation`) into a
store that already holds an import: exit 0 with every imported row valid (finite,
positive prices, sizes and volumes not negative), or a documented non-zero exit with ONE
line naming the file, never a traceback; after a refusal the store is as it was, file
for file (an import is all or nothing).

Value checks apply to the file kinds (trades, bars, quotes); a Binance recording
(binance-stream) is held to the one-line rule and all-or-nothing only.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.store import list_parts
from tests.conftest import SHARED_DATA
from tests.fuzz.contract import Outcome, assert_refusal, assert_rule, run_cli, run_process
from tests.fuzz.import_mutation import SAMPLES, Sample, import_mutation
from tests.fuzz.settings import fuzz, note_seed

HERE = "tests/fuzz/test_import_fuzz.py"
pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                reason=f"shared market data not found at {SHARED_DATA}")

# value columns of what an import writes: (prices, sizes)
VALUES = {"Trade": (("price",), ("size",)), "Bar": (("open", "high", "low", "close"), ("volume",)),
          "Quote": (("bid", "ask"), ("bid_size", "ask_size"))}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one import already, so "as it was" has something to lose."""
    home = tmp_path_factory.mktemp("import-store")
    first = SAMPLES[0]
    path = home / first.name
    path.write_bytes(first.original())
    out = run_cli("import", first.kind, path, "--venue", "seed", "--symbol", "SEED",
                  "--data", home / "data")
    assert out.code == 0, out
    return home / "data"


def fingerprint(data: Path) -> dict[str, str]:
    return {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data.rglob("*")) if p.is_file() and p.name != "LOCK"}


def invalid_rows(data: Path, new: set[str]) -> list[str]:
    """The new parts' rows with a NaN, an infinity, a price <= 0 or a size < 0."""
    bad = []
    for part in list_parts(data / "events"):
        if str(part.path.relative_to(data)) not in new or part.type not in VALUES:
            continue
        prices, sizes = VALUES[part.type]
        table = pq.read_table(part.path, columns=[*prices, *sizes, "seq"])
        for row in table.to_pylist():
            wrong = [f"{c}={row[c]}" for c in prices
                     if row[c] is None or not math.isfinite(row[c]) or row[c] <= 0]
            wrong += [f"{c}={row[c]}" for c in sizes
                      if row[c] is None or not math.isfinite(row[c]) or row[c] < 0]
            if wrong:
                bad.append(f"{part.type} seq {row['seq']}: {', '.join(wrong)}")
    return bad


@contextmanager
def fresh_copy(store: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="import-fuzz-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(store, data)
        yield data


def check_import(sample: Sample, body: bytes, store: Path, *, process: bool = False,
                 skip_bad_rows: bool = False) -> Outcome:
    """Import `body`; with `skip_bad_rows` a bad row is skipped and counted instead of
    refusing the file, and what is stored must still be valid."""
    with fresh_copy(store) as data:
        path = data.parent / sample.name
        path.write_bytes(body)
        before = fingerprint(data)
        argv = [*sample.argv(path, data), *(["--skip-bad-rows"] if skip_bad_rows else [])]
        out = (run_process if process else run_cli)(*argv)
        assert_rule(out, [str(path), path.name], f"importing {sample.name}")
        after = fingerprint(data)
        if out.code != 0:
            assert after == before, f"a refused import changed the store\n{out}"
            return out
        changed = [name for name, digest in before.items()
                   if after.get(name) != digest and name != "store.json"]
        assert not changed, f"an import rewrote what was there: {changed}"
        if sample.kind != "binance-stream":
            bad = invalid_rows(data, set(after) - set(before))
            assert not bad, f"imported {len(bad)} invalid rows, e.g. {bad[:3]}\n{out}"
        return out


def test_every_sample_imports_as_it_is(store: Path) -> None:
    """The starting points import cleanly, so a refusal below is the damage's doing."""
    for sample in SAMPLES:
        out = check_import(sample, sample.original(), store)
        assert out.code == 0, out


@fuzz(40)
@given(data=st.data())
def test_damaged_import_file_is_imported_valid_or_refused_in_one_line(
        store: Path, data: st.DataObject) -> None:
    note_seed(HERE)
    sample = data.draw(st.sampled_from(SAMPLES), label="sample")
    mutated = data.draw(import_mutation(sample), label="mutation")
    skip = sample.kind != "binance-stream" and data.draw(st.booleans(), label="--skip-bad-rows")
    check_import(sample, mutated.body, store, skip_bad_rows=skip)


@fuzz(2)
@given(data=st.data())
def test_damaged_import_file_in_a_real_process(
        store: Path, data: st.DataObject) -> None:
    note_seed(HERE)
    sample = data.draw(st.sampled_from(SAMPLES), label="sample")
    mutated = data.draw(import_mutation(sample), label="mutation")
    check_import(sample, mutated.body, store, process=True)


@pytest.mark.parametrize("cell", ["nan", "-1", "", "inf"])
def test_known_bad_values_are_refused(store: Path, cell: str) -> None:
    """Issue 10: a NaN price, a negative price, an empty volume were imported silently."""
    sample = SAMPLES[0]  # basana daily bars: datetime,open,high,low,close,volume
    lines = sample.original().split(b"\n")
    cells = lines[3].split(b",")
    cells[5 if cell == "" else 1] = cell.encode()
    lines[3] = b",".join(cells)
    out = check_import(sample, b"\n".join(lines), store)
    assert out.code != 0, f"a bar with {cell!r} was imported\n{out}"
    assert_refusal(out, [sample.name])
