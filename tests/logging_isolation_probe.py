"""Run by tests/test_logging_isolation.py in a pytest of its own, in this order: a
command run in-process configures logging onto pytest's captured stderr, then a
later test logs. Without tests/conftest.py's `_logging_as_it_was` the second
test writes into the closed capture and fails."""

from __future__ import annotations

import pytest


def test_a_command_run_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    assert main(["check-config", "/nonexistent/tapeloop.toml"]) != 0
    assert "tapeloop check-config" in capsys.readouterr().err


def test_a_later_test_logs() -> None:
    import structlog

    structlog.get_logger("tapeloop.test").warning("still.writable")
