"""Tests run in-process commands (daemon.cli.main), which configure logging onto
the stderr pytest captures; every test puts the logging configuration back, so
the tests after it on the same worker do not log into a closed file (they
failed by test order: OMS, portfolio and DST invariant tests)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, cli_env


def test_a_test_after_an_in_process_command_can_still_log() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/logging_isolation_probe.py"], cwd=REPO, env=cli_env(), capture_output=True,
        text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "2 passed" in out.stdout, out.stdout[-2000:]
