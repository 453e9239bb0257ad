"""systemd integration: sd_notify over `$NOTIFY_SOCKET`, without libsystemd.

The protocol (sd_notify(3)): newline-separated `KEY=VALUE` assignments sent as
one datagram to the unix socket named by `$NOTIFY_SOCKET` (a leading `@` names
an abstract socket). tapeloop sends `READY=1` once it trades, `STATUS=...`
lines as things change, `WATCHDOG=1` from the event loop itself every half of
`$WATCHDOG_USEC` (so a stalled loop misses them and systemd restarts us), and
`STOPPING=1` when a graceful stop begins. Outside systemd (`$NOTIFY_SOCKET`
unset) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("tapeloop.systemd")


class Notifier:
    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.sock: socket.socket | None = None
        if self.address:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self.sock.setblocking(False)
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) and ours else None
        self.sent = 0
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def notify(self, *assignments: str) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendto("\n".join(assignments).encode(), self.address)
            self.sent += 1
        except OSError as exc:
            if not self._warned:  # once: systemd may be gone while we stop
                self._warned = True
                log.warning("systemd.notify_failed", error=str(exc))

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def stopping(self, status: str = "stopping") -> None:
        self.notify("STOPPING=1", f"STATUS={status}")

    async def watchdog(self) -> None:
        """Ping the watchdog from this loop every half of WATCHDOG_USEC."""
        if self.watchdog_s is None or self.sock is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
