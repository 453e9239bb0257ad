"""daemon.alerts e-mail and Telegram channels, against real servers on loopback:
aiosmtpd speaking STARTTLS with a certificate made here, and an aiohttp server
speaking the Telegram Bot API's `sendMessage`."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from daemon.alerts import Alerts
from daemon.config import AlertsConfig, ConfigError, EmailAlertsConfig, TelegramAlertsConfig
from events.bus import Bus
from events.system import HALTED, TradingState
from tests.conftest import until
from tests.tls import self_signed

PASSWORD = "smtp-pa55word-4f1c9e"
TOKEN = "123456789:AAH-t0k3n-of-the-bot-xyz"
T0 = 1_714_564_800_000_000_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key)."""
    return self_signed(tmp_path_factory.mktemp("cert"), "tapeloop test smtp")


class Mailbox:
    """The aiosmtpd handler: keeps each message with whether it came over TLS and who
    logged in; `script` holds replies to give to DATA first (e.g. a 451)."""

    def __init__(self) -> None:
        self.messages: list[tuple[Any, bool, str]] = []
        self.attempts = 0
        self.script: deque[str] = deque()
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.script:
            return self.script.popleft()
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((msg, session.ssl is not None, str(session.auth_data or "")))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"ops"
              and auth_data.password == PASSWORD.encode())
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp(cert: tuple[Path, Path]) -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*cert)
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, tls_context=tls,
                            require_starttls=True, authenticator=box.authenticate,
                            auth_require_tls=True)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


