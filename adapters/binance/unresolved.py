"""The pace of asking Binance about an order it has not answered for, and when to
tell someone.

An order whose placement outcome is unknown (timeout, dropped connection, 5xx)
is never resent: it is looked up by client order id until Binance says what
became of it, and the account stays REDUCING meanwhile. A cancel whose answer
was lost is sent again the same way (cancels by client id are idempotent).
Binance can stay unreachable for minutes, so:

- attempts back off: `first_s`, doubling, capped at `max_s` (1 s to 30 s by
  default), so a long outage costs a few requests a minute, not one a second;
- once an order has been unresolved for `alert_after_s` (the venue's
  `unresolved_alert_after_s`, 30 s by default) an alert is due, then again
  every `alert_every_s` while it stays unresolved. Alerts are decided at an
  attempt, so one comes at the first attempt past the threshold.

`Retry` holds one order's attempts; time is whatever monotonic clock the
caller passes (the venue uses the event loop's), so tests choose their pace.
`LookupAlerts` is what an order path (Binance's, and the ccxt one) says when a
look-up fails: one log line per attempt and the alert when due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog


@dataclass(frozen=True)
class RetryPolicy:
    """How fast to retry and when to alert; see the module docstring."""

    first_s: float = 1.0
    max_s: float = 30.0
    alert_after_s: float = 30.0
    alert_every_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.max_s:
            raise ValueError(f"retry delays must satisfy 0 < first_s <= max_s, got "
                             f"{self.first_s} and {self.max_s}")
        if self.alert_after_s < 0 or self.alert_every_s <= 0:
            raise ValueError("alert_after_s must be >= 0 and alert_every_s > 0")


class Retry:
    """One order's attempts since `started` (a monotonic time in seconds)."""

    __slots__ = ("alerts", "attempts", "last_alert", "policy", "started", "_delay")

    def __init__(self, policy: RetryPolicy, started: float) -> None:
        self.policy = policy
        self.started = started
        self.attempts = 0  # failed attempts so far
        self.alerts = 0
        self.last_alert: float | None = None
        self._delay = policy.first_s

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; each call doubles the next one,
        up to `max_s`."""
        delay = self._delay
        self._delay = min(delay * 2, self.policy.max_s)
        return delay

    @property
    def upcoming(self) -> float:
        """The delay the next `next_delay()` call will give."""
        return self._delay

    def elapsed(self, now: float) -> float:
        return now - self.started

    def failed(self, now: float) -> bool:
        """Count a failed attempt at `now`; True when an alert is due (then it is
        counted as raised)."""
        self.attempts += 1
        p = self.policy
        if self.elapsed(now) < p.alert_after_s:
            return False
        if self.last_alert is not None and now - self.last_alert < p.alert_every_s:
            return False
        self.last_alert = now
        self.alerts += 1
        return True


class LookupAlerts:
    """The log line of a failed look-up and the `order_unresolved` alert, for an order
    path with `name`, `alert` (the kernel's, or None) and `log_prefix` ("binance",
    "ccxt": the log event names are `<prefix>.order_lookup_failed`, `<prefix>.alert`)."""

    name: str
    alert: Callable[..., object] | None
    log_prefix = "venue"

    def _lookup_failed(self, retry: Retry, e: Any, error: str, now: float) -> None:
        """One log line per failed look-up (so at the backoff's pace), and the
        alert when it is due."""
        log = structlog.get_logger(f"tapeloop.{self.log_prefix}")
        cid = e.client_order_id
        alert_due = retry.failed(now)
        unresolved_s = retry.elapsed(now)
        log.warning(f"{self.log_prefix}.order_lookup_failed", venue=self.name,
                    client_order_id=cid, attempt=retry.attempts,
                    unresolved_s=round(unresolved_s, 3), retry_s=retry.upcoming, error=error)
        if alert_due:
            self._alert(
                "order_unresolved",
                f"order {cid} ({e.symbol}) on {self.name}: outcome unknown for "
                f"{unresolved_s:.0f} s; trading held REDUCING; still looking it up "
                f"(never resent): {error}",
                key=f"{self.name}:{cid}", venue=self.name, client_order_id=cid,
                symbol=e.symbol, unresolved_s=round(unresolved_s, 1), attempts=retry.attempts)

    def _alert(self, kind: str, message: str, **context: Any) -> None:
        if self.alert is not None:
            self.alert(kind, message, **context)
        else:  # no kernel (a test, a tool): the log line is the alert
            structlog.get_logger(f"tapeloop.{self.log_prefix}").error(
                f"{self.log_prefix}.alert", alert_kind=kind, message=message, **context)
