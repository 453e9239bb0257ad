"""`iceberg`: a large limit order shown a slice at a time.

Params: `side` (BUY | SELL), `total_qty`, `display_qty` (the visible slice),
`price` (the fixed limit price, on the tick in the order's favour), optional
`symbol` (default: the first configured one).

At the first market event of its symbol it posts one GTC limit child of
min(display_qty, what is left) at `price`; each time that child fills
completely the next one is posted, until total_qty has filled (`iceberg.done`,
then it stops itself). Only one child is ever open, so the book never shows
more than display_qty.

Canceling the whole: `cancel_parent()` (or any cancel of the visible child,
e.g. through the control API, or its expiry or rejection) ends the parent: no
further slice is posted and it stops itself (`iceberg.ended`). So does a daemon
stop with `daemon.on_stop = "cancel"`, which cancels every open order.

Restart-safe: its children carry the parent id `iceberg@<t0>` (daemon.
strategies.parent), so after a restart it resumes from the journal: an open
child is kept and followed; when none is open and the last one filled, the next
slice is posted; when the last one ended unfilled the parent stays ended.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from daemon.config import StrategyConfig
from daemon.strategies.base import Strategy, StrategyContext
from daemon.strategies.parent import ChildLedger
from daemon.trading.orders import FILLED
from events.instruments import Instrument, to_decimal
from events.market import Bar, Quote, Trade
from events.orders import Fill

__all__ = ["Iceberg", "IcebergParams"]


class IcebergParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    side: Literal["BUY", "SELL"]
    total_qty: Annotated[float, msgspec.Meta(gt=0)]
    display_qty: Annotated[float, msgspec.Meta(gt=0)]
    price: Annotated[float, msgspec.Meta(gt=0)]
    symbol: str | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.price):
            raise ValueError(f"price {self.price} is not a finite number")
        if self.display_qty > self.total_qty:
            raise ValueError(f"display_qty {self.display_qty} is above total_qty "
                             f"{self.total_qty}")


class Iceberg(Strategy):
    Params = IcebergParams

    params: IcebergParams

    @classmethod
    def check_params(
        cls, params: IcebergParams, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        if problem := cls.parent_problem(params, instruments, ("total_qty", "display_qty")):
            return problem
        inst = instruments[params.symbol or next(iter(instruments))]
        try:
            inst.round_order_price(to_decimal(params.price), params.side)
        except ValueError as exc:
            return "price", str(exc)
        return None

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(config, ctx)
        p = self.params
        self.symbol = p.symbol or self.symbols[0]  # check_params: one of its symbols
        self.inst = self.instrument(self.symbol)
        self.total = self.inst.round_qty(to_decimal(p.total_qty))
        self.display = self.inst.round_qty(to_decimal(p.display_qty))
        self.ledger = ChildLedger(self, "iceberg")
        self.visible: str | None = None  # the open child
        self.started = False
        self.ended = False

    # -- start, or resume from the journal ------------------------------------------------

    def on_start(self) -> None:
        restored = self.ledger.restore()
        if restored is None:
            return  # a fresh parent: it posts at its symbol's first market event
        self.started = True
        open_ids = self.ledger.open_ids()
        self.visible = open_ids[-1] if open_ids else None
        self.log.info("iceberg.resumed", filled=str(self.ledger.filled),
                      children=self.ledger.sent, visible=self.visible)
        if self.visible is None and restored.last_state != FILLED:
            self._end(f"its last slice ended {restored.last_state}")
        else:
            self._next()

    def on_trade(self, trade: Trade) -> None:
        if not self.started and trade.symbol == self.symbol:
            self._begin()

    def on_bar(self, bar: Bar) -> None:
        if not self.started and bar.symbol == self.symbol:
            self._begin()

    def on_quote(self, quote: Quote) -> None:
        if not self.started and quote.symbol == self.symbol:
            self._begin()

    def _begin(self) -> None:
        self.started = True
        self.ledger.begin(self.now_ns())
        self.log.info("iceberg.start", side=self.params.side, total=str(self.total),
                      display=str(self.display), price=self.params.price)
        self._next()

    # -- the slices ------------------------------------------------------------------------

    def _next(self) -> None:
        """Post the next slice when none is visible and something is left."""
        if self.ended or (self.visible is not None and self.is_open(self.visible)):
            return
        left = self.total - self.ledger.filled
        if left <= 0:
            self._end("done")
            return
        qty = min(self.display, left)
        self.visible = self.ledger.send(self.order_request(
            self.params.side, self.symbol, qty, price=self.params.price))

    def on_fill(self, fill: Fill) -> None:
        if self.ledger.on_fill(fill):
            self._next()

    def on_order(self, event: Any) -> None:
        # a visible slice that ended without filling (canceled, expired, rejected)
        # ends the whole; one that filled was followed by on_fill already
        if event.client_order_id == self.visible and not self.is_open(self.visible):
            self._end(f"its visible slice ended: {type(event).__name__}")

    def cancel_parent(self) -> None:
        """Cancel the whole: the visible slice, and every slice not posted yet."""
        if self.ended:
            return
        visible, self.visible = self.visible, None  # its OrderCanceled ends nothing more
        if visible is not None and self.is_open(visible):
            self.cancel(visible)
        self._end("canceled")

    def _end(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        filled = self.ledger.filled
        log = self.log.info if filled == self.total else self.log.warning
        log("iceberg.done" if filled == self.total else "iceberg.ended", reason=reason,
            filled=str(filled), total=str(self.total), children=self.ledger.sent)
        self.stop(reason)
