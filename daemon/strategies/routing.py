"""Market-data routing for the strategy runtime: the route table and bars.

Routing. One dict from `(venue, symbol, event class)` to a tuple of
`(slot, bound hook)` pairs, rebuilt whenever the set of running strategies
changes, so a trade costs one dict lookup plus the calls. Only hooks a
strategy's class overrides are routed. Bar builders sit first in a symbol's
trade route, so a bar closes (reaches `on_bar`) before the trade that closed it
reaches `on_trade`.

Bars. A strategy with `bar_interval` receives bars of exactly that interval:
from the data when it has them, else built from trades (`bars.BarBuilder`).
Building starts with the strategy; the first data `Bar` of that (venue, symbol,
interval) switches the key to data bars for good (the builder's open bar is
dropped, and a data bar not newer than the last bar delivered is skipped, so no
bar reaches a strategy twice). A strategy without `bar_interval` receives every
data `Bar` of its symbols. Built bars are not published on the bus: they derive
from journaled trades, and a replay rebuilds them identically.

Live isolation. Each route entry is a `(slot, callable)` pair so that an async
wrapper can swap the callable for a put into that strategy's own bounded inbox,
drained by its own task (conflating market data on overflow, never dropping
order events), leaving the table, failure handling and lifecycle as they are.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from functools import partial
from operator import attrgetter
from typing import Any

from daemon.config import StrategyConfig, parse_interval
from daemon.logging import get_logger
from daemon.strategies.bars import BarBuilder
from daemon.strategies.base import Strategy
from events.columns import TradeColumns
from events.market import Bar, BookDelta, BookSnapshot, Quote, Trade
from replay.clock import TimerHandle

__all__ = ["MarketRouter", "Slot", "overridden"]

log = get_logger("tapeloop.strategies")

ADDED, RUNNING, STOPPED, FAILED = "added", "running", "stopped", "failed"

BarKey = tuple[str, str, int]  # (venue, symbol, interval ns)
Hook = Callable[[Any], object]
Entry = tuple["Slot | None", Hook]  # slot None: the runtime's own hook (a bar builder)
Route = tuple[Entry, ...]
FailHandler = Callable[["Slot | None", Exception, str], None]

_MARKET_HOOKS = (
    (Trade, "on_trade"),
    (Quote, "on_quote"),
    (BookDelta, "on_book"),
    (BookSnapshot, "on_book"),
)


def overridden(strategy: Strategy, name: str) -> Hook | None:
    """The bound hook if the strategy's class overrides it, else None (not routed)."""
    if getattr(type(strategy), name) is getattr(Strategy, name):
        return None
    hook: Hook = getattr(strategy, name)
    return hook


class Slot:
    """One strategy and the runtime's bookkeeping for it."""

    __slots__ = ("config", "strategy", "state", "timers", "bar_ns", "on_bar", "on_fill",
                 "on_order", "init_error", "failure")

    def __init__(self, config: StrategyConfig, strategy: Strategy) -> None:
        self.config = config
        self.strategy = strategy
        self.state = ADDED
        # its construction raised (`strategy` is then a stand-in that never runs)
        self.init_error: Exception | None = None
        self.failure: tuple[str, str] | None = None  # (hook, repr of the error) once FAILED
        self.timers: dict[str, TimerHandle] = {}
        self.bar_ns = config.bar_interval_ns
        self.on_bar = overridden(strategy, "on_bar")
        self.on_fill = overridden(strategy, "on_fill")
        self.on_order = overridden(strategy, "on_order")

    @property
    def id(self) -> str:
        return self.config.id


_ts_event = attrgetter("ts_event")


