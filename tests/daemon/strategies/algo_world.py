"""A trading node (real OMS, risk, portfolio, simulated venue) that can be killed and
rebuilt from its journal mid-run, for the execution algorithms' restart tests."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from daemon.config import Config, load_config
from daemon.node import TradingNode
from daemon.recovery import fold_journal, resume_policies
from events.base import Event
from events.bus import Bus
from events.market import Trade
from events.orders import Fill, OrderSubmitted
from replay.clock import ReplayClock
from tests.daemon.test_config import VALID

S = 10**9
T0 = 1_700_000_000 * S


def algo_config(tmp_path: Path, sid: str, cls: str, params: str,
                extra: str = "") -> Config:
    """VALID's venue and instrument, with one strategy `sid` of class `cls`."""
    head = VALID.split("[[strategies]]")[0]
    text = (f"{head}[[strategies]]\nid = \"{sid}\"\nclass = \"{cls}\"\nvenue = \"sim\"\n"
            f"symbols = [\"BTCUSDT\"]\nparams = {params}\n{extra}")
    path = tmp_path / f"{sid}.toml"
    path.write_text(text)
    return load_config(path, data_dir=tmp_path / "data")


class Daemon:
    """Boots a node over the journal so far (as `tapeloop run` recovers), feeds it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.journal: list[Event] = []
        self.node: TradingNode | None = None
        self.clock = ReplayClock(T0)
        self.boots = 0

    def boot(self, at_ns: int) -> TradingNode:
        # a kill: nothing of the old node (its bus, clock, timers) survives but the journal
        self.clock = ReplayClock(at_ns)
        bus = Bus(next_seq=len(self.journal) + 1, journal=self.journal.append)
        node = TradingNode(self.config, bus, self.clock, replay=False)
        resume_policies(node, fold_journal(node, self.journal))
        node.start()
        self.node = node
        self.boots += 1
        return node

    def feed(self, events: Iterable[Event]) -> None:
        assert self.node is not None
        for event in events:
            self.clock.advance_to(event.ts_event)
            self.node.bus.publish(event)

    def children(self, sid: str) -> list[OrderSubmitted]:
        return [e for e in self.journal if type(e) is OrderSubmitted and e.strategy_id == sid]

    def filled(self, sid: str) -> Decimal:
        return sum((e.qty for e in self.journal if type(e) is Fill and e.strategy_id == sid),
                   Decimal(0))


def trades(start: int, stop: int, every: int, price: float = 100.0) -> list[Trade]:
    return [Trade(ts_event=t, ts_recv=t, venue="sim", symbol="BTCUSDT", price=price, size=1.0)
            for t in range(start, stop, every)]
