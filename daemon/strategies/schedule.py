"""The time-sliced parent order shared by `twap` and `vwap`: schedule, catch-up, resume.

A subclass says what is due after each slice (`targets_from(t0)`: cumulative
quantities, the last one the total); this class runs the rest. It starts at
the first market event of its symbol, at t0. Slice k is sent at
t0 + k × duration / slices (integer ns, no drift) by a timer, and sends what
the schedule owes by then (target − filled − still open), so a child that did
not (fully) fill is caught up by the next one. "market" children are market
orders; "limit" ones IOC limits at the far touch of the last `Quote`. Once the
last slice is sent and no child is open it logs `<kind>.done` and stops itself.

Restart-safe: its children carry the parent id `<kind>@<t0>` (daemon.
strategies.parent), so after a restart it resumes from the journal: same t0,
same targets, filled and open children counted. At its first market event
after the start (a market order needs a price) the slice that fell due while
it was down is sent if the journal holds no child sent at or after its time
(only what is still owed), then the schedule goes on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from daemon.config import StrategyConfig
from daemon.strategies.base import Strategy, StrategyContext
from daemon.strategies.parent import ChildLedger, Restored
from daemon.trading.api import BUY, IOC
from events.instruments import to_decimal
from events.market import Bar, Quote, Trade
from events.orders import Fill
from events.system import Timer

__all__ = ["ScheduledParent"]


class ScheduledParent(Strategy):
    """Params (a subclass's `Params`) have side, total_qty, slices, order_type, symbol
    and a `duration_ns` property."""

    KIND: ClassVar[str] = ""

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(config, ctx)
        p = self.params
        self.symbol = p.symbol or self.symbols[0]  # check_params: one of its symbols
        self.inst = self.instrument(self.symbol)
        self.total = self.inst.round_qty(to_decimal(p.total_qty))
        self.ledger = ChildLedger(self, self.KIND)
        self.targets: list[Decimal] = []
        self.t0: int | None = None
        self.next_slice = 0
        self._bid = self._ask = 0.0
        self._done = False
        self._restored: Restored | None = None

    # -- start, or resume from the journal ------------------------------------------------

    def on_start(self) -> None:
        restored = self.ledger.restore()
        if restored is None:
            return  # a fresh parent: it begins with its symbol's first market event
        self._schedule(restored.t0)
        self._restored = restored  # resumed at the first market event: a price to order at

    def _resume(self) -> None:
        restored, self._restored = self._restored, None
        assert restored is not None
        now = self.now_ns()
        # the last slice due by now; the journal says whether it was sent
        due = min(self.params.slices - 1, (now - restored.t0) // self._step())
        sent = due >= 0 and restored.last_ts >= self._slice_at(due)
        self.next_slice = max(0, due + 1 if sent else due)
        self.log.info(f"{self.KIND}.resumed", t0=restored.t0, filled=str(self.ledger.filled),
                      children=self.ledger.sent, next_slice=self.next_slice)
        if self.next_slice < self.params.slices and self._slice_at(self.next_slice) <= now:
            self._send_slice()
        elif self.next_slice < self.params.slices:
            self.set_timer(f"{self.KIND}.slice", at_ns=self._slice_at(self.next_slice))
        else:
            self._check_done()

    def on_trade(self, trade: Trade) -> None:
        if trade.symbol == self.symbol:
            self._market()

    def on_bar(self, bar: Bar) -> None:
        if bar.symbol == self.symbol:
            self._market()

    def on_quote(self, quote: Quote) -> None:
        if quote.symbol != self.symbol:
            return
        self._bid, self._ask = quote.bid, quote.ask
        self._market()

    def _market(self) -> None:
        if self._restored is not None:
            self._resume()
        elif self.t0 is None:
            self._begin()

    def _begin(self) -> None:
        t0 = self.now_ns()
        self._schedule(t0)
        self.ledger.begin(t0)
        self.log.info(f"{self.KIND}.start", side=self.params.side, total=str(self.total),
                      slices=self.params.slices, duration=self.params.duration,
                      targets=[str(t) for t in self.targets])
        self._send_slice()

    # -- the schedule ----------------------------------------------------------------------

    def _step(self) -> int:
        return self.params.duration_ns // self.params.slices

    def _slice_at(self, k: int) -> int:
        assert self.t0 is not None
        return self.t0 + k * self.params.duration_ns // self.params.slices

    def _schedule(self, t0: int) -> None:
        self.t0 = t0
        self.targets = self.targets_from(t0)

    def targets_from(self, t0: int) -> list[Decimal]:
        """The cumulative quantity due after each slice, the last one the total: by
        default k+1 even slices' worth (each rounded down to the step) after slice
        k, the remainder in the last (TWAP); VWAP weighs them by volume."""
        slices = self.params.slices
        base = self.inst.round_qty(self.total / slices)
        return [base * (k + 1) for k in range(slices - 1)] + [self.total]

    def on_timer(self, timer: Timer) -> None:
        self._send_slice()

    def _send_slice(self) -> None:
        k = self.next_slice
        last = k == self.params.slices - 1
        owed = self.targets[k] - self.ledger.filled - self.ledger.outstanding()
        if self.inst.round_qty(owed) > 0:
            self._submit_child(owed)
        self.next_slice = k + 1
        if last:
            self._check_done()
        else:
            self.set_timer(f"{self.KIND}.slice", at_ns=self._slice_at(k + 1))

    def _submit_child(self, qty: Decimal) -> str:
        side = self.params.side
        touch = self._ask if side == BUY else self._bid
        if self.params.order_type == "limit" and touch > 0:
            return self.ledger.send(
                self.order_request(side, self.symbol, qty, price=touch, time_in_force=IOC))
        return self.ledger.send(self.order_request(side, self.symbol, qty))

    # -- completion --------------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> None:
        self.ledger.on_fill(fill)
        self._check_done()

    def on_order(self, event: Any) -> None:
        self._check_done()

    def _check_done(self) -> None:
        if self._done or self.next_slice < self.params.slices or self.ledger.any_open():
            return
        self._done = True
        filled = self.ledger.filled
        log = self.log.info if filled == self.total else self.log.warning
        log(f"{self.KIND}.done", filled=str(filled), total=str(self.total),
            children=self.ledger.sent)
        self.stop("done")
