"""`sma_cross`: long/flat moving-average crossover, with DESIGN's exact semantics.

On each closed bar, per symbol: the SMA of the last `fast` and of the last
`slow` closes, each `math.fsum(window) / n`. Once `slow` closes exist: if flat
and fast > slow, market buy `qty`; if long and fast < slow, market sell the
whole position. Equality does nothing. With `short = true` (a perpetual, or a
venue that allows shorting) it is long/short instead: fast > slow while not
long buys to +qty, fast < slow while not short sells to -qty. Flat/long is read from the strategy's
own position; while its last order is not done (in flight, or partly filled)
no new signal is acted on, so a market order is never doubled.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from itertools import islice
from typing import Annotated

import msgspec

from daemon.config import StrategyConfig
from daemon.strategies.base import Strategy, StrategyContext
from events.instruments import Instrument
from events.market import Bar

__all__ = ["SmaCross"]


class SmaCrossParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    fast: Annotated[int, msgspec.Meta(gt=0)]
    slow: Annotated[int, msgspec.Meta(gt=0)]
    qty: Annotated[float, msgspec.Meta(gt=0)]
    short: bool = False

    def __post_init__(self) -> None:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be less than slow ({self.slow})")


class SmaCrossState(msgspec.Struct, frozen=True):
    closes: dict[str, list[float]]


class SmaCross(Strategy):
    Params = SmaCrossParams
    State = SmaCrossState

    params: SmaCrossParams

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(config, ctx)
        slow = self.params.slow
        self._closes: dict[str, deque[float]] = {s: deque(maxlen=slow) for s in self.symbols}
        # Its last order per symbol: no new signal until that one is done.
        self._pending: dict[str, str | None] = dict.fromkeys(self.symbols)

    @classmethod
    def check_params(
        cls, params: SmaCrossParams, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        # refused with the config, not on the first signal, if qty is below the step
        problem = cls.qty_problem(params.qty, instruments)
        return None if problem is None else ("qty", problem)

    def on_bar(self, bar: Bar) -> None:
        p = self.params
        closes = self._closes[bar.symbol]
        closes.append(bar.close)
        if len(closes) < p.slow:
            return
        if self.is_open(self._pending[bar.symbol]):
            return
        slow = math.fsum(closes) / p.slow
        fast = math.fsum(islice(closes, p.slow - p.fast, p.slow)) / p.fast
        qty = self.position(bar.symbol).qty
        if p.short:
            self._long_short(bar, qty, fast, slow)
        elif qty == 0 and fast > slow:
            self._pending[bar.symbol] = self.buy(bar.symbol, p.qty)
            self.log.info("sma_cross.buy", symbol=bar.symbol, fast=fast, slow=slow, ts=bar.ts_event)
        elif qty > 0 and fast < slow:
            self._pending[bar.symbol] = self.sell(bar.symbol, qty)
            self.log.info(
                "sma_cross.sell", symbol=bar.symbol, fast=fast, slow=slow, ts=bar.ts_event
            )

    def _long_short(self, bar: Bar, qty: Decimal, fast: float, slow: float) -> None:
        target = self.instrument(bar.symbol).round_qty(self.params.qty)
        if fast > slow and qty <= 0:
            self._pending[bar.symbol] = self.buy(bar.symbol, target - qty)
            self.log.info("sma_cross.buy", symbol=bar.symbol, fast=fast, slow=slow, ts=bar.ts_event)
        elif fast < slow and qty >= 0:
            self._pending[bar.symbol] = self.sell(bar.symbol, target + qty)
            self.log.info(
                "sma_cross.sell", symbol=bar.symbol, fast=fast, slow=slow, ts=bar.ts_event
            )

    def get_state(self) -> SmaCrossState:
        # The close windows: a restart need not wait `slow` bars to trade again.
        return SmaCrossState(closes={s: list(c) for s, c in self._closes.items()})

    def set_state(self, state: SmaCrossState) -> None:
        slow = self.params.slow
        for symbol, closes in state.closes.items():
            if symbol in self._closes:
                self._closes[symbol] = deque(closes[-slow:], maxlen=slow)
