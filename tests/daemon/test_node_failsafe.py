"""The node's fail-safe core (issue 9, item 11 and the quarantine): a failure inside the
OMS, risk, the portfolio or a simulated venue, or an event the order table cannot place,
halts trading with a reason; a strategy's failure stays isolated."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from daemon.config import load_config
from daemon.node import TradingNode
from events.bus import Bus
from events.market import Quote, Trade
from events.orders import Fill
from events.system import HALTED, TradingState
from replay.clock import ReplayClock
from tests.daemon.test_config import VALID

T0 = 1_700_000_000_000_000_000


def node(tmp_path: Path) -> tuple[TradingNode, list]:
    path = tmp_path / "node.toml"
    path.write_text(VALID)
    config = load_config(path, data_dir=tmp_path / "data")
    events: list = []
    errors: list = []
    bus = Bus(on_error=lambda e, h, exc: errors.append(exc))
    bus.subscribe_all(events.append)
    n = TradingNode(config, bus, ReplayClock(T0), replay=True)
    n.start()
    bus.publish(Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol="BTCUSDT", price=100.0,
                      size=1.0))
    return n, events


def halts(events: list) -> list[TradingState]:
    return [e for e in events if isinstance(e, TradingState) and e.state == HALTED]


def test_a_core_handler_that_raises_halts_trading(tmp_path: Path) -> None:
    """A handler of the core raising was only logged and trading went on, on state the
    components no longer agreed on."""
    n, events = node(tmp_path)
    # a broken adapter's quote: the portfolio (and venue) cannot compare None prices
    n.bus.publish(Quote(ts_event=T0 + 1, ts_recv=T0 + 1, venue="sim", symbol="BTCUSDT",
                        bid=None, ask=101.0, bid_size=1.0, ask_size=1.0))  # type: ignore[arg-type]
    assert n.risk.state == HALTED
    (halt,) = halts(events)
    assert "failed on Quote" in halt.reason and "TypeError" in halt.reason


def test_an_event_the_order_table_cannot_place_halts_trading(tmp_path: Path) -> None:
    n, events = node(tmp_path)
    n.bus.publish(Fill(ts_event=T0 + 1, ts_recv=T0 + 1, venue="sim", symbol="BTCUSDT",
                       strategy_id="sma", client_order_id="sma-77", trade_id="x",
                       side="BUY", qty=Decimal(1), price=Decimal(100), fee=Decimal(0),
                       fee_currency="USDT", liquidity="TAKER"))
    assert n.risk.state == HALTED
    (halt,) = halts(events)
    assert "quarantined Fill" in halt.reason and "sma-77" in halt.reason
    assert n.portfolio.position("sim", "BTCUSDT").qty == 0  # the portfolio applied none
