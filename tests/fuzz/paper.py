"""Short paper runs of the real daemon, for the fuzz tests to damage what they wrote.

`tapeloop run` on configs/paper.toml (the bundled Binance sample, the sma_cross
strategy trading against the paper venue), sped up, on an ephemeral control port,
snapshotting often, so a few seconds leave a store with market data, orders, fills,
positions, balances, snapshots and system events.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd

SAMPLES = REPO / "configs" / "samples"


def paper_config(directory: Path, speed: float = 20.0) -> Path:
    text = (REPO / "configs" / "paper.toml").read_text()
    text = text.replace('file = "samples/', f'file = "{SAMPLES}/')
    text = re.sub(r"^speed = [0-9.]+", f"speed = {speed}", text, flags=re.M)
    text = re.sub(r"^snapshot_interval_s = [0-9.]+", "snapshot_interval_s = 0.5", text,
                  flags=re.M)
    text = text.replace('control = "127.0.0.1:8765"', 'control = "127.0.0.1:0"')  # any free port
    path = directory / "paper.toml"
    path.write_text(text)
    return path


class Daemon:
    """`tapeloop run` as a child process: its stdout (the JSON log) in `log`, its stderr
    (where a refusal's one line goes) in `log` with the suffix `.err`."""

    def __init__(self, config: Path, data: Path, log: Path) -> None:
        self.log = log
        self.errlog = log.with_name(log.name + ".err")
        self.proc = subprocess.Popen(
            tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
            stdout=log.open("ab"), stderr=self.errlog.open("ab"), env=cli_env(), cwd=REPO)

    def text(self) -> str:
        """stdout and stderr."""
        return self.log.read_text(errors="replace") + self.stderr()

    def stderr(self) -> str:
        return self.errlog.read_text(errors="replace") if self.errlog.exists() else ""

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if event is None or entry.get("event") == event:
                    out.append(entry)
        return out

    def wait_ready_or_exit(self, timeout: float = 60) -> bool:
        """True once READY (signal handlers are in place by then), False if it exited."""
        return bool(eventually(
            lambda: "ready" if '"daemon.ready"' in self.text() else
            "exited" if self.proc.poll() is not None else None,
            timeout=timeout, message=f"daemon.ready or an exit ({self.log})") == "ready")

    def wait_for(self, event: str, count: int = 1, timeout: float = 60) -> None:
        eventually(lambda: self.proc.poll() is None and self.text().count(f'"{event}"') >= count,
                   timeout=timeout, message=f"{count} {event} lines in {self.log}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill does it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
