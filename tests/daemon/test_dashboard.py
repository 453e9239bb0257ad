"""The web dashboard's server side (daemon.api.auth, .stream, .dashboard) over a real
ControlServer and the small real kernel of test_control: who may read what (the
token, the session cookie, CSRF), and the live feed. The page in a real browser:
test_dashboard_browser.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from daemon.api.auth import COOKIE, FAILED_LOGINS_PER_MINUTE, SESSION_TTL_S
from tests.daemon.test_control import serving

OPEN = {"/health", "/metrics", "/login"}


@asynccontextmanager
async def logged_in(url: str, token: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """A browser-like client holding a session cookie, and the page's CSRF token."""
    # unsafe=True: aiohttp's jar otherwise ignores cookies of an IP-address host
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(url + "/login", data={"token": token},
                             allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
        async with http.get(url + "/") as r:
            assert r.status == 200
            page = await r.text()
        csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
        assert len(csrf) >= 32
        yield http, csrf


async def read_event(resp: aiohttp.ClientResponse, name: str) -> dict[str, Any]:
    """The next server-sent event called `name` (others are skipped)."""
    event = None
    while True:
        line = (await resp.content.readline()).decode()
        assert line, "the stream ended"
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: ") and event == name:
            return json.loads(line[6:])


async def test_nothing_but_health_metrics_and_the_login_form_is_readable_without_credentials(
        tmp_path: Path) -> None:
    async with serving(tmp_path) as (kernel, server, url, _token):
        kernel.trade_a_little()
        assert server._runner is not None
        routes = [(r.method, r.resource.canonical) for r in server._runner.app.router.routes()
                  if r.resource is not None]
        assert ("GET", "/stream") in routes and ("GET", "/") in routes
        async with aiohttp.ClientSession() as http:
            for method, path in routes:
                path = path.replace("{id}", "sma").replace("{action}", "stop").replace(
                    "{name}", "app.js")
                async with http.request(method, url + path, allow_redirects=False) as r:
                    if path in OPEN:
                        assert r.status in (200, 401) if path == "/login" else r.status == 200
                    elif path == "/" and method in ("GET", "HEAD"):
                        assert (r.status, r.headers["Location"]) == (303, "/login")
                    else:
                        assert r.status == 401, (method, path, r.status)
        assert kernel.node.risk.state == "active"
        assert kernel.strategy_states() == {"sma": "running"}


async def test_login_exchanges_the_token_for_an_httponly_strict_session(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_kernel, _server, url, token):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(url + "/login", data={"token": "wrong"},
                                 allow_redirects=False) as r:
                assert r.status == 401 and "Wrong token" in await r.text()
                assert not r.cookies
            async with http.post(url + "/login", data={"token": token},
                                 allow_redirects=False) as r:
                assert r.status == 303
                [morsel] = [m for name, m in r.cookies.items() if name.startswith(COOKIE)]
                cookie = r.headers["Set-Cookie"]
            assert morsel.value != token and len(morsel.value) >= 40
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
            assert int(morsel["max-age"]) == int(SESSION_TTL_S)
            for path in ("/status", "/positions", "/orders", "/", "/static/app.js"):
                async with http.get(url + path) as r:
                    assert r.status == 200, path
            async with http.get(url + "/") as r:
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        # a forged cookie is nobody's session
        port = url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession(cookies={f"{COOKIE}_{port}": "forged"}) as http, \
                http.get(url + "/status") as r:
            assert r.status == 401


async def test_two_daemons_on_one_host_keep_their_own_sessions(tmp_path: Path) -> None:
    """Cookies are per host, not per port: each server names its cookie by its port."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with serving(tmp_path / "a") as (_ka, _sa, url_a, token_a), \
            serving(tmp_path / "b") as (_kb, _sb, url_b, token_b):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            for url, token in ((url_a, token_a), (url_b, token_b)):
                async with http.post(url + "/login", data={"token": token},
                                     allow_redirects=False) as r:
                    assert r.status == 303
            for url in (url_a, url_b):
                async with http.get(url + "/status") as r:
                    assert r.status == 200, url


async def test_session_posts_need_the_csrf_header_and_a_same_origin(tmp_path: Path) -> None:
    async with serving(tmp_path) as (kernel, _server, url, token):
        async with logged_in(url, token) as (http, csrf):
            for headers in ({}, {"X-CSRF-Token": "wrong"},
                            {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}):
                async with http.post(url + "/halt", headers=headers) as r:
                    assert r.status == 403, headers
            assert kernel.node.risk.state == "active"
            own = url.rstrip("/")
            async with http.post(url + "/halt", headers={"X-CSRF-Token": csrf, "Origin": own},
                                 json={"reason": "from the page"}) as r:
                assert r.status == 200 and (await r.json())["state"] == "halted"
            assert kernel.node.risk.reason == "from the page"
            async with http.post(url + "/resume", headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 200
            async with http.post(url + "/logout", headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 200
            async with http.get(url + "/status") as r:
                assert r.status == 401, "the session ended with the logout"
        # the bearer API needs no CSRF header: a browser never sends Authorization by itself
        async with aiohttp.ClientSession() as http, http.post(
                url + "/halt", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
        # a login from another origin is refused too (login CSRF)
        async with aiohttp.ClientSession() as http, http.post(
                url + "/login", data={"token": token}, allow_redirects=False,
                headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403


async def test_a_session_expires(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_kernel, server, url, token):
        async with logged_in(url, token) as (http, _csrf):
            async with http.get(url + "/status") as r:
                assert r.status == 200
            real = server.auth.clock
            server.auth.clock = lambda: real() + SESSION_TTL_S + 1
            async with http.get(url + "/status") as r:
                assert r.status == 401


async def test_failed_logins_are_rate_limited(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_kernel, server, url, token):
        async with aiohttp.ClientSession() as http:
            for _ in range(FAILED_LOGINS_PER_MINUTE):
                async with http.post(url + "/login", data={"token": "guess"},
                                     allow_redirects=False) as r:
                    assert r.status == 401
            async with http.post(url + "/login", data={"token": token},
                                 allow_redirects=False) as r:
                assert r.status == 429, "even the right token waits out the lockout"
            real = server.auth.clock
            server.auth.clock = lambda: real() + 61
            async with http.post(url + "/login", data={"token": token},
                                 allow_redirects=False) as r:
                assert r.status == 303


async def test_the_stream_sends_a_snapshot_then_each_fill_as_it_happens(tmp_path: Path) -> None:
    async with serving(tmp_path) as (kernel, server, url, token):
        server.stream.interval_s = 0.05
        async with logged_in(url, token) as (http, _csrf), http.get(url + "/stream") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            hello = await read_event(r, "hello")
            assert hello["fills"] == [] and hello["orders"] == []
            assert hello["status"]["strategies"] == {"sma": "running"}
            kernel.trade_a_little()
            fill = await asyncio.wait_for(read_event(r, "fill"), 10)
            [order] = [o for o in kernel.node.oms.orders.values() if o.state == "filled"]
            assert fill["client_order_id"] == order.client_order_id
            assert (fill["qty"], fill["price"], fill["side"]) == ("0.5", "50010.00", "BUY")
            snap = await asyncio.wait_for(read_event(r, "snapshot"), 10)
            assert [o["state"] for o in snap["orders"]] == ["accepted"]
            assert [p["qty"] for p in snap["positions"]] == ["0.5"]
            assert snap["status"]["fills"] == 1
            # what `tapeloop top` reads from /status (merged from o14logs' control.py)
            assert [f["client_order_id"] for f in snap["status"]["last_fills"]] == [
                order.client_order_id]
            by_type = snap["status"]["events_by_type"]
            assert by_type["Fill"] == 1 and sum(by_type.values()) == snap["status"][
                "events_total"]
            [(ts_ms, equity)] = snap["equity_point"]
            assert abs(ts_ms - time.time() * 1000) < 60_000 and equity == str(
                kernel.node.portfolio.equity())
        # a later page load gets the fill and the curve in its hello
        async with logged_in(url, token) as (http, _csrf), http.get(url + "/stream") as r:
            hello = await read_event(r, "hello")
            assert [f["client_order_id"] for f in hello["fills"]] == [order.client_order_id]
            assert len(hello["equity"]) >= 1


async def test_closing_the_server_ends_open_streams(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_kernel, server, url, token):
        async with logged_in(url, token) as (http, _csrf), http.get(url + "/stream") as r:
            await read_event(r, "hello")
            t0 = time.monotonic()
            await server.stream.detach()
            rest = await asyncio.wait_for(r.content.read(), 10)
            assert rest.strip() == b"" and time.monotonic() - t0 < 5
            assert not server.stream._clients


def test_the_assets_ship_in_the_package() -> None:
    """Every file the page needs is on disk and matched by pyproject's package-data
    (a wheel without them would serve a dashboard of 500s)."""
    import fnmatch
    import tomllib

    import daemon.api.dashboard as d
    from tests.conftest import REPO

    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["daemon.api"]
    for name in ("index.html", "login.html", "app.js", "app.css"):
        assert (d.STATIC / name).is_file(), name
        assert any(fnmatch.fnmatch(f"static/{name}", g) for g in globs), name
