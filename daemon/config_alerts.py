"""The `[alerts]` section of the config: when to alert and where to deliver
(webhook, e-mail, Telegram). Re-exported by `daemon.config`."""

from __future__ import annotations

from typing import Annotated

import msgspec

from daemon.config_types import Name, NonNegFloat, PositiveFloat, _Section

EnvName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Address = Annotated[str, msgspec.Meta(pattern=r"^[^@\s<>,]+@[^@\s<>,]+$")]


class EmailAlertsConfig(_Section, frozen=True):
    """`[alerts.email]`: every alert as an e-mail, over SMTP with STARTTLS. The
    password is a secret: the environment variable named by `password_env`, or the
    systemd credential file of that name in lower case (needed only with `username`)."""

    smtp_host: Name
    sender: Address  # the From: address
    to: Annotated[list[Address], msgspec.Meta(min_length=1)]
    smtp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    username: str = ""  # empty: no AUTH (a local relay)
    password_env: EnvName = "TAPELOOP_SMTP_PASSWORD"
    # the CA bundle that signs the server's certificate; empty: the system's
    ca_file: str = ""
    # false only for a relay on loopback that cannot speak TLS: the password is never
    # sent without it (config_checks refuses `username` with starttls = false)
    starttls: bool = True


class TelegramAlertsConfig(_Section, frozen=True):
    """`[alerts.telegram]`: every alert as a Telegram message (Bot API `sendMessage`).
    The bot token is a secret: the environment variable named by `token_env`, or the
    systemd credential file of that name in lower case."""

    chat_id: Annotated[str, msgspec.Meta(pattern=r"^(-?[0-9]+|@[A-Za-z0-9_]{5,})$")]
    token_env: EnvName = "TAPELOOP_TELEGRAM_TOKEN"
    api_url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^/\s]+/?$")] = (
        "https://api.telegram.org")  # another Bot API server (self-hosted, a test's fake)


class AlertsConfig(_Section, frozen=True):
    """`[alerts]`: when to raise an alert (an error log line) and where to deliver it:
    a Slack-compatible webhook, e-mail (`[alerts.email]`), Telegram
    (`[alerts.telegram]`), each with its own queue, `timeout_s` and `retries`. The
    webhook URL is a secret (Slack's are): it comes from the environment variable
    named by `webhook_env`, or the systemd credential file of that name in lower case."""

    webhook_env: EnvName = "TAPELOOP_ALERT_WEBHOOK"
    venue_down_after_s: PositiveFloat = 30.0  # a venue disconnected this long
    min_interval_s: NonNegFloat = 60.0  # the same alert at most this often
    timeout_s: PositiveFloat = 5.0  # per delivery attempt
    retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3
    email: EmailAlertsConfig | None = None
    telegram: TelegramAlertsConfig | None = None
