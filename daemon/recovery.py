"""Recovery at start: the trading state is a fold of the journal, then the policies resume.

Runs after the store is opened (torn tail truncated) and before any venue connects or
strategy starts. Two steps, kept apart on purpose:

1. `fold_journal` — a pure fold: it rebuilds state and publishes and sends nothing.
   - The OMS folds every recorded order event: every order with its state, fills and
     contingent links; client order ids continue where the last run stopped.
   - The portfolio restores its last `Snapshot` and folds the fills, balance
     changes, funding, liquidations and margin settings after it (applying
     exactly the fills the OMS applied).
   - The risk engine folds the recorded `TradingState`s: a halt survives a restart.
   - Every simulated venue (paper) rebuilds its book and account from its own events:
     resting orders survive the restart, as on a real exchange, and its trade ids go
     on from the highest one used.
2. Live again, what the folded state still demands is done, as if the daemon had never
   stopped: a `PositionChanged` a kill cut off is said again (`recover`); once the live
   venues have reconciled, `resume_policies` runs the OMS's policies over every order
   (an OCO sibling a crash left uncanceled is canceled, a bracket whose entry filled
   gets its protection), and an event quarantined after the last trading-state change
   halts trading. Because policies are functions of state, a command already journaled
   is never repeated.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from events.base import Event
from events.bus import Bus
from events.registry import ORDER_TYPES
from events.state import BalanceChanged, PositionChanged, Snapshot
from events.system import TradingState

log = structlog.get_logger("tapeloop.recovery")

PORTFOLIO = "portfolio"


@dataclass
class Recovered:
    orders: int = 0
    open_orders: int = 0
    snapshot_seq: int = 0  # 0: no snapshot, folded from the start
    folded: int = 0  # events folded
    restored_venues: list[str] = field(default_factory=list)
    quarantined: int = 0
    ms: float = 0.0
    last_state_seq: int = 0  # seq of the last TradingState folded


PERP_STATE = ("FundingPayment", "Liquidation", "LeverageChanged", "MarginModeChanged")
NEEDED = [*(t.__name__ for t in ORDER_TYPES), "Snapshot", "BalanceChanged",
          "PositionChanged", "TradingState", *PERP_STATE]
_ORDER_TYPES = frozenset(ORDER_TYPES)


def read_journal(data_dir: Path) -> list[Event]:
    """Every event recovery needs, in seq order: the Parquet store and the journal
    segments not rolled yet (a crash leaves them for the background roller, so they
    are read here rather than rolled first). A damaged part of these types raises
    StoreError naming it (the kernel stops the start with it: exit 6); market data
    is not read at all."""
    from replay.reader import read_events

    events = [e for batch in read_events(data_dir, types=NEEDED, journal=True) for e in batch]
    events.sort(key=lambda e: e.seq)
    return events


def recover(node: Any, bus: Bus, data_dir: Path) -> Recovered:
    """Fold the journal into `node` and restate what a kill cut off (the module doc);
    `resume_policies` follows once the live venues have reconciled."""
    t0 = time.perf_counter()
    events = read_journal(data_dir)
    out = fold_journal(node, events)
    catch_up_positions(node.portfolio, bus, [e for e in events if type(e) is PositionChanged])
    out.ms = round((time.perf_counter() - t0) * 1000, 1)
    if events:
        log.info("state.recovered", orders=out.orders, open_orders=out.open_orders,
                 snapshot_seq=out.snapshot_seq, folded=out.folded,
                 restored_venues=out.restored_venues, quarantined=out.quarantined, ms=out.ms)
    return out


def fold_journal(node: Any, events: Iterable[Event]) -> Recovered:
    """The pure fold: `events` (seq order) into the node's OMS, portfolio, risk
    engine and simulated venues. Publishes nothing."""
    out = Recovered()
    events = list(events)
    oms = node.oms
    snapshot: Snapshot | None = None
    money: list[Event] = []
    for event in events:
        cls = type(event)
        if cls in _ORDER_TYPES:
            oms.apply(event)
            if cls.__name__ == "Fill":
                money.append(event)
        elif cls is BalanceChanged or cls.__name__ in PERP_STATE:
            money.append(event)
        elif cls is Snapshot:
            if event.component == PORTFOLIO:  # type: ignore[attr-defined]
                snapshot = event  # type: ignore[assignment]
        elif cls is TradingState:
            node.risk.apply(event)
            out.last_state_seq = event.seq
    node.portfolio.recover(money, snapshot)
    out.orders = len(oms.orders)
    out.open_orders = len(oms.open_orders())
    out.snapshot_seq = snapshot.upto_seq if snapshot is not None else 0
    out.folded = len(events)
    out.quarantined = len(oms.book.quarantine)
    for venue in node.venues:
        if _restore_venue(node.portfolio, venue, events):
            out.restored_venues.append(venue.name)
    return out


def resume_policies(node: Any, recovered: Recovered) -> None:
    """Live again, once every live venue has reconciled (so what the policies submit
    can pass the venue gate, and reconciliation's news is in the state): the OMS's
    policies run over every order, and a quarantine the last run did not answer halts
    trading. Before them, a REDUCING that only the last run's holds caused lifts if
    no venue holds anything again (`RiskEngine.after_recovery`)."""
    node.risk.after_recovery()
    node.oms.resume(quarantined_after=recovered.last_state_seq)


def catch_up_positions(portfolio: Any, bus: Bus, recorded: list[Event]) -> None:
    """A kill between a Fill and the PositionChanged it causes leaves the
    journal's last word on that position behind its fills: say it again."""
    last = {(e.venue, e.symbol, e.strategy_id): e for e in recorded  # type: ignore[attr-defined]
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


def _restore_venue(portfolio: Any, venue: Any, events: list[Event]) -> bool:
    """Rebuild a simulated venue from its own journaled events; False when it has
    none (a first start: the config's balances)."""
    if not any(getattr(e, "venue", None) == venue.name for e in events
               if type(e) is BalanceChanged):
        return False
    positions: dict[str, Decimal] = {}
    for p in portfolio.positions(venue=venue.name):
        positions[p.symbol] = positions.get(p.symbol, Decimal(0)) + p.qty
    venue.restore(events, positions)
    return True
