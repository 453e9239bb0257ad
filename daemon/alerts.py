"""Alerts: the few conditions an operator must hear about, as a log line and a webhook.

Every alert is one `error` (or `info`, for a resolution) structlog line with the
stable event name `alert` and the fields `kind`, `message` and its context, and,
when a webhook is configured, a POST of Slack-compatible JSON:

    {"text": "tapeloop@host ERROR trading_halted: Trading HALTED: ...",
     "tapeloop": {"kind": ..., "severity": ..., "ts": ..., "ts_ns": ..., "host": ...,
                  "suppressed": 0, ...context}}

Triggers (bus handlers installed by `subscribe()`; the kernel may call
`raise_alert()` itself, e.g. `reconcile_diff`):

- `trading_halted`: a `TradingState` HALTED (not for a daily loss: see next);
- `daily_loss`: a `TradingState` REDUCING or HALTED whose reason starts "daily loss";
- `venue_down`: a venue `disconnected` (not an orderly "stopped"/"cancelled") and not
  `connected` again within `venue_down_after_s` (a `loop.call_later` timer, cancelled on
  reconnect); `venue_up` (info) when it reconnects after that alert was raised;
- `strategy_failed`: a `StrategyStatus` "failed".

Rate limit: one alert per (kind, key) per `min_interval_s` (the key is the venue,
the strategy id or the trading state); the suppressed ones are counted (`dropped`)
and summarised in the next one raised: "(+3 more since <ts>)".

Delivery: a bounded queue (overflow drops the oldest, counted in `dropped` and
`overflowed`) drained by `run()`; each POST has `timeout_s` and is retried `retries`
times with exponential backoff and jitter on connection errors, timeouts, 5xx and 429
(a `Retry-After` is honoured, capped); another 4xx is not retried. The URL is a
secret (`register_secret`) and is never logged. Handlers never block or raise.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from daemon.config import AlertsConfig
from daemon.logging import get_logger, register_secret
from events.bus import Bus
from events.system import (
    CONNECTED,
    DISCONNECTED,
    HALTED,
    REDUCING,
    StrategyStatus,
    TradingState,
    VenueStatus,
)

__all__ = ["Alert", "Alerts", "load_webhook_url"]

SEVERITIES = ("info", "warning", "error", "critical")
ORDERLY_STOP = ("stopped", "cancelled")  # a venue's own shutdown, not an outage
QUEUE_SIZE = 1000
HISTORY_SIZE = 100
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0
_RESERVED = frozenset({"event", "level", "ts", "logger", "exc_info", "kind", "message",
                       "severity", "suppressed"})
_encoder = msgspec.json.Encoder(enc_hook=str)


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert that was raised (logged, and queued for the webhook if any)."""

    kind: str
    key: str
    severity: str
    message: str
    ts_ns: int
    context: dict[str, Any] = field(default_factory=dict)
    suppressed: int = 0  # alerts of the same (kind, key) rate-limited before this one
    since_ns: int = 0  # when the previous one of them was raised (if suppressed > 0)
    host: str = ""

    @property
    def text(self) -> str:
        text = f"tapeloop@{self.host} {self.severity.upper()} {self.kind}: {self.message}"
        if self.suppressed:
            text += f" (+{self.suppressed} more since {_iso(self.since_ns)})"
        return text

    def payload(self) -> dict[str, Any]:
        """The webhook body: Slack's `text`, and every field under `tapeloop`."""
        return {"text": self.text, "tapeloop": {
            **self.context, "kind": self.kind, "severity": self.severity,
            "message": self.message, "ts": _iso(self.ts_ns), "ts_ns": self.ts_ns,
            "host": self.host, "suppressed": self.suppressed}}


@dataclass(slots=True)
class _Slot:  # rate-limit state of one (kind, key)
    last_ns: int
    suppressed: int = 0


@dataclass(slots=True)
class _Down:  # a venue that is not connected
    since_ns: int
    since_loop: float
    status: str
    reason: str
    handle: asyncio.TimerHandle | None = None
    alerted: bool = False


