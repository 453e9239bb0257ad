"""The Slack-compatible webhook channel: one JSON POST per alert.

The body is `Alert.payload()`:

    {"text": "tapeloop@host ERROR trading_halted: Trading HALTED: ...",
     "tapeloop": {"kind": ..., "severity": ..., "ts": ..., "ts_ns": ..., "host": ...,
                  "suppressed": 0, ...context}}

2xx is delivered; connection errors, timeouts, 5xx and 429 (with its `Retry-After`)
are worth retrying; another 4xx is not. The URL is a secret (Slack's secret is its
path): it is registered, whole and its path alone, and never logged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp
import msgspec

from daemon.alerts.delivery import Attempt, scrub
from daemon.alerts.rules import Alert
from daemon.alerts.secrets import load_secret
from daemon.config import AlertsConfig
from daemon.logging import register_secret

__all__ = ["WebhookChannel", "load_webhook_url", "read_text", "retry_after"]

_encoder = msgspec.json.Encoder(enc_hook=str)


def load_webhook_url(config: AlertsConfig, env: Mapping[str, str] = os.environ) -> str | None:
    """The webhook URL from `env[config.webhook_env]`, else from the systemd credential
    file `config.webhook_env.lower()` in `$CREDENTIALS_DIRECTORY`; None when neither is
    set. The value is registered as a secret before anything else is done with it;
    ValueError (naming the variable, never the value) when it is not an http(s) URL."""
    name = config.webhook_env
    url = load_secret(name, env)
    if url is None:
        return None
    parts = urlsplit(url)
    secret_part = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(secret_part) >= 8:  # Slack's secret is the path: hide it on its own too
        register_secret(secret_part)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the alert webhook in ${name} (or credential {name.lower()}) "
                         "is not an http(s) URL (value not shown)")
    return url


class WebhookChannel:
    """POSTs `Alert.payload()` as JSON to the webhook URL."""

    name = "webhook"

    def __init__(self, url: str, *,
                 session_factory: Callable[[], aiohttp.ClientSession] | None = None) -> None:
        self._url = url
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.secrets: tuple[str, ...] = (url, path)
        self._session_factory = session_factory or aiohttp.ClientSession
        self._session: aiohttp.ClientSession | None = None

    async def send(self, alert: Alert, timeout_s: float) -> Attempt:
        if self._session is None:
            self._session = self._session_factory()
        body = _encoder.encode(alert.payload())
        try:
            async with self._session.post(
                    self._url, data=body, headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                status = resp.status
                if 200 <= status < 300:
                    return Attempt(ok=True, status=status)
                return Attempt(ok=False, retryable=status == 429 or status >= 500,
                               status=status,
                               response=scrub(await read_text(resp), self.secrets),
                               retry_after=retry_after(resp.headers.get("Retry-After")))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Attempt(ok=False, retryable=True,
                           error=scrub(f"{type(exc).__name__}: {exc}", self.secrets))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def read_text(resp: aiohttp.ClientResponse) -> str:
    """The start of a response's body, "" when it cannot be read."""
    try:
        return (await resp.text(errors="replace"))[:200]
    except Exception:
        return ""


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)
