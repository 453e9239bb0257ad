"""`mean_reversion`: trade a rolling z-score of closes back to its mean.

On each closed bar, per symbol: z = (close - mean) / std over the last `window`
closes (this one included; population std). Once the window is full:
- flat and z < -entry_z: market buy `qty`; flat, `allow_short` and z > entry_z:
  market sell `qty`;
- long or short and |z| < exit_z: close the whole position at market.
A zero std (a flat window) gives no z and no action. As in `sma_cross`, no new
signal is acted on while its last order for that symbol is not done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec

from daemon.config import StrategyConfig
from daemon.strategies.base import Strategy, StrategyContext
from daemon.strategies.indicators import ZScore
from events.instruments import Instrument
from events.market import Bar

__all__ = ["MeanReversion"]


class MeanReversionParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    window: Annotated[int, msgspec.Meta(ge=2)]
    qty: Annotated[float, msgspec.Meta(gt=0)]
    entry_z: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    exit_z: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    allow_short: bool = False

    def __post_init__(self) -> None:
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be below entry_z ({self.entry_z})")


class MeanReversion(Strategy):
    Params = MeanReversionParams

    params: MeanReversionParams

    @classmethod
    def check_params(
        cls, params: MeanReversionParams, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        problem = cls.qty_problem(params.qty, instruments)
        return None if problem is None else ("qty", problem)

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        super().__init__(config, ctx)
        self._z = {symbol: ZScore(self.params.window) for symbol in self.symbols}
        self._pending: dict[str, str | None] = dict.fromkeys(self.symbols)

    def on_bar(self, bar: Bar) -> None:
        p = self.params
        symbol = bar.symbol
        z = self._z[symbol].update(bar.close)
        if z is None or self.is_open(self._pending[symbol]):
            return
        qty = self.position(symbol).qty
        if qty == 0:
            if z < -p.entry_z:
                self._pending[symbol] = self.buy(symbol, p.qty)
            elif p.allow_short and z > p.entry_z:
                self._pending[symbol] = self.sell(symbol, p.qty)
            else:
                return
            self.log.info("mean_reversion.enter", symbol=symbol, z=z, ts=bar.ts_event)
        elif abs(z) < p.exit_z:
            if qty > 0:
                self._pending[symbol] = self.sell(symbol, qty)
            else:
                self._pending[symbol] = self.buy(symbol, -qty)
            self.log.info("mean_reversion.exit", symbol=symbol, z=z, ts=bar.ts_event)
