"""`tapeloop store check --data DIR` (issue 10, item 2): reads every part, the journal and
the manifest, and reports each damage in one line; exit 0 when clean, 6 otherwise; what
the next start handles by design (a torn journal tail) is a note, not damage."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.base import Event
from events.bus import Bus
from events.journal import list_segments
from events.lock import DirLock
from events.store import EventStore, list_parts
from replay.check import check_store
from replay.reader import StoreError, read_events
from tests.conftest import REPO, cli_env, tapeloop_cmd
from tests.replay.helpers import DAY0_NS, DAY_NS, make_event

EXIT_DATA = 6


def build(root: Path, rolled: int = 600, unrolled: int = 40) -> list[Event]:
    """A store as a daemon leaves it: `rolled` events in Parquet over two days, then
    `unrolled` in the journal (a fill every 7th)."""
    store = EventStore.open_writer(root)
    journal = store.open_journal()
    bus = Bus(next_seq=journal.next_seq, journal=journal.append)
    events = []
    for i in range(rolled + unrolled):
        kind = "Fill" if i % 7 == 6 else ("Trade", "Quote")[i % 2]
        events.append(bus.publish(make_event(kind, DAY0_NS + i * (DAY_NS // 500), 0)))
        if i + 1 == rolled:
            segment = journal.rotate()
            assert segment is not None
            store.roll_segment(segment)
    journal.close()
    store.close()
    return events


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "data"
    build(root)
    return root


def copy(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "data"))


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tapeloop_cmd("store", "check", "--data", str(root)), cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=120)


def damaged_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in out.stdout + out.stderr
    return [line for line in out.stdout.splitlines() if line.startswith("damaged: ")]


def test_a_clean_store_is_clean(pristine: Path) -> None:
    out = check(pristine)
    assert out.returncode == 0, out.stdout + out.stderr
    assert damaged_lines(out) == [] and out.stderr == ""
    assert out.stdout.splitlines()[-1].startswith(f"{pristine}: clean (")
    report = check_store(pristine)
    assert report.rows == 600 and report.frames == 40 and report.parts >= 6


@pytest.mark.parametrize("how", ["truncate", "flip", "delete", "garbage"])
def test_a_damaged_part_is_one_line_and_exit_6(pristine: Path, tmp_path: Path,
                                               how: str) -> None:
    root = copy(pristine, tmp_path)
    part = next(p for p in list_parts(root / "events") if p.type == "Fill")
    raw = bytearray(part.path.read_bytes())
    if how == "truncate":
        part.path.write_bytes(raw[: len(raw) // 2])
    elif how == "flip":
        raw[len(raw) // 4] ^= 0x20
        part.path.write_bytes(bytes(raw))
    elif how == "delete":
        part.path.unlink()
    else:
        part.path.write_bytes(bytes(raw) + b"tail garbage")
    out = check(root)
    assert out.returncode == EXIT_DATA, out.stdout
    lines = damaged_lines(out)
    gone = [line for line in lines if "seqs missing from Parquet" in line]
    assert len(gone) == 1, lines  # its seqs are nowhere else: one line says so
    if how != "delete":  # and one line names the part
        others = [line for line in lines if line not in gone]
        assert len(others) == 1 and others[0].startswith(f"damaged: {part.path}: "), lines


def test_journal_torn_tail_is_a_note_and_damage_before_fills_is_not(
        pristine: Path, tmp_path: Path) -> None:
    root = copy(pristine, tmp_path)
    (_, segment), = list_segments(root / "journal")
    raw = segment.read_bytes()
    segment.write_bytes(raw[:-5])  # a crash tore the last frame
    out = check(root)
    assert out.returncode == 0 and "note: " in out.stdout and "torn tail" in out.stdout
    damaged = bytearray(raw)
    damaged[len(raw) // 3] ^= 0x01  # fills follow
    segment.write_bytes(bytes(damaged))
    out = check(root)
    lines = damaged_lines(out)
    assert out.returncode == EXIT_DATA and len(lines) == 1 and str(segment) in lines[0]
    assert "truncating would lose" in lines[0]


def test_an_unreadable_manifest_and_a_doubled_part(pristine: Path, tmp_path: Path) -> None:
    root = copy(pristine, tmp_path)
    (root / "store.json").write_text("{not json")
    out = check(root)
    assert out.returncode == EXIT_DATA
    assert [line for line in damaged_lines(out) if "store.json" in line]
    root2 = copy(pristine, tmp_path / "b")
    part = list_parts(root2 / "events")[0]
    shutil.copy(part.path, part.path.with_name("part-09999.parquet"))
    lines = damaged_lines(check(root2))
    assert len(lines) >= 1 and "also in another part" in " ".join(lines)


def test_a_running_daemon_is_not_checked_under_its_feet(pristine: Path, tmp_path: Path) -> None:
    root = copy(pristine, tmp_path)
    with DirLock(root):
        out = check(root)
    assert out.returncode == 4 and out.stderr.count("\n") == 1 and "in use" in out.stderr


@settings(max_examples=40, deadline=None)
@given(which=st.integers(0, 30), at=st.integers(0, 10**9), bit=st.integers(0, 7),
       cut=st.booleans())
def test_check_finds_what_a_reader_would_trip_on_or_the_data_is_intact(
        pristine: Path, tmp_path_factory: pytest.TempPathFactory, which: int, at: int,
        bit: int, cut: bool) -> None:
    root = Path(shutil.copytree(pristine, tmp_path_factory.mktemp("h") / "data"))
    part = list_parts(root / "events")[which % len(list_parts(root / "events"))]
    raw = bytearray(part.path.read_bytes())
    if cut:
        raw = raw[: at % len(raw)]
    else:
        raw[at % len(raw)] ^= 1 << bit
    part.path.write_bytes(bytes(raw))
    report = check_store(root)
    if report.damaged:
        assert all(str(part.path) in f.line() or "missing" in f.message
                   for f in report.damaged), [f.line() for f in report.damaged]
        return
    try:  # clean: then every reader reads exactly what was written
        got = [e for batch in read_events(root) for e in batch]
    except StoreError as exc:
        raise AssertionError(f"store check missed {exc}") from None
    want = [e for batch in read_events(pristine) for e in batch]
    assert got == want
