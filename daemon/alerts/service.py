"""`Alerts`: the rules (daemon/alerts/rules.py) wired to their delivery channels.

Builds the channels `[alerts]` configures (the webhook when its URL is set,
`[alerts.email]`, `[alerts.telegram]`), each behind its own `Sender` (queue,
retries, backoff: daemon/alerts/delivery.py), and hands every alert the rules raise
to each sender. `run()` runs the senders until cancelled; `close()` lets them drain.
The counters the metrics read (`raised`, `sent`, `failed`, `dropped`, `overflowed`,
`pending`) are sums over the rules and the senders.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from daemon.alerts.delivery import QUEUE_SIZE, Channel, Sender
from daemon.alerts.rules import HISTORY_SIZE, Alert, AlertRules
from daemon.alerts.smtp import EmailChannel
from daemon.alerts.telegram import TelegramChannel
from daemon.alerts.webhook import WebhookChannel, load_webhook_url
from daemon.config import AlertsConfig
from daemon.logging import get_logger
from events.bus import Bus

__all__ = ["Alerts", "build_channels"]


def build_channels(config: AlertsConfig, env: Mapping[str, str] = os.environ, *,
                   session_factory: Callable[[], aiohttp.ClientSession] | None = None
                   ) -> list[Channel]:
    """The configured channels, their secrets loaded (and registered); ValueError,
    naming the variable and never a value, for a missing or malformed secret."""
    channels: list[Channel] = []
    url = load_webhook_url(config, env)
    if url is not None:
        channels.append(WebhookChannel(url, session_factory=session_factory))
    if config.email is not None:
        channels.append(EmailChannel.from_config(config.email, env))
    if config.telegram is not None:
        channels.append(TelegramChannel.from_config(config.telegram, env,
                                                    session_factory=session_factory))
    return channels


class Alerts:
    """Raises alerts from bus events (and `raise_alert` calls) and delivers them.

    Counters for metrics: `raised` (alerts logged), `sent` (deliveries that
    succeeded, per channel), `failed` (deliveries given up), `dropped`
    (rate-limited, plus queue overflow; the latter also in `overflowed`); `history`
    holds the last alerts raised.
    """

    def __init__(self, config: AlertsConfig, bus: Bus, now_ns: Callable[[], int], *,
                 env: Mapping[str, str] = os.environ,
                 session_factory: Callable[[], aiohttp.ClientSession] | None = None,
                 rng: random.Random | None = None, backoff_s: float = 0.5,
                 queue_size: int = QUEUE_SIZE, history_size: int = HISTORY_SIZE,
                 channels: list[Channel] | None = None) -> None:
        self.config = config
        if channels is None:
            channels = build_channels(config, env, session_factory=session_factory)
        rng = rng or random.Random()
        self.senders = [Sender(ch, timeout_s=config.timeout_s, retries=config.retries,
                               backoff_s=backoff_s, rng=rng, queue_size=queue_size)
                        for ch in channels]
        self.rules = AlertRules(config, bus, now_ns, self._deliver, history_size=history_size)
        self._log = get_logger("tapeloop.alerts")
        self._run_task: asyncio.Task[Any] | None = None
        self._closed = False

    # -- what the rest of the daemon reads ---------------------------------------------

    @property
    def history(self) -> deque[Alert]:
        return self.rules.history

    @property
    def channels(self) -> list[str]:
        return [s.channel.name for s in self.senders]

    @property
    def webhook_configured(self) -> bool:
        return "webhook" in self.channels

    @property
    def running(self) -> bool:
        """`run()` has started and not ended."""
        return self._run_task is not None and not self._run_task.done()

    @property
    def pending(self) -> int:
        """Alerts queued for a channel, not yet handled by `run()`."""
        return sum(s.pending for s in self.senders)

    @property
    def raised(self) -> int:
        return self.rules.raised

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.senders)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.senders)

    @property
    def dropped(self) -> int:
        return self.rules.dropped + sum(s.dropped for s in self.senders)

    @property
    def overflowed(self) -> int:
        return sum(s.overflowed for s in self.senders)

    def venues_down(self) -> dict[str, str]:
        """Venues currently not connected -> their last status and reason."""
        return self.rules.venues_down()

    def raise_alert(self, kind: str, message: str, *, severity: str = "error",
                    key: str | None = None, **context: Any) -> Alert | None:
        """See `AlertRules.raise_alert`: log, rate-limit, deliver. Never raises."""
        return self.rules.raise_alert(kind, message, severity=severity, key=key, **context)

    # -- lifecycle ----------------------------------------------------------------------

    def subscribe(self) -> None:
        """Install the bus handlers (once)."""
        if self.rules.subscribe():
            self._log.info("alerts.started", channels=self.channels,
                           webhook=self.webhook_configured,
                           venue_down_after_s=self.config.venue_down_after_s,
                           min_interval_s=self.config.min_interval_s)

    def _deliver(self, alert: Alert) -> None:
        if not self._closed:
            for sender in self.senders:
                sender.put(alert)

    async def run(self) -> None:
        """The senders, until cancelled (or `close()`d: it cancels this task; a `run()`
        started after `close()` returns at once)."""
        if self._closed:
            return
        self._run_task = asyncio.current_task()
        tasks = [asyncio.create_task(s.run(), name=f"alerts.{s.channel.name}")
                 for s in self.senders]
        try:
            if tasks:
                await asyncio.gather(*tasks)
            else:
                await asyncio.Event().wait()  # nothing to send: idle until cancelled
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)

    async def close(self, drain_s: float | None = None) -> None:
        """Stop: unsubscribe, cancel the venue timers, give the queued alerts up to
        `drain_s` (default `timeout_s`) to be delivered, then stop `run()`."""
        if self._closed:
            return
        self._closed = True
        self.rules.close()
        task = self._run_task
        if task is not None and not task.done():  # join(): queued and in flight
            try:
                await asyncio.wait_for(asyncio.gather(*(s.join() for s in self.senders)),
                                       self.config.timeout_s if drain_s is None else drain_s)
            except TimeoutError:
                pass
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if self.pending:
            self._log.warning("alert.undelivered", count=self.pending)
