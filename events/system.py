"""System events: venue connectivity, trading state, strategy status, timers."""

from __future__ import annotations

from events.base import Event

CONNECTED = "connected"
DISCONNECTED = "disconnected"
RESYNCING = "resyncing"

ACTIVE = "active"
REDUCING = "reducing"
HALTED = "halted"


class VenueStatus(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    venue: str
    status: str  # connected | disconnected | resyncing
    reason: str = ""


class TradingState(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    state: str  # active | reducing | halted
    reason: str = ""


class StrategyStatus(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    strategy_id: str
    status: str  # starting | running | stopped | failed
    reason: str = ""


class Timer(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """A timer that fired; `ts_event` is its deadline (in the run's clock)."""

    name: str
    owner: str = ""
