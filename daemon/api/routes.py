"""The operator endpoints of the control API (JSON, Decimals as strings):

    GET  /health       no token  liveness (the answer) and readiness (200, else 503)
    GET  /status       token     health + strategies, equity, PnL, journal, event rate,
                                 events by type, the last fills (newest first)
    GET  /positions    token     open positions (`?all=1`: flat ones too) and equity
    GET  /orders       token     open orders (`?all=1`: every order the OMS knows)
    GET  /strategies   token     {id: status}
    POST /halt         token     body {"reason": ...} optional: trading HALTED
    POST /resume       token     body {"reason": ...} optional: back to ACTIVE (or what
                                 the day's loss still demands)
    POST /strategies/{id}/stop|start   token   404 unknown id, 409 refused

Who may call them is daemon.api.auth's concern; `/metrics` is daemon.api.collector's.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import structlog
from aiohttp import web

from daemon.api.collector import MetricsCollector
from daemon.api.views import (
    dumps,
    fill_view,
    margin_view,
    order_view,
    position_view,
    unvalued_view,
)
from daemon.metrics import pnl_by_strategy

log = structlog.get_logger("tapeloop.control")


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=dumps({"error": message}), content_type="application/json")


class Routes:
    """The endpoints over a kernel (see daemon.control.KernelView)."""

    def __init__(self, kernel: Any, collector: MetricsCollector) -> None:
        self.kernel = kernel
        self.collector = collector

    def add_to(self, app: web.Application) -> None:
        get, post = app.router.add_get, app.router.add_post
        get("/health", self._health)
        get("/metrics", self.collector.handle)
        get("/status", self._status)
        get("/positions", self._positions)
        get("/orders", self._orders)
        get("/strategies", self._strategies)
        post("/halt", self._halt)
        post("/resume", self._resume)
        post("/strategies/{id}/{action:stop|start}", self._strategy_action)

    # -- views, also read by the dashboard's stream -------------------------------------

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

    def status(self) -> dict[str, Any]:
        body = self.health()
        k = self.kernel
        body["venues"] = k.venue_states()
        body["strategies"] = k.strategy_states()
        body["events_total"] = self.collector.events_total()
        body["events_per_second"] = round(self.collector.events_per_second(), 3)
        body["events_by_type"] = dict(k.counts)  # `tapeloop top` differences it into rates
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
            body["fills"] = self.collector.fills
            body["last_fills"] = [fill_view(f) for f in reversed(self.collector.last_fills)]
        return body

    def positions(self, every: bool = False) -> dict[str, Any]:
        portfolio = self._node().portfolio
        rows = [position_view(portfolio, p) for p in portfolio.positions(include_flat=every)]
        return {"positions": rows, "equity": portfolio.equity(),
                "account_currency": portfolio.account_currency,
                "unvalued": unvalued_view(portfolio)}

    def orders(self, every: bool = False) -> dict[str, Any]:
        oms = self._node().oms
        orders = list(oms.orders.values()) if every else list(oms.open_orders())
        return {"orders": [order_view(o) for o in orders]}

    def _node(self) -> Any:
        node = self.kernel.node
        if node is None:
            raise web.HTTPServiceUnavailable(
                text=dumps({"error": "the daemon is starting"}), content_type="application/json")
        return node

    # -- handlers -------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        body = self.health()
        return web.json_response(body, status=200 if body["ready"] else 503, dumps=dumps)

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.status(), dumps=dumps)

    async def _positions(self, request: web.Request) -> web.Response:
        return web.json_response(self.positions(_every(request)), dumps=dumps)

    async def _orders(self, request: web.Request) -> web.Response:
        return web.json_response(self.orders(_every(request)), dumps=dumps)

    async def _strategies(self, _request: web.Request) -> web.Response:
        return web.json_response({"strategies": self.kernel.strategy_states()}, dumps=dumps)

    async def _halt(self, request: web.Request) -> web.Response:
        risk = self._node().risk
        reason = await _reason(request, "halted by operator (control API)")
        log.warning("control.halt", reason=reason)
        risk.halt(reason)
        return web.json_response({"state": risk.state, "reason": risk.reason}, dumps=dumps)

    async def _resume(self, request: web.Request) -> web.Response:
        risk = self._node().risk
        reason = await _reason(request, "resumed by operator (control API)")
        log.warning("control.resume", reason=reason)
        state = risk.resume(reason)
        return web.json_response({"state": state, "reason": risk.reason}, dumps=dumps)

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
        return web.json_response({"strategy_id": sid, "status": status}, dumps=dumps)


def _every(request: web.Request) -> bool:
    return request.query.get("all", "") not in ("", "0", "false")


async def _reason(request: web.Request, default: str) -> str:
    raw = await request.read()
    if not raw.strip():
        return default
    try:
        body = json.loads(raw)
    except ValueError:
        raise _bad_request("the body is not JSON") from None
    reason = body.get("reason") if isinstance(body, dict) else None
    if reason is not None and not isinstance(reason, str):
        raise _bad_request("reason must be a string")
    return reason or default
