"""A replay ends by rolling its run's events into Parquet: when `tapeloop replay`
returns, the run's events are in Parquet and the directory is free; a roll that
fails is one line, exit 6 and no report.json (whose presence means the run is
whole). (Rolling on a thread beside the report's writing was tried for speed in
issue 15: the two contend for the GIL, and it gained nothing.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from events.store import EventStore, list_parts
from tests.conftest import REPO, cli_env, import_spy

CONFIG = str(REPO / "configs" / "replay-spy.toml")

# `tapeloop replay` as the program runs it, in a child (it configures logging
# for the process); with "full", the disk refuses the roll at the last inch
PROBE = """
import errno, sys
from events.store import EventStore
if sys.argv[1] == "full":
    def full(self, segment, chunk_events=100_000):
        raise OSError(errno.ENOSPC, "No space left on device", str(segment))
    EventStore.roll_segment = full
sys.argv = ["tapeloop", *sys.argv[2:]]
import daemon.cli
daemon.cli.entry()
"""


@pytest.fixture(scope="module")
def spy_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_spy(tmp_path_factory.mktemp("spy") / "data", "20131007")


def _replay(mode: str, data: Path, run: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, mode, "replay", "--config", CONFIG,
                           "--data", str(data), "--out", str(run)], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=300, check=False)


def test_when_replay_returns_the_runs_events_are_in_parquet(spy_day: Path,
                                                            tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = _replay("ok", spy_day, run)
    assert out.returncode == 0, out.stderr
    assert list_parts(run / "events"), "the run's events were rolled"
    assert not list((run / "journal").glob("*.tlj")), "no segment left unrolled"
    with EventStore.open_writer(run) as store:  # the lock was released
        assert store.manifest.pending is None and store.manifest.rolled_seq > 0
    assert (run / "report.json").exists()


def test_a_roll_that_fails_is_one_line_and_leaves_no_report_json(spy_day: Path,
                                                                 tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = _replay("full", spy_day, run)
    assert out.returncode == 6, out.stderr
    segment = next((run / "journal").glob("*.tlj"))
    assert out.stderr.strip().splitlines() == [
        f"tapeloop replay: {segment}: No space left on device"], out.stderr
    assert not (run / "report.json").exists(), "report.json would claim a whole run"
    with EventStore.open_writer(run) as store:  # the lock was released; the segment rolls now
        assert store.manifest.rolled_seq > 0
