"""The control API's server: where it listens, its token, and how clients find
it. HTTP on 127.0.0.1 (or any `host:port`; port 0 picks one) or a unix socket
(0600). Its parts live in daemon.api:

    GET  /                 session   the web dashboard (daemon.api.dashboard)
    GET|POST /login        open      the login form: the token for a session cookie
    POST /logout           session
    GET  /stream           token     the dashboard's server-sent events (daemon.api.stream)
    GET  /health           open      liveness and readiness       (daemon.api.routes)
    GET  /metrics          open      Prometheus text              (daemon.api.collector)
    GET  /status|/positions|/orders|/strategies     token  (daemon.api.routes; /status
                           with events by type and the last fills, for `tapeloop top`)
    POST /halt|/resume|/strategies/{id}/stop|start  token  (daemon.api.routes)

"token" means `Authorization: Bearer <token>` (compared in constant time) or a
dashboard session; daemon.api.auth says how. The token comes from
`daemon.control_files.load_control_token`. Answers are JSON, Decimals as strings.

The dashboard needs TCP (a browser cannot open a unix socket): with
`[daemon] control = "/run/tapeloop/control.sock"`, set `control = "127.0.0.1:8765"`
instead (loopback only; reach it from elsewhere through an SSH tunnel,
`ssh -L 8765:127.0.0.1:8765 host`, rather than listening on a public address).

On start the server writes `DATA/control.json` (`{"url", "pid"}`, 0644), so
`tapeloop status` finds a port-0 or unix-socket daemon; close removes it.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web

from daemon.api import dashboard
from daemon.api.auth import Auth
from daemon.api.collector import MetricsCollector
from daemon.api.routes import Routes
from daemon.api.stream import Stream
from daemon.config import ControlAddress
from daemon.control_files import CONTROL_FILE, address_url, read_control_file
from daemon.errors import UserError
from daemon.metrics import KernelMetrics

log = structlog.get_logger("tapeloop.control")



class KernelView(Protocol):
    """What the control API reads and calls on the kernel (duck-typed).

    - `counts`: Counter[str] of events published, by type name;
    - `ready`: True once venues run and the daemon serves (readiness);
      `stopping`: True from the stop request on;
    - `started_monotonic`: `time.monotonic()` at kernel start (uptime);
    - `data_dir`: where `control.json` goes (unless ControlServer is given one);
    - `bus`: `subscribe(type, handler)` / `unsubscribe(type, handler)`;
    - `journal`: `written_seq`, `synced_seq`, `buffered_bytes` (None before open);
    - `metrics`: a `daemon.metrics.KernelMetrics` the kernel feeds
      (`journal_flush.observe(s)`, `bus_dispatch.observe(s)`), or None;
    - `node` (None while starting): `.oms` (`orders: dict[cid, Order]`,
      `open_orders()`), `.risk` (`state`, `reason`, `halt(reason)`,
      `resume(reason) -> str`), `.portfolio` (`positions(include_flat=)`,
      `unrealized_pnl(venue, symbol, strategy_id)`, `pnl(strategy_id)`,
      `equity()`, optionally `last_price(venue, symbol)`);
    - `venue_states() -> {name: {"status": str, "reconnects": int}}` (and
      "reconciled": int for a venue that reconciles; `adapters.venue.VenueState`);
    - `strategy_states() -> {strategy_id: status}` (starting|running|stopped|failed);
    - `stop_strategy(id)` / `start_strategy(id)`: KeyError for an unknown id
      (HTTP 404), ValueError when refused (HTTP 409, the message as the error).
    """

    counts: Counter[str]
    ready: bool
    stopping: bool
    started_monotonic: float
    data_dir: Path
    bus: Any
    journal: Any
    node: Any

    @property
    def metrics(self) -> KernelMetrics | None: ...

    def venue_states(self) -> dict[str, dict[str, Any]]: ...

    def strategy_states(self) -> dict[str, str]: ...

    def stop_strategy(self, strategy_id: str) -> None: ...

    def start_strategy(self, strategy_id: str) -> None: ...


# -- the server -----------------------------------------------------------------------


class ControlServer:
    """`url = await server.start()` ... `await server.close()`: the listening
    socket, `control.json`, and the parts of daemon.api wired into one app."""

    def __init__(self, kernel: KernelView, address: ControlAddress, token: str, *,
                 data_dir: str | os.PathLike[str] | None = None) -> None:
        if not token:
            raise ValueError("the control API needs a token")
        self.kernel = kernel
        self.address = address
        self.data_dir = Path(data_dir if data_dir is not None else kernel.data_dir)
        self.url: str | None = None
        self.collector = MetricsCollector(kernel)
        self.routes = Routes(kernel, self.collector)
        self.auth = Auth(token)
        self.stream = Stream(kernel, self.routes)
        self._runner: web.AppRunner | None = None
        self._socket_path: Path | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> str:
        """Listen; returns the URL (`http://host:port` or `unix:///path`)."""
        app = web.Application()
        self.auth.add_to(app)  # the middleware first: every route is behind it
        self.routes.add_to(app)
        self.stream.add_to(app)
        dashboard.add_to(app, self.auth.session)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            if self.address.path is not None:
                sock = self._bind_unix(Path(self.address.path).absolute())
                await web.SockSite(runner, sock).start()
                self.url = "unix://" + str(self._socket_path)
            else:
                host = self.address.host or "127.0.0.1"
                try:
                    await web.TCPSite(runner, host, self.address.port or 0).start()
                except OSError as exc:
                    raise UserError(f"control API: cannot listen on {host}:{self.address.port}: "
                                    f"{exc.strerror or exc}") from None
                port = runner.addresses[0][1]
                self.url = address_url(ControlAddress(host=host, port=port))
        except BaseException:
            await runner.cleanup()
            self._unlink_socket()
            raise
        self._runner = runner
        self.collector.attach()
        self.stream.attach()
        self._write_control_file()
        if self.url.startswith("http"):
            log.info("control.listening", url=self.url, dashboard=self.url + "/")
        else:  # a browser cannot reach a unix socket (see the module docstring)
            log.info("control.listening", url=self.url,
                     dashboard='none: set [daemon] control = "127.0.0.1:8765" for the web page')
        return self.url

    async def close(self) -> None:
        self.collector.detach()
        await self.stream.detach()
        path = self.data_dir / CONTROL_FILE
        if (read_control_file(self.data_dir) or {}).get("pid") == os.getpid():
            path.unlink(missing_ok=True)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._unlink_socket()

    def _bind_unix(self, path: Path) -> socket.socket:
        if not path.parent.is_dir():
            raise UserError(f"control API: no such directory for the socket: {path.parent}")
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise UserError(f"control API: {path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # a stale socket: nobody listens on it
            else:
                raise UserError(f"control API: another process listens on {path}")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the node is created 0600: no window where others may connect
        try:
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            raise UserError(f"control API: cannot bind {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._socket_path = path
        return sock

    def _unlink_socket(self) -> None:
        if self._socket_path is not None:
            self._socket_path.unlink(missing_ok=True)
            self._socket_path = None

    def _write_control_file(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / CONTROL_FILE
        tmp = path.with_name(f".{CONTROL_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps({"url": self.url, "pid": os.getpid()}) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
