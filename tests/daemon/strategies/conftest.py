"""A small replay world for strategy tests: bus, replay clock, fake core, runtime."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from daemon.strategies.runtime import StrategyRuntime
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.system import StrategyStatus
from replay.clock import ReplayClock
from tests.daemon.strategies.fakes import FakeGateway, FakePortfolio, instrument


class World:
    """Wired in the kernel's order: the fakes subscribe before the runtime."""

    def __init__(self, instruments: Iterable[Instrument] = (), **gateway_kw: object) -> None:
        self.bus = Bus()
        self.clock = ReplayClock()
        self.events: list[Event] = []
        self.bus.subscribe_all(self.events.append)
        self.gateway = FakeGateway(self.bus, self.clock, **gateway_kw)  # type: ignore[arg-type]
        self.portfolio = FakePortfolio(self.bus)
        insts = list(instruments) or [instrument("BTCUSDT"), instrument("ETHUSDT")]
        self.runtime = StrategyRuntime(self.bus, self.clock, self.gateway, self.portfolio, insts,
                                       seed_positions=self.seed)
        self.seeded: list[str] = []

    def seed(self, config: object) -> None:
        self.seeded.append(config.id)  # type: ignore[attr-defined]

    def feed(self, events: Iterable[Event]) -> None:
        """The replay contract: fire due timers, set the clock, dispatch."""
        for event in events:
            self.clock.advance_to(event.ts_event)
            self.bus.publish(event)

    def statuses(self, strategy_id: str | None = None) -> list[tuple[str, str]]:
        return [(e.strategy_id, e.status) for e in self.events
                if isinstance(e, StrategyStatus) and strategy_id in (None, e.strategy_id)]


@pytest.fixture
def world() -> World:
    return World()
