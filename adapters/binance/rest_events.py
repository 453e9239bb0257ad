"""REST answers as execution reports, so one set of duplicate rules covers both.

An order's life reaches us twice: on the user stream (`executionReport`) and in
REST answers (the placement's RESULT/FULL response, `GET /api/v3/order`,
`openOrders`, `myTrades`, read during reconciliation or to resolve an unknown
outcome). Each REST answer is rewritten here as the `ExecutionReport` the stream
would have sent and fed to the same `UserStreamTranslator.translate_report`, so
a fact seen both ways is published once: a fill by its trade id, an acceptance
or a cancel by the order's state rank.

Reports built here carry no execution id (`I = -1`): they are deduplicated by
trade id and state only, never by an id the stream might reuse.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.binance.user_stream import ExecutionReport, UserStreamTranslator
from events.base import Event

_ZERO = Decimal(0)
# REST order status -> the execution type the stream reports for it
_EXEC_TYPE = {"CANCELED": "CANCELED", "EXPIRED": "EXPIRED", "EXPIRED_IN_MATCH": "EXPIRED",
              "REJECTED": "REJECTED"}
OPEN_STATUSES = frozenset({"NEW", "PENDING_NEW", "PARTIALLY_FILLED"})


def _report(order: dict[str, Any], x: str, status: str, ts_ms: int,
            **fields: Any) -> ExecutionReport:
    return ExecutionReport(
        e="executionReport", E=ts_ms, s=order["symbol"], c=order["clientOrderId"],
        S=order.get("side", ""), o=order.get("type", ""), f=order.get("timeInForce", "GTC"),
        q=Decimal(order.get("origQty", "0")), p=Decimal(order.get("price", "0")), x=x, X=status,
        i=int(order["orderId"]), l=fields.pop("l", _ZERO), z=Decimal(order.get("executedQty", "0")),
        L=fields.pop("L", _ZERO), n=fields.pop("n", _ZERO), T=ts_ms, **fields,
    )


def _time(order: dict[str, Any]) -> int:
    return int(order.get("updateTime") or order.get("transactTime") or order.get("time") or 0)


def order_events(tr: UserStreamTranslator, order: dict[str, Any], ts_recv: int,
                 trades: list[dict[str, Any]] | tuple[()] = ()) -> list[Event]:
    """What a REST order object (a placement response, `GET order`, an
    `openOrders` entry) shows, in the order the stream would have said it:
    the acceptance, then the fills (the response's own `fills`, or `trades`
    from `myTrades`), then the end (canceled, expired, rejected). A FILLED
    order ends through its fills, as on the stream."""
    ts = _time(order)
    status = order.get("status", "")
    out: list[Event] = []
    if status != "REJECTED":
        out += tr.translate_report(_report(order, "NEW", "NEW", ts), ts_recv)
    for fill in order.get("fills", ()):
        out += tr.translate_report(_report(
            order, "TRADE", "PARTIALLY_FILLED", ts, t=int(fill["tradeId"]),
            l=Decimal(fill["qty"]), L=Decimal(fill["price"]),
            n=Decimal(fill.get("commission", "0")), N=fill.get("commissionAsset") or None,
        ), ts_recv)
    for trade in trades:
        out += trade_events(tr, order, trade, ts_recv)
    if status in _EXEC_TYPE:
        out += tr.translate_report(_report(order, _EXEC_TYPE[status], status, ts), ts_recv)
    return out


def trade_events(tr: UserStreamTranslator, order: dict[str, Any], trade: dict[str, Any],
                 ts_recv: int) -> list[Event]:
    """A `myTrades` entry of `order` as its Fill (nothing if already seen)."""
    side = "BUY" if trade.get("isBuyer") else "SELL"
    report = _report(
        {**order, "side": side}, "TRADE", "PARTIALLY_FILLED", int(trade["time"]),
        t=int(trade["id"]), l=Decimal(trade["qty"]), L=Decimal(trade["price"]),
        n=Decimal(trade.get("commission", "0")), N=trade.get("commissionAsset") or None,
        m=bool(trade.get("isMaker")),
    )
    return tr.translate_report(report, ts_recv)
