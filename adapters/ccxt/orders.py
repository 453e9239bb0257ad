"""Orders out through ccxt, and what became of them back in: the order half of
`CcxtVenue` (its base class).

- `OrderSubmitted` for this venue becomes `create_order(symbol, type, side,
  amount, price, {"clientOrderId": <ours>})` in its own task (the bus handler
  never waits on the network). ccxt unifies `clientOrderId` for the exchanges
  in `CLIENT_ID_LOOKUPS` (binance → newClientOrderId, okx → clOrdId, bybit →
  orderLinkId) and looks orders up by it; any other exchange is refused for
  trading at start (`trading_problem`): kraken keeps only an integer `userref`,
  coinbase cannot fetch by client id, others drop it (ccxt #10692/#7069).
- Outcomes (`outcome_unknown`): a refusal the exchange answered (InvalidOrder,
  InsufficientFunds, BadRequest, AuthenticationError...) is `OrderRejected`.
  Anything else may have reached the matching engine (RequestTimeout,
  NetworkError, ExchangeNotAvailable, a 5xx, a dropped connection, an
  unparseable answer, DuplicateOrderId) and is NEVER resent (ccxt #2599): the
  order is held (account REDUCING) and looked up by client id with backoff, with
  an `order_unresolved` alert once unresolved `unresolved_alert_after_s`.
  RateLimitExceeded/DDoSProtection count as unknown too: ccxt raises them for
  answers the exchange may give after taking the request (Binance -1015 counts
  placements it received), so a look-up decides, never a guess; the venue also
  pauses new requests for the backoff. An "order not found" ends the order as
  rejected only once the placement can no longer arrive (`not_found_final_s`
  after it was sent).
- `CancelOrder` becomes `cancel_order` by client id (idempotent, so a lost
  answer is retried with backoff while the order is open). OrderNotFound is a
  `CancelRejected`, then the order is looked up.
- `AmendOrder` becomes `edit_order` where the exchange amends in place keeping
  the client id (`AMEND_IN_PLACE`); elsewhere (binance's edit is a
  cancel-replace: a new order with a new id) `AmendRejected`.
- Everything learnt goes through `publish_orders`: only what the OMS does not
  hold yet is published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import structlog

from adapters.binance.unresolved import LookupAlerts, Retry, RetryPolicy
from adapters.ccxt.translate import CcxtTranslator, dec
from events.base import Event
from events.orders import (
    AmendOrder,
    AmendRejected,
    CancelOrder,
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)
from events.state import BalanceChanged

log = structlog.get_logger("tapeloop.ccxt")

# exchange id -> extra params ccxt needs to fetch an order by client id
CLIENT_ID_LOOKUPS: dict[str, dict[str, Any]] = {
    "binance": {},
    "okx": {},
    "bybit": {"acknowledged": True},  # ccxt warns fetchOrder only sees the last 500
}
# exchanges whose edit_order amends the order itself, keeping its client id
AMEND_IN_PLACE = frozenset({"okx", "bybit"})
_NEEDED = ("createOrder", "cancelOrder", "fetchOrder", "fetchOpenOrders", "fetchMyTrades")


def trading_problem(exchange: Any) -> str | None:
    """Why orders cannot be sent to `exchange` safely, or None."""
    if exchange.id not in CLIENT_ID_LOOKUPS:
        return (f"exchange {exchange.id!r} cannot trade through tapeloop: ccxt cannot set "
                f"and look up our client order id there (ccxt #10692/#7069), so an order "
                f"whose answer is lost could not be found; use trade = false (record "
                f"only) or one of {', '.join(sorted(CLIENT_ID_LOOKUPS))}")
    missing = [m for m in _NEEDED if not exchange.has.get(m)]
    if missing:
        return f"exchange {exchange.id!r} lacks {', '.join(missing)} in ccxt"
    return None


def outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed placement may still have reached the exchange; see the
    module docstring."""
    import ccxt

    if isinstance(exc, ccxt.DuplicateOrderId):
        return True  # an order with our id is there: find out what it is
    refused = (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest,
               ccxt.AuthenticationError, ccxt.NotSupported, ccxt.ArgumentsRequired,
               ccxt.OperationRejected, ccxt.InvalidAddress)
    return not isinstance(exc, refused)


