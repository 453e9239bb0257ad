"""The risk engine's re-valuation passed over quiet runs (daemon.trading.risk_ticks)
changes nothing: on a real SPY day, with daily loss limits that make the account go
reducing and halted at ticks inside what would be quiet runs, the replay's events,
report and equity curve are byte for byte those of the replay that dispatches every
trade singly and fires every tick."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events.store import list_parts
from tests.conftest import REPO, import_spy
from tests.test_replay_e2e import SPY_DAY, _replay_events

pytestmark = pytest.mark.skipif(not SPY_DAY.exists(), reason="shared market data absent")

@pytest.fixture(scope="module")
def spy_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_spy(tmp_path_factory.mktemp("spy") / "data", "20131007")

def _config(tmp: Path, limit: float, multiple: float, fast: int, qty: int) -> Path:
    text = (REPO / "configs" / "replay-spy.toml").read_text()
    text = re.sub(r"daily_loss_limit = [\d_.]+", f"daily_loss_limit = {limit}", text)
    text = text.replace("[risk]\n", f"[risk]\nhalt_loss_multiple = {multiple}\n")
    text = re.sub(r"params = \{[^}]*\}", f"params = {{ fast = {fast}, slow = 30, qty = {qty} }}",
                  text)
    path = tmp / f"spy-{limit}-{multiple}-{fast}-{qty}.toml"
    path.write_text(text)
    return path

@pytest.mark.parametrize(("limit", "multiple", "fast", "qty"), [
    (5.0, 1.5, 10, 100), (20.0, 1.2, 5, 300), (60.0, 2.0, 10, 1000), (150.0, 1.1, 20, 1000),
    (30.0, 1.1, 10, 1000), (80.0, 1.05, 3, 1000), (1_000_000.0, 1.5, 10, 100),
])
def test_passing_ticks_over_quiet_runs_changes_nothing(
        spy_day: Path, tmp_path: Path, limit: float, multiple: float, fast: int,
        qty: int) -> None:
    config = _config(tmp_path, limit, multiple, fast, qty)
    fast_run = _replay_events(config, spy_day, tmp_path / "fast", coalesce=True)
    slow_run = _replay_events(config, spy_day, tmp_path / "slow", coalesce=False)
    assert fast_run == slow_run
    states = list_parts(tmp_path / "fast" / "events", types=["TradingState"])
    seen = {r["state"] for p in states for r in pq.read_table(p.path).to_pylist()}
    if limit < 1000:
        assert seen & {"reducing", "halted"}, "the limit was reached: the test means something"

@pytest.mark.parametrize(("limit", "multiple", "fast", "state"), [
    (80.0, 1.05, 3, "reducing"), (30.0, 1.1, 10, "halted")])
def test_the_transitions_are_reached_mid_run(spy_day: Path, tmp_path: Path, limit: float,
                                             multiple: float, fast: int, state: str) -> None:
    """The cases above go reducing, or halted, at a tick that is neither a fill nor
    a bar boundary (so a quiet run had to stop for it)."""
    config = _config(tmp_path, limit, multiple, fast, 1000)
    _replay_events(config, spy_day, tmp_path / "run", coalesce=True)
    states = [ts for ts, s in _rows(tmp_path / "run", "TradingState", "state") if s == state]
    assert states
    fills = {ts for ts, _ in _rows(tmp_path / "run", "Fill", "seq")}
    minute = 60_000_000_000
    mid = [ts for ts in states if ts not in fills and ts % minute]
    assert mid, "a transition at a tick between bars"


@pytest.fixture(scope="module")
def spy_two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_spy(tmp_path_factory.mktemp("spy2") / "data", "20131007", "20131008")


def test_the_anchored_day_loss_is_the_exact_one(spy_two_days: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss the bound starts from (`day_loss`: from an exact anchor, moved
    linearly with the marks) is the Decimal daily loss of that moment, within
    rounding a million times below the bound's margin, at every quiet run of two
    days that trade, hold a position overnight and cross their limits."""
    from daemon.trading import risk_ticks

    anchored = risk_ticks.day_loss
    seen: list[tuple[float, float]] = []
    reused = 0

    def both(portfolio: object, day: int) -> float:
        nonlocal reused
        before = risk_ticks._anchors.get(portfolio)
        loss = anchored(portfolio, day)
        reused += before is not None and risk_ticks._anchors.get(portfolio) is before
        seen.append((loss, float(-portfolio.daily_pnl())))  # type: ignore[attr-defined]
        return loss

    monkeypatch.setattr(risk_ticks, "day_loss", both)
    for limit, multiple, fast, qty in ((1_000_000.0, 1.5, 10, 100), (60.0, 2.0, 10, 1000)):
        _replay_events(_config(tmp_path, limit, multiple, fast, qty), spy_two_days,
                       tmp_path / f"run-{limit}", coalesce=True)
    assert len(seen) > 100 and reused > len(seen) // 2  # most moved from an anchor
    for loss, exact in seen:
        assert abs(loss - exact) <= 1e-12 * max(abs(exact), 1.0) + 1e-9


def _rows(run: Path, type_name: str, column: str) -> list[tuple[int, object]]:
    out = []
    for part in list_parts(run / "events", types=[type_name]):
        table = pq.read_table(part.path)
        out += zip(table.column("ts_event").cast(pa.int64()).to_pylist(),
                   table.column(column).to_pylist(), strict=True)
    return out
