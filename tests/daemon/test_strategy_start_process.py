"""`tapeloop run` as a real process with strategies that cannot start (issue 10, item 4):
it used to report READY, trade nothing and exit 0 on SIGTERM, the failure a logged
traceback. Now the start fails with one line and exit 3, or, with
`[daemon] on_strategy_error = "continue"`, the others trade on and the failure is an
alert and a `StrategyStatus failed`; never READY with nothing running."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from daemon.errors import EXIT_CONFIG
from events.journal import read_journal
from events.system import StrategyStatus
from replay.reader import read_events
from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd
from tests.daemon.test_run_process import start, wait_ready, write_config

GOOD = '''
[[strategies]]
id = "bid"
class = "tests.strategies_for_tests:OneBid"
venue = "binance"
symbols = ["BTCUSDT"]
params = { qty = 0.01 }
'''


def config_with(tmp_path: Path, cls: str, *, on_error: str | None = None,
                extra: str = "") -> Path:
    """paper.toml with its strategy replaced by `cls` (no params), and `extra` appended."""
    config = write_config(tmp_path)
    text = config.read_text().replace('class = "daemon.strategies.sma_cross:SmaCross"',
                                      f'class = "{cls}"')
    text = re.sub(r"^params = .*$", "", text, flags=re.M)
    if on_error is not None:
        text = text.replace("[daemon]", f'[daemon]\non_strategy_error = "{on_error}"', 1)
    config.write_text(text + extra)
    return config


def run_to_exit(config: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
                          capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=90)


def statuses(data: Path) -> list[tuple[str, str]]:
    events = [e for batch in read_events(data, types=["StrategyStatus"]) for e in batch]
    events += [e for e in read_journal(data / "journal") if isinstance(e, StrategyStatus)]
    return [(e.strategy_id, e.status) for e in sorted(events, key=lambda e: e.seq)]


@pytest.mark.parametrize(("cls", "hook", "error"), [
    pytest.param("FailsAtStart", "on_start",
                 r"RuntimeError('cannot start:\nmodel file missing')", id="on_start"),
    pytest.param("FailsToBuild", "__init__", "KeyError('no such model')", id="construction"),
])
def test_a_strategy_that_cannot_start_fails_the_start_with_one_line(
        tmp_path: Path, cls: str, hook: str, error: str) -> None:
    config, data = config_with(tmp_path, f"tests.strategies_for_tests:{cls}"), tmp_path / "d"
    proc = run_to_exit(config, data)
    assert proc.returncode == EXIT_CONFIG, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [
        f"tapeloop run: {config}: $.strategies[0]: strategy 'sma' failed to start "
        f"({hook}): {error}"]
    logs = [json.loads(line) for line in proc.stdout.splitlines()]
    names = [line["event"] for line in logs]
    assert "daemon.ready" not in names and "daemon.start_refused" in names
    assert names.index("daemon.start_refused") < names.index("journal.closed")
    assert statuses(data) == [("sma", "failed")]  # recorded, and the store closed cleanly


def test_continue_keeps_the_others_trading_and_raises_an_alert(tmp_path: Path) -> None:
    config = config_with(tmp_path, "tests.strategies_for_tests:FailsAtStart",
                         on_error="continue", extra=GOOD)
    data, log = tmp_path / "d", tmp_path / "daemon.log"
    proc = start(config, data, log)
    try:
        wait_ready(log, 1)
        eventually(lambda: b'"order.submitted"' in log.read_bytes(), timeout=30,
                   message="the healthy strategy's bid")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    logs = [json.loads(line) for line in log.read_text().splitlines()]
    alerts = [e for e in logs if e["event"] == "alert"]
    assert [(a["kind"], a["strategy_id"]) for a in alerts] == [("strategy_failed", "sma")]
    submitted = {e["strategy_id"] for e in logs if e["event"] == "order.submitted"}
    assert submitted == {"bid"}
    assert statuses(data)[:2] == [("sma", "failed"), ("bid", "running")]


def test_continue_with_no_strategy_left_running_still_fails_the_start(tmp_path: Path) -> None:
    config = config_with(tmp_path, "tests.strategies_for_tests:FailsToBuild",
                         on_error="continue")
    proc = run_to_exit(config, tmp_path / "d")
    assert proc.returncode == EXIT_CONFIG, proc.stderr[-3000:]
    [line] = proc.stderr.splitlines()
    assert line == (f"tapeloop run: {config}: $.strategies[0]: strategy 'sma' failed to start "
                    "(__init__): KeyError('no such model'); no strategy runs")
    assert '"daemon.ready"' not in proc.stdout


def test_a_qty_below_the_step_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """The issue's example: READY, then exit 0 on SIGTERM, the strategy dead at start."""
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("qty = 0.01,", "qty = 0.0001,"))
    proc = run_to_exit(config, tmp_path / "d")
    assert proc.returncode == EXIT_CONFIG
    assert proc.stderr.splitlines() == [
        f"tapeloop run: {config}: $.strategies[0].params.qty: 0.0001 rounds down to 0 at "
        "BTCUSDT's step 0.001"]
    assert not (tmp_path / "d").exists()  # refused before the data directory was touched