class Bot:
    """A Telegram Bot API server: `sendMessage` for one token; answers from `script`
    ((status, body) or "hang"), then ok."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[tuple[float, dict[str, Any]]] = []
        self.script: deque[tuple[int, dict[str, Any]] | str] = deque()
        self.release = asyncio.Event()

    async def send_message(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        body = await request.json()
        self.requests.append((time.monotonic(), body))
        step = self.script.popleft() if self.script else None
        if step == "hang":
            await self.release.wait()
        if isinstance(step, tuple):
            return web.json_response(step[1], status=step[0])
        return web.json_response({"ok": True, "result": {
            "message_id": len(self.requests), "chat": {"id": int(body["chat_id"])},
            "text": body["text"]}})

    def delivered(self) -> list[dict[str, Any]]:
        return [body for _, body in self.requests]


@pytest_asyncio.fixture
async def bot() -> AsyncIterator[Bot]:
    fake = Bot()
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", fake.send_message)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    fake.release.set()
    await runner.cleanup()


def email_config(port: int, ca: Path | None, **kw: Any) -> EmailAlertsConfig:
    return EmailAlertsConfig(**{"smtp_host": "127.0.0.1", "smtp_port": port,
                                "sender": "tapeloop@example.org", "to": ["ops@example.org"],
                                "username": "ops", "ca_file": str(ca) if ca else "", **kw})


@contextlib.asynccontextmanager
async def started(env: dict[str, str], **cfg: Any) -> AsyncIterator[Alerts]:
    config = AlertsConfig(**{"min_interval_s": 0.0, "timeout_s": 2.0, "retries": 2, **cfg})
    alerts = Alerts(config, Bus(), lambda: T0, env=env, rng=random.Random(7),
                    backoff_s=0.01)
    alerts.subscribe()
    task = asyncio.create_task(alerts.run())
    await until(lambda: alerts.running, message="the senders")
    try:
        yield alerts
    finally:
        await alerts.close()
        assert task.done()


def events(lines: Any, name: str) -> list[dict[str, Any]]:
    return [line for line in lines() if line["event"] == name]


# -- e-mail -----------------------------------------------------------------------------


async def test_email_over_starttls_with_login(smtp, cert, captured) -> None:
    box, port = smtp
    buf, _ = captured
    async with started({"TAPELOOP_SMTP_PASSWORD": PASSWORD},
                       email=email_config(port, cert[0])) as alerts:
        assert alerts.channels == ["email"]
        alerts.rules.bus.publish(TradingState(ts_event=T0, ts_recv=T0, state=HALTED,
                                              reason="halted by operator"))
        await until(lambda: alerts.sent == 1, message="the e-mail")
    [(msg, over_tls, _)] = box.messages
    assert over_tls and box.logins == ["ops"]
    assert msg["To"] == "ops@example.org" and msg["From"] == "tapeloop@example.org"
    assert "ERROR trading_halted: Trading HALTED: halted by operator" in msg["Subject"]
    assert "reason: halted by operator" in msg.get_content()
    assert PASSWORD.encode() not in buf.getvalue()


async def test_email_4xx_is_retried_5xx_is_not(smtp, cert, captured) -> None:
    box, port = smtp
    _, lines = captured
    box.script.extend(["451 4.3.0 try again later", "554 5.7.1 rejected as spam"])
    async with started({"TAPELOOP_SMTP_PASSWORD": PASSWORD},
                       email=email_config(port, cert[0])) as alerts:
        alerts.raise_alert("reconcile_diff", "first", key="a")
        await until(lambda: alerts.failed == 1, message="the refused one")
        alerts.raise_alert("reconcile_diff", "second", key="b")
        await until(lambda: alerts.sent == 1, message="the next one")
    # first: 451 (retried), 554 (given up); second: delivered at once
    assert box.attempts == 3 and [m["Subject"].endswith("second") for m, _, _ in
                                  box.messages] == [True]
    [retry] = events(lines, "alert.email_retry")
    [failed] = events(lines, "alert.email_failed")
    assert retry["status"] == 451 and failed["status"] == 554 and failed["attempts"] == 2


async def test_an_untrusted_certificate_is_not_retried(smtp, captured) -> None:
    box, port = smtp
    _, lines = captured
    # no ca_file: the system's CAs do not know the test's self-signed certificate
    async with started({"TAPELOOP_SMTP_PASSWORD": PASSWORD},
                       email=email_config(port, None)) as alerts:
        alerts.raise_alert("reconcile_diff", "diff")
        await until(lambda: alerts.failed == 1, message="the failure")
    assert box.attempts == 0 and box.logins == []
    [failed] = events(lines, "alert.email_failed")
    assert failed["attempts"] == 1 and "SSLCertVerificationError" in failed["error"]


async def test_a_multiline_message_is_a_one_line_subject(smtp, cert, captured) -> None:
    box, port = smtp
    async with started({"TAPELOOP_SMTP_PASSWORD": PASSWORD},
                       email=email_config(port, cert[0])) as alerts:
        alerts.raise_alert("strategy_failed", "Strategy mm failed: Traceback\n  line 3\r\nKeyError")
        await until(lambda: alerts.sent + alerts.failed == 1, message="the e-mail")
        assert alerts.sent == 1
    [(msg, _, _)] = box.messages
    assert msg["Subject"].endswith("Strategy mm failed: Traceback line 3 KeyError")
    assert "Traceback\r\n  line 3" in msg.get_content()  # the body keeps the lines (SMTP CRLF)


def test_email_needs_its_password_named_not_shown(cert) -> None:
    with pytest.raises(ValueError, match=r"\$TAPELOOP_SMTP_PASSWORD"):
        Alerts(AlertsConfig(email=email_config(25, cert[0])), Bus(), lambda: T0, env={})


@pytest.mark.parametrize(("section", "where"), [
    ('[alerts.email]\nsmtp_host = "h"\nsender = "a@b"\nto = []\n', "$.alerts.email.to"),
    ('[alerts.email]\nsmtp_host = "h"\nsender = "not an address"\nto = ["a@b"]\n',
     "$.alerts.email.sender"),
    ('[alerts.email]\nsmtp_host = "h"\nsender = "a@b"\nto = ["a@b"]\nusername = "u"\n'
     'starttls = false\n', "$.alerts.email.starttls"),
    ('[alerts.email]\nsmtp_host = "h"\nsender = "a@b"\nto = ["a@b"]\n'
     'ca_file = "/nonexistent/ca.pem"\n', "$.alerts.email.ca_file"),
    ('[alerts.telegram]\nchat_id = "my chat"\n', "$.alerts.telegram.chat_id"),
    ('[alerts.telegram]\nchat_id = "42"\ntoken = "123:abc"\n', "$.alerts.telegram"),
])
def test_check_config_refuses_a_bad_channel_in_one_line(section: str, where: str,
                                                         tmp_path: Path) -> None:
    from daemon.config import load_config

    base = Path(__file__).resolve().parents[2] / "configs" / "paper.toml"
    path = tmp_path / "c.toml"
    path.write_text(base.read_text() + "\n" + section)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = str(info.value)
    assert "\n" not in line and where in line and str(path) in line, line


# -- Telegram -------------------------------------------------------------------------


async def test_telegram_send_message(bot: Bot, captured) -> None:
    buf, _ = captured
    tg = TelegramAlertsConfig(chat_id="-100200300", api_url=bot.url)
    async with started({"TAPELOOP_TELEGRAM_TOKEN": TOKEN}, telegram=tg) as alerts:
        alerts.raise_alert("venue_down", "Venue binance disconnected for 31.0s",
                           venue="binance")
        await until(lambda: alerts.sent == 1, message="the message")
    [body] = bot.delivered()
    assert body["chat_id"] == "-100200300"
    assert "ERROR venue_down: Venue binance disconnected" in body["text"]
    assert "venue: binance" in body["text"]
    assert TOKEN.encode() not in buf.getvalue()


async def test_telegram_flood_wait_is_honoured_and_a_bad_chat_not_retried(
        bot: Bot, captured) -> None:
    _, lines = captured
    bot.script.append((429, {"ok": False, "error_code": 429,
                             "description": "Too Many Requests: retry after 1",
                             "parameters": {"retry_after": 0.3}}))
    bot.script.append((400, {"ok": False, "error_code": 400,
                             "description": "Bad Request: chat not found"}))
    tg = TelegramAlertsConfig(chat_id="42", api_url=bot.url)
    async with started({"TAPELOOP_TELEGRAM_TOKEN": TOKEN}, telegram=tg) as alerts:
        alerts.raise_alert("reconcile_diff", "diff")
        await until(lambda: alerts.failed == 1, message="the refusal")
    (first, _), (second, _) = bot.requests
    assert second - first >= 0.3  # the backoff alone would be ~0.01 s
    [retry] = events(lines, "alert.telegram_retry")
    [failed] = events(lines, "alert.telegram_failed")
    assert retry["status"] == 429 and retry["delay_s"] == 0.3
    assert failed["status"] == 400 and failed["response"] == "Bad Request: chat not found"


async def test_a_hung_channel_does_not_delay_another(bot: Bot, smtp, cert, captured) -> None:
    box, port = smtp
    bot.script.append("hang")
    tg = TelegramAlertsConfig(chat_id="42", api_url=bot.url)
    env = {"TAPELOOP_TELEGRAM_TOKEN": TOKEN, "TAPELOOP_SMTP_PASSWORD": PASSWORD}
    async with started(env, telegram=tg, email=email_config(port, cert[0]),
                       timeout_s=30.0) as alerts:
        alerts.raise_alert("reconcile_diff", "one", key="1")
        alerts.raise_alert("reconcile_diff", "two", key="2")
        await until(lambda: len(box.messages) == 2, message="both e-mails")
        assert len(bot.requests) == 1 and alerts.pending == 1  # "two" waits for Telegram
        await alerts.close(drain_s=0.1)


def test_telegram_needs_its_token() -> None:
    with pytest.raises(ValueError, match=r"\$TAPELOOP_TELEGRAM_TOKEN"):
        Alerts(AlertsConfig(telegram=TelegramAlertsConfig(chat_id="42")), Bus(),
               lambda: T0, env={})


def test_the_commented_example_in_the_live_config_is_valid() -> None:
    import tomllib

    import msgspec

    text = (Path(__file__).resolve().parents[2] / "configs" / "live-binance.toml").read_text()
    example = text[text.index("#[alerts]"):]
    raw = tomllib.loads("\n".join(line.removeprefix("#") for line in example.splitlines()))
    config = msgspec.convert(raw["alerts"], AlertsConfig)
    assert config.email is not None and config.email.to == ["ops@example.com"]
    assert config.telegram is not None and config.telegram.chat_id == "-1001234567890"
