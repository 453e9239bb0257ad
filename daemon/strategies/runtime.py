"""The strategy runtime: loads strategies, drives their lifecycle, isolates failures.

Owns each strategy's lifecycle (add → start → stop/remove, or failed), the
routing of each strategy's own order events to `on_order`/`on_fill` (by
`strategy_id`), strategy timers and state files. Market data and bars are routed
by `routing.MarketRouter` (a dict from `(venue, symbol, event class)` to bound
hooks; see there, also for how each strategy could later sit behind its own
bounded inbox in live runs).

Start failures. A strategy whose construction, state file, seeding or `on_start`
raises is FAILED (reported as below); `start()` returns these failures so the
kernel can refuse the start (`[daemon] on_strategy_error`). `add(...,
keep_failed=True)` keeps a strategy whose construction raised as a failed slot,
reported when the runtime starts, instead of raising.

Isolation. A hook that raises stops that strategy only: it leaves every route,
its timers are cancelled, its open orders are cancelled (`cancel_on_fail`), an
error line is logged and `StrategyStatus(status="failed", reason=repr(exc))`
published; the other strategies keep running. No further hook of a failed
strategy runs (not even `on_stop`: its state may be inconsistent, so neither is
it saved).

Re-entrancy. Hooks invoked outside a bus dispatch (`on_start`, `on_stop`,
`on_timer`) may submit orders that a gateway answers synchronously; order events
arriving meanwhile are held and delivered after the hook returns, as the bus
itself does during a dispatch, so no hook ever runs inside another.

Timers fire through the run's `Clock`; each firing is published as a `Timer`
event (journaled) before `on_timer` runs. Periodic timers re-arm from their
deadline, so they do not drift.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from daemon.config import StrategyConfig
from daemon.logging import get_logger
from daemon.strategies.base import Strategy, StrategyContext
from daemon.strategies.loader import StrategyError, load_strategy
from daemon.strategies.routing import ADDED, FAILED, RUNNING, STOPPED, MarketRouter, Slot
from daemon.trading.api import OrderGateway, PortfolioView
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.market import Bar, BookDelta, BookSnapshot, Quote, Trade
from events.orders import (
    AmendRejected,
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)
from events.system import StrategyStatus, Timer
from replay.clock import Clock

__all__ = ["StartFailure", "StrategyRuntime"]

log = get_logger("tapeloop.strategies")

ORDER_EVENTS: tuple[type[Event], ...] = (
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderCanceled,
    CancelRejected,
    OrderExpired,
    OrderAmended,
    AmendRejected,
    Fill,
)
MARKET_EVENTS: tuple[type[Event], ...] = (Trade, Quote, BookDelta, BookSnapshot)


class StartFailure(NamedTuple):
    """A strategy that did not start: `hook` is "__init__" (construction), "start"
    (seeding positions, its state file) or "on_start"; `error` the exception's repr."""

    strategy_id: str
    hook: str
    error: str


def paper_venue(venue: str) -> str:
    """The name of `venue`'s simulated twin, where `paper = true` strategies trade."""
    return f"{venue}.paper"


