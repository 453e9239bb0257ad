"""The e-mail channel: each alert as a message over SMTP, upgraded with STARTTLS.

The standard library's `smtplib`, run in a worker thread (an alert is rare; no
dependency for it): connect, EHLO, STARTTLS (the certificate checked against
`ca_file` or the system's CAs), EHLO, AUTH when `username` is set, send. A 4xx
reply, a dropped connection or a timeout is worth retrying; a 5xx reply (a refused
recipient, bad credentials), a certificate that does not verify or a server without
STARTTLS is not. The password is a secret: from `$TAPELOOP_SMTP_PASSWORD`
(`password_env`) or the systemd credential of that name, registered, never logged.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import msgspec

from daemon.alerts.delivery import Attempt, scrub
from daemon.alerts.rules import Alert
from daemon.alerts.secrets import load_secret
from daemon.config import EmailAlertsConfig

__all__ = ["EmailChannel"]

_encoder = msgspec.json.Encoder(enc_hook=str)


class EmailChannel:
    """Mails each alert to `config.to`: the subject is its text, the body its fields."""

    name = "email"

    def __init__(self, config: EmailAlertsConfig, password: str | None) -> None:
        self._config = config
        self._password = password
        self.secrets: tuple[str, ...] = (password,) if password else ()

    @classmethod
    def from_config(cls, config: EmailAlertsConfig,
                    env: Mapping[str, str] = os.environ) -> EmailChannel:
        """The channel, its password from the environment; ValueError (naming the
        variable) when `username` is set and there is no password."""
        password = load_secret(config.password_env, env)
        if config.username and password is None:
            raise ValueError(f"email: username is set but there is no password in "
                             f"${config.password_env} (or the credential "
                             f"{config.password_env.lower()})")
        return cls(config, password)

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self._config.sender
        msg["To"] = ", ".join(self._config.to)
        # a header is one line: a reason may hold a traceback's newlines
        msg["Subject"] = " ".join(alert.text.split())[:200]
        msg["Date"] = formatdate(alert.ts_ns / 1e9, usegmt=True)
        msg["Message-ID"] = make_msgid(domain=alert.host or None)
        fields = alert.payload()["tapeloop"]
        body = "\n".join(f"{k}: {v}" for k, v in fields.items())
        msg.set_content(f"{alert.text}\n\n{body}\n\n{_encoder.encode(fields).decode()}\n")
        return msg

    async def send(self, alert: Alert, timeout_s: float) -> Attempt:
        msg = self.message(alert)
        try:
            await asyncio.to_thread(self._send, msg, timeout_s)
        except smtplib.SMTPResponseException as exc:
            return Attempt(ok=False, retryable=400 <= exc.smtp_code < 500,
                           status=exc.smtp_code, response=self._safe(exc.smtp_error))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            return Attempt(ok=False, retryable=all(400 <= c < 500 for c in codes),
                           status=codes[0] if codes else None,
                           response=self._safe(str(exc.recipients)))
        except (smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError) as exc:
            return Attempt(ok=False, error=self._safe(f"{type(exc).__name__}: {exc}"))
        except (smtplib.SMTPException, OSError, TimeoutError) as exc:
            return Attempt(ok=False, retryable=True,
                           error=self._safe(f"{type(exc).__name__}: {exc}"))
        return Attempt(ok=True)

    def _safe(self, text: object) -> str:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return scrub(str(text)[:200], self.secrets)

    def _send(self, msg: EmailMessage, timeout_s: float) -> None:
        cfg = self._config
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=timeout_s) as smtp:
            smtp.ehlo()
            if cfg.starttls:
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        f"{cfg.smtp_host}:{cfg.smtp_port} does not offer STARTTLS")
                context = ssl.create_default_context(cafile=cfg.ca_file or None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if cfg.username:
                smtp.login(cfg.username, self._password or "")
            smtp.send_message(msg)

    async def close(self) -> None:
        return None
