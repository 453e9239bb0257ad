"""`twap`: an execution algorithm slicing one parent order evenly over time.

Params: `side` (BUY | SELL), `total_qty`, `duration` (e.g. "10m"), `slices`,
`order_type` ("market", or "limit": an IOC limit at the far touch of the last
`Quote`, i.e. marketable but never through the touch), optional `symbol`
(default: the first configured one).

It starts at the first market event of its symbol (so it begins with the data
and with a price), at t0. Slice k (k = 0 .. slices-1) is sent at
t0 + k × duration / slices (integer ns, no drift) by a timer. Slice sizes are
`base = total_qty / slices` rounded down to the step, the last slice taking the
remainder; a slice sends what the schedule owes by then (k+1 slices' worth,
minus what filled and what is still open), so a child that did not (fully)
fill is caught up by the next one. After the last slice, once no child is
open, it logs `twap.done` and stops itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from daemon.config import StrategyConfig, parse_interval
from daemon.strategies.base import Strategy, StrategyContext
from daemon.trading.api import BUY, IOC
from events.instruments import Instrument, to_decimal
from events.market import Bar, Quote, Trade
from events.orders import Fill
from events.system import Timer

__all__ = ["Twap", "TwapParams"]


class TwapParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    side: Literal["BUY", "SELL"]
    total_qty: Annotated[float, msgspec.Meta(gt=0)]
    duration: str
    slices: Annotated[int, msgspec.Meta(ge=1)]
    order_type: Literal["market", "limit"] = "market"
    symbol: str | None = None

    def __post_init__(self) -> None:
        parse_interval(self.duration)  # ValueError -> a one-line params error

    @property
    def duration_ns(self) -> int:
        return parse_interval(self.duration)


class Twap(Strategy):
    Params = TwapParams

    params: TwapParams

    @classmethod
    def check_params(
        cls, params: TwapParams, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        symbol = params.symbol or next(iter(instruments))
        inst = instruments.get(symbol)
        if inst is None:
            return "symbol", f"{symbol!r} is not one of its symbols {list(instruments)}"
        if problem := cls.qty_problem(params.total_qty, {symbol: inst}):
            return "total_qty", problem
        total = inst.round_qty(to_decimal(params.total_qty))
        if params.slices > 1 and inst.round_qty(total / params.slices) <= 0:
            return "slices", (f"total_qty {params.total_qty} over {params.slices} slices "
                              f"rounds down to 0 a slice at {symbol}'s step {inst.step_size}")
        return None

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(config, ctx)
        p = self.params
        self.symbol = p.symbol or self.symbols[0]  # check_params: one of its symbols
        inst = self.instrument(self.symbol)
        self.total = inst.round_qty(to_decimal(p.total_qty))
        self.base = inst.round_qty(self.total / p.slices)
        self.t0: int | None = None
        self.next_slice = 0
        self.filled = Decimal(0)
        self.children: dict[str, Decimal] = {}  # client order id -> qty
        self._bid = self._ask = 0.0
        self._done = False

    # -- data: the first event starts the schedule; quotes give the touch ---------------

    def on_trade(self, trade: Trade) -> None:
        if self.t0 is None and trade.symbol == self.symbol:
            self._begin()

    def on_bar(self, bar: Bar) -> None:
        if self.t0 is None and bar.symbol == self.symbol:
            self._begin()

    def on_quote(self, quote: Quote) -> None:
        if quote.symbol != self.symbol:
            return
        self._bid, self._ask = quote.bid, quote.ask
        if self.t0 is None:
            self._begin()

    def _begin(self) -> None:
        self.t0 = self.now_ns()
        self.log.info(
            "twap.start",
            side=self.params.side,
            total=str(self.total),
            slices=self.params.slices,
            duration=self.params.duration,
        )
        self._send_slice()

    # -- the schedule ------------------------------------------------------------------

    def on_timer(self, timer: Timer) -> None:
        self._send_slice()

    def _send_slice(self) -> None:
        p = self.params
        k = self.next_slice
        last = k == p.slices - 1
        target = self.total if last else self.base * (k + 1)
        owed = target - self.filled - self._outstanding()
        if owed > 0:
            self.children[self._submit_child(owed)] = owed
        self.next_slice = k + 1
        if last:
            self._check_done()
        else:
            assert self.t0 is not None
            self.set_timer("twap.slice", at_ns=self.t0 + (k + 1) * p.duration_ns // p.slices)

    def _submit_child(self, qty: Decimal) -> str:
        side = self.params.side
        touch = self._ask if side == BUY else self._bid
        if self.params.order_type == "limit" and touch > 0:
            return self.submit(
                self.order_request(side, self.symbol, qty, price=touch, time_in_force=IOC)
            )
        return self.submit(self.order_request(side, self.symbol, qty))

    def _outstanding(self) -> Decimal:
        return sum(
            (qty - self.filled_qty(cid) for cid, qty in self.children.items() if self.is_open(cid)),
            Decimal(0),
        )

    # -- completion ----------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> None:
        if fill.client_order_id in self.children:
            self.filled += fill.qty
        self._check_done()

    def on_order(self, event: Any) -> None:
        self._check_done()

    def _check_done(self) -> None:
        if self._done or self.next_slice < self.params.slices:
            return
        if any(self.is_open(cid) for cid in self.children):
            return
        self._done = True
        log = self.log.info if self.filled == self.total else self.log.warning
        log(
            "twap.done", filled=str(self.filled), total=str(self.total), children=len(self.children)
        )
        self.stop("done")
