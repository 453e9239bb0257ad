"""The control API and its CLI against a real running daemon (paper mode):
`/metrics` and `/health` answer without a token, `tapeloop status | positions |
orders | halt | resume` find it through the data directory and its token."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd
from tests.daemon.test_run_process import start, wait_ready, write_config


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tapeloop_cmd(*args), capture_output=True, text=True, env=cli_env(),
                          cwd=REPO, timeout=60)


def test_status_metrics_and_halt_from_a_running_daemon(tmp_path: Path) -> None:
    config, data, log = write_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    proc = start(config, data, log)
    try:
        wait_ready(log, 1)
        url = json.loads((data / "control.json").read_text())["url"]
        with urllib.request.urlopen(f"{url}/health", timeout=10) as resp:
            health = json.load(resp)
        assert resp.status == 200 and health["ready"] and health["status"] == "ok"

        def metrics() -> str:
            with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
                return resp.read().decode()

        def counted() -> str | None:
            m = metrics()
            return m if 'tapeloop_events_total{type="Trade"}' in m else None

        text = eventually(counted, timeout=30, message="trades counted in /metrics")
        for name in ("tapeloop_journal_written_seq", "tapeloop_trading_state",
                     "tapeloop_strategy_up", "process_resident_memory_bytes",
                     "tapeloop_journal_flush_seconds_bucket",
                     "tapeloop_bus_dispatch_seconds_count"):
            assert name in text, name
        assert (data / "control.token").stat().st_mode & 0o777 == 0o600

        common = ("--config", str(config), "--data", str(data))
        status = cli("status", *common)
        assert status.returncode == 0, status.stderr
        assert "active" in status.stdout and "sma" in status.stdout, status.stdout
        assert cli("positions", *common).returncode == 0
        assert cli("orders", *common, "--all").returncode == 0
        halted = cli("halt", *common, "--reason", "operator test")
        assert halted.returncode == 0, halted.stderr
        eventually(lambda: b'"state":"halted"' in log.read_bytes().replace(b" ", b""),
                   timeout=10, message="trading.state halted in the log")
        assert "halted" in cli("status", *common).stdout
        assert cli("resume", *common).returncode == 0
        assert "active" in cli("status", *common).stdout
        stopped = cli("strategy", "stop", "sma", *common)
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped" in cli("status", *common).stdout
        assert cli("strategy", "start", "sma", *common).returncode == 0
        eventually(lambda: log.read_bytes().count(b'"strategy.started"') >= 2, timeout=10,
                   message="sma started again")
        unknown = cli("strategy", "stop", "nope", *common)
        assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    assert not (data / "control.json").exists()
    gone = cli("status", "--config", str(config), "--data", str(data))
    assert gone.returncode == 1 and "is it running?" in gone.stderr
    assert "Traceback" not in gone.stderr
