"""The `Venue` port: what the daemon's kernel needs from every venue it runs.

A venue is one configured `[[venues]]` entry at run time: a live exchange
adapter (Binance, CCXT), a recording played as a live feed (sample) or a
simulated account (sim). The kernel builds one per entry (`daemon.venues.
make_venue`), subscribes it, runs it in the root task group, waits until it is
`ready` before strategies start, renders its `status()` in the control API and
drains it at a stop; it knows nothing else about it.

The port lives in `adapters` rather than `daemon` because the adapters implement
it and return its `VenueState`: adapters never import the daemon (the daemon
imports adapters), and that direction stays. `tests/venues/contract.py` is the
one contract suite every implementation passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import msgspec

from events.bus import Bus

# alert(kind, message, **context): daemon.alerts.Alerts.raise_alert, set by the kernel
AlertHook = Callable[..., Any]

SIMULATED = "simulated"  # VenueState.status of a venue with no connection of its own


class VenueState(msgspec.Struct, frozen=True, kw_only=True):
    """What the control API shows of a venue (`/status`, `/metrics`).

    `status`: the last `VenueStatus.status` it published (connected, resyncing,
    disconnected...), "connecting" before the first, "simulated" for a simulated
    account; `reconnects`: every reconnection of its connections; `reconciled`:
    successful reconciliation passes of a venue that reconciles, else None."""

    status: str
    reconnects: int = 0
    reconciled: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "reconnects": self.reconnects}
        if self.reconciled is not None:
            out["reconciled"] = self.reconciled
        return out


@runtime_checkable
class Venue(Protocol):
    """One venue as the kernel runs it.

    - `name`: the configured name; every event it publishes carries it as `venue`.
    - `critical`: a trading venue: if `run()` fails the daemon stops (exit 70) so
      the supervisor restarts it and reconciliation runs again; a feed or a
      simulated venue that fails is logged and the daemon goes on without it.
    - `alert`: the kernel sets it to the daemon's alert hook before `run()`.
    - `ready`: strategies may start as far as this venue goes: a trading venue
      once it has reconciled with its exchange, a feed or a simulated venue at once.
    """

    name: str
    critical: bool
    alert: AlertHook | None

    @property
    def ready(self) -> bool: ...

    def subscribe(self, bus: Bus) -> None:
        """Subscribe what it handles (order requests for its name) to `bus`;
        called once, before `run()` and before the journal is folded."""

    async def run(self) -> None:
        """Run until cancelled; leaves no task behind when it returns or raises."""

    async def drain(self, timeout_s: float) -> None:
        """At a graceful stop: let requests already started reach the exchange,
        for at most `timeout_s`."""

    def status(self) -> VenueState:
        """Its state now, for the control API."""

    def credentials_refused(self, error: BaseException) -> bool:
        """Whether `error`, raised by `run()`, means the exchange refused our
        credentials: restarting will not help, the daemon exits 5."""