class StrategyRuntime:
    """Runs strategies on one bus. `publish` puts an event on the bus (default
    `bus.publish`); `seed_positions(config)` loads a strategy's `initial_positions`
    file into the portfolio (required if any strategy sets one)."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        gateway: OrderGateway,
        portfolio: PortfolioView,
        instruments: Mapping[tuple[str, str], Instrument] | Iterable[Instrument],
        publish: Callable[[Event], object] | None = None,
        *,
        seed_positions: Callable[[StrategyConfig], None] | None = None,
        cancel_on_fail: bool = True,
        publish_timers: bool = True,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.gateway = gateway
        self.portfolio = portfolio
        if isinstance(instruments, Mapping):
            self.instruments: dict[tuple[str, str], Instrument] = dict(instruments)
        else:
            self.instruments = {inst.key: inst for inst in instruments}
        self._publish = publish or bus.publish
        self.seed_positions = seed_positions
        self.cancel_on_fail = cancel_on_fail
        self.publish_timers = publish_timers
        self._slots: dict[str, Slot] = {}  # every added strategy, in add order
        self._running: dict[str, Slot] = {}  # strategy_id -> slot: the order-event route
        self.router = MarketRouter(self._fail, bus.defer)
        self._hold = 0
        self._held: deque[Event] = deque()
        self._started = False

    # -- lifecycle ------------------------------------------------------------------

    def add(self, config: StrategyConfig, *, keep_failed: bool = False) -> Strategy | None:
        """Load, validate and construct a strategy (started at once if the runtime
        runs). Returns None for a disabled one. StrategyError (one line) on any
        problem with its config, and when its construction raises, unless
        `keep_failed`: it is then kept as failed (reported when it would start)."""
        if not config.enabled:
            log.info("strategy.disabled", strategy_id=config.id)
            return None
        if config.id in self._slots:
            raise StrategyError(config.id, "id", "duplicate strategy id")
        for i, symbol in enumerate(config.symbols):
            if (config.venue, symbol) not in self.instruments:
                raise StrategyError(
                    config.id, f"symbols[{i}]",
                    f"no instrument {symbol!r} on venue {config.venue!r}"
                )
        cls, params = load_strategy(
            config, {s: self.instruments[(config.venue, s)] for s in config.symbols})
        if config.initial_positions is not None and self.seed_positions is None:
            raise StrategyError(
                config.id, "initial_positions", "this run cannot seed positions")
        slot: Slot | None = None

        def request_stop(reason: str) -> None:
            assert slot is not None
            self._stop_slot(slot, reason)

        ctx = StrategyContext(
            clock=self.clock,
            gateway=self.gateway,
            portfolio=self.portfolio,
            instruments=self.instruments,
            params=params,
            set_timer=lambda name, at, every: self._set_timer(slot, name, at, every),
            cancel_timer=lambda name: self._cancel_timer(slot, name),
            request_stop=request_stop,
            order_venue=paper_venue(config.venue) if config.paper else None,
        )
        try:
            strategy = cls(config, ctx)
        except Exception as exc:
            if not keep_failed:
                raise StrategyError(
                    config.id, "", f"{config.class_} failed to initialise: {exc!r}"
                ) from None
            # a stand-in that never runs: the slot reports the failure when started
            slot = Slot(config, Strategy(config, ctx))
            slot.init_error = exc
        else:
            slot = Slot(config, strategy)
        self._slots[config.id] = slot
        if self._started:
            self._start_slot(slot)
        return None if slot.init_error is not None else slot.strategy

    def remove(self, strategy_id: str) -> None:
        """Stop a strategy (if running) and forget it."""
        slot = self._slots.pop(strategy_id)
        self._stop_slot(slot, "removed")

    def start(self, *, stop_at_failure: bool = False) -> list[StartFailure]:
        """Subscribe to the bus and start every added strategy, in add order; returns
        those that failed to start. `stop_at_failure`: at the first failure start no
        more (one whose construction failed is found before any starts)."""
        if self._started:
            return []
        self._started = True
        for cls in MARKET_EVENTS:
            self.bus.subscribe(cls, self.router.on_market)
        self.bus.subscribe(Bar, self.router.on_bar)
        for cls in ORDER_EVENTS:
            self.bus.subscribe(cls, self._on_order_event)
        added = [slot for slot in self._slots.values() if slot.state == ADDED]
        broken = [slot for slot in added if slot.init_error is not None]
        failures: list[StartFailure] = []
        for slot in broken if stop_at_failure and broken else added:
            self._start_slot(slot)
            if slot.state == FAILED:
                assert slot.failure is not None
                failures.append(StartFailure(slot.id, *slot.failure))
                if stop_at_failure:
                    break
        return failures

    def stop(self) -> None:
        """Stop every running strategy (on_stop, state saved) and leave the bus."""
        if not self._started:
            return
        for slot in list(self._slots.values()):
            self._stop_slot(slot, "")
        for cls in MARKET_EVENTS:
            self.bus.unsubscribe(cls, self.router.on_market)
        self.bus.unsubscribe(Bar, self.router.on_bar)
        for cls in ORDER_EVENTS:
            self.bus.unsubscribe(cls, self._on_order_event)
        self._started = False

    def flush_bars(self) -> None:
        """End of data: emit every builder's open bar to its strategies."""
        self.router.flush_bars()

    def strategy(self, strategy_id: str) -> Strategy:
        return self._slots[strategy_id].strategy

    def status(self, strategy_id: str) -> str:
        """added | running | stopped | failed"""
        return self._slots[strategy_id].state

    @property
    def strategy_ids(self) -> list[str]:
        return list(self._slots)

    def _start_slot(self, slot: Slot) -> None:
        strategy = slot.strategy
        config = slot.config
        slot.state = RUNNING
        if slot.init_error is not None:
            self._fail(slot, slot.init_error, "__init__")
            return
        try:
            if config.initial_positions is not None and self.seed_positions is not None:
                self.seed_positions(config)
            self._load_state(slot)
            strategy._adopt_open_orders()
        except Exception as exc:
            self._fail(slot, exc, "start")
            return
        self._running[slot.id] = slot
        self.router.rebuild(self._running.values())

        def started() -> None:
            # Before the held answers to on_start's orders: their hooks may stop it.
            if slot.state != RUNNING:
                return  # it stopped itself in on_start
            log.info("strategy.started", strategy_id=slot.id, cls=config.class_)
            self._status(slot.id, RUNNING)

        self._call_held(slot, strategy.on_start, None, "on_start", then=started)

    def _stop_slot(self, slot: Slot, reason: str) -> None:
        if slot.state != RUNNING:
            return

        def stopped() -> None:
            # Before the held answers to on_stop's cancels: nothing reaches it after on_stop.
            slot.state = STOPPED
            self._leave(slot)
            try:
                self._save_state(slot)
            except Exception as exc:
                log.error("strategy.state_save_failed", strategy_id=slot.id, error=repr(exc))
            log.info("strategy.stopped", strategy_id=slot.id, reason=reason)
            self._status(slot.id, STOPPED, reason)

        # A failure in on_stop is reported by _call_held as any other (state not saved).
        self._call_held(slot, slot.strategy.on_stop, None, "on_stop", then=stopped)

    def _leave(self, slot: Slot) -> None:
        self._running.pop(slot.id, None)
        for handle in slot.timers.values():
            self.clock.cancel_timer(handle)
        slot.timers.clear()
        self.router.rebuild(self._running.values())

    def _fail(self, slot: Slot | None, exc: Exception, where: str) -> None:
        if slot is None:
            raise exc  # a bar builder failed: our bug, not a strategy's
        if slot.state != RUNNING:
            return
        slot.state = FAILED
        slot.failure = (where, repr(exc))
        self._leave(slot)
        log.error("strategy.failed", strategy_id=slot.id, hook=where, error=repr(exc), exc_info=exc)
        self._status(slot.id, FAILED, repr(exc))
        if self.cancel_on_fail:
            try:
                for order in self.gateway.open_orders(slot.id):
                    self.gateway.cancel(slot.id, order.client_order_id)
            except Exception as cancel_exc:
                log.error(
                    "strategy.cancel_on_fail_failed", strategy_id=slot.id, error=repr(cancel_exc)
                )

    def _status(self, strategy_id: str, status: str, reason: str = "") -> None:
        now = self.clock.now_ns()
        self._publish(
            StrategyStatus(
                ts_event=now, ts_recv=now, strategy_id=strategy_id, status=status, reason=reason
            )
        )

    # -- state files -------------------------------------------------------------------

    def _load_state(self, slot: Slot) -> None:
        path = slot.config.state_file
        if path is None or not path.exists():
            return
        strategy = slot.strategy
        raw = path.read_bytes()
        state_type = type(strategy).State
        state = (
            msgspec.json.decode(raw)
            if state_type is None
            else msgspec.json.decode(raw, type=state_type)
        )
        strategy.set_state(state)
        log.info("strategy.state_loaded", strategy_id=slot.id, path=str(path))

    def _save_state(self, slot: Slot) -> None:
        path = slot.config.state_file
        if path is None:
            return
        state = slot.strategy.get_state()
        if state is None:
            return
        data = msgspec.json.encode(state)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write aside and rename: a crash mid-write leaves the previous state intact.
        tmp = Path(f"{path}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        log.info("strategy.state_saved", strategy_id=slot.id, path=str(path), bytes=len(data))

    # -- timers ------------------------------------------------------------------------

    def _set_timer(self, slot: Slot | None, name: str, deadline_ns: int, every_ns: int) -> None:
        assert slot is not None
        if slot.state != RUNNING:
            return
        self._cancel_timer(slot, name)
        callback = partial(self._on_timer, slot, every_ns)
        slot.timers[name] = self.clock.set_timer(name, deadline_ns, callback, owner=slot.id)

    def _cancel_timer(self, slot: Slot | None, name: str) -> None:
        assert slot is not None
        handle = slot.timers.pop(name, None)
        if handle is not None:
            self.clock.cancel_timer(handle)

    def _on_timer(self, slot: Slot, every_ns: int, timer: Timer) -> None:
        if slot.state != RUNNING:
            return
        if every_ns:
            # Re-armed from the deadline, not from now: a periodic timer does not drift.
            self._set_timer(slot, timer.name, timer.ts_event + every_ns, every_ns)
        else:
            slot.timers.pop(timer.name, None)
        if self.publish_timers:
            self._publish(timer)
        self._call_held(slot, slot.strategy.on_timer, timer, "on_timer")

    # -- dispatch ----------------------------------------------------------------------

    def _call_held(
        self,
        slot: Slot,
        hook: Callable[..., object],
        arg: Any,
        where: str,
        then: Callable[[], object] | None = None,
    ) -> bool:
        """Run a hook invoked outside a bus dispatch, holding order events until it
        (and `then`, if it succeeded) returned. False if it raised (the strategy is
        then failed)."""
        self._hold += 1
        try:
            try:
                hook() if arg is None else hook(arg)
            except Exception as exc:
                self._fail(slot, exc, where)
                return False
            if then is not None:
                then()
            return True
        finally:
            self._hold -= 1
            if not self._hold and self._held:
                self._drain_held()

    def _drain_held(self) -> None:
        self._hold += 1
        try:
            while self._held:
                self._deliver_order(self._held.popleft())
        finally:
            self._hold -= 1

    def _on_order_event(self, event: Any) -> None:
        if self._hold:
            self._held.append(event)
            return
        self._deliver_order(event)

    def _deliver_order(self, event: Any) -> None:
        slot = self._running.get(event.strategy_id)
        if slot is None:
            return
        is_fill = event.__class__ is Fill
        try:
            slot.strategy._apply_order_event(event)
            hook = slot.on_fill if is_fill else slot.on_order
            if hook is not None:
                hook(event)
        except Exception as exc:
            self._fail(slot, exc, "on_fill" if is_fill else "on_order")
