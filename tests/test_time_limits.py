"""Issue 10 item 6: a hung test fails with its name instead of stalling the run.

Every test runs under pytest-timeout's limit (`timeout` in pyproject.toml; the few long
tests raise theirs with @pytest.mark.timeout). Shown here on a sync and an async test
that wait for ever, in a pytest of their own with a short limit."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

HANGING = '''
import asyncio
import threading


def test_waits_for_ever():
    threading.Event().wait()


async def test_awaits_for_ever():
    await asyncio.Event().wait()


def test_passes():
    assert True
'''


def test_every_test_has_a_time_limit(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pytest-timeout is not installed"
    limit = float(pytestconfig.getini("timeout"))
    assert 0 < limit <= 300, f"the default limit is {limit} s"


def test_a_hung_test_fails_with_its_name_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text(HANGING)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=2",
         "-o", "asyncio_mode=auto", "test_hangs.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    for name in ("test_waits_for_ever", "test_awaits_for_ever"):
        assert f"FAILED test_hangs.py::{name}" in out, out
    assert "Timeout" in out and "1 passed" in out, out
    assert took < 60, f"the hung tests held the run for {took:.0f} s"
