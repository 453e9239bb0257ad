"""`tapeloop check-config` as a real child process: ok line, or one error line and exit 3."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from daemon.errors import EXIT_CONFIG
from tests.conftest import REPO, cli_env, tapeloop_cmd


def check_config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tapeloop_cmd("check-config", *args),
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_shipped_replay_config_is_ok() -> None:
    proc = check_config("configs/replay.toml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "configs/replay.toml: ok (1 venues, 2 instruments, 0 strategies)\n"
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            ("max_order_qty = 10.0", 'max_order_qty = "10"'),
            "$.risk.max_order_qty: Expected int|float, got str",
            id="wrong-type",
        ),
        pytest.param(
            ("tick_size = 0.01", "tick_sise = 0.01"),
            '$.instruments[0].tick_sise: unknown key (did you mean "tick_size"?)',
            id="unknown-key",
        ),
        pytest.param(
            ('venue = "sim"\nsymbol = "SPY"', 'venue = "ibkr"\nsymbol = "SPY"'),
            '$.instruments[1].venue: unknown venue "ibkr"',
            id="unknown-venue",
        ),
    ],
)
def test_bad_config_is_one_stderr_line(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    text = (REPO / "configs" / "replay.toml").read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    proc = check_config(str(bad))
    assert proc.returncode == EXIT_CONFIG
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"tapeloop check-config: {bad}: {expected}"), line


def test_toml_syntax_error_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[daemon]\ndata_dir = "data"\ncontrol = \n')
    proc = check_config(str(bad))
    assert proc.returncode == EXIT_CONFIG
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"tapeloop check-config: {bad}:3: TOML syntax error: "), line


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    proc = check_config(str(tmp_path / "absent.toml"))
    assert proc.returncode == EXIT_CONFIG
    [line] = proc.stderr.splitlines()
    assert str(tmp_path / "absent.toml") in line
    assert "No such file" in line
