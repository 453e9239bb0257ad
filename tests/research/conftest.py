"""Shared by the research tests: a store of three real SPY days, the SPY config with
chosen parameters, and the CLI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_DATA, cli_env, import_spy, tapeloop_cmd

SPY = SHARED_DATA / "lean" / "equity" / "usa" / "tick" / "spy"
SPY_CONFIG = REPO / "configs" / "replay-spy.toml"
DAYS = ("20131007", "20131008", "20131009")


def run_cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tapeloop_cmd(*map(str, args)), capture_output=True, text=True,
                          env=cli_env(), cwd=REPO, timeout=timeout)


@pytest.fixture(scope="session")
def spy_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three SPY days (1.1 M trades) imported once."""
    return import_spy(tmp_path_factory.mktemp("spy") / "data", *DAYS)


def config_with(tmp: Path, name: str = "spy.toml", **params: object) -> Path:
    """configs/replay-spy.toml with its sma params replaced (what a user would write
    to replay one job of a sweep by hand)."""
    text = SPY_CONFIG.read_text()
    merged = {"fast": 10, "slow": 30, "qty": 100, **params}
    inline = ", ".join(f"{k} = {v}" for k, v in merged.items())
    text, n = re.subn(r"params = \{[^}]*\}", f"params = {{ {inline} }}", text)
    assert n == 1
    path = tmp / name
    path.write_text(text)
    return path
