"""A journal segment damaged before its end (issue 10, item 2): a tail a crash tore is
truncated as always, but damage followed by whole frames of critical events (which
were fsynced, so no crash tore them) stops the open with one line naming the segment
and the byte, the file untouched, instead of silently truncating recorded orders."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from events import Fill, Trade
from events.bus import Bus
from events.faults import DataFault, JournalDamaged
from events.journal import HEADER_SIZE, MAGIC, Journal, list_segments, read_journal
from events.registry import CRITICAL_TYPES
from events.segments import recover


def mixed(n: int, fill_every: int) -> list[Trade | Fill]:
    out: list[Trade | Fill] = []
    for i in range(n):
        ts = 1_700_000_000_000_000_000 + i
        if fill_every and i % fill_every == fill_every - 1:
            out.append(Fill(ts_event=ts, ts_recv=ts, venue="v", symbol="S", strategy_id="s",
                            client_order_id=f"c{i}", trade_id=str(i), side="BUY",
                            qty=Decimal("0.001"), price=Decimal("100.5"), fee=Decimal(0),
                            fee_currency="USD", liquidity="TAKER"))
        else:
            out.append(Trade(ts_event=ts, ts_recv=ts, venue="v", symbol="S", price=float(i),
                             size=1.0, trade_id=str(i)))
    return out


def write(journal_dir: Path, events: list) -> tuple[Path, list[int]]:
    """The segment and the offset of each frame."""
    journal, _ = Journal.open(journal_dir)
    bus = Bus(next_seq=journal.next_seq, journal=journal.append)
    for e in events:
        bus.publish(e)
    journal.close()
    (_, seg), = list_segments(journal_dir)
    data = seg.read_bytes()
    offsets, pos = [], len(MAGIC)
    while pos < len(data):
        offsets.append(pos)
        pos += HEADER_SIZE + int.from_bytes(data[pos : pos + 4], "little")
    assert len(offsets) == len(events)
    return seg, offsets


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), fill_every=st.sampled_from([0, 3, 7, 25]), data=st.data())
def test_damage_is_refused_exactly_when_recorded_critical_frames_follow(
        tmp_path_factory: pytest.TempPathFactory, n: int, fill_every: int,
        data: st.DataObject) -> None:
    journal_dir = tmp_path_factory.mktemp("j")
    events = mixed(n, fill_every)
    seg, offsets = write(journal_dir, events)
    raw = bytearray(seg.read_bytes())
    at = data.draw(st.integers(0, len(raw) - 1), label="damaged byte")
    zeros = data.draw(st.booleans(), label="zero a range instead of flipping a bit")
    if zeros:
        end = min(len(raw), at + data.draw(st.integers(1, 64)))
        if not any(raw[at:end]):
            return  # nothing changed
        raw[at:end] = bytes(end - at)
        last_touched = end - 1
    else:
        raw[at] ^= 1 << data.draw(st.integers(0, 7))
        last_touched = at
    seg.write_bytes(bytes(raw))
    hit = sum(1 for o in offsets if o <= at) - 1  # frame index of the damage; -1: the magic
    after = [e for i, e in enumerate(events) if i > hit and offsets[i] > last_touched]
    if any(type(e) in CRITICAL_TYPES for e in after):
        with pytest.raises(JournalDamaged) as refused:
            Journal.open(journal_dir)
        line = str(refused.value)
        assert str(seg) in line and "\n" not in line
        assert f"byte {offsets[hit] if hit >= 0 else 0}" in line
        assert seg.read_bytes() == bytes(raw), "a refusal changes nothing"
    else:
        journal, _ = Journal.open(journal_dir)
        kept = max(hit, 0)  # the frames before the damaged one
        assert [e.seq for e in read_journal(journal_dir)] == list(range(1, kept + 1))
        assert journal.next_seq == kept + 1


def test_a_damaged_magic_does_not_delete_a_segment_of_orders(tmp_path: Path) -> None:
    events = mixed(20, 4)
    seg, _ = write(tmp_path, events)
    raw = bytearray(seg.read_bytes())
    raw[2] ^= 0x10
    seg.write_bytes(bytes(raw))
    with pytest.raises(DataFault, match="damaged at byte 0"):
        Journal.open(tmp_path)
    assert seg.exists() and seg.read_bytes() == bytes(raw)


def test_a_torn_tail_after_the_last_fill_is_still_truncated(tmp_path: Path) -> None:
    events = mixed(30, 10)  # fills at 9, 19, 29; trades after none
    events = events[:25]  # the last frames are trades
    seg, offsets = write(tmp_path, events)
    raw = bytearray(seg.read_bytes())
    raw[offsets[21] + HEADER_SIZE + 2] ^= 0xFF  # a trade after the last fill
    seg.write_bytes(bytes(raw))
    journal, _ = Journal.open(tmp_path)
    assert journal.next_seq == 22
    assert [e.seq for e in read_journal(tmp_path)] == list(range(1, 22))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 40), fill_every=st.sampled_from([0, 3, 7]), data=st.data())
def test_a_truncated_tail_is_fsynced_with_its_directory(
        tmp_path_factory: pytest.TempPathFactory, n: int, fill_every: int,
        data: st.DataObject) -> None:
    """Recovery of a durable journal that truncates damage with no critical frame
    after it fsyncs the cut segment and the directory. A local holding the
    critical frames once shadowed the `durable` flag, so an empty list skipped
    both fsyncs (a torn tail's usual case: nothing whole after it)."""
    journal_dir = tmp_path_factory.mktemp("j")
    events = mixed(n, fill_every)
    seg, offsets = write(journal_dir, events)
    raw = bytearray(seg.read_bytes())
    # the damaged frame: none after it is critical (else recovery refuses)
    last_critical = max((i for i, e in enumerate(events) if type(e) in CRITICAL_TYPES),
                        default=-1)
    assume(last_critical < n - 1)
    k = data.draw(st.integers(last_critical + 1, n - 1), label="damaged frame")
    end = offsets[k + 1] if k + 1 < n else len(raw)
    if data.draw(st.booleans(), label="torn off instead of a flipped body byte"):
        raw = raw[: data.draw(st.integers(offsets[k] + 1, end - 1), label="cut at")]
    else:
        raw[end - 1] ^= 0xFF
    seg.write_bytes(bytes(raw))
    synced: list[int] = []
    real = os.fsync
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino), real(fd))[1])
        recover(journal_dir)
    if k == 0:  # no frame left: the segment is removed (the directory says so)
        assert not seg.exists()
    else:
        assert seg.stat().st_size == offsets[k], "cut at the damaged frame"
        assert seg.stat().st_ino in synced, "the cut segment is fsynced"
    assert journal_dir.stat().st_ino in synced, "the directory is fsynced"
