"""The fuzz tests' data directories, written once per session by short paper runs of
the real daemon (tests copy them before damaging anything), and the seed report."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.journal import list_segments, scan_segment
from events.store import list_parts
from tests.conftest import eventually
from tests.fuzz.paper import Daemon, paper_config
from tests.fuzz.settings import rerun_hint

# what a stopped daemon's store must hold for the fuzz to exercise each class of part
WANTED_TYPES = {"Trade", "Quote", "BookDelta", "OrderSubmitted", "OrderAccepted", "Fill",
                "PositionChanged", "BalanceChanged", "Snapshot", "VenueStatus"}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(rerun_hint())


@pytest.fixture(scope="session")
def stopped_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data directory a paper run wrote and a SIGTERM closed: everything in Parquet,
    orders and fills among it. Read-only: copy it before damaging it."""
    home = tmp_path_factory.mktemp("stopped")
    data = home / "data"
    daemon = Daemon(paper_config(home), data, home / "daemon.log")
    try:
        assert daemon.wait_ready_or_exit(), daemon.text()[-3000:]
        daemon.wait_for("order.filled")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text()[-3000:]
    types = {p.type for p in list_parts(data / "events")}
    assert WANTED_TYPES <= types, f"the paper run left {sorted(types)}"
    assert not list_segments(data / "journal"), "SIGTERM rolled the journal into Parquet"
    yield data


@pytest.fixture(scope="session")
def crashed_store(stopped_store: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Path]:
    """`stopped_store` run again and killed (SIGKILL): its new events are still in one
    journal segment, after the Parquet of the first run. Read-only."""
    home = tmp_path_factory.mktemp("crashed")
    data = home / "data"
    shutil.copytree(stopped_store, data)
    config = paper_config(home)
    # its live segment is preallocated: 1 MiB (not the default 256) keeps the copies the
    # tests damage small, and its zero tail is there to be damaged too
    config.write_text(config.read_text().replace(
        "[journal]\n", "[journal]\nsegment_max_bytes = 1048576\n", 1))
    daemon = Daemon(config, data, home / "daemon.log")
    try:
        assert daemon.wait_ready_or_exit(), daemon.text()[-3000:]
        eventually(lambda: _journal_bytes(data) > 64 << 10, timeout=60,
                   message="64 KiB of journal from the second run")
    finally:
        daemon.kill()
    assert len(list_segments(data / "journal")) == 1, list_segments(data / "journal")
    yield data


def _journal_bytes(data: Path) -> int:
    """Bytes of frames (a live segment is preallocated: its size says nothing)."""
    return sum(scan_segment(p, first).good_bytes for first, p in list_segments(data / "journal"))
