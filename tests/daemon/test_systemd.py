"""`tapeloop run` under a stand-in for systemd: a unix datagram socket as
$NOTIFY_SOCKET. The daemon says READY=1 once it trades, pings WATCHDOG=1 from its
loop at half of WATCHDOG_USEC, sends STATUS lines, reloads its strategies on
SIGHUP, and says STOPPING=1 before a clean exit 0 on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from daemon.systemd import Notifier
from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd
from tests.daemon.test_run_process import write_config


class NotifySocket:
    """What systemd listens on: collects every datagram the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            self.messages.append(dict(line.split("=", 1)
                                      for line in data.decode().splitlines() if "=" in line))

    def seen(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        return [m for m in self.drain() if key in m and (value is None or m[key] == value)]

    def close(self) -> None:
        self.sock.close()


def test_notifier_speaks_the_sd_notify_protocol(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "notify")
    try:
        n = Notifier({"NOTIFY_SOCKET": str(sock.path), "WATCHDOG_USEC": "3000000"})
        assert n.enabled and n.watchdog_s == 1.5
        n.ready("trading active")
        n.stopping()
        msgs = sock.drain()
        assert msgs[0]["READY"] == "1" and msgs[0]["STATUS"] == "trading active"
        assert msgs[0]["MAINPID"] == str(os.getpid())
        assert msgs[1] == {"STOPPING": "1", "STATUS": "stopping"}
    finally:
        sock.close()
    assert not Notifier({}).enabled  # outside systemd: a no-op
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000",
                     "WATCHDOG_PID": "1"}).watchdog_s is None  # not our watchdog


def test_ready_watchdog_reload_and_stopping_under_a_notify_socket(tmp_path: Path) -> None:
    config, data, log = write_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    sock = NotifySocket(tmp_path / "notify")
    env = {**cli_env(), "NOTIFY_SOCKET": str(sock.path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        ready = eventually(lambda: sock.seen("READY", "1"), timeout=30, message="READY=1")
        assert "trading active" in ready[0]["STATUS"]
        t0 = time.monotonic()
        eventually(lambda: len(sock.seen("WATCHDOG", "1")) >= 5, timeout=10,
                   message="watchdog pings every 0.2 s")
        assert time.monotonic() - t0 < 5

        # SIGHUP: the strategy's params changed in the file -> it restarts with them
        config.write_text(config.read_text().replace("fast = 3", "fast = 4"))
        proc.send_signal(signal.SIGHUP)
        eventually(lambda: b'"config.reloaded"' in log.read_bytes(), timeout=20,
                   message="config.reloaded")
        text = log.read_text()
        assert '"strategies":["~sma"]' in text.replace(" ", ""), text[-2000:]
        assert text.count('"strategy.started"') == 2

        # a config that no longer loads changes nothing: one error line says why
        good = config.read_text()
        config.write_text(good.replace("fast = 4", 'fast = "four'))
        proc.send_signal(signal.SIGHUP)
        eventually(lambda: b'"config.reload_failed"' in log.read_bytes(), timeout=20,
                   message="config.reload_failed")
        assert log.read_text().count('"strategy.started"') == 2
        assert proc.poll() is None, "still running"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    msgs = sock.drain()
    sock.close()
    assert code == 0, log.read_text()[-3000:]
    stopping = [i for i, m in enumerate(msgs) if m.get("STOPPING") == "1"]
    assert stopping and stopping[0] > [i for i, m in enumerate(msgs) if "READY" in m][0]
