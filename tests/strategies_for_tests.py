"""Strategies used by end-to-end tests (importable as `tests.strategies_for_tests:X`)."""

from __future__ import annotations

import msgspec

from daemon.strategies.base import Strategy
from events.market import Bar


class BoomParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    after_bars: int = 5


class Boom(Strategy):
    """Buys on every bar, and raises on bar `after_bars`: a strategy bug."""

    Params = BoomParams

    def on_start(self) -> None:
        self.bars = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        if self.bars == self.params.after_bars:
            raise RuntimeError("strategy bug")
        self.buy(bar.symbol, 0.001)
