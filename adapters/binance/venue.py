"""A live Binance Spot venue on the bus: market data in, orders out, fills back.

`BinanceVenue` wires the pieces of this package to a running node:

- Market data: one combined-stream connection (`MarketDataStream`) per venue.
  Trades and quotes go straight to the bus. Diff-depth events pass through a
  `BookSync` per symbol: only deltas that apply to a synced book are
  published, a `BookSnapshot` of the synced book is published whenever the
  sync (re)starts from a REST snapshot, and a sequence gap triggers a resync
  (`VenueStatus` resyncing). A stale or lost feed holds the account REDUCING
  until messages flow again.
- Orders (`adapters.binance.order_path`, the base class): `OrderSubmitted` /
  `CancelOrder` for this venue become REST calls, each in its own task (the
  bus handler never waits on the network; the task's first step, up to the
  hand-off to the HTTP transport, runs in the handler). A placement whose outcome is
  unknown is never resent: the order is held (account REDUCING) and looked up
  by client order id, backing off, with an `order_unresolved` alert once it
  has been unresolved for `unresolved_alert_after_s`. Binance's refusals
  become `OrderRejected` / `CancelRejected` with its code.
- Fills and order states come from the WS-API user stream and from REST
  answers, both through one `UserStreamTranslator`; an event the OMS already
  holds (a fill by trade id, a repeated acceptance) is not published again, so
  restarts and replays of the stream double nothing.
- Reconciliation (`adapters.binance.reconcile`) runs on every user-stream
  (re)subscription; until the first one succeeds the risk engine refuses every
  order for this venue. A cancel still pending for an order Binance has open
  is sent again. With `trade = false` only market data is recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import msgspec
import structlog

from adapters.binance.book import Action, BookSync
from adapters.binance.eager import start_now, step_then_task
from adapters.binance.endpoints import Endpoints
from adapters.binance.errors import BinanceError
from adapters.binance.market_ws import MarketDataStream
from adapters.binance.order_path import (
    CLOCK_MARGIN_MS,
    TRANSPORT_ERRORS,
    OrderPath,
    order_params,
)
from adapters.binance.parse import parse_depth_snapshot
from adapters.binance.ratelimit import RateLimiter
from adapters.binance.reconcile import reconcile
from adapters.binance.rest import BinanceRest
from adapters.binance.signing import Credentials
from adapters.binance.unresolved import RetryPolicy
from adapters.binance.user_stream import UserStreamTranslator
from adapters.binance.user_ws import UserDataStream
from adapters.venue import AlertHook, VenueState
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.market import BookDelta, BookSnapshot
from events.orders import AmendOrder, CancelOrder, OrderSubmitted
from events.system import CONNECTED, RESYNCING, VenueStatus

log = structlog.get_logger("tapeloop.binance")

RECONCILE_RETRY_S = 2.0

__all__ = ["BinanceVenue", "order_params"]


class BinanceVenue(OrderPath):
    """One Binance Spot account and its symbols on the bus; see the module docstring."""

    def __init__(self, name: str, instruments: list[Instrument], bus: Bus, *,
                 endpoints: Endpoints, credentials: Credentials | None, oms: Any, risk: Any,
                 trade: bool = True, streams: list[str] | tuple[str, ...] | None = None,
                 depth_limit: int = 1000, stale_after_s: float = 10.0,
                 recv_window_ms: int = 5000, now_ns: Callable[[], int] = time.time_ns,
                 unresolved_alert_after_s: float = 30.0,
                 retry_policy: RetryPolicy | None = None) -> None:
        """`unresolved_alert_after_s`: alert once an order's outcome has been
        unknown this long. `retry_policy`: the pace of look-ups and resent
        cancels (1 s doubling to 30 s) and of repeated alerts (every 300 s)."""
        if trade and credentials is None:
            raise ValueError(f"venue {name!r} trades but has no credentials")
        self.name = self.venue = name
        self.bus = bus
        self.publish = bus.publish
        self.oms = oms
        self.risk = risk
        self.trade = trade
        self.now_ns = now_ns
        self.endpoints = endpoints
        self.symbols = [i.symbol for i in instruments]
        self.instruments = {i.symbol: i for i in instruments}
        self.critical = trade  # a trading venue that stops running stops the daemon
        self.rest = BinanceRest(endpoints.rest, credentials, recv_window_ms=recv_window_ms)
        self.translator = UserStreamTranslator(name)
        kinds = streams or ["trade", "bookTicker", "depth@100ms"]
        names = [f"{s.lower()}@{k}" for s in self.symbols for k in kinds]
        self.books = {s: BookSync("spot") for s in self.symbols
                      if any(k.startswith("depth") and not k[5:6].isdigit() for k in kinds)}
        self.depth_limit = depth_limit
        self.market = MarketDataStream(endpoints.streams, names, name, self._on_market,
                                       stale_after_s=stale_after_s, now_ns=now_ns)
        self.user: UserDataStream | None = None
        if trade:
            assert credentials is not None
            self.user = UserDataStream(
                endpoints.ws_api, credentials, name, self._on_user_frame, self._on_subscribed,
                self.publish, now_ms=self.rest.server_time_ms, recv_window_ms=recv_window_ms,
                on_clock_error=self._resync_clock)
            risk.block_venue(name, f"{name}: not reconciled with Binance yet")
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}
        # alert(kind, message, **context): set by the kernel (daemon.alerts)
        self.alert: AlertHook | None = None
        self.reconciled = 0  # successful reconciliation passes
        self._started_ms: int | None = None  # server clock once we learnt it
        self.retry_policy = dataclasses.replace(retry_policy or RetryPolicy(),
                                                alert_after_s=unresolved_alert_after_s)
        self._init_order_path()
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._market_down = False  # the market stream dropped since it last connected
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle (the adapters.venue.Venue port) ------------------------------------

    @property
    def rest(self) -> BinanceRest:
        """The REST client; one set here sends nothing before the bus has made
        the events published so far durable (`Bus.durable`, see events.bus)."""
        return self._rest

    @rest.setter
    def rest(self, rest: BinanceRest) -> None:
        rest.before_send = getattr(self.bus, "durable", None)
        self._rest = rest

    @property
    def ready(self) -> bool:
        """Strategies may start: a trading account has reconciled with Binance
        once; a record-only venue trades nothing and waits for nothing."""
        return not self.trade or self.reconciled > 0

    def status(self) -> VenueState:
        """The market stream's status ("connecting" before its first), the
        reconnections of both streams, the reconciliation passes."""
        user = self.user.reconnects if self.user is not None else 0
        return VenueState(status=self.market.status or "connecting",
                          reconnects=self.market.reconnects + user, reconciled=self.reconciled)

    def credentials_refused(self, error: BaseException) -> bool:
        """Binance refused the key, the signature or a permission (category
        "auth"), also inside the ExceptionGroup of `run()`'s task group."""
        if isinstance(error, BaseExceptionGroup):
            return any(self.credentials_refused(e) for e in error.exceptions)
        return isinstance(error, BinanceError) and error.category == "auth"

    def subscribe(self, bus: Bus) -> None:
        if self.trade:
            bus.subscribe(OrderSubmitted, self._on_submitted)
            bus.subscribe(CancelOrder, self._on_cancel)
            bus.subscribe(AmendOrder, self._on_amend)

    async def run(self) -> None:
        try:
            if self.trade:
                await self._prepare()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.market.run(), name=f"{self.name}-market")
                if self.user is not None:
                    tg.create_task(self.user.run(), name=f"{self.name}-user")
        finally:
            self._stopped = True  # no new request from here on (see `_spawn`)
            # a request finishing meanwhile may still start another: until none is left
            while tasks := [t for t in (*self._tasks, *self._snapshot_tasks.values())
                            if not t.done()]:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await self.rest.close()

    async def _prepare(self) -> None:
        """Learn the server clock, the symbols' filters and the account's rate
        limits; retried with backoff until Binance answers."""
        delay = 0.5
        while True:
            try:
                await self.rest.sync_time()
                instruments, limits = await self.rest.exchange_info(self.name)
                break
            except (BinanceError, *TRANSPORT_ERRORS) as exc:
                log.warning("binance.unreachable", venue=self.name, rest=self.endpoints.rest,
                            error=str(exc) or repr(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        log.info("binance.clock", venue=self.name, offset_ms=self.rest.offset_ms)
        self._started_ms = self.rest.server_time_ms()
        if limits:
            self.rest.limiter = RateLimiter(limits)
        theirs = {i.symbol: i for i in instruments}
        for symbol, ours in self.instruments.items():
            inst = theirs.get(symbol)
            if inst is None:
                log.error("binance.unknown_symbol", venue=self.name, symbol=symbol)
                continue
            for key in ("tick_size", "step_size", "min_notional", "status"):
                if getattr(inst, key) != getattr(ours, key):
                    log.warning("binance.instrument_mismatch", venue=self.name, symbol=symbol,
                                key=key, config=str(getattr(ours, key)),
                                binance=str(getattr(inst, key)))
            if inst.status != ours.status:
                # Binance decides whether a symbol trades (TRADING, CANCEL_ONLY, HALTED)
                self.risk.update_instrument(msgspec.structs.replace(ours, status=inst.status))

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let the requests already started (e.g. the cancels strategies send as
        they stop) reach Binance before the venue is stopped."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    @property
    def idle(self) -> bool:
        """No request, look-up or resent cancel of ours is under way: every
        order's outcome is known (what Binance says next, it says unasked)."""
        return not (self._tasks or self.in_flight or self._unresolved or self._cancelling)

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, now: bool = False) -> None:
        """Run `coro` as one of the venue's tasks; `now`: its first step at once,
        here: an order's request goes out from the bus handler. On the REST client's
        own transport that step needs no task, and its task is made after it
        (`eager.step_then_task`); an aiohttp session's request timer needs one
        (`eager.start_now`)."""
        if self._stopped:  # a look-up or resent cancel after the stop: nothing outlives run()
            coro.close()
            return
        if not now:
            task = asyncio.get_running_loop().create_task(coro)
        elif self.rest.own_transport:
            task = step_then_task(coro)
        else:
            task = start_now(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- market data -------------------------------------------------------------------

    def _on_market(self, event: Event) -> None:
        if type(event) is BookDelta:
            sync = self.books.get(event.symbol)  # type: ignore[attr-defined]
            if sync is None:
                return
            action = sync.on_delta(event)  # type: ignore[arg-type]
            if action is Action.APPLIED:
                self.publish(event)
            elif action is Action.NEED_SNAPSHOT or action is Action.BUFFERED:
                if action is Action.NEED_SNAPSHOT:
                    self._status(RESYNCING, f"{event.symbol} depth gap: resyncing")  # type: ignore[attr-defined]
                self._want_snapshot(event.symbol)  # type: ignore[attr-defined]
            return
        if type(event) is VenueStatus:
            key = f"{self.name}:feed"
            if event.status == CONNECTED:  # type: ignore[attr-defined]
                self.risk.release(key, f"{self.name} market data flowing")
                if self._market_down:
                    # Diffs were lost while disconnected: rebuild every book
                    # from a fresh snapshot rather than wait for a gap to show.
                    self._market_down = False
                    for symbol, sync in self.books.items():
                        sync.reset()
                        self._want_snapshot(symbol)
            elif event.reason not in ("stopped", "cancelled"):  # type: ignore[attr-defined]
                self._market_down = self._market_down or event.status != RESYNCING  # type: ignore[attr-defined]
                self.risk.hold(key, f"{self.name} market data {event.status}: "  # type: ignore[attr-defined]
                               f"{event.reason}")  # type: ignore[attr-defined]
        self.publish(event)

    def _status(self, status: str, reason: str) -> None:
        now = self.now_ns()
        self.publish(VenueStatus(ts_event=now, ts_recv=now, venue=self.name, status=status,
                                 reason=reason))

    def _want_snapshot(self, symbol: str) -> None:
        task = self._snapshot_tasks.get(symbol)
        if task is None or task.done():
            self._snapshot_tasks[symbol] = asyncio.get_running_loop().create_task(
                self._sync_book(symbol))

    async def _sync_book(self, symbol: str) -> None:
        sync = self.books[symbol]
        delay = 0.1
        while sync.needs_snapshot():
            try:
                raw = await self.rest.depth(symbol, self.depth_limit)
            except (BinanceError, *TRANSPORT_ERRORS) as exc:
                log.warning("binance.snapshot_failed", venue=self.name, symbol=symbol,
                            error=str(exc))
            else:
                snap = parse_depth_snapshot(raw, self.name, self.now_ns(), symbol)
                if sync.on_snapshot(snap) is Action.APPLIED:
                    book = sync.book
                    bids, asks = book.levels("bid"), book.levels("ask")
                    now = self.now_ns()
                    self.publish(BookSnapshot(
                        ts_event=now, ts_recv=now, venue=self.name, symbol=symbol,
                        bid_prices=[p for p, _ in bids], bid_sizes=[q for _, q in bids],
                        ask_prices=[p for p, _ in asks], ask_sizes=[q for _, q in asks],
                        last_update_id=sync.last_update_id))
                    self._status(CONNECTED, f"{symbol} book synced at {sync.last_update_id}")
                    return
            await asyncio.sleep(delay)  # the stream has not caught up with the snapshot yet
            delay = min(delay * 2, 5.0)

    # -- fills and states in --------------------------------------------------------------

    def _on_user_frame(self, raw: bytes, ts_recv: int) -> None:
        try:
            events = self.translator.translate(raw, ts_recv)
        except Exception as exc:  # msgspec errors: a bad payload never kills the stream
            log.warning("binance.bad_user_event", venue=self.name, error=str(exc),
                        payload=raw[:200].decode("utf-8", "replace"))
            return
        self.publish_orders(events)
        for delta in self.translator.drain_balance_deltas():
            log.info("binance.balance_delta", venue=self.name, currency=delta.currency,
                     delta=str(delta.delta))

    async def _resync_clock(self) -> None:
        await self.rest.sync_time()

    async def _on_subscribed(self, session: int) -> None:
        """Reconcile after each (re)subscription; only then may orders flow."""
        delay = RECONCILE_RETRY_S
        while True:
            try:
                outcome = await reconcile(
                    self.rest, self.translator, self.name, self._our_open(), self.symbols,
                    self.balances, self.now_ns, self.in_flight | self._unresolved,
                    not_found_final_ms=self._placements_dead_ms(),
                    server_ms=self.rest.server_time_ms)
            except (BinanceError, *TRANSPORT_ERRORS) as exc:
                log.warning("binance.reconcile_failed", venue=self.name, session=session,
                            error=str(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            break
        self.publish_orders(outcome.events)
        for line in outcome.diff:
            log.warning("binance.reconcile_diff", venue=self.name, diff=line)
        if outcome.diff and self.alert is not None:
            self.alert("reconcile_diff", f"{len(outcome.diff)} differences with Binance: "
                       + "; ".join(outcome.diff[:5]), venue=self.name, session=session)
        for cid in outcome.foreign:
            self.oms.note_id(cid)  # our next ids go past any that look like ours
        for cid in outcome.unresolved:
            if cid not in self._unresolved:
                self._spawn(self._resolve(self.oms.orders[cid], sent_ms=self._started_ms))
        self.resend_pending_cancels(outcome.still_open)
        self.reconciled += 1
        log.info("binance.reconciled", venue=self.name, session=session,
                 differences=len(outcome.diff), unresolved=len(outcome.unresolved))
        self.risk.unblock_venue(self.name)

    def _placements_dead_ms(self) -> int:
        """When every placement an earlier process may have sent is dead (server
        clock): it sent them before we started, and Binance refuses a request more
        than recvWindow after its timestamp."""
        if self._started_ms is None:
            return 0
        return self._started_ms + self.rest.recv_window_ms + CLOCK_MARGIN_MS

    def _our_open(self) -> list[Any]:
        return [o for o in self.oms.open_orders() if o.venue == self.name]
