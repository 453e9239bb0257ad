"""The web dashboard: one page (`GET /`) and its script and stylesheet, shipped
in the package (`daemon/api/static/`), no build step and nothing fetched from
elsewhere. The page logs in with a form (daemon.api.auth), then lives on the
server-sent events of `GET /stream` (daemon.api.stream).

The page carries the session's CSRF token in a `<meta>` tag: its POSTs
(halt, resume, strategy stop/start, logout) send it back as a header."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.Response]]
STATIC = Path(__file__).parent / "static"
_ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # not "no-referrer": with it Chrome sends `Origin: null` on the page's own form POST,
    # which the Origin check (daemon.api.auth) must refuse
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# The dashboard runs only its own files; the login page has one inline style and no script.
_PAGE_CSP = ("default-src 'self'; connect-src 'self'; img-src 'self' data:; "
             "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
_LOGIN_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
              "frame-ancestors 'none'; "
              "form-action 'self'; base-uri 'none'")


@cache
def _read(name: str) -> str:
    return (STATIC / name).read_text()


def login_page(error: str = "", *, status: int = 200) -> web.Response:
    body = _read("login.html").replace("{{error}}", html.escape(error))
    return web.Response(text=body, status=status, content_type="text/html",
                        headers={**_HEADERS, "Content-Security-Policy": _LOGIN_CSP})


def _index(session_of: Callable[[web.Request], Any]) -> Handler:
    async def index(request: web.Request) -> web.Response:
        """The page; behind the auth middleware (no session: a redirect to /login;
        a bearer-token client gets the page without a CSRF token: it needs none)."""
        session = session_of(request)
        return page(session.csrf if session is not None else "")

    return index


def page(csrf: str) -> web.Response:
    body = _read("index.html").replace("{{csrf}}", html.escape(csrf))
    return web.Response(text=body, content_type="text/html",
                        headers={**_HEADERS, "Content-Security-Policy": _PAGE_CSP})


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound()
    return web.Response(text=_read(name), content_type=_ASSETS[name], headers=_HEADERS)


def add_to(app: web.Application, session_of: Callable[[web.Request], Any]) -> None:
    """`session_of(request)`: the request's session (with its `.csrf`), or None."""
    app.router.add_get("/", _index(session_of))
    app.router.add_get("/static/{name}", asset)
