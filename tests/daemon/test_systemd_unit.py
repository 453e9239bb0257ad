"""configs/systemd/tapeloop.service: the keys the service contract depends on, and
(where systemd-analyze exists) a clean `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import DaemonConfig
from daemon.errors import NO_RESTART
from tests.conftest import REPO

UNIT = REPO / "configs" / "systemd" / "tapeloop.service"


def keys() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_unit_is_a_notify_service_with_a_watchdog_and_secrets_by_credential() -> None:
    k = keys()
    assert k["Type"] == ["notify"] and k["Restart"] == ["on-failure"]
    assert int(k["WatchdogSec"][0]) > 0
    assert int(k["TimeoutStopSec"][0]) > DaemonConfig().stop_budget_s
    # every code a person must act on (tests/daemon/test_exit_codes.py checks the table)
    assert {int(c) for c in k["RestartPreventExitStatus"][0].split()} == set(NO_RESTART)
    assert k["User"] == ["tapeloop"] and k["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ReadWritePaths", "PrivateTmp",
                      "ProtectHome", "RestrictAddressFamilies"):
        assert hardening in k, hardening
    assert {c.split(":")[0] for c in k["LoadCredential"]} == {"binance_api_key",
                                                              "binance_api_secret"}
    assert "secret" not in "".join(k.get("Environment", [])).lower()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_finds_nothing_wrong(tmp_path: Path) -> None:
    unit = tmp_path / "tapeloop.service"
    unit.write_text(UNIT.read_text().replace("/opt/tapeloop/.venv/bin/tapeloop", sys.executable))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if "tapeloop.service" in line and "Failed to" not in line
                and "user" not in line.lower()]
    assert not problems, problems
