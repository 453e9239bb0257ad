"""Alert rules: which bus events become alerts, the rate limit, and the `alert` log line.

Every alert is one `error` (or `info`, for a resolution) structlog line with the
stable event name `alert` and the fields `kind`, `message` and its context; the
`Alert` is then handed to `deliver` (daemon.alerts.service: one queue per channel).

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
and summarised in the next one raised: "(+3 more since <ts>)". Handlers never block
or raise.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from daemon.config import AlertsConfig
from daemon.logging import get_logger
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

__all__ = ["Alert", "AlertRules", "iso"]

SEVERITIES = ("info", "warning", "error", "critical")
ORDERLY_STOP = ("stopped", "cancelled")  # a venue's own shutdown, not an outage
HISTORY_SIZE = 100
_RESERVED = frozenset({"event", "level", "ts", "logger", "exc_info", "kind", "message",
                       "severity", "suppressed"})


def iso(ns: int) -> str:
    """`ns` since the epoch as `2024-05-01T12:00:00.000Z`."""
    dt = datetime.fromtimestamp(ns / 1e9, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert that was raised (logged, and queued for each delivery channel)."""

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
            text += f" (+{self.suppressed} more since {iso(self.since_ns)})"
        return text

    def payload(self) -> dict[str, Any]:
        """The structured form: Slack's `text`, and every field under `tapeloop`."""
        return {"text": self.text, "tapeloop": {
            **self.context, "kind": self.kind, "severity": self.severity,
            "message": self.message, "ts": iso(self.ts_ns), "ts_ns": self.ts_ns,
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


class AlertRules:
    """Raises alerts from bus events (and `raise_alert` calls), rate-limited, and hands
    each one raised to `deliver`. Counters: `raised`, `dropped` (rate-limited);
    `history` holds the last alerts raised."""

    def __init__(self, config: AlertsConfig, bus: Bus, now_ns: Callable[[], int],
                 deliver: Callable[[Alert], None], *,
                 history_size: int = HISTORY_SIZE) -> None:
        self.config = config
        self.bus = bus
        self._now_ns = now_ns
        self._deliver = deliver
        self._interval_ns = int(config.min_interval_s * 1e9)
        self._host = socket.gethostname()
        self._log = get_logger("tapeloop.alerts")
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._down: dict[str, _Down] = {}
        self._handlers: list[tuple[type, Callable[[Any], None]]] = []
        self._closed = False
        self.history: deque[Alert] = deque(maxlen=history_size)
        self.raised = self.dropped = 0

    def venues_down(self) -> dict[str, str]:
        """Venues currently not connected -> their last status and reason."""
        return {v: f"{d.status}: {d.reason}" for v, d in self._down.items()}

    def subscribe(self) -> bool:
        """Install the bus handlers; False when they already were."""
        if self._handlers:
            return False
        self._handlers = [(TradingState, self._on_trading_state),
                          (VenueStatus, self._on_venue_status),
                          (StrategyStatus, self._on_strategy_status)]
        for event_type, handler in self._handlers:
            self.bus.subscribe(event_type, handler)
        return True

    def close(self) -> None:
        """Unsubscribe and cancel the venue timers; later alerts are logged only."""
        self._closed = True
        for event_type, handler in self._handlers:
            self.bus.unsubscribe(event_type, handler)
        self._handlers = []
        for down in self._down.values():
            if down.handle is not None:
                down.handle.cancel()
        self._down.clear()

    # -- raising ----------------------------------------------------------------------

    def raise_alert(self, kind: str, message: str, *, severity: str = "error",
                    key: str | None = None, **context: Any) -> Alert | None:
        """Raise an alert: the `alert` log line and, unless closed, its delivery.

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
        if not self._closed:
            self._deliver(alert)
        return alert

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
                reason=down.reason, down_s=round(secs, 3), since=iso(down.since_ns))
            down.alerted = alert is not None
        except Exception as exc:
            self._log.error("alert.timer_failed", venue=venue, error=repr(exc), exc_info=exc)

    def _handler_failed(self, event: Any, exc: BaseException) -> None:
        self._log.error("alert.handler_failed", event_type=type(event).__name__,
                        error=repr(exc), exc_info=exc)
