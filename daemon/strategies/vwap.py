"""`vwap`: a parent order sliced over time in proportion to the market's usual volume.

Params: `side` (BUY | SELL), `total_qty`, `duration` (e.g. "1h"), `slices`,
`order_type` ("market", or "limit": an IOC limit at the far touch of the last
`Quote`), optional `symbol` (default: the first configured one), and the volume
profile: `profile_file` (a JSON file made from the store by
`python -m daemon.strategies.volume_profile`, path relative to the working
directory: average traded volume per UTC time-of-day bucket over the recorded
days) or `weights` (one positive number per slice); neither gives equal slices.

It starts at the first market event of its symbol, at t0. Slice k is sent at
t0 + k × duration / slices (integer ns) by a timer. Slice k's weight is the
profile's volume in the bucket t_k falls in; the cumulative target after slice
k is total × (weights of slices 0..k) / (all weights), rounded down to the
step, the last slice's target being the total. A slice sends what the schedule
owes by then (target − filled − still open), so a child that did not (fully)
fill is caught up by the next one. Once the last slice is sent and no child is
open it logs `vwap.done` and stops itself.

Restart-safe: its children carry the parent id `vwap@<t0>` (daemon.strategies.
parent), so after a restart it resumes from the journal: same t0, same targets,
filled and open children counted; the slice that fell due while it was down is
sent at its first market event after the start (only what is still owed;
a market order needs a price), then the schedule goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from daemon.config import StrategyConfig, parse_interval
from daemon.strategies.base import Strategy, StrategyContext
from daemon.strategies.parent import ChildLedger, Restored
from daemon.strategies.volume_profile import load_profile
from daemon.trading.api import BUY, IOC
from events.instruments import Instrument, to_decimal
from events.market import Bar, Quote, Trade
from events.orders import Fill
from events.system import Timer

__all__ = ["Vwap", "VwapParams"]


class VwapParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    side: Literal["BUY", "SELL"]
    total_qty: Annotated[float, msgspec.Meta(gt=0)]
    duration: str
    slices: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    order_type: Literal["market", "limit"] = "market"
    symbol: str | None = None
    profile_file: str | None = None
    weights: list[Annotated[float, msgspec.Meta(gt=0)]] | None = None

    def __post_init__(self) -> None:
        if parse_interval(self.duration) < self.slices:  # ValueError -> one line
            raise ValueError(f"duration {self.duration} is too short for {self.slices} slices")
        if self.profile_file is not None and self.weights is not None:
            raise ValueError("give profile_file or weights, not both")
        if self.weights is not None and len(self.weights) != self.slices:
            raise ValueError(f"weights has {len(self.weights)} numbers for {self.slices} slices")

    @property
    def duration_ns(self) -> int:
        return parse_interval(self.duration)


class Vwap(Strategy):
    Params = VwapParams

    params: VwapParams

    @classmethod
    def check_params(
        cls, params: VwapParams, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        symbol = params.symbol or next(iter(instruments))
        inst = instruments.get(symbol)
        if inst is None:
            return "symbol", f"{symbol!r} is not one of its symbols {list(instruments)}"
        if problem := cls.qty_problem(params.total_qty, {symbol: inst}):
            return "total_qty", problem
        if params.profile_file is not None:
            try:
                profile = load_profile(Path(params.profile_file))
            except ValueError as exc:
                return "profile_file", str(exc)
            if profile.symbol != symbol:
                return "profile_file", (f"{params.profile_file} is {profile.symbol}'s "
                                        f"profile, not {symbol}'s")
        return None

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(config, ctx)
        p = self.params
        self.symbol = p.symbol or self.symbols[0]  # check_params: one of its symbols
        self.inst = self.instrument(self.symbol)
        self.total = self.inst.round_qty(to_decimal(p.total_qty))
        self.profile = None if p.profile_file is None else load_profile(Path(p.profile_file))
        self.ledger = ChildLedger(self, "vwap")
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
        self.log.info("vwap.resumed", t0=restored.t0, filled=str(self.ledger.filled),
                      children=self.ledger.sent, next_slice=self.next_slice)
        if self.next_slice < self.params.slices and self._slice_at(self.next_slice) <= now:
            self._send_slice()
        elif self.next_slice < self.params.slices:
            self.set_timer("vwap.slice", at_ns=self._slice_at(self.next_slice))
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
        self.log.info("vwap.start", side=self.params.side, total=str(self.total),
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
        """The cumulative target after each slice: exact shares of the total by weight,
        rounded down to the step (never above the total), the last one the total."""
        self.t0 = t0
        p = self.params
        if self.profile is not None:
            weights = self.profile.weights(t0, self._step(), p.slices)
        elif p.weights is not None:
            weights = [to_decimal(w) for w in p.weights]
        else:
            weights = [Decimal(1)] * p.slices
        whole = sum(weights, Decimal(0))
        cum = Decimal(0)
        self.targets = []
        for w in weights[:-1]:
            cum += w
            self.targets.append(min(self.total, self.inst.round_qty(self.total * cum / whole)))
        self.targets.append(self.total)

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
            self.set_timer("vwap.slice", at_ns=self._slice_at(k + 1))

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
        log("vwap.done", filled=str(filled), total=str(self.total), children=self.ledger.sent)
        self.stop("done")