def _iso(ns: int) -> str:
    dt = datetime.fromtimestamp(ns / 1e9, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def load_webhook_url(config: AlertsConfig, env: Mapping[str, str] = os.environ) -> str | None:
    """The webhook URL from `env[config.webhook_env]`, else from the systemd credential
    file `config.webhook_env.lower()` in `$CREDENTIALS_DIRECTORY`; None when neither is
    set. The value is registered as a secret before anything else is done with it;
    ValueError (naming the variable, never the value) when it is not an http(s) URL."""
    name = config.webhook_env
    url = env.get(name, "").strip()
    cdir = env.get("CREDENTIALS_DIRECTORY")
    if not url and cdir and "/" not in name:
        path = Path(cdir) / name.lower()
        if path.is_file():
            url = path.read_text(encoding="utf-8").strip()
    if not url:
        return None
    register_secret(url)
    parts = urlsplit(url)
    secret_part = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(secret_part) >= 8:  # Slack's secret is the path: hide it on its own too
        register_secret(secret_part)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the alert webhook in ${name} (or credential {name.lower()}) "
                         "is not an http(s) URL (value not shown)")
    return url


class Alerts:
    """Raises alerts from bus events (and `raise_alert` calls) and delivers them.

    Counters for metrics: `raised` (alerts logged), `sent` (webhook POSTs answered
    2xx), `failed` (deliveries given up), `dropped` (rate-limited, plus queue
    overflow; the latter also in `overflowed`); `history` holds the last alerts raised.
    """

    def __init__(self, config: AlertsConfig, bus: Bus, now_ns: Callable[[], int], *,
                 env: Mapping[str, str] = os.environ,
                 session_factory: Callable[[], aiohttp.ClientSession] | None = None,
                 rng: random.Random | None = None, backoff_s: float = 0.5,
                 queue_size: int = QUEUE_SIZE, history_size: int = HISTORY_SIZE) -> None:
        self.config = config
        self.bus = bus
        self._now_ns = now_ns
        self._url = load_webhook_url(config, env)
        self._session_factory = session_factory
        self._rng = rng or random.Random()
        self._backoff_s = backoff_s
        self._interval_ns = int(config.min_interval_s * 1e9)
        self._host = socket.gethostname()
        self._log = get_logger("tapeloop.alerts")
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._down: dict[str, _Down] = {}
        self._handlers: list[tuple[type, Callable[[Any], None]]] = []
        self._run_task: asyncio.Task[None] | None = None
        self._closed = False
        self.history: deque[Alert] = deque(maxlen=history_size)
        self.raised = self.sent = self.failed = self.dropped = self.overflowed = 0

    @property
    def webhook_configured(self) -> bool:
        return self._url is not None

    @property
    def running(self) -> bool:
        """`run()` has started and not ended."""
        return self._run_task is not None and not self._run_task.done()

    @property
    def pending(self) -> int:
        """Alerts queued for the webhook, not yet handled by `run()`."""
        return self._queue.qsize()

    def venues_down(self) -> dict[str, str]:
        """Venues currently not connected -> their last status and reason."""
        return {v: f"{d.status}: {d.reason}" for v, d in self._down.items()}

    # -- wiring -----------------------------------------------------------------------

    def subscribe(self) -> None:
        """Install the bus handlers (once)."""
        if self._handlers:
            return
        self._handlers = [(TradingState, self._on_trading_state),
                          (VenueStatus, self._on_venue_status),
                          (StrategyStatus, self._on_strategy_status)]
        for event_type, handler in self._handlers:
            self.bus.subscribe(event_type, handler)
        self._log.info("alerts.started", webhook=self.webhook_configured,
                       venue_down_after_s=self.config.venue_down_after_s,
                       min_interval_s=self.config.min_interval_s)

    async def run(self) -> None:
        """The sender: POST queued alerts one at a time, until cancelled (or `close()`d:
        it cancels this task; a `run()` started after `close()` returns at once)."""
        if self._closed:
            return
        self._run_task = asyncio.current_task()
        session: aiohttp.ClientSession | None = None
        try:
            while True:
                alert = await self._queue.get()
                try:
                    if session is None:
                        session = self._new_session()
                    await self._deliver(session, alert)
                except asyncio.CancelledError:
                    self._log.warning("alert.undelivered", count=1, kind=alert.kind)
                    raise
                except Exception as exc:  # a bug here must not end the sender
                    self.failed += 1
                    self._log.error("alert.webhook_failed", kind=alert.kind,
                                    error=self._safe_error(exc))
                finally:
                    self._queue.task_done()
        finally:
            if session is not None:
                await session.close()

    async def close(self, drain_s: float | None = None) -> None:
        """Stop: unsubscribe, cancel the venue timers, give the queued alerts up to
        `drain_s` (default `timeout_s`) to be delivered, then stop `run()`."""
        if self._closed:
            return
        self._closed = True
        for event_type, handler in self._handlers:
            self.bus.unsubscribe(event_type, handler)
        self._handlers = []
        for down in self._down.values():
            if down.handle is not None:
                down.handle.cancel()
        self._down.clear()
        task = self._run_task
        if task is not None and not task.done():  # join(): queued and in flight
            try:
                await asyncio.wait_for(self._queue.join(),
                                       self.config.timeout_s if drain_s is None else drain_s)
            except TimeoutError:
                pass
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if self._queue.qsize():
            self._log.warning("alert.undelivered", count=self._queue.qsize())

    # -- raising ----------------------------------------------------------------------

    def raise_alert(self, kind: str, message: str, *, severity: str = "error",
                    key: str | None = None, **context: Any) -> Alert | None:
        """Raise an alert: the `alert` log line and, with a webhook, a queued POST.

        `key` (default: the context's `venue`, else `strategy_id`, else "") scopes the
        rate limit. Returns the Alert, or None when it was rate-limited. Never raises.
        """
        try:
            return self._raise(kind, message, severity, key, context, limited=True)
        except Exception as exc:
            self._log.error("alert.raise_failed", kind=kind, error=repr(exc), exc_info=exc)
            return None

    def _raise(self, kind: str, message: str, severity: str, key: str | None,
               context: dict[str, Any], *, limited: bool) -> Alert | None:
        if severity not in SEVERITIES:
            severity = "error"
        if key is None:
            key = str(context.get("venue") or context.get("strategy_id") or "")
        context = {(f"ctx_{k}" if k in _RESERVED else k): v for k, v in context.items()}
        now = self._now_ns()
        suppressed = since = 0
        slot = self._slots.get((kind, key))
        if slot is None:
            self._slots[(kind, key)] = _Slot(now)
        elif limited and self._interval_ns and 0 <= now - slot.last_ns < self._interval_ns:
            slot.suppressed += 1
            self.dropped += 1
            self._log.debug("alert.suppressed", kind=kind, key=key, count=slot.suppressed)
            return None
        else:
            suppressed, since = slot.suppressed, slot.last_ns
            slot.last_ns, slot.suppressed = now, 0
        alert = Alert(kind=kind, key=key, severity=severity, message=message, ts_ns=now,
                      context=context, suppressed=suppressed, since_ns=since, host=self._host)
        self.raised += 1
        self.history.append(alert)
        extra: dict[str, Any] = {"suppressed": suppressed} if suppressed else {}
        getattr(self._log, severity)("alert", kind=kind, message=message, **context, **extra)
        if self._url is not None and not self._closed:
            self._enqueue(alert)
        return alert

    def _enqueue(self, alert: Alert) -> None:
        if self._queue.full():
            oldest = self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
            self.overflowed += 1
            self._log.warning("alert.queue_overflow", dropped_kind=oldest.kind)
        self._queue.put_nowait(alert)

    # -- bus handlers -----------------------------------------------------------------

    def _on_trading_state(self, event: TradingState) -> None:
        try:
            state, reason = event.state, event.reason
            if state in (REDUCING, HALTED) and reason.startswith("daily loss"):
                self.raise_alert("daily_loss", f"Trading {state.upper()}: {reason}",
                                 key=state, state=state, reason=reason)
            elif state == HALTED:
                self.raise_alert("trading_halted",
                                 f"Trading HALTED: {reason or 'no reason given'}",
                                 key=state, state=state, reason=reason)
        except Exception as exc:
            self._handler_failed(event, exc)

    def _on_strategy_status(self, event: StrategyStatus) -> None:
        try:
            if event.status == "failed":
                sid = event.strategy_id
                self.raise_alert("strategy_failed",
                                 f"Strategy {sid} failed: {event.reason or 'no reason given'}",
                                 strategy_id=sid, reason=event.reason)
        except Exception as exc:
            self._handler_failed(event, exc)

    def _on_venue_status(self, event: VenueStatus) -> None:
        try:
            self._venue_status(event.venue, event.status, event.reason)
        except Exception as exc:
            self._handler_failed(event, exc)

    def _venue_status(self, venue: str, status: str, reason: str) -> None:
        down = self._down.get(venue)
        if status == CONNECTED or (status == DISCONNECTED and reason in ORDERLY_STOP):
            if down is None:
                return
            del self._down[venue]
            if down.handle is not None:
                down.handle.cancel()
            if down.alerted and status == CONNECTED:
                secs = asyncio.get_running_loop().time() - down.since_loop
                self._raise("venue_up", f"Venue {venue} connected again after {secs:.1f}s",
                            "info", venue, {"venue": venue, "down_s": round(secs, 3),
                                            "reason": reason}, limited=False)
            return
        if down is not None:  # still down (or resyncing after being down)
            down.status, down.reason = status, reason
            return
        if status != DISCONNECTED:  # resyncing while connected: not an outage
            return
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        down = _Down(since_ns=self._now_ns(), since_loop=loop.time(), status=status,
                     reason=reason)
        down.handle = loop.call_later(self.config.venue_down_after_s, self._venue_timeout, venue)
        self._down[venue] = down

    def _venue_timeout(self, venue: str) -> None:
        try:
            down = self._down.get(venue)
            if down is None:
                return
            down.handle = None
            secs = asyncio.get_running_loop().time() - down.since_loop
            alert = self.raise_alert(
                "venue_down", f"Venue {venue} {down.status} for {secs:.1f}s: "
                f"{down.reason or 'no reason given'}", venue=venue, status=down.status,
                reason=down.reason, down_s=round(secs, 3), since=_iso(down.since_ns))
            down.alerted = alert is not None
        except Exception as exc:
            self._log.error("alert.timer_failed", venue=venue, error=repr(exc), exc_info=exc)

    def _handler_failed(self, event: Any, exc: BaseException) -> None:
        self._log.error("alert.handler_failed", event_type=type(event).__name__,
                        error=repr(exc), exc_info=exc)

    # -- delivery ---------------------------------------------------------------------

    def _new_session(self) -> aiohttp.ClientSession:
        if self._session_factory is not None:
            return self._session_factory()
        return aiohttp.ClientSession()

    async def _deliver(self, session: aiohttp.ClientSession, alert: Alert) -> bool:
        assert self._url is not None
        body = _encoder.encode(alert.payload())
        headers = {"Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        attempts = 1 + self.config.retries
        status: int | None = None
        error = response = ""
        for attempt in range(1, attempts + 1):
            status, error, response, retry_after = None, "", "", None
            try:
                async with session.post(self._url, data=body, headers=headers,
                                        timeout=timeout) as resp:
                    status = resp.status
                    if 200 <= status < 300:
                        self.sent += 1
                        self._log.debug("alert.sent", kind=alert.kind, attempts=attempt)
                        return True
                    response = await _read_text(resp)
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = self._safe_error(exc)
            retryable = status is None or status == 429 or status >= 500
            if not retryable or attempt == attempts:
                break
            if retry_after is not None:
                delay = retry_after
            else:
                base = min(MAX_BACKOFF_S, self._backoff_s * 2 ** (attempt - 1))
                delay = base * (0.5 + 0.5 * self._rng.random())
            self._log.warning("alert.webhook_retry", kind=alert.kind, attempt=attempt,
                              status=status, error=error, delay_s=round(delay, 3))
            await asyncio.sleep(delay)
        self.failed += 1
        self._log.error("alert.webhook_failed", kind=alert.kind, attempts=attempt,
                        status=status, error=error, response=self._scrub(response))
        return False

    def _scrub(self, text: str) -> str:
        if self._url:
            parts = urlsplit(self._url)
            for secret in (self._url, parts.path + (f"?{parts.query}" if parts.query else "")):
                if len(secret) >= 8:
                    text = text.replace(secret, "***")
        return text

    def _safe_error(self, exc: BaseException) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))


async def _read_text(resp: aiohttp.ClientResponse) -> str:
    try:
        return (await resp.text(errors="replace"))[:200]
    except Exception:
        return ""


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` (seconds or an HTTP date), capped."""
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
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