def order_args(e: OrderSubmitted) -> tuple[str, float | None, dict[str, Any]]:
    """(ccxt order type, price, extra params) for our order; ValueError for what
    this adapter does not send."""
    params: dict[str, Any] = {}
    if e.time_in_force not in ("GTC", "IOC", "FOK"):
        raise ValueError(f"time_in_force {e.time_in_force} is not sent through ccxt")
    if e.order_type == "MARKET":
        return "market", None, params
    if e.order_type != "LIMIT":
        raise ValueError(f"order type {e.order_type} is not supported by the ccxt adapter")
    if e.post_only:
        params["postOnly"] = True
    elif e.time_in_force != "GTC":
        params["timeInForce"] = e.time_in_force
    return "limit", e.price, params  # type: ignore[return-value]


class CcxtOrderPath(LookupAlerts):
    """The order half of `CcxtVenue`; the venue sets the attributes below and
    calls `_init_order_path()`."""

    log_prefix = "ccxt"  # its log lines: ccxt.order_lookup_failed, ccxt.alert

    name: str
    exchange: Any
    translator: CcxtTranslator
    oms: Any
    risk: Any
    publish: Callable[[Event], object]
    now_ns: Callable[[], int]
    alert: Callable[..., object] | None
    retry_policy: RetryPolicy
    not_found_final_s: float
    _started: float  # loop time the venue started (placements before it: an earlier process)
    _spawn: Callable[[Coroutine[Any, Any, Any]], None]

    def _init_order_path(self) -> None:
        self.in_flight: set[str] = set()
        self._unresolved: set[str] = set()
        self._cancelling: set[str] = set()
        self._paused_until = 0.0  # loop time: no request before (rate limited)
        self._stopped = False
        self.lookup_params = CLIENT_ID_LOOKUPS.get(self.exchange.id, {})

    # -- requests from the bus --------------------------------------------------------

    def _on_submitted(self, e: OrderSubmitted) -> None:
        if e.venue == self.name and not self._unsent(e):
            self.in_flight.add(e.client_order_id)
            self._spawn(self._place(e))

    def _on_cancel(self, e: CancelOrder) -> None:
        if e.venue == self.name and not self._unsent(e):
            self._spawn(self._cancel(e))

    def _on_amend(self, e: AmendOrder) -> None:
        if e.venue != self.name:
            return
        if self.exchange.id in AMEND_IN_PLACE and self.exchange.has.get("editOrder"):
            self._spawn(self._amend(e))
            return
        self._amend_rejected(e, f"amend is not supported on {self.exchange.id} through "
                                f"ccxt: cancel and place anew")

    def _unsent(self, e: OrderSubmitted | CancelOrder) -> bool:
        if self._stopped:
            log.warning("ccxt.not_sent_stopped", venue=self.name, request=type(e).__name__,
                        client_order_id=e.client_order_id)
        return self._stopped

    async def _pace(self) -> None:
        """Wait out a rate-limit pause."""
        loop = asyncio.get_running_loop()
        while (left := self._paused_until - loop.time()) > 0:
            await asyncio.sleep(left)

    def _rate_limited(self, exc: BaseException) -> None:
        import ccxt

        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            loop = asyncio.get_running_loop()
            self._paused_until = max(self._paused_until, loop.time() + self.retry_policy.first_s)
            log.warning("ccxt.rate_limited", venue=self.name, error=str(exc)[:200],
                        pause_s=self.retry_policy.first_s)

    # -- placing ----------------------------------------------------------------------

    async def _place(self, e: OrderSubmitted) -> None:
        cid = e.client_order_id
        loop = asyncio.get_running_loop()
        try:
            try:
                kind, price, params = order_args(e)
            except ValueError as exc:
                self._reject(e, str(exc), "")
                return
            await self._pace()
            sent = loop.time()
            try:
                answer = await self.exchange.create_order(
                    e.symbol, kind, e.side.lower(), float(e.qty),
                    None if price is None else float(price), {**params, "clientOrderId": cid})
            except Exception as exc:
                self._rate_limited(exc)
                if not outcome_unknown(exc):
                    self._reject(e, str(exc)[:300] or type(exc).__name__, type(exc).__name__)
                    return
                log.warning("ccxt.order_unknown_outcome", venue=self.name, client_order_id=cid,
                            error=str(exc)[:300] or repr(exc))
                self.in_flight.discard(cid)
                await self._resolve(e, sent)
                return
        finally:
            self.in_flight.discard(cid)
        self.publish_orders(self.translator.order(
            {**answer, "clientOrderId": answer.get("clientOrderId") or cid}, self.now_ns()))

    def _reject(self, e: OrderSubmitted, reason: str, code: str) -> None:
        now = self.now_ns()
        self.publish(OrderRejected(
            ts_event=now, ts_recv=now, venue=e.venue, symbol=e.symbol, strategy_id=e.strategy_id,
            client_order_id=e.client_order_id, reason=reason, check="venue", code=code,
            side=e.side, order_type=e.order_type, qty=e.qty))

    async def fetch_by_client_id(self, cid: str, symbol: str) -> dict[str, Any]:
        return await self.exchange.fetch_order(
            None, symbol, {"clientOrderId": cid, **self.lookup_params})

    async def _resolve(self, e: Any, sent: float | None) -> None:
        """Look up an order whose outcome is unknown until the exchange says what
        became of it; never resend it. `sent`: loop time the placement left
        (None: an earlier process sent it, before this venue started)."""
        import ccxt

        cid = e.client_order_id
        loop = asyncio.get_running_loop()
        final_at = (self._started if sent is None else sent) + self.not_found_final_s
        key = f"{self.name}:order:{cid}"
        retry = Retry(self.retry_policy, loop.time())
        resolved = False
        self._unresolved.add(cid)
        self.risk.hold(key, f"order {cid} on {self.name}: outcome unknown")
        try:
            while True:
                await asyncio.sleep(retry.next_delay())
                order = self.oms.orders.get(cid)
                if order is not None and (order.accepted or not order.is_open):
                    resolved = True  # the order stream reported it meanwhile
                    return
                await self._pace()
                asked = loop.time()
                try:
                    found = await self.fetch_by_client_id(cid, e.symbol)
                except ccxt.OrderNotFound as exc:
                    if asked >= final_at:
                        resolved = True
                        self._reject(e, "placement outcome unknown; not at the exchange "
                                        f"after {self.not_found_final_s:g} s", "not_found")
                        log.info("ccxt.order_resolved", venue=self.name, client_order_id=cid,
                                 outcome="not found", attempts=retry.attempts + 1)
                        return
                    error = f"{exc} (not final yet: the placement may still arrive)"
                except Exception as exc:
                    self._rate_limited(exc)
                    error = str(exc)[:300] or repr(exc)
                else:
                    resolved = True
                    self.publish_orders(self.translator.order(
                        {**found, "clientOrderId": found.get("clientOrderId") or cid},
                        self.now_ns()))
                    await self._fills_of(found)
                    log.info("ccxt.order_resolved", venue=self.name, client_order_id=cid,
                             status=found.get("status"), attempts=retry.attempts + 1)
                    return
                self._lookup_failed(retry, e, error, loop.time())
        finally:
            self._unresolved.discard(cid)
            self.risk.release(key, f"order {cid} resolved")
            if retry.alerts and resolved:
                self._alert("order_resolved", f"order {cid} on {self.name}: resolved after "
                            f"{retry.elapsed(loop.time()):.0f} s", severity="info",
                            key=f"{self.name}:{cid}", venue=self.name, client_order_id=cid)

    async def _fills_of(self, order: dict[str, Any]) -> None:
        """The fills of an order found filled (partly) whose trades the order dict
        did not carry: ask for the order's trades."""
        if not order.get("filled") or order.get("trades"):
            return
        try:
            trades = await self.exchange.fetch_my_trades(
                order.get("symbol"), order.get("timestamp"), None,
                {"orderId": order.get("id")} if self.exchange.id == "binance" else {})
        except Exception as exc:  # the next reconciliation asks again
            log.warning("ccxt.order_trades_failed", venue=self.name, error=str(exc)[:300])
            return
        mine = [t for t in trades if str(t.get("order")) == str(order.get("id"))]
        self.publish_orders(self.translator.trades(mine, self.now_ns()))

    # -- cancelling and amending ------------------------------------------------------

    async def _cancel(self, e: Any) -> None:
        """Cancel by client id, retried while its answer is lost and the order open."""
        import ccxt

        cid = e.client_order_id
        if cid in self._cancelling:
            return
        self._cancelling.add(cid)
        loop = asyncio.get_running_loop()
        retry = Retry(self.retry_policy, loop.time())
        try:
            while True:
                await self._pace()
                try:
                    answer = await self.exchange.cancel_order(
                        None, e.symbol, {"clientOrderId": cid, **self.lookup_params})
                except ccxt.OrderNotFound as exc:
                    self._cancel_rejected(e, str(exc)[:300], "OrderNotFound")
                    await self._look_up(cid)
                    return
                except Exception as exc:
                    self._rate_limited(exc)
                    if not outcome_unknown(exc):
                        self._cancel_rejected(e, str(exc)[:300], type(exc).__name__)
                        return
                    error = str(exc)[:300] or repr(exc)
                else:
                    self.publish_orders(self.translator.order(
                        {**answer, "clientOrderId": answer.get("clientOrderId") or cid},
                        self.now_ns()))
                    return
                retry.failed(loop.time())
                log.warning("ccxt.cancel_unknown_outcome", venue=self.name, client_order_id=cid,
                            attempt=retry.attempts, retry_s=retry.upcoming, error=error)
                await asyncio.sleep(retry.next_delay())
                order = self.oms.orders.get(cid)
                if order is None or not order.is_open:
                    return
        finally:
            self._cancelling.discard(cid)

    def _cancel_rejected(self, e: Any, reason: str, code: str) -> None:
        now = self.now_ns()
        self.publish(CancelRejected(
            ts_event=now, ts_recv=now, venue=e.venue, symbol=e.symbol,
            strategy_id=e.strategy_id, client_order_id=e.client_order_id, reason=reason,
            code=code))

    async def _look_up(self, cid: str) -> None:
        """How an order the exchange no longer holds open ended (its report may be lost)."""
        order = self.oms.orders.get(cid)
        if order is None or not order.is_open or cid in self._unresolved \
                or cid in self.in_flight:
            return
        try:
            found = await self.fetch_by_client_id(cid, order.symbol)
        except Exception as exc:  # the next reconciliation looks again
            log.warning("ccxt.order_lookup_failed", venue=self.name, client_order_id=cid,
                        error=str(exc)[:300])
            return
        self.publish_orders(self.translator.order(
            {**found, "clientOrderId": found.get("clientOrderId") or cid}, self.now_ns()))
        await self._fills_of(found)

    def resend_pending_cancels(self, open_ids: Iterable[str]) -> None:
        """Cancel again what the OMS holds pending-cancel and the exchange has open."""
        for cid in open_ids:
            order = self.oms.orders.get(cid)
            if order is not None and order.is_open and order.cancel_pending \
                    and cid not in self._cancelling:
                log.info("ccxt.cancel_resent", venue=self.name, client_order_id=cid)
                self._spawn(self._cancel(order))

    async def _amend(self, e: AmendOrder) -> None:
        order = self.oms.orders.get(e.client_order_id)
        if order is None or not order.is_open or not order.venue_order_id:
            self._amend_rejected(e, "the order is not open at the exchange")
            return
        qty = e.qty if e.qty is not None else order.qty
        price = e.price if e.price is not None else order.price
        try:
            await self._pace()
            answer = await self.exchange.edit_order(
                order.venue_order_id, e.symbol, order.order_type.lower(), order.side.lower(),
                float(qty), None if price is None else float(price),
                {"clientOrderId": e.client_order_id})
        except Exception as exc:
            # an amend in place either took or not; the order stream says which
            self._rate_limited(exc)
            self._amend_rejected(e, str(exc)[:300] or repr(exc), type(exc).__name__)
            return
        now = self.now_ns()
        amount, new_price = answer.get("amount"), answer.get("price")
        self.publish(OrderAmended(
            ts_event=now, ts_recv=now, venue=e.venue, symbol=e.symbol,
            strategy_id=e.strategy_id, client_order_id=e.client_order_id,
            qty=dec(amount) if amount is not None else qty,
            price=dec(new_price) if new_price is not None else price))

    def _amend_rejected(self, e: AmendOrder, reason: str, code: str = "") -> None:
        now = self.now_ns()
        self.publish(AmendRejected(
            ts_event=now, ts_recv=now, venue=e.venue, symbol=e.symbol,
            strategy_id=e.strategy_id, client_order_id=e.client_order_id, reason=reason,
            code=code))

    # -- what became of them ----------------------------------------------------------

    def publish_orders(self, events: Iterable[Event]) -> list[Event]:
        """Publish what the OMS does not hold yet; returns what was published."""
        oms = self.oms
        out: list[Event] = []
        for event in events:
            if type(event) is BalanceChanged:
                self.publish(event)
                out.append(event)
                continue
            order = oms.orders.get(getattr(event, "client_order_id", ""))
            if order is None:
                continue
            cls = type(event)
            if cls is Fill and oms.has_fill(self.name, event.symbol,  # type: ignore[attr-defined]
                                            event.trade_id):  # type: ignore[attr-defined]
                continue
            if cls is OrderAccepted and order.accepted:
                continue
            if cls in (OrderCanceled, OrderExpired, OrderRejected) and not order.is_open:
                continue
            self.publish(event)
            out.append(event)
        return out
