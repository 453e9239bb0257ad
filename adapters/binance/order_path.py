"""Orders out, and what became of them back in, for a live Binance venue.

`OrderPath` is the order half of `BinanceVenue` (its base class):

- `OrderSubmitted` for this venue becomes `POST /api/v3/order` in its own task
  (the bus handler never waits on the network) whose first step runs in the
  handler, before the task is made (`eager.step_then_task`; `eager.start_now`
  with an aiohttp session): the request is on the socket without an event-loop
  turn, unless its intent still awaits a group's commit
  (`Bus.awaiting_commit`), when the task sends it after. Every request leaves only
  once the bus has made what it has published durable (`BinanceRest.before_send`
  is `Bus.durable`): the intent's fdatasync comes after the request is signed,
  right before it goes. A client order id Binance
  would refuse (`client_ids`) or an order Spot cannot express is rejected here,
  with no request sent. Binance's refusals become `OrderRejected` with its code.
- A placement whose outcome is unknown (timeout, dropped connection, 5xx) is
  never resent: the order is held (account REDUCING) and looked up by client
  order id, backing off (`unresolved.RetryPolicy`), with an `order_unresolved`
  alert once it has been unresolved for `alert_after_s`, repeated every
  `alert_every_s`. A "not found" (-2013) is final only once Binance can no
  longer accept the placement: `recvWindow` (plus a margin for the clock
  estimate) after the request's timestamp. -2026 (archived: canceled or
  expired with nothing executed) ends it as `OrderCanceled`.
- `CancelOrder` becomes `DELETE /api/v3/order` by client order id. A lost
  answer is retried with backoff while the order is open here (a cancel by
  client id is idempotent). -2011 is published as `CancelRejected`, then the
  order is looked up, since Binance no longer holds it open and its end may not
  have reached us; -2026 is its end. A cancel the OMS holds pending that
  reconciliation finds still open at Binance (the process died before Binance
  answered) is sent again (`resend_pending_cancels`).
- Everything learnt goes through `publish_orders`: only what the OMS does not
  hold yet is published, so the stream, REST answers and look-ups double nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import aiohttp
import structlog

from adapters.binance.client_ids import client_order_id_problem, valid_client_order_id
from adapters.binance.errors import BinanceError
from adapters.binance.order_query import submitted_order_query
from adapters.binance.reconcile import (
    ARCHIVED,
    NOT_FOUND,
    archived,
    ended_unseen,
    order_trades,
    resolve_order,
)
from adapters.binance.rest import BinanceRest, UnknownOutcome
from adapters.binance.rest_events import order_events
from adapters.binance.unresolved import LookupAlerts, Retry, RetryPolicy
from adapters.binance.user_stream import UserStreamTranslator
from events.base import Event
from events.bus import Bus
from events.orders import (
    AmendOrder,
    AmendRejected,
    CancelOrder,
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)
from events.state import BalanceChanged

log = structlog.get_logger("tapeloop.binance")

# What a request may end with when no answer came back (aiohttp's connection
# errors are not all OSErrors: a dropped connection is ServerDisconnectedError).
TRANSPORT_ERRORS = (OSError, TimeoutError, aiohttp.ClientError)
CANCEL_REJECTED = -2011
# Binance accepts a timestamp up to 1 s ahead of its clock, and our estimate of
# that clock is only as good as a round trip: wait this much past recvWindow.
CLOCK_MARGIN_MS = 1000


def order_params(e: OrderSubmitted) -> dict[str, Any]:
    """Our order as Binance Spot `POST /api/v3/order` parameters; ValueError
    for what Spot cannot express."""
    tif = e.time_in_force
    if e.order_type == "MARKET":
        return {"type": "MARKET", "quantity": e.qty}
    if tif not in ("GTC", "IOC", "FOK"):
        raise ValueError(f"time_in_force {tif} is not available on Binance Spot")
    if e.order_type == "LIMIT":
        if e.post_only:
            return {"type": "LIMIT_MAKER", "quantity": e.qty, "price": e.price}
        return {"type": "LIMIT", "quantity": e.qty, "price": e.price, "time_in_force": tif}
    if e.order_type == "STOP_MARKET":
        return {"type": "STOP_LOSS", "quantity": e.qty, "stop_price": e.trigger_price}
    if e.order_type == "STOP_LIMIT":
        return {"type": "STOP_LOSS_LIMIT", "quantity": e.qty, "price": e.price,
                "stop_price": e.trigger_price, "time_in_force": tif}
    raise ValueError(f"order type {e.order_type} is not supported by the Binance Spot adapter")


class OrderPath(LookupAlerts):
    """The order half of `BinanceVenue`; see the module docstring. The venue
    sets the attributes below and calls `_init_order_path()`."""

    log_prefix = "binance"  # its log lines: binance.order_lookup_failed, binance.alert
    # our order as the venue's order parameters (USD-M's venue has its own)
    order_params = staticmethod(order_params)

    name: str
    rest: BinanceRest
    translator: UserStreamTranslator
    oms: Any
    risk: Any
    bus: Bus  # its grouped(): one commit for the events of one answer
    publish: Callable[[Event], object]
    now_ns: Callable[[], int]
    alert: Callable[..., object] | None  # alert(kind, message, **context), from the kernel
    retry_policy: RetryPolicy
    balances: dict[str, tuple[Decimal, Decimal]]  # asset -> (free, locked), last recorded
    _spawn: Callable[..., None]  # (coroutine, *, now=False): the venue's task

    def _init_order_path(self) -> None:
        self.in_flight: set[str] = set()  # client ids with a placement awaiting its answer
        self._unresolved: set[str] = set()  # orders being looked up
        self._heard: set[str] = set()  # of those, the ones Binance has reported since
        self._cancelling: set[str] = set()  # client ids with a cancel on its way
        # set when the venue's run() ends: nothing is sent any more, no task outlives it
        self._stopped = False

    # -- requests from the bus ------------------------------------------------------------

    def _on_submitted(self, e: OrderSubmitted) -> None:
        if e.venue == self.name and (not self._stopped or not self._unsent(e)):
            self.in_flight.add(e.client_order_id)
            # The request goes out from here, unless the intent still waits for
            # its commit (see `Bus.awaiting_commit`): then from its task, after it.
            self._spawn(self._place(e), now=not self.bus.awaiting_commit)

    def _on_cancel(self, e: CancelOrder) -> None:
        if e.venue == self.name and not self._unsent(e):
            self._spawn(self._cancel(e), now=not self.bus.awaiting_commit)

    def _unsent(self, e: OrderSubmitted | CancelOrder) -> bool:
        """True (and a log line) when the venue has stopped: the request stays as the
        journal holds it, and the next start's reconciliation settles the order."""
        if self._stopped:
            log.warning("binance.not_sent_stopped", venue=self.name, request=type(e).__name__,
                        client_order_id=e.client_order_id)
        return self._stopped

    def _on_amend(self, e: AmendOrder) -> None:
        if e.venue == self.name:
            now = self.now_ns()
            self.publish(AmendRejected(
                ts_event=now, ts_recv=now, venue=e.venue, symbol=e.symbol,
                strategy_id=e.strategy_id, client_order_id=e.client_order_id,
                reason="amend is not supported on Binance Spot: cancel and place anew"))

    # -- placing --------------------------------------------------------------------------

    async def _place(self, e: OrderSubmitted) -> None:
        cid = e.client_order_id
        try:
            problem = None if valid_client_order_id(cid) else client_order_id_problem(cid)
            if problem is not None:
                self._reject(e, f"client order id {cid!r} cannot be sent to Binance: {problem}",
                             "")
                return
            # Spot's usual orders: the query straight from the event (what the
            # parameters below would give, tests/adapters/binance/test_order_query.py)
            query = submitted_order_query(e) if self.order_params is order_params else None
            if query is not None:
                resp = await self.rest.place_order(query, cid)
            else:
                try:
                    params = self.order_params(e)
                except ValueError as exc:
                    self._reject(e, str(exc), "")
                    return
                resp = await self.rest.new_order(e.symbol, e.side, new_client_order_id=cid,
                                                 new_order_resp_type="FULL", **params)
        except UnknownOutcome as exc:
            log.warning("binance.order_unknown_outcome", venue=self.name, client_order_id=cid,
                        error=str(exc))
            self.in_flight.discard(cid)
            sent_ms = exc.timestamp_ms if exc.timestamp_ms is not None \
                else self.rest.server_time_ms()
            await self._resolve(e, sent_ms)
            return
        except BinanceError as exc:
            self._reject(e, exc.msg or str(exc), str(exc.code if exc.code is not None
                                                      else exc.status))
            return
        finally:
            self.in_flight.discard(cid)
        await self._publish_answer(resp)

    async def _publish_answer(self, resp: dict[str, Any]) -> None:
        """What a placement's or a cancel's answer shows. An answer that reports
        more executed than the fills we hold, without listing them (a cancel's,
        a USD-M placement's), is completed with the order's trades first: the
        stream's report of those fills may have been lost, and once the answer
        closes the order no reconciliation would look for them again."""
        order = self.oms.orders.get(resp.get("clientOrderId", ""))
        executed = Decimal(str(resp.get("executedQty", "0")))
        trades: list[dict[str, Any]] = []
        if order is not None and executed > order.filled_qty and not resp.get("fills"):
            try:
                trades = await order_trades(self.rest, resp["symbol"], int(resp["orderId"]))
            except (BinanceError, *TRANSPORT_ERRORS) as exc:
                log.warning("binance.trades_lookup_failed", venue=self.name,
                            client_order_id=order.client_order_id, error=str(exc))
                self._spawn(self._look_up(order.client_order_id))
        self.publish_orders(order_events(self.translator, resp, self.now_ns(), trades))

    def _reject(self, e: OrderSubmitted, reason: str, code: str) -> None:
        now = self.now_ns()
        self.publish(OrderRejected(
            ts_event=now, ts_recv=now, venue=e.venue, symbol=e.symbol, strategy_id=e.strategy_id,
            client_order_id=e.client_order_id, reason=reason, check="venue", code=code,
            side=e.side, order_type=e.order_type, qty=e.qty))

    async def _resolve(self, e: Any, sent_ms: int | None = None) -> None:
        """Look up an order whose outcome is unknown until Binance says what
        became of it; never resend it. The account is REDUCING meanwhile.

        `sent_ms`: for a placement whose answer was lost, its request's
        timestamp (server clock). Then a -2013 is final only for a look-up sent
        once recvWindow (+ `CLOCK_MARGIN_MS`) has passed since: before that
        the placement may still reach the engine. And the user stream's first
        report of the order settles it too."""
        cid = e.client_order_id
        not_found_final_ms = 0 if sent_ms is None \
            else sent_ms + self.rest.recv_window_ms + CLOCK_MARGIN_MS
        key = f"{self.name}:order:{cid}"
        loop = asyncio.get_running_loop()
        retry = Retry(self.retry_policy, loop.time())
        resolved = False
        self._unresolved.add(cid)
        self.risk.hold(key, f"order {cid} on {self.name}: outcome unknown")
        try:
            while True:
                await asyncio.sleep(retry.next_delay())
                if sent_ms is not None and cid in self._heard:
                    resolved = True
                    log.info("binance.order_resolved", venue=self.name, client_order_id=cid,
                             outcome="reported by the user stream", attempts=retry.attempts)
                    return
                asked_ms = self.rest.server_time_ms()
                try:
                    found = await resolve_order(self.rest, self.translator, e, self.now_ns)
                except BinanceError as exc:
                    if exc.code == NOT_FOUND and asked_ms < not_found_final_ms:
                        error = f"{exc} (not final yet: the placement may still arrive)"
                    else:
                        end = ended_unseen(e, exc, self.now_ns(),
                                           "placement outcome unknown; not at Binance")
                        if end is not None:
                            resolved = True
                            self.publish_orders([end])
                            log.info("binance.order_resolved", venue=self.name,
                                     client_order_id=cid, outcome=type(end).__name__,
                                     code=exc.code, attempts=retry.attempts + 1)
                            return
                        error = str(exc)
                except TRANSPORT_ERRORS as exc:
                    error = repr(exc)
                else:
                    resolved = True
                    self.publish_orders(found.events)
                    log.info("binance.order_resolved", venue=self.name, client_order_id=cid,
                             events=len(found.events), attempts=retry.attempts + 1)
                    return
                self._lookup_failed(retry, e, error, loop.time())
        finally:
            self._unresolved.discard(cid)
            self._heard.discard(cid)
            self.risk.release(key, f"order {cid} resolved")
            if retry.alerts and resolved:
                self._alert("order_resolved", f"order {cid} on {self.name}: resolved after "
                            f"{retry.elapsed(loop.time()):.0f} s", severity="info",
                            key=f"{self.name}:{cid}", venue=self.name, client_order_id=cid)

    # -- cancelling -----------------------------------------------------------------------

    async def _cancel(self, e: Any) -> None:
        """Cancel `e` (a `CancelOrder`, or the OMS order whose cancel is resent)
        by client order id; see the module docstring."""
        cid = e.client_order_id
        if cid in self._cancelling:
            return  # the cancel on its way settles it
        self._cancelling.add(cid)
        loop = asyncio.get_running_loop()
        retry = Retry(self.retry_policy, loop.time())
        try:
            while True:
                try:
                    resp = await self.rest.cancel_order(e.symbol, cid)
                except BinanceError as exc:
                    if exc.category != "unknown":
                        await self._cancel_refused(e, exc)
                        return
                    error = str(exc)
                except TRANSPORT_ERRORS as exc:
                    error = repr(exc)
                else:
                    resp = {**resp, "clientOrderId": resp.get("origClientOrderId", cid)}
                    await self._publish_answer(resp)
                    return
                retry.failed(loop.time())
                log.warning("binance.cancel_unknown_outcome", venue=self.name,
                            client_order_id=cid, attempt=retry.attempts,
                            retry_s=retry.upcoming, error=error)
                await asyncio.sleep(retry.next_delay())
                order = self.oms.orders.get(cid)
                if order is None or not order.is_open:
                    return  # it ended meanwhile (the stream said so): nothing to cancel
        finally:
            self._cancelling.discard(cid)

    async def _cancel_refused(self, e: Any, exc: BinanceError) -> None:
        if exc.code == ARCHIVED:
            self.publish_orders([archived(e, self.now_ns())])
            return
        now = self.now_ns()
        self.publish(CancelRejected(
            ts_event=now, ts_recv=now, venue=e.venue, symbol=e.symbol,
            strategy_id=e.strategy_id, client_order_id=e.client_order_id,
            reason=exc.msg or str(exc), code=str(exc.code)))
        if exc.code == CANCEL_REJECTED:
            await self._look_up(e.client_order_id)

    async def _look_up(self, cid: str) -> None:
        """Learn how an order Binance no longer holds open ended (filled,
        canceled, expired, archived), in case the stream's report was lost."""
        order = self.oms.orders.get(cid)
        if order is None or not order.is_open or cid in self._unresolved \
                or cid in self.in_flight:
            return
        try:
            found = await resolve_order(self.rest, self.translator, order, self.now_ns)
        except BinanceError as exc:
            if exc.code == ARCHIVED:
                self.publish_orders([archived(order, self.now_ns())])
            else:  # the next reconciliation looks again
                log.warning("binance.order_lookup_failed", venue=self.name,
                            client_order_id=cid, error=str(exc))
            return
        except TRANSPORT_ERRORS as exc:
            log.warning("binance.order_lookup_failed", venue=self.name, client_order_id=cid,
                        error=repr(exc))
            return
        self.publish_orders(found.events)

    def resend_pending_cancels(self, open_at_binance: Iterable[str]) -> None:
        """Send again the cancel of every order the OMS holds with a cancel
        pending that Binance still has open (its answer never reached us, e.g.
        the process died first)."""
        for cid in open_at_binance:
            order = self.oms.orders.get(cid)
            if order is not None and order.is_open and order.cancel_pending \
                    and cid not in self._cancelling:
                log.info("binance.cancel_resent", venue=self.name, client_order_id=cid)
                self._spawn(self._cancel(order))

    # -- what became of them --------------------------------------------------------------

    def publish_orders(self, events: Iterable[Event]) -> None:
        """Publish what the OMS does not hold yet; events of foreign orders are dropped.
        One answer's events share one journal commit (`Bus.grouped`)."""
        with self.bus.grouped():
            self._publish_orders(events)

    def _publish_orders(self, events: Iterable[Event]) -> None:
        oms = self.oms
        for event in events:
            if type(event) is BalanceChanged:
                b: Any = event
                self.balances[b.currency] = (b.free, b.locked)
                self.publish(event)
                continue
            order = oms.orders.get(getattr(event, "client_order_id", ""))
            if order is None:
                log.info("binance.foreign_order_event", kind=type(event).__name__,
                         client_order_id=getattr(event, "client_order_id", ""))
                continue
            cls = type(event)
            if cls is Fill and oms.has_fill(self.name, event.symbol,  # type: ignore[attr-defined]
                                            event.trade_id):  # type: ignore[attr-defined]
                continue
            if cls is OrderAccepted and order.accepted:
                continue  # (an ack after an inferred rejection still goes: it re-opens it)
            if cls in (OrderCanceled, OrderExpired, OrderRejected) and not order.is_open:
                continue
            self.publish(event)
            if order.client_order_id in self._unresolved:
                self._heard.add(order.client_order_id)
