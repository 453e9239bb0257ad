"""What a user sees of a running daemon (`tapeloop orders|positions --json`), and the same
state folded from its data directory, for the restart tests to compare."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

from daemon.recovery import read_journal
from daemon.trading.order_book import OrderBook
from events.instruments import Instrument
from tests.conftest import REPO, cli_env, tapeloop_cmd

# the instrument of configs/paper.toml
PAPER_BTC = Instrument(venue="binance", symbol="BTCUSDT", base="BTC", quote="USDT",
                       tick_size=Decimal("0.1"), step_size=Decimal("0.001"),
                       min_notional=Decimal(5))


def ask(config: Path, data: Path, *command: str) -> Any:
    """A control command's --json answer from the running daemon."""
    out = subprocess.run(tapeloop_cmd(*command, "--config", str(config), "--data", str(data),
                                      "--json"),
                         capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def orders_view(config: Path, data: Path) -> dict[str, tuple[str, Decimal]]:
    """Every order the daemon's OMS knows: client id -> (state, filled qty)."""
    return {o["client_order_id"]: (o["state"], Decimal(str(o["filled_qty"])))
            for o in ask(config, data, "orders", "--all")["orders"]}


def positions_view(config: Path, data: Path) -> dict[tuple[str, str, str], Decimal]:
    return {(p["strategy_id"], p["venue"], p["symbol"]): Decimal(str(p["qty"]))
            for p in ask(config, data, "positions")["positions"] if Decimal(str(p["qty"]))}


def fold(data: Path, instruments: list[Instrument] = [PAPER_BTC]  # noqa: B006
         ) -> tuple[OrderBook, dict[tuple[str, str, str], Decimal]]:
    """The order book and positions folded from scratch from everything journaled:
    positions as the sum of the fills the order book applied (less base-asset fees)."""
    book = OrderBook()
    positions: dict[tuple[str, str, str], Decimal] = {}
    bases = {(i.venue, i.symbol): i.base for i in instruments}
    for event in read_journal(data):
        book.apply(event)
        if type(event).__name__ == "Fill" and book.fill_applied(event):  # type: ignore[arg-type]
            f: Any = event
            delta = f.qty if f.side == "BUY" else -f.qty
            if f.fee_currency == bases.get((f.venue, f.symbol)):
                delta -= f.fee
            key = (f.strategy_id, f.venue, f.symbol)
            positions[key] = positions.get(key, Decimal(0)) + delta
    return book, {k: v for k, v in positions.items() if v}


def agreed_views(config: Path, data: Path, instruments: list[Instrument] = [PAPER_BTC]  # noqa: B006
                 ) -> tuple[dict[str, tuple[str, Decimal]], dict[tuple[str, str, str], Decimal],
                            OrderBook, dict[tuple[str, str, str], Decimal]]:
    """The daemon's views and the fold of its journal taken between two equal views (so
    nothing happened in between): (orders, positions, folded book, folded positions).
    Stop the strategies first: a strategy that trades on keeps the views moving."""
    for _ in range(50):
        orders, positions = orders_view(config, data), positions_view(config, data)
        book, folded = fold(data, instruments)
        if (orders, positions) == (orders_view(config, data), positions_view(config, data)):
            return orders, positions, book, folded
    raise AssertionError("the daemon's orders never held still long enough to compare")
