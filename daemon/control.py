"""The control API: health, Prometheus metrics and operator commands over HTTP,
on 127.0.0.1 (or any `host:port`; port 0 picks one) or a unix socket (0600).

    GET  /health       no token  liveness (the answer) and readiness (200, else 503)
    GET  /metrics      no token  Prometheus text, built from the kernel at scrape time
    GET  /status       token     health + strategies, equity, PnL, journal, event rate
    GET  /positions    token     open positions (`?all=1`: flat ones too) and equity
    GET  /orders       token     open orders (`?all=1`: every order the OMS knows)
    GET  /strategies   token     {id: status}
    POST /halt         token     body {"reason": ...} optional: trading HALTED
    POST /resume       token     body {"reason": ...} optional: back to ACTIVE (or what
                                 the day's loss still demands)
    POST /strategies/{id}/stop|start   token   404 unknown id, 409 refused

Token: `Authorization: Bearer <token>`, compared in constant time; the token
comes from `load_control_token`. Answers are JSON, Decimals as strings.

On start the server writes `DATA/control.json` (`{"url", "pid"}`, 0644), so
`tapeloop status` finds a port-0 or unix-socket daemon; close removes it.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import stat
import time
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import msgspec
import structlog
from aiohttp import web

from daemon.config import ControlAddress
from daemon.errors import UserError
from daemon.logging import register_secret
from daemon.metrics import (
    CONTENT_TYPE,
    KernelMetrics,
    RateMeter,
    Registry,
    collect_kernel,
    pnl_by_strategy,
    process_start_time,
    render,
)
from events.instruments import to_decimal

log = structlog.get_logger("tapeloop.control")

TOKEN_FILE = "control.token"
CREDENTIAL_NAME = "control_token"
CONTROL_FILE = "control.json"
_OPEN_PATHS = frozenset({"/health", "/metrics"})


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


# -- token and discovery --------------------------------------------------------------


def load_control_token(data_dir: str | os.PathLike[str], env: Mapping[str, str] = os.environ,
                       *, create: bool = True) -> str | None:
    """The bearer token: `$CREDENTIALS_DIRECTORY/control_token` (systemd
    `LoadCredential=`) if present, else `DATA/control.token`, created 0600 with
    a fresh random token when absent (with `create=False`: None instead).
    A token file readable by group or others is refused (UserError)."""
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / CREDENTIAL_NAME).is_file():
        return _read_token(Path(creds) / CREDENTIAL_NAME)
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        mode = path.stat().st_mode
        if mode & 0o077:
            raise UserError(f"{path} is readable by group or others (mode "
                            f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}")
        return _read_token(path)
    if not create:
        return None
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile by another process
        return load_control_token(data_dir, env, create=False)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(token + "\n")
    register_secret(token)
    return token


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read the control token {path}: {exc.strerror}") from None
    if not token:
        raise UserError(f"the control token file {path} is empty")
    register_secret(token)  # redacted from every log line from now on
    return token


def address_url(address: ControlAddress) -> str:
    """`http://host:port`, or `unix:///abs/path` for a unix socket."""
    if address.path is not None:
        return "unix://" + str(Path(address.path).absolute())
    host = address.host or "127.0.0.1"
    return f"http://[{host}]:{address.port}" if ":" in host else f"http://{host}:{address.port}"


def read_control_file(data_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """`DATA/control.json` as written by a running daemon, or None."""
    try:
        data = json.loads((Path(data_dir) / CONTROL_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("url"), str) else None


# -- views ----------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(data: Any) -> str:
    return json.dumps(data, default=_json_default)


def order_view(o: Any) -> dict[str, Any]:
    return {
        "client_order_id": o.client_order_id, "strategy_id": o.strategy_id, "venue": o.venue,
        "symbol": o.symbol, "side": o.side, "order_type": getattr(o, "order_type", None),
        "qty": o.qty, "price": o.price, "filled_qty": o.filled_qty, "state": o.state,
        "is_open": o.is_open,
    }


def position_view(portfolio: Any, p: Any) -> dict[str, Any]:
    last_price = getattr(portfolio, "last_price", None)
    return {
        "venue": p.venue, "symbol": p.symbol, "strategy_id": p.strategy_id, "qty": p.qty,
        "avg_price": p.avg_price,
        "mark": last_price(p.venue, p.symbol) if last_price is not None else None,
        "unrealized_pnl": portfolio.unrealized_pnl(p.venue, p.symbol, p.strategy_id),
        "realized_pnl": p.realized_pnl, "fees": p.fees,
    }


def margin_view(node: Any) -> dict[str, Any]:
    """The perpetuals: each margin account, each account-level position with its
    margin, liquidation price and funding, and when funding is next due (the
    venue's MarkPrice says; else the venue's configured constant schedule)."""
    portfolio = node.portfolio
    positions = []
    for p in portfolio.perp_positions():
        row = msgspec.to_builtins(p, builtin_types=(Decimal,))
        row["next_funding"] = next_funding(node, portfolio, p.venue, p.symbol)
        positions.append(row)
    return {"accounts": [msgspec.to_builtins(a, builtin_types=(Decimal,))
                         for a in portfolio.margin()],
            "positions": positions}


def next_funding(node: Any, portfolio: Any, venue: str, symbol: str) -> dict[str, Any] | None:
    """{rate, ts_ns, source} of the next funding of `symbol`, or None if unknown."""
    outlook = portfolio.funding_outlook(venue, symbol)
    if outlook is not None:
        rate, ts = outlook
        return {"rate": rate, "ts_ns": ts, "source": "venue"}
    try:
        vcfg = node.config.venue(venue)
    except (AttributeError, KeyError):
        return None
    if vcfg.funding_rate is None:
        return None
    period = round(vcfg.funding_interval_h * 3_600 * 1_000_000_000)
    now = node.clock.now_ns()
    return {"rate": to_decimal(vcfg.funding_rate), "ts_ns": (now // period + 1) * period,
            "source": "config"}


def unvalued_view(portfolio: Any) -> list[dict[str, Any]]:
    """Money the account's figures leave out for want of a conversion mark."""
    return [{"venue": u.venue, "currency": u.currency, "balance": u.balance, "pnl": u.pnl,
             "reason": u.reason} for u in portfolio.unvalued()]


