"""Strategies used by end-to-end tests (importable as `tests.strategies_for_tests:X`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from daemon.strategies.base import Strategy
from events.instruments import Instrument, to_decimal
from events.market import Bar, Quote


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


class OneBidParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    qty: float = 0.001
    below: float = 0.02  # how far under the best bid the order rests


class OneBid(Strategy):
    """Keeps one resting limit buy under the market: places it whenever it has
    no open order (a refused one is retried on the next quote), never more."""

    Params = OneBidParams

    def on_quote(self, quote: Quote) -> None:
        if not self.has_open_orders(quote.symbol) and not self.position(quote.symbol).qty:
            self.buy(quote.symbol, self.params.qty,
                     price=quote.bid * (1 - self.params.below))


class NeedsTwoTicksParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    offset: float


class NeedsTwoTicks(Strategy):
    """A user strategy with its own `check_params` (and a switch to make that check
    itself raise)."""

    Params = NeedsTwoTicksParams
    check_raises = False

    @classmethod
    def check_params(cls, params: Any, instruments: Mapping[str, Instrument]
                     ) -> tuple[str, str] | None:
        if cls.check_raises:
            raise RuntimeError("a bug in check_params")
        for symbol, inst in instruments.items():
            if to_decimal(params.offset) < 2 * inst.tick_size:
                return "offset", (f"{params.offset} is below two ticks of {symbol} "
                                  f"({2 * inst.tick_size})")
        return None


class FailsAtStart(Strategy):
    """Its `on_start` raises: a strategy that cannot start."""

    def on_start(self) -> None:
        raise RuntimeError("cannot start:\nmodel file missing")


class FailsToBuild(Strategy):
    """Its construction raises."""

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        raise KeyError("no such model")


class WatcherParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    every: int = 2  # trades on every `every`-th bar: buys when flat, sells when long
    qty: float = 1.0
    marked: tuple[str, ...] = ()  # symbols (venue "sim") whose marks each observation notes
    hold: bool = False  # once long, stays long


class Watcher(Strategy):
    """Notes everything it is shown (with the run's time and the marks of
    `marked` at that moment) in `seen`, and trades now and then, so orders,
    fills and positions move while quiet runs go by."""

    Params = WatcherParams

    def on_start(self) -> None:
        self.seen: list[tuple] = []
        self.bars = 0

    def note(self, kind: str, event: object) -> None:
        marks = tuple(self.portfolio.last_price("sim", s) for s in self.params.marked)
        self.seen.append((kind, event, self.now_ns(), marks))

    def on_bar(self, bar: Bar) -> None:
        self.note("bar", bar)
        self.bars += 1
        if self.bars % self.params.every or self.has_open_orders(bar.symbol):
            return
        if self.position(bar.symbol).qty:
            if not self.params.hold:
                self.sell(bar.symbol, self.position(bar.symbol).qty)
        else:
            self.buy(bar.symbol, self.params.qty)

    def on_fill(self, fill: object) -> None:
        self.note("fill", fill)

    def on_order(self, event: object) -> None:
        self.note("order", event)


class TradeWatcher(Watcher):
    """A Watcher that also wants every trade of its symbols (they are never quiet)."""

    def on_trade(self, trade: object) -> None:
        self.note("trade", trade)


class CrossWatcher(Watcher):
    """A Watcher that trades the NEXT of its symbols (cyclically) on a bar of one:
    an order on an instrument caused by another's trade (a pair, a hedge)."""

    def on_bar(self, bar: Bar) -> None:
        self.note("bar", bar)
        self.bars += 1
        symbols = self.config.symbols
        other = symbols[(symbols.index(bar.symbol) + 1) % len(symbols)]
        if self.bars % self.params.every or self.has_open_orders(other):
            return
        if self.position(other).qty:
            if not self.params.hold:
                self.sell(other, self.position(other).qty)
        else:
            self.buy(other, self.params.qty)
