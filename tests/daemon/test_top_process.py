"""`tapeloop top` against a running paper daemon: on a pty it renders the daemon's
state, shows "reconnecting" while the daemon is down and its state again once it is
back, and `q` (or Ctrl-C's SIGINT) ends it with the terminal restored; `--once`
prints one frame; mistakes are one line."""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from daemon.commands.control_client import call, locate
from daemon.commands.top_view import SPARK, Board, sparkline
from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd
from tests.daemon.test_log_format_process import ANSI, Output
from tests.daemon.test_run_process import start, wait_ready, write_config

LEAVE_ALT_SCREEN = b"\x1b[?1049l"


class Daemon:
    """A paper daemon that can be killed and started again on the same data."""

    def __init__(self, tmp_path: Path) -> None:
        self.config, self.data = write_config(tmp_path), tmp_path / "data"
        self.log = tmp_path / "daemon.log"
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        self.proc = start(self.config, self.data, self.log)
        self.runs += 1
        wait_ready(self.log, self.runs)
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=30) == 0, self.log.read_text()[-3000:]

    def args(self) -> tuple[str, ...]:
        return ("--config", str(self.config), "--data", str(self.data))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        yield d
    finally:
        d.stop()


class Top:
    """`tapeloop top` on a pty of 50 rows and 160 columns."""

    def __init__(self, *args: str) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.settings = termios.tcgetattr(self.slave)
        env = cli_env() | {"TERM": "xterm-256color"}
        for name in ("COLUMNS", "LINES", "NO_COLOR"):
            env.pop(name, None)
        # A shell may start the tests with SIGINT ignored (a command run in the
        # background: `make test &`), which a child inherits; the terminal's Ctrl-C
        # must reach this one, as it would from an interactive shell.
        self.proc = subprocess.Popen(
            tapeloop_cmd("top", *args), stdin=self.slave, stdout=self.slave, stderr=self.slave,
            env=env, cwd=REPO, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.out = Output(self.master)

    def screen(self, since: int = 0) -> str:
        return ANSI.sub(b"", self.out.text()[since:]).decode(errors="replace")

    def wait_for(self, pattern: str, since: int = 0, what: str = "") -> None:
        eventually(lambda: re.search(pattern, self.screen(since)), timeout=30,
                   message=what or pattern)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.slave)


def state_shown(pid: int) -> str:
    return rf"pid {pid} .*trading ACTIVE[\s\S]*sma +running[\s\S]*binance"


def test_top_renders_reconnects_across_a_restart_and_q_quits(daemon: Daemon) -> None:
    first = daemon.start()
    top = Top(*daemon.args())
    try:
        top.wait_for(state_shown(first), what="the daemon's state")
        top.wait_for(r"equity[\s\S]*USDT[\s\S]*events \d+", what="equity and events")
        top.wait_for(r"Trade \d+\.\d/s", what="event rates by type")
        top.wait_for(r"last fills\s+TIME[\s\S]*sma +BTCUSDT +(BUY|SELL)", what="the last fills")
        assert "Traceback" not in top.screen()

        mark = len(top.out.text())
        daemon.kill()
        top.wait_for(r"reconnecting to http://127\.0\.0\.1:\d+", since=mark,
                     what="reconnecting while the daemon is down")
        mark = len(top.out.text())
        second = daemon.start()  # a new port (port 0): top reads control.json anew
        top.wait_for(state_shown(second), since=mark, what="the restarted daemon's state")

        os.write(top.master, b"q")
        assert top.proc.wait(timeout=10) == 0
        assert termios.tcgetattr(top.slave) == top.settings  # cbreak undone
        eventually(lambda: LEAVE_ALT_SCREEN in top.out.text(), timeout=10,
                   message="the alternate screen left")
    finally:
        top.close()


def test_ctrl_c_restores_the_terminal_and_once_prints_one_frame(daemon: Daemon) -> None:
    pid = daemon.start()
    once = subprocess.run(tapeloop_cmd("top", "--once", *daemon.args()), capture_output=True,
                          text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert once.returncode == 0, once.stderr
    assert re.search(state_shown(pid), once.stdout), once.stdout
    assert "\x1b[" not in once.stdout  # not a terminal: plain text

    def status_with_fills() -> dict[str, Any] | None:
        answer = call(locate(argparse.Namespace(config=str(daemon.config), data=str(daemon.data))),
                      "GET", "/status")
        return answer if len(answer.get("last_fills", [])) >= 2 else None

    status = eventually(status_with_fills, timeout=30, message="two fills in /status")
    seqs = [f["seq"] for f in status["last_fills"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) <= 20  # newest first
    assert status["fills"] >= len(seqs)
    assert {"sma"} == {f["strategy_id"] for f in status["last_fills"]}
    assert status["events_by_type"]["Trade"] > 0
    assert sum(status["events_by_type"].values()) == status["events_total"]

    top = Top(*daemon.args())
    try:
        top.wait_for(state_shown(pid), what="the daemon's state")
        assert termios.tcgetattr(top.slave) != top.settings  # keys are read raw meanwhile
        top.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert top.proc.wait(timeout=10) == 130
        assert termios.tcgetattr(top.slave) == top.settings
        assert "Traceback" not in top.screen()
    finally:
        top.close()


def test_no_daemon_or_a_bad_interval_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for args, words in [(("--once",), "is it running?"), (("--interval", "0"), "--interval")]:
        proc = subprocess.run(
            tapeloop_cmd("top", "--config", str(config), "--data", str(tmp_path / "d"), *args),
            capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
        assert proc.returncode == 1
        [line] = proc.stderr.strip().splitlines()
        assert words in line and "Traceback" not in line, line


# -- the board, without a daemon ------------------------------------------------------


def test_sparkline_spans_lowest_to_highest() -> None:
    values = [Decimal("100.00"), Decimal("100.07"), Decimal("99.93"), Decimal("100.00")]
    line = sparkline(values)
    assert len(line) == len(values)
    assert line[2] == SPARK[0] and line[1] == SPARK[-1]
    assert line[0] == line[3]
    assert sparkline([Decimal(5)] * 3) == SPARK[len(SPARK) // 2] * 3
    assert sparkline([]) == ""


def test_event_rates_are_per_type_differences_and_restart_afresh() -> None:
    board = Board("http://x", 1.0)
    board.update({"pid": 1, "events_by_type": {"Trade": 100, "Quote": 10}}, [], [], now=10.0)
    assert board.rates == {}
    board.update({"pid": 1, "events_by_type": {"Trade": 300, "Quote": 10, "Fill": 1}}, [], [],
                 now=12.0)
    assert board.rates == {"Trade": 100.0, "Quote": 0.0, "Fill": 0.5}
    # a restarted daemon counts from zero: no negative rates, new ones from its next answer
    board.update({"pid": 2, "events_by_type": {"Trade": 5}}, [], [], now=13.0)
    assert board.rates == {}
    board.lost("no tapeloop daemon answers", now=14.0)
    board.lost("no tapeloop daemon answers", now=15.0)
    assert board.down_since == 14.0
