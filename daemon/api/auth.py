"""Who may read and call the control API.

- `/health`, `/metrics` and the login form (`GET|POST /login`) are open;
- a program sends `Authorization: Bearer <token>` (compared in constant time);
- a browser exchanges the token once, on the login form, for a session cookie:
  random, kept server-side (in memory: a restart logs everyone out), expiring
  after `SESSION_TTL_S`, `HttpOnly` (no script reads it) and `SameSite=Strict`
  (no other site's page sends it);
- a state-changing request on a session (POST) also needs the session's CSRF
  token in the `X-CSRF-Token` header (the page has it; another origin cannot
  read it) and, when the browser sends one, an `Origin` equal to this server's.

Anything else gets 401 (`/` redirects to the login form instead); a bad
CSRF token or a foreign Origin gets 403. Failed logins are rate-limited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from daemon.api import dashboard

log = structlog.get_logger("tapeloop.control")

COOKIE = "tapeloop_session"  # + "_<port>": see cookie_name
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 64  # the oldest is dropped beyond this: a login loop cannot grow memory
FAILED_LOGINS_PER_MINUTE = 10
OPEN_PATHS = frozenset({"/health", "/metrics", "/login"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Session:
    expires: float  # time.monotonic()
    csrf: str


class Auth:
    """The middleware (`auth.middleware`) and the login/logout endpoints."""

    def __init__(self, token: str, *, ttl_s: float = SESSION_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._token = token.encode()
        self._ttl = ttl_s
        self.clock = clock
        self._sessions: dict[bytes, Session] = {}
        self._failures: deque[float] = deque()

    def add_to(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self._token)

    def session(self, request: web.Request) -> Session | None:
        """The live session the request's cookie names, or None."""
        sid = request.cookies.get(cookie_name(request))
        if not sid:
            return None
        key = _key(sid)
        found = self._sessions.get(key)
        if found is None:
            return None
        if found.expires <= self.clock():
            del self._sessions[key]
            return None
        return found

    # -- the middleware ---------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, given = header.partition(" ")
            if scheme.lower() == "bearer" and self.token_ok(given):
                return await handler(request)
            return _unauthorized()
        session = self.session(request)
        if session is None:
            if request.path == "/" and request.method in _SAFE_METHODS:
                raise web.HTTPSeeOther("/login")
            return _unauthorized()
        if request.method not in _SAFE_METHODS:
            refused = _foreign_origin(request) or (
                None if hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(),
                                            session.csrf.encode())
                else f"missing or wrong {CSRF_HEADER} header")
            if refused:
                log.warning("control.csrf_refused", path=request.path, why=refused)
                return web.json_response({"error": refused}, status=403)
        return await handler(request)

    # -- login and logout -------------------------------------------------------------------

    async def _login_form(self, _request: web.Request) -> web.Response:
        return dashboard.login_page()

    async def _login(self, request: web.Request) -> web.StreamResponse:
        foreign = _foreign_origin(request)
        if foreign:
            return web.json_response({"error": foreign}, status=403)
        now = self.clock()
        while self._failures and self._failures[0] <= now - 60.0:
            self._failures.popleft()
        if len(self._failures) >= FAILED_LOGINS_PER_MINUTE:
            return dashboard.login_page("Too many failed logins: wait a minute.", status=429)
        form = await request.post()
        given = form.get("token")
        if not isinstance(given, str) or not self.token_ok(given):
            self._failures.append(now)
            log.warning("control.login_failed", remote=request.remote)
            return dashboard.login_page("Wrong token.", status=401)
        sid = self._open_session(now)
        log.info("control.login", remote=request.remote)
        response = web.HTTPSeeOther("/")
        response.set_cookie(cookie_name(request), sid, max_age=int(self._ttl), path="/",
                            httponly=True, samesite="Strict", secure=request.secure)
        raise response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        sid = request.cookies.get(cookie_name(request))
        if sid:
            self._sessions.pop(_key(sid), None)
        response = web.json_response({"logged_out": True})
        response.del_cookie(cookie_name(request), path="/")
        return response

    def _open_session(self, now: float) -> str:
        for key in [k for k, v in self._sessions.items() if v.expires <= now]:
            del self._sessions[key]
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]  # dicts keep insertion order
        sid = secrets.token_urlsafe(32)
        self._sessions[_key(sid)] = Session(expires=now + self._ttl, csrf=secrets.token_urlsafe(32))
        return sid


def cookie_name(request: web.Request) -> str:
    """The session cookie's name for this server. Browsers scope cookies by host, not
    port: two daemons on one host (paper on :8765, live on :8767) would overwrite each
    other's session under one name."""
    return f"{COOKIE}_{request.url.port or 0}"


def _key(sid: str) -> bytes:
    """Sessions are looked up by the hash of their id: a dict lookup's timing then
    says nothing about the id itself."""
    return hashlib.sha256(sid.encode()).digest()


def _unauthorized() -> web.Response:
    return web.json_response({"error": "missing or wrong bearer token"}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="tapeloop"'})


def _foreign_origin(request: web.Request) -> str | None:
    """Why the request's Origin is not this server, or None (same, or none sent)."""
    origin: Any = request.headers.get("Origin")
    if origin is None:
        return None
    own = f"{request.scheme}://{request.host}"
    return None if origin == own else f"cross-origin request from {origin} refused"