# -- the server -----------------------------------------------------------------------


class ControlServer:
    """`url = await server.start()` ... `await server.close()`."""

    def __init__(self, kernel: KernelView, address: ControlAddress, token: str, *,
                 data_dir: str | os.PathLike[str] | None = None) -> None:
        if not token:
            raise ValueError("the control API needs a token")
        self.kernel = kernel
        self.address = address
        self._token = token.encode()
        self.data_dir = Path(data_dir if data_dir is not None else kernel.data_dir)
        self.url: str | None = None
        self.fills = 0
        self.rejections: Counter[str] = Counter()
        self._rate = RateMeter(sum(kernel.counts.values()))
        self._start_time = process_start_time()
        self._runner: web.AppRunner | None = None
        self._socket_path: Path | None = None
        self._subscribed: list[tuple[type, Any]] = []

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> str:
        """Listen; returns the URL (`http://host:port` or `unix:///path`)."""
        from events.orders import Fill, OrderRejected

        app = web.Application(middlewares=[self._auth])
        get, post = app.router.add_get, app.router.add_post
        get("/health", self._health)
        get("/metrics", self._metrics)
        get("/status", self._status)
        get("/positions", self._positions)
        get("/orders", self._orders)
        get("/strategies", self._strategies)
        post("/halt", self._halt)
        post("/resume", self._resume)
        post("/strategies/{id}/{action:stop|start}", self._strategy_action)
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
        bus = self.kernel.bus
        for cls, handler in ((Fill, self._on_fill), (OrderRejected, self._on_rejected)):
            bus.subscribe(cls, handler)
            self._subscribed.append((cls, handler))
        self._write_control_file()
        log.info("control.listening", url=self.url)
        return self.url

    async def close(self) -> None:
        for cls, handler in self._subscribed:
            try:
                self.kernel.bus.unsubscribe(cls, handler)
            except ValueError:
                pass
        self._subscribed.clear()
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

    def _on_fill(self, _event: Any) -> None:
        self.fills += 1

    def _on_rejected(self, event: Any) -> None:
        self.rejections[event.check or "unknown"] += 1

    # -- auth -----------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path not in _OPEN_PATHS:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                   self._token)
            if not ok:
                return web.json_response(
                    {"error": "missing or wrong bearer token"}, status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="tapeloop"'})
        return await handler(request)

    # -- open endpoints ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        k = self.kernel
        ready = bool(k.ready) and not k.stopping
        node = k.node
        return {
            "status": "stopping" if k.stopping else "ok" if ready else "starting",
            "ready": ready,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - k.started_monotonic, 3),
            "trading_state": node.risk.state if node is not None else None,
            "venues": {name: s.get("status") for name, s in k.venue_states().items()},
        }

    async def _health(self, _request: web.Request) -> web.Response:
        body = self.health()
        return web.json_response(body, status=200 if body["ready"] else 503, dumps=_dumps)

    async def _metrics(self, _request: web.Request) -> web.Response:
        reg = self.collect()
        metrics = list(reg)
        kernel_metrics = getattr(self.kernel, "metrics", None)
        if kernel_metrics is not None:  # its histograms, and whatever else it registered
            metrics += [m for m in kernel_metrics.registry if m.name not in reg]
        return web.Response(body=render(metrics).encode(), headers={"Content-Type": CONTENT_TYPE})

    def collect(self) -> Registry:
        """The scrape-time metrics (/metrics adds the kernel's own registry)."""
        return collect_kernel(self.kernel, fills=self.fills, rejections=self.rejections,
                              events_per_second=self._rate.rate(sum(self.kernel.counts.values())),
                              start_time=self._start_time)

    # -- token endpoints --------------------------------------------------------------

    def _node(self) -> Any:
        node = self.kernel.node
        if node is None:
            raise web.HTTPServiceUnavailable(
                text=_dumps({"error": "the daemon is starting"}), content_type="application/json")
        return node

    async def _status(self, _request: web.Request) -> web.Response:
        body = self.health()
        k = self.kernel
        body["venues"] = k.venue_states()
        body["strategies"] = k.strategy_states()
        body["events_total"] = sum(k.counts.values())
        body["events_per_second"] = round(self._rate.rate(body["events_total"]), 3)
        if k.journal is not None:
            j = k.journal
            body["journal"] = {"written_seq": j.written_seq, "synced_seq": j.synced_seq,
                               "backlog_bytes": j.buffered_bytes}
        node = k.node
        if node is not None:
            body["trading_reason"] = node.risk.reason
            body["account_currency"] = node.portfolio.account_currency
            body["equity"] = node.portfolio.equity()
            body["unvalued"] = unvalued_view(node.portfolio)
            body["pnl"] = pnl_by_strategy(node.portfolio)
            if node.portfolio.perp_positions(include_flat=True):
                body["perpetuals"] = margin_view(node)
            body["open_orders"] = len(node.oms.open_orders())
            body["fills"] = self.fills
        return web.json_response(body, dumps=_dumps)

    async def _positions(self, request: web.Request) -> web.Response:
        portfolio = self._node().portfolio
        every = request.query.get("all", "") not in ("", "0", "false")
        rows = [position_view(portfolio, p) for p in portfolio.positions(include_flat=every)]
        return web.json_response({"positions": rows, "equity": portfolio.equity(),
                                  "account_currency": portfolio.account_currency,
                                  "unvalued": unvalued_view(portfolio)}, dumps=_dumps)

    async def _orders(self, request: web.Request) -> web.Response:
        oms = self._node().oms
        every = request.query.get("all", "") not in ("", "0", "false")
        orders = list(oms.orders.values()) if every else list(oms.open_orders())
        return web.json_response({"orders": [order_view(o) for o in orders]}, dumps=_dumps)

    async def _strategies(self, _request: web.Request) -> web.Response:
        return web.json_response({"strategies": self.kernel.strategy_states()}, dumps=_dumps)

    async def _reason(self, request: web.Request, default: str) -> str:
        raw = await request.read()
        if not raw.strip():
            return default
        try:
            body = json.loads(raw)
        except ValueError:
            raise web.HTTPBadRequest(text=_dumps({"error": "the body is not JSON"}),
                                     content_type="application/json") from None
        reason = body.get("reason") if isinstance(body, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise web.HTTPBadRequest(text=_dumps({"error": "reason must be a string"}),
                                     content_type="application/json")
        return reason or default

    async def _halt(self, request: web.Request) -> web.Response:
        risk = self._node().risk
        reason = await self._reason(request, "halted by operator (control API)")
        log.warning("control.halt", reason=reason)
        risk.halt(reason)
        return web.json_response({"state": risk.state, "reason": risk.reason}, dumps=_dumps)

    async def _resume(self, request: web.Request) -> web.Response:
        risk = self._node().risk
        reason = await self._reason(request, "resumed by operator (control API)")
        log.warning("control.resume", reason=reason)
        state = risk.resume(reason)
        return web.json_response({"state": state, "reason": risk.reason}, dumps=_dumps)

    async def _strategy_action(self, request: web.Request) -> web.Response:
        sid, action = request.match_info["id"], request.match_info["action"]
        call = self.kernel.stop_strategy if action == "stop" else self.kernel.start_strategy
        log.warning(f"control.strategy_{action}", strategy_id=sid)
        try:
            call(sid)
        except KeyError:
            return web.json_response({"error": f"no strategy {sid!r}"}, status=404)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        status = self.kernel.strategy_states().get(sid)
        return web.json_response({"strategy_id": sid, "status": status}, dumps=_dumps)
