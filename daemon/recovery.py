"""Recovery at start: the trading state is a fold of the journal.

Runs after the store is opened (torn tail truncated, earlier segments rolled)
and before any venue connects or strategy starts:

1. The OMS folds every recorded order event, so client order ids continue
   where the last run stopped (never reused) and open orders are known.
2. The portfolio restores its last `Snapshot` and folds the fills and balance
   changes recorded after it: positions, cash, realized PnL and fees are what
   the journal says (equal to a fold of every fill ever recorded).
3. A simulated (paper) venue's account is put back as the portfolio holds it:
   each currency's total and each symbol's net position. Orders the last run
   left resting there are closed with the reason "paper venue restarted" (the
   simulated book did not survive the process). A live venue keeps its orders:
   its adapter reconciles them with the exchange.
4. The risk engine folds the recorded `TradingState`s: a halt survives a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from events.base import Event
from events.bus import Bus
from events.orders import OrderCanceled
from events.registry import ORDER_TYPES
from events.state import PositionChanged, Snapshot
from events.system import TradingState

log = structlog.get_logger("tapeloop.recovery")

PORTFOLIO = "portfolio"


@dataclass
class Recovered:
    orders: int = 0
    open_orders: int = 0
    snapshot_seq: int = 0  # 0: no snapshot, folded from the start
    folded: int = 0  # portfolio events folded after the snapshot
    restored_venues: list[str] = field(default_factory=list)
    ms: float = 0.0


_NEEDED = [*(t.__name__ for t in ORDER_TYPES), "Snapshot", "Fill", "BalanceChanged",
           "PositionChanged", "TradingState"]


def _read(data_dir: Path) -> dict[str, list[Event]]:
    """Every event recovery needs, by type name, in seq order: the Parquet store
    and the journal segments not rolled yet (a crash leaves them for the
    background roller, so they are read here rather than rolled first)."""
    from replay.reader import journal_tail_runs, read_events

    tail = journal_tail_runs(data_dir, types=_NEEDED)
    events = [e for batch in read_events(data_dir, types=_NEEDED, extra_runs=tail)
              for e in batch]
    events.sort(key=lambda e: e.seq)
    out: dict[str, list[Event]] = {name: [] for name in _NEEDED}
    for event in events:
        out[type(event).__name__].append(event)
    return out


def recover(node: Any, bus: Bus, data_dir: Path, live_venues: set[str]) -> Recovered:
    """Fold the journal into `node` (see the module docstring)."""
    t0 = time.perf_counter()
    out = Recovered()
    oms = node.oms
    recorded = _read(data_dir)
    for event in sorted((e for t in ORDER_TYPES for e in recorded[t.__name__]),
                        key=lambda e: e.seq):
        oms.apply(event)
    out.orders = len(oms.orders)
    out.open_orders = len(oms.open_orders())

    snapshot: Snapshot | None = None
    for event in recorded["Snapshot"]:
        if isinstance(event, Snapshot) and event.component == PORTFOLIO:
            snapshot = event
    after = snapshot.upto_seq if snapshot is not None else 0
    folded = sorted((e for name in ("Fill", "BalanceChanged") for e in recorded[name]
                     if e.seq > after), key=lambda e: e.seq)
    node.portfolio.recover(folded, snapshot)
    out.snapshot_seq, out.folded = after, len(folded)

    _catch_up_positions(node.portfolio, bus, recorded["PositionChanged"])

    for event in recorded["TradingState"]:
        if isinstance(event, TradingState):
            node.risk.apply(event)

    now = time.time_ns()
    for order in oms.open_orders():
        if order.venue in live_venues:
            continue
        bus.publish(OrderCanceled(
            ts_event=now, ts_recv=now, venue=order.venue, symbol=order.symbol,
            strategy_id=order.strategy_id, client_order_id=order.client_order_id,
            reason="paper venue restarted"))
    for venue in node.venues:
        if _restore_account(node.portfolio, venue):
            out.restored_venues.append(venue.name)
    out.ms = round((time.perf_counter() - t0) * 1000, 1)
    if out.orders or snapshot is not None or folded:
        log.info("state.recovered", orders=out.orders, open_orders=out.open_orders,
                 snapshot_seq=out.snapshot_seq, folded=out.folded,
                 restored_venues=out.restored_venues, ms=out.ms)
    return out


def _catch_up_positions(portfolio: Any, bus: Bus, recorded: list[Event]) -> None:
    """A kill between a Fill and the PositionChanged it causes leaves the
    journal's last word on that position behind its fills: say it again."""
    last = {(e.venue, e.symbol, e.strategy_id): e for e in recorded
            if isinstance(e, PositionChanged)}
    now = time.time_ns()
    for p in portfolio.positions(include_flat=True):
        said = last.get((p.venue, p.symbol, p.strategy_id))
        if said is None and not p.qty:
            continue
        if said is None or (said.qty, said.realized_pnl, said.fees) != \
                (p.qty, p.realized_pnl, p.fees):
            bus.publish(PositionChanged(
                ts_event=now, ts_recv=now, venue=p.venue, symbol=p.symbol,
                strategy_id=p.strategy_id, qty=p.qty, avg_price=p.avg_price,
                realized_pnl=p.realized_pnl, fees=p.fees))


def _restore_account(portfolio: Any, venue: Any) -> bool:
    """Put a simulated venue's account back as the portfolio recorded it; False
    when nothing was recorded for it (a first start: the config's balances)."""
    balances = {c: total for (v, c), (total, _, _) in portfolio._balances.items()
                if v == venue.name}
    if not balances:
        return False
    positions: dict[str, Decimal] = {}
    for p in portfolio.positions(venue=venue.name):
        positions[p.symbol] = positions.get(p.symbol, Decimal(0)) + p.qty
    venue.restore_account(balances, positions)
    return True
