"""A live venue through ccxt on the bus: market data in, orders out, fills back.

`CcxtVenue` is `BinanceVenue`'s counterpart for any exchange ccxt.pro speaks,
with the same surface for the kernel (`name`, `venue`, `subscribe`, `run`,
`critical`, `reconciled`, `alert`, `market.status`, `market.reconnects`, `drain`,
`idle`). The caller builds the `ccxt.pro` exchange (`exchange`).

- Market data: `adapters.ccxt.market.CcxtMarket`. A stale or lost feed holds the
  account REDUCING until messages flow again.
- Orders: `adapters.ccxt.orders.CcxtOrderPath` (never resent; looked up by
  client id). An exchange where our client id cannot be set and looked up is
  refused for trading at start with one clear line (`trading_problem`).
- Fills and states: `watch_orders` and `watch_my_trades` where the exchange has
  them, else a poll (a reconciliation pass every `poll_s`); everything through
  one `CcxtTranslator`, published only when the OMS does not hold it.
- Reconciliation (`adapters.ccxt.reconcile`) at start, before any order (risk
  blocks the venue until it succeeds), and after every reconnect of the order
  watch: differences are published, one log line each, and an alert.
- `trade = false`: market data only, no keys needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import structlog

from adapters.binance.reconnect import Reconnects
from adapters.binance.unresolved import RetryPolicy
from adapters.ccxt.market import CcxtMarket
from adapters.ccxt.orders import CcxtOrderPath, trading_problem
from adapters.ccxt.reconcile import reconcile
from adapters.ccxt.translate import CcxtTranslator
from adapters.venue import VenueState
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.orders import AmendOrder, CancelOrder, Fill, OrderSubmitted
from events.system import CONNECTED, VenueStatus

log = structlog.get_logger("tapeloop.ccxt")

RECONCILE_RETRY_S = 2.0


class TradingRefused(ValueError):
    """The exchange cannot trade safely through this adapter (one line: the reason)."""


class CredentialsRefused(ConnectionError):
    """The exchange refused our keys: retrying will not help (the kernel exits 5)."""

    category = "auth"  # what the kernel's `_category` reads


class CcxtVenue(CcxtOrderPath):
    """One exchange account and its symbols through ccxt; see the module docstring."""

    def __init__(self, name: str, instruments: list[Instrument], bus: Bus, *, exchange: Any,
                 oms: Any, risk: Any, trade: bool = True, stale_after_s: float = 10.0,
                 unresolved_alert_after_s: float = 30.0,
                 now_ns: Callable[[], int] = time.time_ns,
                 retry_policy: RetryPolicy | None = None,
                 not_found_final_s: float | None = None, poll_s: float = 2.0,
                 kinds: tuple[str, ...] = ("trades", "quotes", "book")) -> None:
        """`not_found_final_s`: how long after a placement left an "order not
        found" is final (default: the exchange's recvWindow + 1 s, else 60 s)."""
        if trade and (problem := trading_problem(exchange)) is not None:
            raise TradingRefused(f"venue {name!r}: {problem}")
        self.name = self.venue = name
        self.exchange = exchange
        self.bus = bus
        self.publish = bus.publish
        self.oms = oms
        self.risk = risk
        self.trade = trade
        self.now_ns = now_ns
        self.symbols = [i.symbol for i in instruments]
        self.critical = trade
        self.translator = CcxtTranslator(name, self._strategy_of, self._client_id_of)
        # a record-only venue records its perpetuals' marks and funding where
        # ccxt.pro can watch them (binanceusdm's watchMarkPrice)
        marks = [i.symbol for i in instruments if i.perpetual] \
            if not trade and (exchange.has or {}).get("watchMarkPrice") else []
        self.market = CcxtMarket(exchange, name, self.symbols, self._on_market,
                                 stale_after_s=stale_after_s, now_ns=now_ns, kinds=kinds,
                                 marks=marks)
        self.alert: Callable[..., object] | None = None
        self.reconciled = 0
        self.poll_s = poll_s
        if not_found_final_s is None:
            window = exchange.options.get("recvWindow") if exchange.options else None
            not_found_final_s = window / 1000 + 1.0 if isinstance(window, int | float) else 60.0
        self.not_found_final_s = not_found_final_s
        self.retry_policy = dataclasses.replace(retry_policy or RetryPolicy(),
                                                alert_after_s=unresolved_alert_after_s)
        self.balances: dict[str, Decimal] = {}
        self._since_ms: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = 0.0
        self._init_order_path()
        if trade:
            risk.block_venue(name, f"{name}: not reconciled with {exchange.id} yet")

    def _strategy_of(self, cid: str) -> str | None:
        order = self.oms.orders.get(cid)
        return None if order is None or order.venue != self.name else order.strategy_id

    def _client_id_of(self, venue_order_id: str) -> str | None:
        """Our id of an exchange order the OMS knows (rare: a trade of an order
        this process has not heard of yet, so a scan is fine)."""
        for order in self.oms.orders.values():
            if order.venue == self.name and order.venue_order_id == venue_order_id:
                return order.client_order_id  # type: ignore[no-any-return]
        return None

    # -- the Venue protocol (adapters/venue.py) ------------------------------------------

    @property
    def ready(self) -> bool:
        """Strategies may start: a trading account has reconciled with the exchange
        once; a record-only venue trades nothing and waits for nothing."""
        return not self.trade or self.reconciled > 0

    def status(self) -> VenueState:
        """The market feed's status ("connecting" before its first), its
        reconnections, the reconciliation passes."""
        return VenueState(status=self.market.status or "connecting",
                          reconnects=self.market.reconnects, reconciled=self.reconciled)

    def credentials_refused(self, error: BaseException) -> bool:
        """The exchange refused the keys (ccxt's AuthenticationError), also inside
        the ExceptionGroup of `run()`'s task group."""
        if isinstance(error, BaseExceptionGroup):
            return any(self.credentials_refused(e) for e in error.exceptions)
        return _refused_keys(error)

    # -- lifecycle --------------------------------------------------------------------

    def subscribe(self, bus: Bus) -> None:
        if self.trade:
            bus.subscribe(OrderSubmitted, self._on_submitted)
            bus.subscribe(CancelOrder, self._on_cancel)
            bus.subscribe(AmendOrder, self._on_amend)

    async def run(self) -> None:
        self._started = asyncio.get_running_loop().time()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.market.run(), name=f"{self.name}-market")
                if self.trade:
                    tg.create_task(self._orders_loop(), name=f"{self.name}-orders")
        finally:
            self._stopped = True
            while tasks := [t for t in self._tasks if not t.done()]:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await self.exchange.close()
            await _settle_ccxt_tasks(self.exchange)

    async def drain(self, timeout_s: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    @property
    def idle(self) -> bool:
        return not (self._tasks or self.in_flight or self._unresolved or self._cancelling)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._stopped:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- market data ------------------------------------------------------------------

    def _on_market(self, event: Event) -> None:
        if type(event) is VenueStatus:
            key = f"{self.name}:feed"
            if event.status == CONNECTED:  # type: ignore[attr-defined]
                self.risk.release(key, f"{self.name} market data flowing")
            else:
                self.risk.hold(key, f"{self.name} market data {event.status}: "  # type: ignore[attr-defined]
                               f"{event.reason}")  # type: ignore[attr-defined]
        self.publish(event)

    # -- fills and states in ----------------------------------------------------------

    async def _orders_loop(self) -> None:
        """Reconcile, then follow the order and trade watches (or poll); after a
        watch fails, reconcile again before following it anew."""
        has = self.exchange.has
        backoff = Reconnects(budget=10**9)
        settling: asyncio.Task[None] | None = None  # the pass after the watches subscribed
        while True:
            if settling is not None:
                # never cancelled mid-request (a cancelled ccxt call can leave its
                # throttler stuck, and every later request with it): let it finish
                await asyncio.gather(settling, return_exceptions=True)
                if not settling.cancelled() and isinstance(settling.exception(),
                                                           CredentialsRefused):
                    raise settling.exception()  # type: ignore[misc]
                settling = None
            # over REST first: refused keys surface here as ccxt's AuthenticationError
            # (a websocket refusal is often a plain ExchangeError), and a poll needs it
            await self._reconcile(report=has.get("watchOrders") or not self.reconciled)
            if not has.get("watchOrders"):
                await asyncio.sleep(self.poll_s)
                continue
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._watch(self.exchange.watch_orders, self._on_orders))
                    if has.get("watchMyTrades"):
                        tg.create_task(self._watch(self.exchange.watch_my_trades,
                                                   self._on_trades))
                    # and again once the watches are subscribed, so that nothing falls
                    # between a pass and the stream (a fill there was never seen: the
                    # contract's reconnect test found it); what both see comes once.
                    # Not a task of the group: a failing watch must not cancel it
                    # mid-request (it stalled every later request: fills missed while
                    # the stream was down never came, in one full run in three).
                    settling = asyncio.get_running_loop().create_task(
                        self._reconcile_when_subscribed())
                    self._tasks.add(settling)
                    settling.add_done_callback(self._tasks.discard)
            except* Exception as group:
                if any(_refused_keys(e) for e in group.exceptions):
                    raise  # the keys are refused: exit 5, restarting will not help
                delay = backoff.next_delay()
                log.warning("ccxt.order_watch_failed", venue=self.name,
                            error="; ".join(str(e)[:200] or repr(e) for e in group.exceptions),
                            retry_s=round(delay, 3))
                await asyncio.sleep(delay)

    async def _reconcile_when_subscribed(self) -> None:
        await self._streams_subscribed()
        await self._reconcile()

    async def _streams_subscribed(self, timeout_s: float = 5.0) -> None:
        """Until one of ccxt's websocket clients is connected with its watches
        registered and no request of ours (a subscription: a numeric id) unanswered;
        at most `timeout_s` (then the reconciliation runs anyway)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            for client in list(getattr(self.exchange, "clients", {}).values()):
                futures = list(getattr(client, "futures", {}))
                if client.connected.done() and futures \
                        and not any(str(k).isdigit() for k in futures):
                    return
            await asyncio.sleep(0.01)

    async def _watch(self, watch: Callable[..., Any], on: Callable[[list[Any]], None]) -> None:
        while True:
            on(await watch())

    def _on_orders(self, orders: list[dict[str, Any]]) -> None:
        self.publish_orders(self.translator.orders(orders, self.now_ns()))

    def _on_trades(self, trades: list[dict[str, Any]]) -> None:
        events = self.translator.trades(trades, self.now_ns())
        self._note_fills(events)
        self.publish_orders(events)

    def _note_fills(self, events: list[Event]) -> None:
        for e in events:
            if type(e) is Fill:
                ms = e.ts_event // 1_000_000  # type: ignore[attr-defined]
                symbol = e.symbol  # type: ignore[attr-defined]
                self._since_ms[symbol] = max(ms, self._since_ms.get(symbol, 0))

    async def _reconcile(self, report: bool = True) -> None:
        """One reconciliation pass, retried with backoff; then orders may flow.
        `report`: differences are news (log lines, an alert), not so for a poll."""
        delay = RECONCILE_RETRY_S
        while True:
            try:
                our_open = [o for o in self.oms.open_orders() if o.venue == self.name]
                outcome = await reconcile(
                    self.exchange, self.translator, self.name, our_open, self.symbols,
                    self._since_ms, self.balances, self.fetch_by_client_id, self.now_ns,
                    self.in_flight | self._unresolved)
                break
            except Exception as exc:
                if _refused_keys(exc):
                    raise CredentialsRefused(f"{self.exchange.id}: {exc}") from None
                log.warning("ccxt.reconcile_failed", venue=self.name, error=str(exc)[:300],
                            retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        published = self.publish_orders(outcome.events)
        diff = [f"{type(e).__name__} {getattr(e, 'client_order_id', '')}".strip()
                for e in published if report and type(e).__name__ != "BalanceChanged"]
        for line in diff:
            log.warning("ccxt.reconcile_diff", venue=self.name, diff=line)
        if diff and self.alert is not None:
            self.alert("reconcile_diff", f"{len(diff)} differences with {self.exchange.id}: "
                       + "; ".join(diff[:5]), venue=self.name)
        for cid in outcome.unresolved:
            if cid not in self._unresolved:
                self._spawn(self._resolve(self.oms.orders[cid], None))
        self.resend_pending_cancels(outcome.still_open)
        if not self.reconciled:
            log.info("ccxt.reconciled", venue=self.name, exchange=self.exchange.id,
                     differences=len(diff), unresolved=len(outcome.unresolved))
        self.reconciled += 1
        self.risk.unblock_venue(self.name)


def _refused_keys(exc: BaseException) -> bool:
    import ccxt

    return isinstance(exc, ccxt.AuthenticationError | CredentialsRefused)


async def _settle_ccxt_tasks(exchange: Any, timeout_s: float = 2.0) -> None:
    """Cancel and wait for the tasks ccxt spawned for `exchange` that its
    `close()` leaves behind (a book snapshot fetch queued on its throttler, the
    throttler's loop), so nothing outlives `run()`."""
    me = asyncio.current_task()
    owners = (exchange, getattr(exchange, "throttler", None))
    pending = []
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        if task is not me and not task.done() and frame is not None \
                and any(frame.f_locals.get("self") is o for o in owners if o is not None):
            task.cancel()
            pending.append(task)
    if pending:
        await asyncio.wait(pending, timeout=timeout_s)


def ccxt_venue(vcfg: Any, bus: Bus, node: Any) -> CcxtVenue:
    """The venue for a `kind = "ccxt"` config entry (the kernel's `make_venue`)."""
    from adapters.ccxt.exchange import build_exchange

    instruments = [i for k, i in node.instruments.items() if k[0] == vcfg.name]
    return CcxtVenue(vcfg.name, instruments, bus, exchange=build_exchange(vcfg),
                     oms=node.oms, risk=node.risk, trade=vcfg.trade,
                     stale_after_s=vcfg.stale_after_s,
                     unresolved_alert_after_s=vcfg.unresolved_alert_after_s)
