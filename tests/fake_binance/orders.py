"""Account orders and the payloads describing them (protocol doc §6, §7).

`Order` is the engine's record (exact Decimals); `rest_view()` is the REST order
object, `execution_report()` the user-stream `executionReport` for one change of
it, `account_position()` the `outboundAccountPosition` for some assets.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.fake_binance.common import ZERO, d8

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW"})
LIMIT_TYPES = frozenset({"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
STOP_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
ORDER_TYPES = frozenset({"LIMIT", "MARKET", "LIMIT_MAKER"}) | STOP_TYPES


@dataclass
class Order:
    """One account order. `locked` is what this order still holds locked of
    `locked_asset` (quote for a BUY, base for a SELL)."""

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    quote_order_qty: Decimal
    stop_price: Decimal
    stp_mode: str
    time: int
    update_time: int
    is_working: bool
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    locked_asset: str = ""
    locked: Decimal = ZERO
    archived: bool = False  # queries answer -2026 ORDER_ARCHIVED

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def rest_view(self) -> dict[str, Any]:
        """GET /api/v3/order object."""
        return {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_order_id, "price": d8(self.price),
            "origQty": d8(self.orig_qty), "executedQty": d8(self.executed_qty),
            "cummulativeQuoteQty": d8(self.cum_quote), "status": self.status,
            "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
            "stopPrice": d8(self.stop_price), "icebergQty": d8(ZERO), "time": self.time,
            "updateTime": self.update_time, "isWorking": self.is_working,
            "workingTime": self.time if self.is_working else -1,
            "origQuoteOrderQty": d8(self.quote_order_qty),
            "selfTradePreventionMode": self.stp_mode,
        }

    def result_view(self, transact_time: int) -> dict[str, Any]:
        """POST /api/v3/order RESULT body (FULL adds `fills`)."""
        v = self.rest_view()
        body = {k: v[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId")}
        body["transactTime"] = transact_time
        for k in ("price", "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty",
                  "status", "timeInForce", "type", "side", "workingTime",
                  "selfTradePreventionMode"):
            body[k] = v[k]
        if self.type in STOP_TYPES:
            body["stopPrice"] = v["stopPrice"]
        return body


@dataclass(frozen=True)
class Execution:
    """What one executionReport says happened (beyond the order's new state)."""

    exec_type: str  # NEW | TRADE | CANCELED | EXPIRED | REJECTED
    time: int
    execution_id: int
    last_qty: Decimal = ZERO
    last_price: Decimal = ZERO
    commission: Decimal = ZERO
    commission_asset: str | None = None
    trade_id: int = -1
    maker: bool = False
    client_order_id: str = ""  # `c` when it differs from the order's (a cancel's id)


def execution_report(order: Order, ex: Execution) -> dict[str, Any]:
    """The `executionReport` payload, every field of protocol doc §7."""
    canceled_by_id = bool(ex.client_order_id)
    return {
        "e": "executionReport", "E": ex.time, "s": order.symbol,
        "c": ex.client_order_id if canceled_by_id else order.client_order_id,
        "S": order.side, "o": order.type, "f": order.time_in_force,
        "q": d8(order.orig_qty), "p": d8(order.price), "P": d8(order.stop_price),
        "F": d8(ZERO), "g": -1, "C": order.client_order_id if canceled_by_id else "",
        "x": ex.exec_type, "X": order.status, "r": "NONE", "i": order.order_id,
        "l": d8(ex.last_qty), "z": d8(order.executed_qty), "L": d8(ex.last_price),
        "n": d8(ex.commission) if ex.commission_asset else "0", "N": ex.commission_asset,
        "T": ex.time, "t": ex.trade_id, "I": ex.execution_id,
        "w": order.is_open and order.is_working, "m": ex.maker, "M": False,
        "O": order.time, "Z": d8(order.cum_quote), "Y": d8(ex.last_qty * ex.last_price),
        "Q": d8(order.quote_order_qty), "W": order.time if order.is_working else -1,
        "V": order.stp_mode,
    }


def account_position(now: int, balances: dict[str, tuple[Decimal, Decimal]],
                     assets: list[str]) -> dict[str, Any]:
    """`outboundAccountPosition` for `assets` (absolute free/locked)."""
    return {"e": "outboundAccountPosition", "E": now, "u": now,
            "B": [{"a": a, "f": d8(balances.get(a, (ZERO, ZERO))[0]),
                   "l": d8(balances.get(a, (ZERO, ZERO))[1])} for a in assets]}
