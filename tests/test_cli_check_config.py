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


def paper_config(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """configs/paper.toml, its recording referenced where it is, with `edits` applied."""
    text = (REPO / "configs" / "paper.toml").read_text()
    text = text.replace('file = "samples/', f'file = "{REPO / "configs" / "samples"}/')
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "paper.toml"
    path.write_text(text)
    return path


def assert_one_line(proc: subprocess.CompletedProcess[str], config: Path, json_path: str,
                    phrase: str) -> None:
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"tapeloop check-config: {config}: {json_path}: "), line
    assert phrase in line, line


def test_an_over_long_path_is_one_line_not_a_crash(tmp_path: Path) -> None:
    """Issue 10: `check-config` itself crashed (ENAMETOOLONG from is_file, exit 70)."""
    config = paper_config(tmp_path, ('file = "', f'file = "{"x" * 300}/'))
    assert_one_line(check_config(str(config)), config, "$.venues[0].file", "300 bytes")


@pytest.mark.parametrize(("content", "phrase"), [
    pytest.param(b"not a recording\n", "not a Binance recording line", id="garbage"),
    pytest.param(b"\x1f\x8b\x08\x00garbage", "not a readable recording", id="corrupt-gzip"),
    pytest.param(b"", "no market events", id="empty"),
])
def test_a_recording_the_sample_feed_would_refuse_is_refused(
        tmp_path: Path, content: bytes, phrase: str) -> None:
    """`run` read the recording only at start (and a cut gzip crashed it there)."""
    recording = tmp_path / "day.gz"
    recording.write_bytes(content)
    config = paper_config(tmp_path, ('file = "', f'file = "{recording}" #'))
    assert_one_line(check_config(str(config)), config, "$.venues[0].file", phrase)


def test_a_cut_recording_is_refused_by_both_commands(tmp_path: Path) -> None:
    """The last bytes of a gzip recording missing: check-config refuses it, and `run`
    refuses it with one line too (it crashed with EOFError, exit 70)."""
    sample = REPO / "configs" / "samples" / "binance-usdm-btcusdt-20240808-head30k.gz"
    recording = tmp_path / "cut.gz"
    recording.write_bytes(sample.read_bytes()[:-100])
    config = paper_config(tmp_path, ('file = "', f'file = "{recording}" #'),
                          ('control = "127.0.0.1:8765"', 'control = "127.0.0.1:0"'))
    assert_one_line(check_config(str(config)), config, "$.venues[0].file",
                    "not a readable recording")
    run = subprocess.run(tapeloop_cmd("run", "--config", str(config), "--data",
                                      str(tmp_path / "data")),
                         cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == EXIT_CONFIG, run.stderr[-2000:]
    [line] = run.stderr.splitlines()
    assert line.startswith(f"tapeloop run: venue 'binance': {recording}: "), line


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_is_ok(path: Path) -> None:
    proc = check_config(str(path.relative_to(REPO)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{path.relative_to(REPO)}: ok ("), proc.stdout