class MarketRouter:
    """Delivers market data and bars to running strategies; `fail(slot, exc, hook)`
    is called when a hook raises (with slot None if a bar builder did)."""

    def __init__(self, fail: FailHandler, defer: Callable[[Callable[[], object]], None]) -> None:
        self._fail = fail
        self._defer = defer  # Bus.defer
        self._slots: tuple[Slot, ...] = ()
        self._routes: dict[tuple[str, str, type], Route] = {}
        self._builders: dict[BarKey, BarBuilder] = {}
        self._built_subs: dict[BarKey, Route] = {}
        self._data_bar_keys: set[BarKey] = set()
        self._last_bar: dict[BarKey, int] = {}  # close time of the last bar delivered
        self._bar_routes: dict[tuple[str, str, str], tuple[BarKey | None, Route, Route]] = {}
        self._interval_ns: dict[str, int | None] = {}

    # -- dispatch (bus handlers) --------------------------------------------------------

    def on_market(self, event: Any) -> None:
        """Trade, Quote, BookDelta, BookSnapshot. The hot path: one lookup, then calls."""
        hooks = self._routes.get((event.venue, event.symbol, event.__class__))
        if hooks is None:
            return
        for slot, hook in hooks:
            try:
                hook(event)
            except Exception as exc:
                self._fail(slot, exc, event.__class__.__name__)

    # -- quiet runs (see replay.driver) -----------------------------------------

    def quiet_trades(self, cols: TradeColumns, start: int, stop: int) -> int:
        """How far from `start` a run of trades (one symbol, sorted) may skip
        `on_market`: not at all if a strategy wants each trade; otherwise up to
        the first trade that closes a bar being built. Changes with this
        symbol's trades and route changes only (the replay keeps it meanwhile)."""
        hooks = self._routes.get((cols.venue, cols.symbol, Trade))
        if not hooks:
            return stop
        end = stop
        for slot, hook in hooks:
            if slot is not None:
                return start  # a strategy's on_trade: every trade, one by one
            builder = hook.__self__  # type: ignore[attr-defined]
            end = bisect_left(cols.ts, builder.end_ns, start, end)
        return end

    def absorb_trades(self, cols: TradeColumns, start: int, stop: int) -> None:
        """Quiet trades only feed the bar builders."""
        for _slot, hook in self._routes.get((cols.venue, cols.symbol, Trade), ()):
            hook.__self__.absorb(cols.price, cols.size, start, stop)  # type: ignore[attr-defined]

    def on_bar(self, bar: Bar) -> None:
        """A Bar from the data, delivered once the bus has dispatched what the
        bar caused first: a simulated venue fills a waiting market order at
        the bar's OPEN, so by the bar's close the strategy must see that fill
        (its Fill is queued behind the Bar; deferring puts the bar after it)."""
        self._defer(lambda: self._deliver_bar(bar))

    def _deliver_bar(self, bar: Bar) -> None:
        route = self._bar_routes.get((bar.venue, bar.symbol, bar.interval))
        if route is None:
            route = self._bar_route(bar)
        key, interval_hooks, all_hooks = route
        if key is not None:
            if key not in self._data_bar_keys:
                self._switch_to_data_bars(key)
            last = self._last_bar.get(key)
            if last is not None and bar.ts_event <= last:
                interval_hooks = ()  # already delivered (built from trades)
            else:
                self._last_bar[key] = bar.ts_event
        for hooks in (interval_hooks, all_hooks):
            for slot, hook in hooks:
                try:
                    hook(bar)
                except Exception as exc:
                    self._fail(slot, exc, "on_bar")

    def flush_bars(self) -> None:
        """End of data: emit every builder's open bar to its strategies."""
        for builder in list(self._builders.values()):
            builder.flush()

    # -- internals ------------------------------------------------------------------------

    def _on_built_bar(self, key: BarKey, bar: Bar) -> None:
        self._last_bar[key] = bar.ts_event
        for slot, hook in self._built_subs.get(key, ()):
            try:
                hook(bar)
            except Exception as exc:
                self._fail(slot, exc, "on_bar")

    def _bar_route(self, bar: Bar) -> tuple[BarKey | None, Route, Route]:
        text = bar.interval
        if text not in self._interval_ns:
            try:
                self._interval_ns[text] = parse_interval(text)
            except ValueError:
                self._interval_ns[text] = None  # e.g. "1M": no strategy interval matches
        ns = self._interval_ns[text]
        interval_hooks: list[Entry] = []
        all_hooks: list[Entry] = []
        for slot in self._slots:
            config = slot.config
            if slot.on_bar is None or config.venue != bar.venue or bar.symbol not in config.symbols:
                continue
            if slot.bar_ns is None:
                all_hooks.append((slot, slot.on_bar))
            elif slot.bar_ns == ns:
                interval_hooks.append((slot, slot.on_bar))
        key = (bar.venue, bar.symbol, ns) if interval_hooks and ns is not None else None
        route = (key, tuple(interval_hooks), tuple(all_hooks))
        self._bar_routes[(bar.venue, bar.symbol, text)] = route
        return route

    def _switch_to_data_bars(self, key: BarKey) -> None:
        self._data_bar_keys.add(key)
        builder = self._builders.pop(key, None)
        if builder is not None:
            builder.discard()
            log.info(
                "strategy.bars_from_data", venue=key[0], symbol=key[1], interval=builder.interval
            )
        self.rebuild(self._slots)

    def rebuild(self, running: Iterable[Slot]) -> None:
        """Recompute every route for these running strategies (kept in this order)."""
        self._slots = slots = tuple(running)
        routes: dict[tuple[str, str, type], list[Entry]] = {}
        built: dict[BarKey, list[Entry]] = {}
        names: dict[BarKey, str] = {}
        for slot in slots:
            config = slot.config
            if slot.bar_ns is None or slot.on_bar is None:
                continue
            for symbol in config.symbols:
                key = (config.venue, symbol, slot.bar_ns)
                if key not in self._data_bar_keys:
                    built.setdefault(key, []).append((slot, slot.on_bar))
                    names.setdefault(key, config.bar_interval or "")
        for key in list(self._builders):
            if key not in built:
                del self._builders[key]  # nobody wants these bars any more
        # Builders first in a trade route: the bar closes before the closing trade's hooks.
        for key in built:
            builder = self._builders.get(key)
            if builder is None:
                on_bar = partial(self._on_built_bar, key)
                builder = BarBuilder(key[0], key[1], key[2], on_bar, interval=names[key])
                self._builders[key] = builder
            routes.setdefault((key[0], key[1], Trade), []).append((None, builder.on_trade))
        for slot in slots:
            config = slot.config
            hooks = [(cls, overridden(slot.strategy, name)) for cls, name in _MARKET_HOOKS]
            # a strategy reading other venues' markets (smart order routing) names them
            keys = getattr(slot.strategy, "market_keys", None) or [
                (config.venue, symbol) for symbol in config.symbols]
            for venue, symbol in keys:
                for cls, hook in hooks:
                    if hook is not None:
                        routes.setdefault((venue, symbol, cls), []).append((slot, hook))
        self._routes = {key: tuple(entries) for key, entries in routes.items()}
        self._built_subs = {key: tuple(entries) for key, entries in built.items()}
        self._bar_routes = {}
