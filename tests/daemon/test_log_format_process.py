"""`tapeloop run`'s log format as a real child process: coloured console lines on a
terminal (a pty), JSON lines to a pipe or under systemd, `--log-format` and
`daemon.log_format` forcing either; a bad `log_format` is one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from daemon.logging import resolve_format
from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd
from tests.daemon.test_run_process import write_config

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
CONSOLE_LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z \[(\w+) *\] (\S+)")


class Output:
    """Everything a child writes to `fd` (a pty's master or a pipe's read end), read by a
    thread so the child never blocks on a full buffer."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = b""
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        try:
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the pty's last writer closed
                    return
                if not chunk:
                    return
                with self._lock:
                    self.data += chunk
        finally:
            os.close(self.fd)

    def text(self) -> bytes:
        with self._lock:
            return self.data

    def lines(self) -> list[bytes]:
        return [ANSI.sub(b"", line).rstrip(b"\r") for line in self.text().split(b"\n")]


@contextmanager
def run_daemon(tmp_path: Path, *, tty: bool, args: tuple[str, ...] = (),
               env: dict[str, str] | None = None, config_extra: str = "") -> Iterator[Output]:
    """Start `tapeloop run` with stdout and stderr on a pty (`tty`) or a pipe; yield its
    output once `daemon.ready` shows; stop it with SIGTERM (exit 0)."""
    config = write_config(tmp_path)
    if config_extra:
        config.write_text(config.read_text().replace("[daemon]\n", f"[daemon]\n{config_extra}\n"))
    if tty:
        reader, writer = os.openpty()
    else:
        reader, writer = os.pipe()
    child_env = cli_env() | {"TERM": "xterm-256color"} | (env or {})
    for name in ("NO_COLOR", "JOURNAL_STREAM"):
        if name not in (env or {}):
            child_env.pop(name, None)
    proc = subprocess.Popen(
        tapeloop_cmd("run", "--config", str(config), "--data", str(tmp_path / "data"), *args),
        stdin=subprocess.DEVNULL, stdout=writer, stderr=writer, env=child_env, cwd=REPO)
    os.close(writer)
    out = Output(reader)
    try:
        eventually(lambda: b"daemon.ready" in out.text(), timeout=30, message="daemon.ready")
        yield out
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, out.text()[-3000:]


def assert_console(out: Output, *, colours: bool) -> None:
    lines = [line for line in out.lines() if line.strip()]
    assert not any(line.lstrip().startswith(b"{") for line in lines), lines[:5]
    ready = [CONSOLE_LINE.match(line) for line in lines if b"daemon.ready" in line]
    assert ready and ready[0] is not None and ready[0].groups() == (b"info", b"daemon.ready"), lines
    assert (b"\x1b[" in out.text()) is colours


def assert_json(out: Output) -> None:
    lines = [line for line in out.text().split(b"\n") if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert "daemon.ready" in [r["event"] for r in records]
    assert b"\x1b[" not in out.text()


def test_on_a_terminal_run_prints_coloured_console_lines(tmp_path: Path) -> None:
    with run_daemon(tmp_path, tty=True) as out:
        assert_console(out, colours=True)


def test_no_color_keeps_console_lines_plain(tmp_path: Path) -> None:
    with run_daemon(tmp_path, tty=True, env={"NO_COLOR": "1"}) as out:
        assert_console(out, colours=False)


@pytest.mark.parametrize(("tty", "args", "env", "config_extra"), [
    pytest.param(False, (), {}, "", id="pipe"),
    pytest.param(True, (), {"JOURNAL_STREAM": "8:12345"}, "", id="systemd-tty"),
    pytest.param(True, ("--log-format", "json"), {}, "", id="flag-on-a-tty"),
    pytest.param(True, (), {}, 'log_format = "json"', id="config-on-a-tty"),
])
def test_json_lines_to_a_pipe_under_systemd_or_when_forced(
        tmp_path: Path, tty: bool, args: tuple[str, ...], env: dict[str, str],
        config_extra: str) -> None:
    with run_daemon(tmp_path, tty=tty, args=args, env=env, config_extra=config_extra) as out:
        assert_json(out)


@pytest.mark.parametrize(("args", "config_extra"), [
    pytest.param(("--log-format", "console"), "", id="flag"),
    pytest.param((), 'log_format = "console"', id="config"),
    pytest.param(("--log-format", "console"), 'log_format = "json"', id="flag-beats-config"),
])
def test_console_lines_to_a_pipe_when_forced(
        tmp_path: Path, args: tuple[str, ...], config_extra: str) -> None:
    with run_daemon(tmp_path, tty=False, args=args, config_extra=config_extra) as out:
        assert_console(out, colours=True)


def test_a_bad_log_format_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("[daemon]\n", '[daemon]\nlog_format = "pretty"\n'))
    for command in (("check-config", str(config)),
                    ("run", "--config", str(config), "--data", str(tmp_path / "d"))):
        proc = subprocess.run(tapeloop_cmd(*command), capture_output=True, text=True,
                              env=cli_env(), cwd=REPO, timeout=60)
        assert proc.returncode != 0
        [line] = proc.stderr.strip().splitlines()
        assert "log_format" in line and "Traceback" not in line, line


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(("choice", "tty", "env", "want"), [
    ("auto", True, {}, "console"),
    ("auto", False, {}, "json"),
    ("auto", True, {"JOURNAL_STREAM": "8:1"}, "json"),
    ("json", True, {}, "json"),
    ("console", False, {"JOURNAL_STREAM": "8:1"}, "console"),
])
def test_resolve_format(choice: str, tty: bool, env: dict[str, str], want: str) -> None:
    assert resolve_format(choice, _Stream(tty), env) == want


def test_resolve_format_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="pretty"):
        resolve_format("pretty", _Stream(True), {})
