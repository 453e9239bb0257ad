"""The WebSocket API `/ws-api/v3`: session and user-data-stream methods (protocol doc §2, §7).

Frames `{"id","method","params"}`; answers `{"id","status":200,"result",
"rateLimits"}` or `{"id","status":4xx,"error":{"code","msg"}}`. Methods:
`ping`, `time`, `session.logon` (Ed25519 keys only), `session.status`,
`session.logout`, `session.subscriptions`, `userDataStream.subscribe.signature`
(any key), `userDataStream.subscribe` (needs `session.logon`),
`userDataStream.unsubscribe` (emits `eventStreamTerminated`). Signatures cover
every param but `signature`, sorted by name, `k=v&...`, unencoded. Unknown
method -> 400 / -1100; a frame that is not JSON -> 400 / -1135 with `id` null.
One user-data subscription per connection (a second -> 400 / -1191).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fake_binance.common import (
    BAD_KEY,
    BAD_SIGNATURE,
    ApiError,
    check_timestamp,
    dumps,
    mandatory,
)
from tests.fake_binance.conn import Connection

NOT_AUTHORIZED = ApiError(401, -1002, "You are not authorized to execute this request.")


def ws_payload(params: dict[str, Any]) -> str:
    """The signed text: params but `signature`, sorted, `k=v&...`, not encoded."""
    def text(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    return "&".join(f"{k}={text(v)}" for k, v in sorted(params.items()) if k != "signature")


class UserConnection(Connection):
    """A WS-API client: its logged-on key and its user-data subscription, if any."""

    def __init__(self, request: web.Request, heartbeat_s: float | None, now_ms: int) -> None:
        super().__init__(request, "user", heartbeat_s)
        self.connected_since = now_ms
        self.logged_on_key: str | None = None
        self.authorized_since: int | None = None
        self.subscription_id: int | None = None

    def push_event(self, event_json: str) -> None:
        if self.subscription_id is not None:
            self.send(f'{{"subscriptionId":{self.subscription_id},"event":{event_json}}}')


class WsApi:
    """The `/ws-api/v3` endpoint. `server` supplies the clock, keys and weights."""

    def __init__(self, *, now_ms: Callable[[], int], verify: Callable[[str, str, str], bool],
                 key_kind: Callable[[str], str | None], add_weight: Callable[[int], int],
                 heartbeat_s: Callable[[], float | None],
                 rate_limits: list[dict[str, Any]]) -> None:
        self._now_ms = now_ms
        self._verify = verify
        self._key_kind = key_kind
        self._add_weight = add_weight
        self._heartbeat_s = heartbeat_s
        self._limit = next(r for r in rate_limits if r["rateLimitType"] == "REQUEST_WEIGHT")
        self.connections: list[UserConnection] = []
        self._next_subscription = 0
        self._methods = {
            "ping": (1, self._ping), "time": (1, self._time),
            "session.logon": (2, self._logon), "session.status": (2, self._status),
            "session.logout": (2, self._logout),
            "session.subscriptions": (2, self._subscriptions),
            "userDataStream.subscribe.signature": (2, self._subscribe_signature),
            "userDataStream.subscribe": (2, self._subscribe),
            "userDataStream.unsubscribe": (2, self._unsubscribe),
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ws-api/v3", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        conn = UserConnection(request, self._heartbeat_s(), self._now_ms())
        self._add_weight(2)  # connecting costs 2
        self.connections.append(conn)
        try:
            return await conn.serve(request, self._on_text)
        finally:
            if conn in self.connections:
                self.connections.remove(conn)

    @property
    def subscribed(self) -> list[UserConnection]:
        return [c for c in self.connections if c.subscription_id is not None]

    # --- requests -----------------------------------------------------------------

    def _on_text(self, conn: Connection, text: str) -> None:
        assert isinstance(conn, UserConnection)
        try:
            req = json.loads(text)
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            self._reply(conn, None, error=ApiError(400, -1135, "Invalid JSON Request"))
            return
        rid, method = req.get("id"), req.get("method")
        params = req.get("params") or {}
        if isinstance(method, str) and method.startswith("v3/"):
            method = method[3:]
        entry = self._methods.get(method) if isinstance(method, str) else None
        if entry is None or not isinstance(params, dict):
            self._reply(conn, rid, error=ApiError(
                400, -1100, f"Illegal characters found in parameter 'method'; legal range is "
                            f"'{', '.join(self._methods)}'."))
            return
        weight, fn = entry
        self._add_weight(weight)
        try:
            result = fn(conn, params)
        except ApiError as e:
            self._reply(conn, rid, error=e)
            return
        self._reply(conn, rid, result=result)

    def _reply(self, conn: UserConnection, rid: Any, *, result: Any = None,
               error: ApiError | None = None) -> None:
        limits = [{**self._limit, "count": self._add_weight(0)}]
        if error is None:
            body = {"id": rid, "status": 200, "result": result, "rateLimits": limits}
        else:
            body = {"id": rid, "status": error.status, "error": error.body(),
                    "rateLimits": limits}
        conn.send(dumps(body))

    def _signed(self, params: dict[str, Any]) -> str:
        """Check apiKey, signature and timestamp; returns the api key."""
        key, sig = params.get("apiKey"), params.get("signature")
        if not isinstance(key, str) or not key:
            raise mandatory("apiKey")
        if not isinstance(sig, str) or not sig:
            raise mandatory("signature")
        if self._key_kind(key) is None:
            raise BAD_KEY
        if not self._verify(key, ws_payload(params), sig):
            raise BAD_SIGNATURE
        if "timestamp" not in params:
            raise mandatory("timestamp")
        check_timestamp(self._now_ms(), params["timestamp"], params.get("recvWindow"))
        return key

    def _ping(self, conn: UserConnection, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _time(self, conn: UserConnection, params: dict[str, Any]) -> dict[str, Any]:
        return {"serverTime": self._now_ms()}

    def _session(self, conn: UserConnection) -> dict[str, Any]:
        now = self._now_ms()
        return {"apiKey": conn.logged_on_key, "authorizedSince": conn.authorized_since,
                "connectedSince": conn.connected_since, "returnRateLimits": True,
                "serverTime": now, "userDataStream": conn.subscription_id is not None}

    def _logon(self, conn: UserConnection, params: dict[str, Any]) -> dict[str, Any]:
        key = params.get("apiKey")
        if isinstance(key, str) and self._key_kind(key) == "hmac":
            raise BAD_KEY  # session.logon takes Ed25519 keys only
        key = self._signed(params)
        conn.logged_on_key, conn.authorized_since = key, self._now_ms()
        return self._session(conn)

    def _status(self, conn: UserConnection, params: dict[str, Any]) -> dict[str, Any]:
        return self._session(conn)

    def _logout(self, conn: UserConnection, params: dict[str, Any]) -> dict[str, Any]:
        conn.logged_on_key = conn.authorized_since = None
        return self._session(conn)

    def _subscriptions(self, conn: UserConnection, params: dict[str, Any]) -> list[Any]:
        sid = conn.subscription_id
        return [] if sid is None else [{"subscriptionId": sid}]

    def _start(self, conn: UserConnection) -> dict[str, Any]:
        if conn.subscription_id is not None:
            raise ApiError(400, -1191, "Similar subscription is already active on this "
                                       "connection.")
        conn.subscription_id = self._next_subscription
        self._next_subscription += 1
        return {"subscriptionId": conn.subscription_id}

    def _subscribe_signature(self, conn: UserConnection, params: dict[str, Any]) -> Any:
        self._signed(params)
        return self._start(conn)

    def _subscribe(self, conn: UserConnection, params: dict[str, Any]) -> Any:
        if conn.logged_on_key is None:
            raise NOT_AUTHORIZED
        return self._start(conn)

    def _unsubscribe(self, conn: UserConnection, params: dict[str, Any]) -> Any:
        sid = params.get("subscriptionId", conn.subscription_id)
        if conn.subscription_id is None or sid != conn.subscription_id:
            raise ApiError(400, -1130, "Data sent for parameter 'subscriptionId' is not valid.")
        conn.push_event(dumps({"e": "eventStreamTerminated", "E": self._now_ms()}))
        conn.subscription_id = None
        return {}

    # --- fan-out and faults ---------------------------------------------------------

    def push(self, event_json: str) -> None:
        for conn in self.subscribed:
            conn.push_event(event_json)

    def disconnect(self) -> int:
        victims = list(self.connections)
        for conn in victims:
            conn.abort()
            self.connections.remove(conn)
        return len(victims)

    def send_malformed(self) -> None:
        for conn in self.subscribed:
            conn.send(f'{{"subscriptionId":{conn.subscription_id},"event":{{"e":'
                      '"executionReport","E":')

    def send_unknown(self) -> None:
        self.push(dumps({"e": "someNewEvent", "E": 1}))
