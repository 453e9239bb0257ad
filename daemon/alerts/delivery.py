"""Alert delivery: one bounded queue and sender per channel, with retries and backoff.

A channel (daemon/alerts/webhook.py, smtp.py, telegram.py) makes ONE attempt to send
an alert and says how it went (`Attempt`); the `Sender` owns everything around it:
the queue (overflow drops the oldest, counted in `dropped` and `overflowed`), the
retries (`retries` more attempts, exponential backoff with jitter, or the server's
`retry_after`, capped) for what `Attempt.retryable` says is worth retrying, and the
log lines `alert.<channel>_retry` / `alert.<channel>_failed` (errors scrubbed of the
channel's secrets). Channels run in parallel: a hung SMTP server does not delay the
Telegram message.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Protocol

from daemon.alerts.rules import Alert
from daemon.logging import get_logger

__all__ = ["Attempt", "Channel", "Sender", "scrub"]

QUEUE_SIZE = 1000
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt went: `ok`, or why not and whether another may succeed."""

    ok: bool
    retryable: bool = False
    status: int | None = None  # the server's HTTP status or SMTP reply code, if any
    error: str = ""  # a connection error, a timeout (already scrubbed)
    response: str = ""  # the start of the server's answer (already scrubbed)
    retry_after: float | None = None  # seconds the server asked us to wait


class Channel(Protocol):
    """One way out for alerts. `send` never raises for a delivery problem (it returns
    the Attempt); `close` releases what `send` opened."""

    name: str
    secrets: tuple[str, ...]  # scrubbed from every error the sender logs

    async def send(self, alert: Alert, timeout_s: float) -> Attempt: ...

    async def close(self) -> None: ...


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with each of `secrets` (8 characters or more) replaced by ***."""
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "***")
    return text


class Sender:
    """Delivers the alerts put into it through one channel, one at a time."""

    def __init__(self, channel: Channel, *, timeout_s: float, retries: int,
                 backoff_s: float = 0.5, rng: random.Random | None = None,
                 queue_size: int = QUEUE_SIZE) -> None:
        self.channel = channel
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._rng = rng or random.Random()
        self._log = get_logger("tapeloop.alerts", channel=channel.name)
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self.sent = self.failed = self.dropped = self.overflowed = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def put(self, alert: Alert) -> None:
        """Queue `alert`; when full, the oldest queued one is dropped. Never blocks."""
        if self._queue.full():
            oldest = self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
            self.overflowed += 1
            self._log.warning("alert.queue_overflow", dropped_kind=oldest.kind)
        self._queue.put_nowait(alert)

    async def join(self) -> None:
        """Until every queued alert (and the one in flight) has been handled."""
        await self._queue.join()

    async def run(self) -> None:
        """Send queued alerts one at a time, until cancelled; closes the channel."""
        try:
            while True:
                alert = await self._queue.get()
                try:
                    await self._deliver(alert)
                except asyncio.CancelledError:
                    self._log.warning("alert.undelivered", count=1, kind=alert.kind)
                    raise
                except Exception as exc:  # a bug here must not end the sender
                    self.failed += 1
                    self._log.error(f"alert.{self.channel.name}_failed", kind=alert.kind,
                                    error=self._safe(f"{type(exc).__name__}: {exc}"))
                finally:
                    self._queue.task_done()
        finally:
            await self.channel.close()

    def _safe(self, text: str) -> str:
        return scrub(text.rstrip(": "), self.channel.secrets)

    async def _deliver(self, alert: Alert) -> bool:
        attempts = 1 + self._retries
        name = self.channel.name
        result = Attempt(ok=False)
        attempt = 0
        for attempt in range(1, attempts + 1):
            try:
                result = await asyncio.wait_for(self.channel.send(alert, self._timeout_s),
                                                self._timeout_s * 2)
            except TimeoutError:  # a channel that overran its own timeout
                result = Attempt(ok=False, retryable=True, error="TimeoutError")
            if result.ok:
                self.sent += 1
                self._log.debug("alert.sent", kind=alert.kind, attempts=attempt)
                return True
            if not result.retryable or attempt == attempts:
                break
            if result.retry_after is not None:
                delay = min(max(result.retry_after, 0.0), MAX_RETRY_AFTER_S)
            else:
                base = min(MAX_BACKOFF_S, self._backoff_s * 2 ** (attempt - 1))
                delay = base * (0.5 + 0.5 * self._rng.random())
            self._log.warning(f"alert.{name}_retry", kind=alert.kind, attempt=attempt,
                              status=result.status, error=self._safe(result.error),
                              delay_s=round(delay, 3))
            await asyncio.sleep(delay)
        self.failed += 1
        self._log.error(f"alert.{name}_failed", kind=alert.kind, attempts=attempt,
                        status=result.status, error=self._safe(result.error),
                        response=self._safe(result.response))
        return False
