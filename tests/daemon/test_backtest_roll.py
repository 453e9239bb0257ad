"""A replay rolls its run's events into Parquet on a thread while it writes the
report files (issue 15: the time outside the loop counts). What the user sees
must not change: when `tapeloop replay` returns, the run's events are in
Parquet and the directory is free; a roll that fails is one line, a non-zero
exit and no report.json (whose presence means the run is whole)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from daemon.cli import main
from events.store import EventStore, list_parts
from tests.conftest import REPO, import_spy

CONFIG = str(REPO / "configs" / "replay-spy.toml")


@pytest.fixture(scope="module")
def spy_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_spy(tmp_path_factory.mktemp("spy") / "data", "20131007")


def test_when_replay_returns_the_runs_events_are_in_parquet(spy_day: Path,
                                                            tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["replay", "--config", CONFIG, "--data", str(spy_day), "--out", str(run)]) == 0
    assert list_parts(run / "events"), "the run's events were rolled"
    assert not list((run / "journal").glob("*.tlj")), "no segment left unrolled"
    with EventStore.open_writer(run) as store:  # the lock was released
        assert store.manifest.pending is None and store.manifest.rolled_seq > 0
    assert (run / "report.json").exists()


def test_a_roll_that_fails_is_one_line_and_leaves_no_report_json(
        spy_day: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def full(self: EventStore, segment: Path, chunk_events: int = 100_000) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(segment))

    monkeypatch.setattr(EventStore, "roll_segment", full)
    run = tmp_path / "run"
    code = main(["replay", "--config", CONFIG, "--data", str(spy_day), "--out", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err == [f"tapeloop replay: {next((run / 'journal').glob('*.tlj'))}: "
                   "No space left on device"], err
    assert not (run / "report.json").exists(), "report.json would claim a whole run"
    monkeypatch.undo()
    with EventStore.open_writer(run) as store:  # the lock was released; the segment rolls now
        assert store.manifest.rolled_seq > 0
