"""The account queries of the REST API (USER_DATA, signed): account, open and all
orders, the account's trades (protocol doc §6; rest-api.md "Account endpoints").

- `GET /api/v3/account` (weight 20), `omitZeroBalances`.
- `GET /api/v3/openOrders` (6 with `symbol`, 80 without).
- `GET /api/v3/allOrders` (20): `symbol` required; `orderId` (orders >= it),
  `startTime`/`endTime` (at most 24 h apart: -1127), `limit` 500, at most 1000;
  without `orderId` and times, the most recent orders; always oldest first.
  Archived orders (`Exchange.archive`) are gone from it, as at Binance.
- `GET /api/v3/myTrades` (20; 5 with `orderId`): `fromId` (trades >= it),
  `orderId`, `startTime`/`endTime` (at most 24 h apart), `limit` 500, at most 1000;
  without `fromId`/`startTime` the most recent ones; oldest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fake_binance.common import ApiError, d8, int_param, limit_param, time_range
from tests.fake_binance.history import DAY_MS

if TYPE_CHECKING:
    from tests.fake_binance.rest import RestApi

_LIMIT, _MAX = 500, 1000


def my_trades_page(trades: list[dict[str, Any]], *, symbol: str, order_id: int | None,
                   from_id: int | None, limit: int, start: int | None = None,
                   end: int | None = None) -> list[dict[str, Any]]:
    """What GET /api/v3/myTrades answers, from the account's `trades` (oldest
    first). Binance: "If fromId is set, it will get id >= that fromId. Otherwise
    most recent trades are returned", at most `limit` of them, oldest first; with
    `startTime` the first ones from then on."""
    out = [t for t in trades if t["symbol"] == symbol
           and (from_id is None or t["id"] >= from_id)
           and (order_id is None or t["orderId"] == order_id)
           and (start is None or t["time"] >= start) and (end is None or t["time"] <= end)]
    return out[:limit] if from_id is not None or start is not None else out[-limit:]


class AccountQueries:
    """The signed account query routes of `RestApi` (`api`)."""

    def __init__(self, api: RestApi) -> None:
        self.api = api

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v3/account", self._account)
        r.add_get("/api/v3/openOrders", self._open_orders)
        r.add_get("/api/v3/allOrders", self._all_orders)
        r.add_get("/api/v3/myTrades", self._my_trades)

    @staticmethod
    def weight_of(method: str, path: str, query: Any) -> int | None:
        """Binance's request weight, or None for a route that is not this module's."""
        if method != "GET":
            return None
        if path == "/api/v3/openOrders":
            return 6 if "symbol" in query else 80
        if path == "/api/v3/myTrades":
            return 5 if "orderId" in query else 20
        return {"/api/v3/account": 20, "/api/v3/allOrders": 20}.get(path)

    async def _account(self, request: web.Request) -> web.Response:
        p = await self.api.params(request, signed=True)
        omit = p.get("omitZeroBalances") == "true"
        return self.api.ok({
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000",
                                "buyer": "0.00000000", "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False,
            "updateTime": self.api.now_ms(), "accountType": "SPOT",
            "balances": [{"asset": a, "free": d8(f), "locked": d8(lk)}
                         for a, (f, lk) in self.api.exchange.balances.items()
                         if not (omit and f == 0 and lk == 0)],
            "permissions": ["SPOT"], "uid": 354937868})

    async def _open_orders(self, request: web.Request) -> web.Response:
        p = await self.api.params(request, signed=True)
        symbol = self.api.symbol_of(p) if "symbol" in p else None
        return self.api.ok([o.rest_view() for o in self.api.exchange.open_orders(symbol)])

    async def _all_orders(self, request: web.Request) -> web.Response:
        p = await self.api.params(request, signed=True)
        symbol = self.api.symbol_of(p)
        order_id = int_param(p, "orderId")
        start, end = time_range(p, DAY_MS)
        limit = limit_param(p, _LIMIT, _MAX)
        orders = sorted((o for o in self.api.exchange.orders.values()
                         if o.symbol == symbol and not o.archived
                         and (order_id is None or o.order_id >= order_id)
                         and (start is None or o.time >= start)
                         and (end is None or o.time <= end)), key=lambda o: o.order_id)
        page = orders[:limit] if order_id is not None or start is not None else orders[-limit:]
        return self.api.ok([o.rest_view() for o in page])

    async def _my_trades(self, request: web.Request) -> web.Response:
        p = await self.api.params(request, signed=True)
        symbol = self.api.symbol_of(p)
        from_id, order_id = int_param(p, "fromId"), int_param(p, "orderId")
        start, end = time_range(p, DAY_MS)
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        limit = limit_param(p, _LIMIT, _MAX)
        return self.api.ok(my_trades_page(self.api.exchange.trades, symbol=symbol,
                                          order_id=order_id, from_id=from_id, limit=limit,
                                          start=start, end=end))
