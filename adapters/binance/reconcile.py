"""Reconciliation: make our order and balance state agree with Binance's.

Run at start (after the journal has been folded into the OMS) and after every
user-stream (re)subscription, before any order may be sent. Binance is the
authority; we only ever add what we missed, as events, through the same
translator (and duplicate rules) as the live stream:

1. Every order our OMS holds open on this venue is looked up by its client
   order id (`GET /api/v3/order`):
   - found: its acceptance, every fill we have not recorded (`myTrades` by
     order id, paged with `fromId`: a page holds at most 1000 trades) and its
     end (canceled, expired) are published; one still open at Binance is
     listed in `still_open` (the venue sends again a cancel that was pending);
   - -2013 NO_SUCH_ORDER: the placement never reached Binance, so nothing can
     fill it: `OrderRejected(check="reconcile", code="-2013")`;
   - -2026 ORDER_ARCHIVED: Binance had it, and it was canceled or expired with
     nothing executed, then archived ("Order was canceled or expired with no
     executed qty over 90 days ago and has been archived", errors.md): its end
     is published, `OrderCanceled(reason="-2026 ORDER_ARCHIVED ...")`;
   - any other error: the order stays unresolved (the account stays REDUCING)
     and is looked up again with backoff.
   An order with a request still in flight in this process is left to it.
2. Orders open at Binance that the OMS does not know are reported in the diff
   and left alone: they are not ours (another client, a manual order, or a
   run from another data directory). Their client ids are returned, so ours
   never collide with one of them (Binance refuses an id an open order holds).
3. Balances (`GET /api/v3/account`): every asset that differs from what we
   last recorded is published as `BalanceChanged(reason="reconcile")`.

The differences are also returned as human-readable lines, which the venue
writes to the log (`binance.reconcile_diff`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from adapters.binance.errors import BinanceError
from adapters.binance.rest_events import OPEN_STATUSES, order_events
from adapters.binance.user_stream import UserStreamTranslator
from events.base import Event
from events.orders import Fill, OrderCanceled, OrderRejected
from events.state import BalanceChanged

NOT_FOUND = -2013  # NO_SUCH_ORDER: Binance never received the order
ARCHIVED = -2026  # ORDER_ARCHIVED: canceled or expired with nothing executed, archived
TRADES_PAGE = 1000  # myTrades' largest page (the default is 500)


class OrderLike(Protocol):
    venue: str
    symbol: str
    strategy_id: str
    client_order_id: str
    side: str
    order_type: str
    qty: Decimal


class RestLike(Protocol):
    async def get_order(self, symbol: str, orig_client_order_id: str) -> dict[str, Any]: ...
    async def my_trades(self, symbol: str, from_id: int | None = None, limit: int | None = None,
                        order_id: int | None = None) -> list[dict[str, Any]]: ...
    async def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]: ...
    async def account(self) -> dict[str, Any]: ...


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    unresolved: dict[str, str] = field(default_factory=dict)  # client id -> why
    foreign: list[str] = field(default_factory=list)  # open at Binance, unknown to us
    still_open: list[str] = field(default_factory=list)  # ours, open at Binance


@dataclass
class Lookup:
    """What one look-up of our order found: the events we had missed, and
    whether it is still open at Binance."""

    events: list[Event]
    open: bool


async def order_trades(rest: RestLike, symbol: str, order_id: int,
                       page: int = TRADES_PAGE) -> list[dict[str, Any]]:
    """Every trade of one order, oldest first. `myTrades` answers at most `page`
    trades (without `fromId`, the most recent ones), so it is walked from trade
    id 0 with `fromId` until a page comes back short."""
    out: list[dict[str, Any]] = []
    from_id = 0
    while True:
        batch = await rest.my_trades(symbol, from_id=from_id, limit=page, order_id=order_id)
        out += batch
        if len(batch) < page:
            return out
        from_id = int(batch[-1]["id"]) + 1


async def resolve_order(rest: RestLike, tr: UserStreamTranslator, order: OrderLike,
                        ts_recv: Callable[[], int]) -> Lookup:
    """Everything Binance knows of one of our orders that we have not published.
    Raises BinanceError: -2013 when Binance never received it, -2026 when it
    ended with nothing executed and was archived (see `ended_unseen`)."""
    found = await rest.get_order(order.symbol, order.client_order_id)
    trades: list[dict[str, Any]] = []
    if Decimal(found.get("executedQty", "0")) > 0:
        trades = await order_trades(rest, order.symbol, int(found["orderId"]))
    return Lookup(order_events(tr, found, ts_recv(), trades),
                  found.get("status", "") in OPEN_STATUSES)


def never_arrived(order: OrderLike, now: int, why: str) -> OrderRejected:
    return OrderRejected(
        ts_event=now, ts_recv=now, venue=order.venue, symbol=order.symbol,
        strategy_id=order.strategy_id, client_order_id=order.client_order_id,
        reason=why, check="reconcile", code=str(NOT_FOUND), side=order.side,
        order_type=order.order_type, qty=order.qty)


def archived(order: OrderLike, now: int) -> OrderCanceled:
    """The end of an order Binance archived: it existed and was canceled or
    expired with nothing executed (so no fill is missing)."""
    return OrderCanceled(
        ts_event=now, ts_recv=now, venue=order.venue, symbol=order.symbol,
        strategy_id=order.strategy_id, client_order_id=order.client_order_id,
        reason=f"{ARCHIVED} ORDER_ARCHIVED: Binance archived it (canceled or expired "
               "with nothing executed)")


def ended_unseen(order: OrderLike, exc: BinanceError, now: int, why: str) -> Event | None:
    """What a refused look-up of our order proves: -2013, it never reached
    Binance (`OrderRejected` saying `why`); -2026, it ended with nothing
    executed (`OrderCanceled`); anything else proves nothing (None)."""
    if exc.code == NOT_FOUND:
        return never_arrived(order, now, why)
    if exc.code == ARCHIVED:
        return archived(order, now)
    return None


async def reconcile(rest: RestLike, tr: UserStreamTranslator, venue: str,
                    our_open: Iterable[OrderLike], symbols: Iterable[str],
                    balances: dict[str, tuple[Decimal, Decimal]],
                    now_ns: Callable[[], int], in_flight: set[str], *,
                    not_found_final_ms: int = 0,
                    server_ms: Callable[[], int] | None = None) -> Outcome:
    """One pass (see the module docstring). `balances` (asset -> (free,
    locked)) is what we last recorded; it is updated in place. A -2013 answered
    before `not_found_final_ms` (server clock) proves nothing: a placement a
    previous process sent may still reach the engine until its recvWindow ends,
    so such an order is left unresolved (looked up again), not rejected."""
    out = Outcome()
    ours = {o.client_order_id: o for o in our_open}
    for cid, order in ours.items():
        if cid in in_flight:
            continue
        asked_ms = server_ms() if server_ms is not None else 0
        try:
            found = await resolve_order(rest, tr, order, now_ns)
        except BinanceError as exc:
            end = ended_unseen(order, exc, now_ns(),
                               "not found at Binance on reconciliation: never placed")
            if exc.code == NOT_FOUND and asked_ms < not_found_final_ms:
                out.unresolved[cid] = f"{exc} (not final yet: the placement may still arrive)"
                out.diff.append(f"{cid} {order.symbol}: not at Binance yet -> looked up "
                                "until its recvWindow has passed")
                continue
            if end is None:
                out.unresolved[cid] = str(exc)
                out.diff.append(f"{cid} {order.symbol}: cannot query ({exc}) -> unresolved")
            elif exc.code == NOT_FOUND:
                out.events.append(end)
                out.diff.append(f"{cid} {order.symbol}: open here, unknown to Binance "
                                "-> rejected (never placed)")
            else:
                out.events.append(end)
                out.diff.append(f"{cid} {order.symbol}: open here, archived by Binance "
                                f"({exc.code}: ended with nothing executed) -> canceled")
            continue
        for e in found.events:
            out.diff.append(f"{cid} {order.symbol}: {_describe(e)}")
        out.events += found.events
        if found.open:
            out.still_open.append(cid)
    for symbol in symbols:
        for theirs in await rest.open_orders(symbol):
            cid = theirs.get("clientOrderId", "")
            if cid not in ours and cid not in in_flight:
                out.foreign.append(cid)
                out.diff.append(f"{cid} {symbol}: open at Binance, not ours -> left alone "
                                f"({theirs.get('side')} {theirs.get('origQty')} @ "
                                f"{theirs.get('price')})")
    account = await rest.account()
    now = now_ns()
    for b in account.get("balances", ()):
        asset, free, locked = b["asset"], Decimal(b["free"]), Decimal(b["locked"])
        if balances.get(asset) == (free, locked):
            continue
        before = balances.get(asset)
        balances[asset] = (free, locked)
        out.events.append(BalanceChanged(
            ts_event=now, ts_recv=now, venue=venue, currency=asset, total=free + locked,
            free=free, locked=locked, reason="reconcile"))
        if before is not None:
            out.diff.append(f"balance {asset}: {before[0] + before[1]} -> {free + locked}")
    return out


def _describe(event: Event) -> str:
    if isinstance(event, Fill):
        return f"missed fill {event.side} {event.qty} @ {event.price} (trade {event.trade_id})"
    return f"missed {type(event).__name__}"
