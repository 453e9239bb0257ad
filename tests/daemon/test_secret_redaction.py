"""Secrets are redacted from log lines by value: every loader of a secret registers it
(the Binance and CCXT API keys, the control token, the alert channels' secrets), and
the last log processor removes a registered value wherever the rendered line holds
it, even where the field-level redaction cannot see it."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.binance.signing import load_credentials
from adapters.ccxt.exchange import secret_of
from daemon.alerts import Alerts
from daemon.config import AlertsConfig, EmailAlertsConfig, TelegramAlertsConfig
from daemon.control_files import load_control_token
from daemon.logging import get_logger, register_secret
from events.bus import Bus

Lines = Callable[[], list[dict[str, Any]]]
KEY = "k3y-0f-the-api-7d1e"
SECRET = "s3cret-0f-the-api-90ab"


def logged(buf: io.BytesIO, value: str) -> bool:
    get_logger("t").warning("oops", note=f"value was {value} here")
    return value.encode() in buf.getvalue()


def test_binance_credentials_are_registered(captured) -> None:
    buf, _ = captured
    load_credentials(env={"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET})
    assert not logged(buf, KEY) and not logged(buf, SECRET)


def test_an_ed25519_key_is_registered(captured, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (tmp_path / "key.pem").write_bytes(pem)
    buf, _ = captured
    load_credentials(env={"BINANCE_API_KEY": KEY,
                          "BINANCE_PRIVATE_KEY_FILE": str(tmp_path / "key.pem")})
    body = pem.decode().splitlines()[1]
    assert not logged(buf, KEY) and not logged(buf, body)


def test_ccxt_secrets_are_registered(captured, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    buf, _ = captured
    monkeypatch.setenv("OKX_API_KEY", KEY)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "okx_api_password").write_text("passphrase-of-okx-77\n")
    assert secret_of("OKX", "API_KEY") == KEY
    assert secret_of("OKX", "API_PASSWORD") == "passphrase-of-okx-77"
    assert not logged(buf, KEY) and not logged(buf, "passphrase-of-okx-77")


def test_the_control_token_is_registered(captured, tmp_path: Path) -> None:
    buf, _ = captured
    created = load_control_token(tmp_path, env={})
    assert created and not logged(buf, created)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "control_token").write_text("ctl-token-from-systemd-1\n")
    token = load_control_token(tmp_path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert token == "ctl-token-from-systemd-1" and not logged(buf, token)


def test_alert_channel_secrets_are_registered(captured) -> None:
    buf, _ = captured
    config = AlertsConfig(
        email=EmailAlertsConfig(smtp_host="h", sender="a@b", to=["c@d"], username="u"),
        telegram=TelegramAlertsConfig(chat_id="42"))
    env = {"TAPELOOP_SMTP_PASSWORD": "smtp-password-31", "TAPELOOP_TELEGRAM_TOKEN": "1:bot-tok-9"}
    alerts = Alerts(config, Bus(), lambda: 0, env=env)
    assert alerts.channels == ["email", "telegram"]
    assert not logged(buf, "smtp-password-31") and not logged(buf, "1:bot-tok-9")


@dataclasses.dataclass
class Request:
    url: str
    headers: dict[str, str]


class Signed(msgspec.Struct):
    api_key: str


def test_a_secret_the_field_redaction_cannot_see_is_removed_from_the_line(captured) -> None:
    buf, lines = captured
    register_secret(KEY)
    register_secret('quo"te\\d-secret-5')
    log = get_logger("t")
    # the encoder serialises a dataclass and a Struct itself, a dict key is not a value,
    # and a secret with a quote or a backslash is written JSON-escaped
    log.info("one", request=Request(url="https://x", headers={"X-MBX-APIKEY": KEY}))
    log.info("two", signed=Signed(api_key=KEY), by_key={KEY: 1})
    log.info("three", note='a quo"te\\d-secret-5 in it')
    raw = buf.getvalue()
    assert KEY.encode() not in raw
    assert msgspec.json.encode('quo"te\\d-secret-5')[1:-1] not in raw
    one, two, three = lines()
    assert one["request"]["headers"]["X-MBX-APIKEY"] == "***"
    assert two["signed"] == {"api_key": "***"} and two["by_key"] == {"***": 1}
    assert three["note"] == "a *** in it"
