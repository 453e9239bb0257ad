"""A damaged journal tail: the segment a killed paper run left, truncated, with bytes
flipped, or with garbage appended or inserted. The next open never raises a bug of ours
and loses nothing silently; it does one of two things:

- recovers: keeps every frame before the damage and nothing after it (a frame past a
  hole would leave a seq gap), says so with a warning (unless what is left is clean),
  and continues the seq right after the last good frame;
- or refuses, in one line naming the segment and leaving it as it is, when whole frames
  of order or state events follow the damage: those were fsynced before anything acted
  on them, so a crash did not tear them and truncating would lose recorded state
  (issue 10 item 2; a person decides). A refusal is never allowed for a plain torn tail.

Most examples open the store in this process, as the daemon's start does
(`EventStore.open_writer(roll=False)`, then `open_journal`); a few start the real
`tapeloop run` on the damaged directory: READY and exit 0 on SIGTERM, or the
data-directory exit code with one line.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import given, note
from hypothesis import strategies as st

from events.codec import decode
from events.journal import MAGIC, list_segments, read_journal
from events.registry import CRITICAL_TYPES
from events.store import EventStore, list_parts, read_manifest
from tests.fuzz.contract import EXIT_DATA, Outcome, assert_refusal, captured_logs
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
    """The magic and whole frames, then nothing or only zeros (the unwritten rest of a
    preallocated segment): what a clean stop or a crash could leave."""
    ends = [end for end, _, _ in frames(blob)]
    end = ends[-1] if ends else len(MAGIC)
    return blob[: len(MAGIC)] == MAGIC and not blob[end:].strip(b"\0")


@dataclass(frozen=True)
class Damaged:
    data: Path  # the damaged copy of the data directory
    segment: Path
    before: list[tuple[int, bytes]]  # (seq, payload) of every frame before the damage
    blob: bytes  # the segment as damaged
    critical_after: bool  # whole frames of a critical event follow the damage


def _damage_end(damage: Damage, size: int) -> int:
    """The first byte of the original segment past the damage (frames wholly after it
    are still whole in the damaged file)."""
    if damage.kind == "flip":
        return damage.offset + len(damage.data)
    if damage.kind == "insert":
        return damage.offset
    return size + 1  # truncate, append: nothing of the original follows


@contextmanager
def damaged_copy(store: Path, damage: Damage) -> Iterator[Damaged]:
    """A copy of `store` with its last journal segment damaged."""
    with tempfile.TemporaryDirectory(prefix="journal-fuzz-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(store, data)
        _, segment = list_segments(data / "journal")[-1]
        blob = segment.read_bytes()
        whole = frames(blob)
        before = [(seq, payload) for end, seq, payload in whole if end <= damage.offset]
        past = _damage_end(damage, len(blob))
        critical_after = any(
            stop - len(payload) - _HEADER.size >= past and type(decode(payload)) in CRITICAL_TYPES
            for stop, _, payload in whole)
        damaged = damage.apply(blob)
        segment.write_bytes(damaged)
        yield Damaged(data, segment, before, damaged, critical_after)


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


def assert_clean_refusal(damaged: Damaged, message: str, kind: str) -> None:
    """A refusal to open is allowed only where truncating would lose recorded order or
    state events, says so in one line naming the segment, and leaves it as it is."""
    assert damaged.critical_after, (
        f"a torn tail (no order or state frame follows the damage) was refused: {message}")
    assert "\n" not in message.strip() and damaged.segment.name in message, message
    assert kind.startswith("events."), f"{kind} is not a fault of the store: {message}"
    assert damaged.segment.read_bytes() == damaged.blob, "the refusal changed the segment"


@fuzz(30)
@given(data=st.data())
def test_damaged_journal_tail_keeps_every_frame_before_the_damage(
        crashed_store: Path, data: st.DataObject) -> None:
    note_seed(HERE)
    _, segment = list_segments(crashed_store / "journal")[-1]
    size = segment.stat().st_size
    damage = data.draw(damages(size), label="damage")
    with damaged_copy(crashed_store, damage) as d:
        note(f"damage {damage} to a {size}-byte segment; {len(d.before)} frames before it; "
             f"order or state frames after it: {d.critical_after}")
        with captured_logs() as logs:
            try:
                next_seq = open_like_the_daemon(d.data)
            except Exception as exc:  # judged: only a clean refusal of our own passes
                assert_clean_refusal(d, str(exc), type(exc).__module__)
                return
        warnings = [line for line in logs() if line.get("level") == "warning"]
        if is_clean(d.blob):
            assert not warnings, f"a clean journal warned: {warnings}"
        else:
            assert warnings, "the damage was repaired without a warning"
        assert_recovered(d.data, d.before, next_seq)
        # a second open finds a clean journal: same frames, no warning
        with captured_logs() as logs:
            assert open_like_the_daemon(d.data) == next_seq
        assert not [line for line in logs() if line.get("level") == "warning"]
        assert_recovered(d.data, d.before, next_seq)


@fuzz(2)
@given(data=st.data())
def test_daemon_starts_on_a_damaged_journal_tail(crashed_store: Path, data: st.DataObject) -> None:
    """The real `tapeloop run`: READY, a warning line, SIGTERM exits 0, and the store it
    leaves keeps every frame before the damage with a gap-free seq; or a refusal with
    the data-directory code and one line. Never a traceback."""
    note_seed(HERE)
    _, segment = list_segments(crashed_store / "journal")[-1]
    size = segment.stat().st_size
    # damage inside the frames (past the magic), so some frames survive it
    damage = data.draw(damages(size, start=len(MAGIC) + 1), label="damage")
    with damaged_copy(crashed_store, damage) as d:
        note(f"damage {damage} to a {size}-byte segment; {len(d.before)} frames before it; "
             f"order or state frames after it: {d.critical_after}")
        rolled = read_manifest(d.data).rolled_seq
        daemon = Daemon(paper_config(d.data.parent), d.data, d.data.parent / "daemon.log")
        try:
            ready = daemon.wait_ready_or_exit()
        finally:
            code = daemon.stop()
        assert "Traceback" not in daemon.text(), daemon.text()[-3000:]
        if not ready:
            outcome = Outcome(("run",), code, "", daemon.stderr())
            assert code == EXIT_DATA, f"a refused start must exit {EXIT_DATA}\n{outcome}"
            assert_refusal(outcome, [d.segment.name], "from run")
            assert_clean_refusal(d, daemon.stderr(), "events.")
            return
        assert code == 0, daemon.text()[-3000:]
        warned = [line for line in daemon.lines() if line.get("level") == "warning"
                  and "journal" in str(line.get("event"))]
        assert warned or is_clean(d.blob), "the damage was repaired without a warning"
        last_good = d.before[-1][0] if d.before else rolled
        [opened] = daemon.lines("daemon.opened")
        assert opened["next_seq"] == last_good + 1, (opened, last_good)
        seqs = sorted(stored_seqs(d.data) + [e.seq for e in read_journal(d.data / "journal")])
        assert seqs == list(range(1, len(seqs) + 1)), "a seq gap or double after the run"
        assert {seq for seq, _ in d.before} <= set(seqs), "a frame before the damage was lost"
