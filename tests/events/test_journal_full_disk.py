"""A journal on a disk that stops taking writes (issue 10, item 3), with a real child
process whose file size limit makes writes fail with EFBIG, as on a full disk: the
journal refuses cleanly and for good (no BufferError, no seq mismatch, no exception
from tick or close), keeps only whole frames on disk, and a reopened journal holds
every event acknowledged, gap-free, and goes on after it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from events.base import Event, stamp_seq
from events.journal import Journal, list_segments, read_journal, scan_segment
from tests.conftest import REPO, cli_env
from tests.events.journal_full_child import event

CHILD = REPO / "tests" / "events" / "journal_full_child.py"


def stamped(seq: int) -> Event:
    e = event(seq)
    stamp_seq(e, seq)
    return e


def fill_up(journal_dir: Path, limit: int) -> dict:
    out = subprocess.run([sys.executable, str(CHILD), str(journal_dir), str(limit)],
                         capture_output=True, env=cli_env(), cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    assert b"Traceback" not in out.stderr, out.stderr.decode()[-3000:]
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_a_full_disk_is_refused_cleanly_and_everything_written_survives(tmp_path: Path) -> None:
    seed = int(os.environ.get("TAPELOOP_SEED", random.randrange(2**32)))
    print(f"seed={seed}")
    rng = random.Random(seed)
    for round_ in range(4):
        journal_dir = tmp_path / f"j{round_}"
        limit = rng.randrange(2_000, 120_000)  # bytes: cuts a frame anywhere
        got = fill_up(journal_dir, limit)
        assert got["first"] == "JournalWriteError", (limit, got)
        assert "File too large" in got["message"] and "seg-" in got["message"], got
        assert got["later"] == ["JournalWriteError"] * 5, (limit, got)  # refused, the same way
        assert got["tick"] == "ok" and got["close"] == "ok", (limit, got)
        assert got["acked"] <= got["synced_seq"] <= got["written_seq"], got
        # only whole frames are left: nothing for the next start to truncate
        segments = list_segments(journal_dir)
        assert [scan_segment(p, first).torn for first, p in segments] == [False] * len(segments)
        # the next start, with room again, has every event up to written_seq
        journal, _ = Journal.open(journal_dir)
        assert journal.next_seq == got["written_seq"] + 1
        events = list(read_journal(journal_dir))
        assert [e.seq for e in events] == list(range(1, got["written_seq"] + 1))
        assert events == [stamped(e.seq) for e in events]
        journal.append(stamped(journal.next_seq))  # and goes on right after
        journal.close()
        assert [e.seq for e in read_journal(journal_dir)][-1] == got["written_seq"] + 1
