"""A `kind = "sim"` venue as the kernel runs it (the `adapters.venue.Venue` port).

Its account is the node's `SimVenue` (daemon/node.py builds and subscribes it,
in its order-flow position), fed by the market data other venues publish. There
is no connection: nothing to run, wait for or drain; at a graceful stop the
node answers the simulated requests still waiting (`SimVenue.answer_pending`).
"""

from __future__ import annotations

import asyncio

from adapters.venue import SIMULATED, AlertHook, VenueState
from events.bus import Bus


class SimulatedVenue:
    """The `Venue` of a simulated account; see the module docstring."""

    critical = False
    ready = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.alert: AlertHook | None = None

    def subscribe(self, bus: Bus) -> None:
        """Nothing: the node's SimVenue is already subscribed."""

    async def run(self) -> None:
        # until cancelled: like every venue's, its task lives as long as the daemon
        await asyncio.get_running_loop().create_future()

    async def drain(self, timeout_s: float) -> None:
        """Nothing in flight of its own."""

    def status(self) -> VenueState:
        return VenueState(status=SIMULATED)

    def credentials_refused(self, error: BaseException) -> bool:
        return False
