"""Journal crash safety with real processes and real SIGKILLs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from events.journal import read_journal
from events.store import EventStore, list_parts
from tests.conftest import REPO, cli_env

KILLS = 24


def all_events(data: Path) -> list[tuple[int, str, str]]:
    """(seq, type, trade_id) of every event in Parquet and the journal."""
    out = []
    for part in list_parts(data / "events"):
        t = pq.read_table(part.path, columns=["seq", "trade_id"])
        out += [(s, part.type, i) for s, i in zip(t["seq"].to_pylist(), t["trade_id"].to_pylist(),
                                                    strict=True)]
    out += [(e.seq, type(e).__name__, e.trade_id) for e in read_journal(data / "journal")]
    return sorted(out)


@pytest.mark.timeout(300)  # 24 child processes started and killed
def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    seed = int(os.environ.get("TAPELOOP_SEED", random.randrange(2**32)))
    print(f"seed={seed}")
    rng = random.Random(seed)
    data = tmp_path / "data"
    max_acked = 0
    errlog_path = tmp_path / "child.log"
    for i in range(KILLS):
        errlog = errlog_path.open("ab")
        child = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "events" / "journal_child.py"), str(data),
             str(rng.choice([4096, 65536, 1 << 20]))],
            stdout=subprocess.PIPE, stderr=errlog, env=cli_env(), cwd=REPO,
        )
        assert child.stdout is not None
        start = child.stdout.readline().split()
        assert start and start[0] == b"start", errlog_path.read_text()
        # a restart continues right after the last acknowledged event, or later
        assert int(start[1]) >= max_acked + 1, (i, start, max_acked)
        acks_wanted = rng.randint(1, 400)
        for _ in range(acks_wanted):
            line = child.stdout.readline()
            assert line.startswith(b"ack "), line
            max_acked = max(max_acked, int(line.split()[1]))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        errlog.close()
    events = all_events(data)
    seqs = [s for s, _, _ in events]
    assert seqs == list(range(1, len(seqs) + 1)), "seq is gap-free with no duplicates"
    assert len(seqs) >= max_acked, f"acknowledged {max_acked}, recovered {len(seqs)}"
    assert all(tid == str(s) for s, _, tid in events), "every event is the one written at its seq"
    assert {t for _, t, _ in events} == {"Trade", "Fill"}
    # and a final open rolls everything into Parquet, keeping it all
    with EventStore.open_writer(data) as store:
        assert store.last_seq == len(seqs)
    assert all_events(data) == events
    assert not list((data / "journal").iterdir())
