"""No secret in any log line, journal or store file, by value: a whole live run of
`tapeloop run` (a child process, at log level debug, trading on the fake Binance)
with every secret set (the Binance API key and secret, the control token, the alert
webhook URL, the SMTP password, the Telegram bot token), an alert delivered through
each channel (one retried), then a graceful stop; every byte written is searched for
each value."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from pathlib import Path

import aiohttp
import pytest

from events.orders import OrderSubmitted
from tests.conftest import REPO, cli_env, tapeloop_cmd, until
from tests.daemon.test_alert_channels import (  # noqa: F401 (fixtures)
    PASSWORD,
    TOKEN,
    Bot,
    Mailbox,
    bot,
    cert,
    smtp,
)
from tests.daemon.test_alerts import HOOK_PATH, Receiver, receiver  # noqa: F401 (fixture)
from tests.daemon.test_live_binance_process import CONFIG, INSTRUMENT, recorded
from tests.fake_binance import FakeBinanceServer

ALERTS = """
[alerts]
min_interval_s = 0.0
timeout_s = 2.0
retries = 2

[alerts.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
sender = "tapeloop@example.org"
to = ["ops@example.org"]
username = "ops"
ca_file = "{ca_file}"

[alerts.telegram]
chat_id = "42"
api_url = "{bot_url}"
"""


@pytest.mark.timeout(180)
async def test_no_secret_in_any_log_line_or_file(
        tmp_path: Path,
        receiver: Receiver,  # noqa: F811 (the fixture imported above)
        bot: Bot,  # noqa: F811
        smtp: tuple[Mailbox, int],  # noqa: F811
        cert: tuple[Path, Path],  # noqa: F811
) -> None:
    box, smtp_port = smtp
    api_key = f"apik3y-{secrets.token_hex(12)}"
    api_secret = f"apis3cret-{secrets.token_hex(16)}"
    control_token = f"ctl-{secrets.token_urlsafe(24)}"
    values = {"api key": api_key, "api secret": api_secret, "control token": control_token,
              "webhook URL": receiver.url, "webhook path": HOOK_PATH,
              "SMTP password": PASSWORD, "bot token": TOKEN}
    server = FakeBinanceServer(api_key=api_key, secret=api_secret, seed=3,
                               tick_interval_s=0.05)
    await server.start()
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    (creds / "control_token").write_text(control_token + "\n")
    (creds / "control_token").chmod(0o600)
    config, data, log = tmp_path / "live.toml", tmp_path / "data", tmp_path / "daemon.log"
    config.write_text(
        CONFIG.format(url=server.base_url, instrument=INSTRUMENT).replace(
            "[daemon]\n", '[daemon]\nlog_level = "debug"\n')
        + ALERTS.format(smtp_port=smtp_port, ca_file=cert[0], bot_url=bot.url))
    env = {**cli_env(), "BINANCE_API_KEY": api_key, "BINANCE_API_SECRET": api_secret,
           "CREDENTIALS_DIRECTORY": str(creds), "TAPELOOP_ALERT_WEBHOOK": receiver.url,
           "TAPELOOP_SMTP_PASSWORD": PASSWORD, "TAPELOOP_TELEGRAM_TOKEN": TOKEN}
    env.pop("TAPELOOP_BINANCE_ENDPOINTS", None)
    receiver.script.append((500, {}))  # one retry logged by each HTTP channel
    bot.script.append((502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}))
    proc = await asyncio.create_subprocess_exec(
        *tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO)
    try:
        await until(lambda: recorded(data, OrderSubmitted), timeout=60,
                    message="an order journaled")
        url = json.loads((data / "control.json").read_text())["url"]
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/halt", json={"reason": "secrets test"},
                                    headers={"Authorization": f"Bearer {control_token}"}
                                    ) as resp:
                assert resp.status == 200, await resp.text()
            async with session.get(f"{url}/status",
                                   headers={"Authorization": "Bearer not-the-token"}) as resp:
                assert resp.status == 401
        await until(lambda: receiver.delivered and bot.requests[1:] and box.messages,
                    timeout=30, message="the halt alert through every channel")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        await server.close()
    text = log.read_bytes()
    assert code == 0, text[-3000:]
    assert b'"alert.webhook_retry"' in text and b'"alert.telegram_retry"' in text
    assert b"trading_halted" in box.messages[0][0]["Subject"].encode()
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files), files  # the journal, rolled
    events = "\n".join(repr(e) for cls in ("OrderSubmitted", "TradingState", "Fill",
                                            "VenueStatus", "StrategyStatus")
                       for batch in _read(data, cls) for e in batch)
    for name, value in values.items():
        assert value.encode() not in text, f"the {name} in a log line"
        assert value not in events, f"the {name} in a journaled event"
        for path in files:
            assert value.encode() not in path.read_bytes(), f"the {name} in {path}"


def _read(data: Path, cls: str) -> list[list[object]]:
    from replay.reader import read_events

    return list(read_events(data, types=[cls], journal=True))
