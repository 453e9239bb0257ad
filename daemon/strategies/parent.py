"""A parent order's children: what an execution algorithm sent, filled and still has open.

An execution algorithm (vwap, iceberg) never keeps its progress in memory
alone. Every child order it sends carries the parent's id in
`OrderRequest.parent_order_id`, which the OMS journals in the child's
`OrderSubmitted`; the parent id itself is `<kind>@<t0>` (the schedule's start,
ns). So the journal holds the parent's declaration (its id, in its first
child) and its whole progress (the children's fills and ends): after a
restart the OMS folded from the journal answers `children(strategy_id,
"<kind>@")`, and `ChildLedger.restore` rebuilds t0, the filled quantity and
the open children from it. Nothing is sent twice (what the schedule owes is
computed from journaled fills and open children) and nothing is lost (the
slice that fell due while the daemon was down is caught up at once).

The parent is the strategy's: one strategy id runs one parent of a kind, ever
(on its account's journal). A restart with changed params resumes that same
parent (what it bought stays bought, never bought twice); a parent that is done
stays done, so a new parent needs a new strategy id.

A gateway without `children` (a test double) restores nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgspec

from daemon.strategies.base import Strategy
from daemon.trading.api import OrderRequest
from events.orders import Fill

__all__ = ["ChildLedger", "Restored"]


class Restored(msgspec.Struct, frozen=True):
    """What the journal says of a parent: its start, its last child's submission
    time and end state ("" while open)."""

    t0: int
    last_ts: int
    last_state: str


class ChildLedger:
    """The children of one parent order of `strategy` (kind e.g. "vwap")."""

    def __init__(self, strategy: Strategy, kind: str) -> None:
        self.strategy = strategy
        self.kind = kind
        self.parent_id = ""  # set by `begin` or `restore`
        self.filled = Decimal(0)
        self.children: dict[str, Decimal] = {}  # client order id -> qty, every child
        self.sent = 0

    def begin(self, t0: int) -> None:
        self.parent_id = f"{self.kind}@{t0}"

    def restore(self) -> Restored | None:
        """Rebuild from the OMS's journaled orders; None when this parent never sent
        a child (a fresh start)."""
        children = getattr(self.strategy.ctx.gateway, "children", None)
        if children is None:
            return None
        orders: Iterable[Any] = children(self.strategy.id, f"{self.kind}@")
        last = None
        for order in orders:
            self.parent_id = order.parent_order_id
            self.children[order.client_order_id] = order.qty
            self.filled += order.filled_qty
            self.sent += 1
            last = order
        if last is None:
            return None
        t0 = int(self.parent_id.rpartition("@")[2])
        return Restored(t0, last.ts_submitted, "" if not last.is_done else last.state)

    def send(self, request: OrderRequest) -> str:
        """Submit a child (tagged with the parent id); its client order id."""
        assert self.parent_id, "ChildLedger.begin or restore first"
        request = msgspec.structs.replace(request, parent_order_id=self.parent_id)
        cid = self.strategy.submit(request)
        self.children[cid] = request.qty
        self.sent += 1
        return cid

    def on_fill(self, fill: Fill) -> bool:
        """Count a fill of one of its children; False for another order's."""
        if fill.client_order_id not in self.children:
            return False
        self.filled += fill.qty
        return True

    def open_ids(self) -> list[str]:
        return [cid for cid in self.children if self.strategy.is_open(cid)]

    def outstanding(self) -> Decimal:
        """What its open children may still fill."""
        s = self.strategy
        return sum((qty - s.filled_qty(cid) for cid, qty in self.children.items()
                    if s.is_open(cid)), Decimal(0))

    def any_open(self) -> bool:
        return any(self.strategy.is_open(cid) for cid in self.children)
