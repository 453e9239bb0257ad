"""The trading node across a restart: what the journal holds is folded back, never
applied a second time."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from daemon.config import load_config
from daemon.node import TradingNode
from daemon.recovery import fold_journal, resume_policies
from events.base import Event
from events.bus import Bus
from events.market import Trade
from replay.clock import ReplayClock
from tests.daemon.test_config import VALID

T0 = 1_700_000_000_000_000_000


def test_initial_positions_are_seeded_once_not_at_every_restart(tmp_path: Path) -> None:
    """The runtime seeded a strategy's initial_positions at every start: after a
    restart the position (and the paper venue's base behind it) doubled."""
    (tmp_path / "positions.csv").write_text(
        "Symbol,Exchange,Quantity,AvgEntryPrice,Currency\nBTCUSDT,sim,0.5,100,USDT\n")
    path = tmp_path / "seeded.toml"
    path.write_text(VALID.replace('params = { fast = 10, slow = 30, qty = 0.01 }',
                                  'params = { fast = 10, slow = 30, qty = 0.01 }\n'
                                  'initial_positions = "positions.csv"'))
    config = load_config(path, data_dir=tmp_path / "data")
    journal: list[Event] = []

    def boot() -> TradingNode:
        bus = Bus(next_seq=len(journal) + 1, journal=journal.append)
        node = TradingNode(config, bus, ReplayClock(T0), replay=False)
        recovered = fold_journal(node, journal)
        resume_policies(node, recovered)
        node.start()
        bus.publish(Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="BTCUSDT", price=100.0,
                          size=1.0))
        return node

    first = boot()
    assert first.portfolio.position("sim", "BTCUSDT", "sma").qty == Decimal("0.5")
    for _ in range(2):  # restarts
        node = boot()
        assert node.portfolio.position("sim", "BTCUSDT", "sma").qty == Decimal("0.5")
        assert node.venues[0].balance("BTC")[0] == Decimal("0.5")
