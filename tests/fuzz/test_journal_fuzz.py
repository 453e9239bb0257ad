"""A damaged journal tail: the segment a killed paper run left, truncated, with bytes
flipped, or with garbage appended or inserted. The next open keeps every frame before
the damage and nothing after it (a frame past a hole would leave a seq gap), says so
with a warning, continues the seq right after the last good frame, and never raises.

Most examples open the store in this process, as the daemon's start does
(`EventStore.open_writer(roll=False)`, then `open_journal`); a few start the real
`tapeloop run` on the damaged directory and stop it with SIGTERM.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import given, note
from hypothesis import strategies as st

from events.codec import decode
from events.journal import MAGIC, list_segments, read_journal
from events.store import EventStore, list_parts, read_manifest
from tests.fuzz.contract import captured_logs
from tests.fuzz.damage import Damage, damages
from tests.fuzz.paper import Daemon, paper_config
from tests.fuzz.settings import fuzz, note_seed

HERE = "tests/fuzz/test_journal_fuzz.py"
_HEADER = struct.Struct("<II")  # the journal's frame header: length, crc32 (events/journal.py)


def frames(blob: bytes) -> list[tuple[int, int, bytes]]:
    """(end offset, seq, payload) of every intact frame of a segment, read the way the
    format is documented rather than with the journal's own code."""
    out: list[tuple[int, int, bytes]] = []
    if blob[: len(MAGIC)] != MAGIC:
        return out
    pos = len(MAGIC)
    while pos + _HEADER.size <= len(blob):
        length, crc = _HEADER.unpack_from(blob, pos)
        body = pos + _HEADER.size
        payload = blob[body : body + length]
        if length == 0 or len(payload) != length or zlib.crc32(payload) != crc:
            break
        out.append((body + length, decode(payload).seq, payload))
        pos = body + length
    return out


def is_clean(blob: bytes) -> bool:
    """The magic and whole frames, nothing else: what a clean stop could leave."""
    ends = [end for end, _, _ in frames(blob)]
    return blob[: len(MAGIC)] == MAGIC and len(blob) == (ends[-1] if ends else len(MAGIC))


@contextmanager
def damaged_copy(store: Path, damage: Damage
                 ) -> Iterator[tuple[Path, list[tuple[int, bytes]], bytes]]:
    """A copy of `store` with its last journal segment damaged; yields the copy, the
    (seq, payload) of every frame before the damage, and the damaged bytes."""
    with tempfile.TemporaryDirectory(prefix="journal-fuzz-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(store, data)
        _, segment = list_segments(data / "journal")[-1]
        blob = segment.read_bytes()
        before = [(seq, payload) for end, seq, payload in frames(blob) if end <= damage.offset]
        damaged = damage.apply(blob)
        segment.write_bytes(damaged)
        yield data, before, damaged


def stored_seqs(data: Path) -> list[int]:
    seqs: list[int] = []
    for part in list_parts(data / "events"):
        seqs += pq.read_table(part.path, columns=["seq"])["seq"].to_pylist()
    return seqs


def assert_recovered(data: Path, before: list[tuple[int, bytes]], next_seq: int) -> None:
    """Every frame before the damage is back, byte for byte, nothing after it, and the
    seq runs gap-free from 1 to where the writer goes on."""
    journal = {e.seq: e for e in read_journal(data / "journal")}
    assert sorted(journal) == [seq for seq, _ in before], (
        f"the journal holds seqs {sorted(journal)[:3]}..{sorted(journal)[-3:]}, "
        f"the frames before the damage were {[s for s, _ in before][:3]}..")
    for seq, payload in before:
        assert decode(payload) == journal[seq], f"frame {seq} changed"
    seqs = sorted(stored_seqs(data) + list(journal))
    assert seqs == list(range(1, len(seqs) + 1)), "the store's seq has a gap or a double"
    assert next_seq == len(seqs) + 1, f"the writer goes on at {next_seq} after {len(seqs)}"


def open_like_the_daemon(data: Path) -> int:
    """What the daemon's start does to the data directory; the next seq it would write."""
    with EventStore.open_writer(data, roll=False) as store:
        return store.open_journal().next_seq


@fuzz(30)
@given(data=st.data())
def test_damaged_journal_tail_keeps_every_frame_before_the_damage(
        crashed_store: Path, data: st.DataObject) -> None:
    note_seed(HERE)
    _, segment = list_segments(crashed_store / "journal")[-1]
    size = segment.stat().st_size
    damage = data.draw(damages(size), label="damage")
    with damaged_copy(crashed_store, damage) as (copy, before, damaged):
        note(f"damage {damage} to a {size}-byte segment; {len(before)} frames before it")
        with captured_logs() as logs:
            next_seq = open_like_the_daemon(copy)
        warnings = [line for line in logs() if line.get("level") == "warning"]
        if is_clean(damaged):
            assert not warnings, f"a clean journal warned: {warnings}"
        else:
            assert warnings, "the damage was repaired without a warning"
        assert_recovered(copy, before, next_seq)
        # a second open finds a clean journal: same frames, no warning
        with captured_logs() as logs:
            assert open_like_the_daemon(copy) == next_seq
        assert not [line for line in logs() if line.get("level") == "warning"]
        assert_recovered(copy, before, next_seq)


@fuzz(2)
@given(data=st.data())
def test_daemon_starts_on_a_damaged_journal_tail(crashed_store: Path, data: st.DataObject) -> None:
    """The real `tapeloop run`: READY, a warning line, SIGTERM exits 0, no traceback;
    the store it leaves keeps every frame before the damage and its seq is gap-free."""
    note_seed(HERE)
    _, segment = list_segments(crashed_store / "journal")[-1]
    size = segment.stat().st_size
    # damage inside the frames (past the magic), so some frames survive it
    damage = data.draw(damages(size, start=len(MAGIC) + 1), label="damage")
    with damaged_copy(crashed_store, damage) as (copy, before, damaged):
        note(f"damage {damage} to a {size}-byte segment; {len(before)} frames before it")
        rolled = read_manifest(copy).rolled_seq
        daemon = Daemon(paper_config(copy.parent), copy, copy.parent / "daemon.log")
        try:
            assert daemon.wait_ready_or_exit(), daemon.text()[-3000:]
        finally:
            code = daemon.stop()
        log = daemon.text()
        assert code == 0 and "Traceback" not in log, log[-3000:]
        warned = [line for line in daemon.lines() if line.get("level") == "warning"
                  and "journal" in str(line.get("event"))]
        assert warned or is_clean(damaged), "the damage was repaired without a warning"
        last_good = before[-1][0] if before else rolled
        [opened] = daemon.lines("daemon.opened")
        assert opened["next_seq"] == last_good + 1, (opened, last_good)
        seqs = sorted(stored_seqs(copy) + [e.seq for e in read_journal(copy / "journal")])
        assert seqs == list(range(1, len(seqs) + 1)), "a seq gap or double after the run"
        assert {seq for seq, _ in before} <= set(seqs), "a frame before the damage was lost"
