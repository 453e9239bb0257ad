"""The Telegram channel: each alert as a message from a bot (Bot API `sendMessage`).

POST `{api_url}/bot{token}/sendMessage` with JSON `{"chat_id", "text"}`; the Bot API
answers `{"ok": true, ...}`, or `{"ok": false, "error_code", "description",
"parameters": {"retry_after": N}}` (429 when flooding: waited out, capped; 5xx and
connection errors retried; another 4xx, e.g. a wrong chat, is not). The token is a
secret (it is in the URL): from `$TAPELOOP_TELEGRAM_TOKEN` (`token_env`) or the systemd
credential of that name, registered, and scrubbed from every error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import aiohttp
import msgspec

from daemon.alerts.delivery import Attempt, scrub
from daemon.alerts.rules import Alert
from daemon.alerts.secrets import load_secret
from daemon.alerts.webhook import retry_after
from daemon.config import TelegramAlertsConfig

__all__ = ["TelegramChannel"]

MAX_TEXT = 4096  # the Bot API's limit on a message's text


class TelegramChannel:
    """Sends `Alert.text` (and the alert's context) to one chat."""

    name = "telegram"

    def __init__(self, config: TelegramAlertsConfig, token: str, *,
                 session_factory: Callable[[], aiohttp.ClientSession] | None = None) -> None:
        self._chat_id = config.chat_id
        self._url = f"{config.api_url.rstrip('/')}/bot{token}/sendMessage"
        self.secrets: tuple[str, ...] = (token,)
        self._session_factory = session_factory or aiohttp.ClientSession
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, config: TelegramAlertsConfig, env: Mapping[str, str] = os.environ,
                    **kwargs: object) -> TelegramChannel:
        """The channel, its token from the environment; ValueError (naming the variable)
        when there is none."""
        token = load_secret(config.token_env, env)
        if token is None:
            raise ValueError(f"telegram needs the bot token in ${config.token_env} "
                             f"(or the credential {config.token_env.lower()})")
        if any(c in token for c in "/?# "):
            raise ValueError(f"the bot token in ${config.token_env} is not a token "
                             "(value not shown)")
        return cls(config, token, **kwargs)  # type: ignore[arg-type]

    async def send(self, alert: Alert, timeout_s: float) -> Attempt:
        if self._session is None:
            self._session = self._session_factory()
        lines = [alert.text] + [f"{k}: {v}" for k, v in alert.context.items()]
        body = {"chat_id": self._chat_id, "text": "\n".join(lines)[:MAX_TEXT],
                "disable_web_page_preview": True}
        try:
            async with self._session.post(self._url, json=body,
                                          timeout=aiohttp.ClientTimeout(total=timeout_s)
                                          ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Attempt(ok=False, retryable=True,
                           error=scrub(f"{type(exc).__name__}: {exc}", self.secrets))
        try:
            answer = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if 200 <= status < 300 and answer.get("ok") is True:
            return Attempt(ok=True, status=status)
        wait = None
        params = answer.get("parameters")
        if isinstance(params, dict) and isinstance(params.get("retry_after"), int | float):
            wait = float(params["retry_after"])
        else:
            wait = retry_after(resp.headers.get("Retry-After"))
        text = str(answer.get("description") or raw[:200].decode("utf-8", "replace"))
        return Attempt(ok=False, retryable=status == 429 or status >= 500, status=status,
                       response=scrub(text, self.secrets), retry_after=wait)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
