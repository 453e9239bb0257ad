"""Wiring: the parts one daemon run connects to its bus, built in their order.

The control API first (so /health answers "starting" while the state is
recovered), then the trading node (daemon/node.py), the alerts, and one
`adapters.venue.Venue` per configured venue (daemon/venues.py), each subscribed
and given the alert hook before the journal is folded into them. `venue_states`
is the control API's view of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from adapters.venue import Venue
from daemon.alerts import Alerts
from daemon.config import Config
from daemon.control import ControlServer, KernelView
from daemon.errors import EXIT_CONFIG, UserError
from daemon.venues import make_venue
from events.bus import Bus
from events.instruments import Instrument

if TYPE_CHECKING:
    from daemon.node import TradingNode

log = structlog.get_logger("tapeloop.kernel")

# What a configured venue shows before it is built (the state is being recovered).
STARTING: dict[str, Any] = {"status": "starting", "reconnects": 0}


async def open_control(kernel: KernelView, config: Config, token: str | None
                       ) -> ControlServer:
    """The control API, listening (no token: ValueError)."""
    control = ControlServer(kernel, config.daemon.control_address, token or "")
    await control.start()  # it logs control.listening (and the dashboard's URL) itself
    return control


def build_node(config: Config, bus: Bus, id_prefix: str,
               venue_instruments: dict[tuple[str, str], Instrument] | None = None
               ) -> TradingNode:
    """The trading node on `bus`, on the live clock of the running loop, with the
    instruments venues stated (`daemon.venue_instruments`)."""
    # imported here: the node pulls in the strategies and the simulator
    from daemon.node import TradingNode
    from replay.clock import LiveClock

    return TradingNode(config, bus, LiveClock(asyncio.get_running_loop()), replay=False,
                       id_prefix=id_prefix, venue_instruments=venue_instruments)


def build_alerts(config: Config, bus: Bus) -> Alerts:
    """The alerts, subscribed; a bad `[alerts]` section is one line, exit 3."""
    try:
        alerts = Alerts(config.alerts, bus, time.time_ns)
    except ValueError as exc:
        raise UserError(f"[alerts]: {exc}", code=EXIT_CONFIG) from None
    alerts.subscribe()
    return alerts


def build_venues(config: Config, bus: Bus, node: TradingNode, alerts: Alerts
                 ) -> dict[str, Venue]:
    """One venue per configured entry, in config order, subscribed and alerting."""
    venues: dict[str, Venue] = {}
    for vcfg in config.venues:
        venue = make_venue(vcfg, config, bus, node)
        venue.subscribe(bus)
        venue.alert = alerts.raise_alert
        venues[vcfg.name] = venue
    return venues


def venue_states(config: Config, venues: Mapping[str, Venue]) -> dict[str, dict[str, Any]]:
    """{name: {"status", "reconnects"[, "reconciled"]}} for every configured venue;
    "starting" for one not built yet."""
    return {v.name: venues[v.name].status().as_dict() if v.name in venues else dict(STARTING)
            for v in config.venues}
