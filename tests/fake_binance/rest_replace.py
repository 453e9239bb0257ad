"""`POST /api/v3/order/cancelReplace` (TRADE, weight 1): cancel an order and place
a new one in one request (rest-api.md "Cancel an Existing Order and Send a New
Order"); ccxt's `binance.edit_order` uses it for spot.

Parameters: those of a new order (`symbol`, `side`, `type`, `quantity`, `price`,
`newClientOrderId`...), `cancelReplaceMode` (`STOP_ON_FAILURE`: no placement when
the cancel fails; `ALLOW_FAILURE`: place anyway), the order to cancel by
`cancelOrderId` or `cancelOrigClientOrderId`, `cancelNewClientOrderId` (the
cancel's own id). A malformed request is refused as a placement would be. Then:
- both done: 200 `{"cancelResult":"SUCCESS","newOrderResult":"SUCCESS",
  "cancelResponse":{...as DELETE order},"newOrderResponse":{...as POST order}}`;
- one done: HTTP 409 `-2021 "Order cancel-replace partially failed."`;
- neither: HTTP 400 `-2022 "Order cancel-replace failed."`;
the error answers carry `data` with the two results, the failed part as
`{"code","msg"}` and a placement not tried as `null` (`NOT_ATTEMPTED`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fake_binance.common import ApiError, mandatory

if TYPE_CHECKING:
    from tests.fake_binance.rest import RestApi

_MODES = ("STOP_ON_FAILURE", "ALLOW_FAILURE")


class CancelReplace:
    """The cancelReplace route of `RestApi` (`api`)."""

    def __init__(self, api: RestApi) -> None:
        self.api = api

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v3/order/cancelReplace", self._cancel_replace)

    @staticmethod
    def weight_of(method: str, path: str, query: Any) -> int | None:
        return 1 if (method, path) == ("POST", "/api/v3/order/cancelReplace") else None

    async def _cancel_replace(self, request: web.Request) -> web.Response:
        api = self.api
        p = await api.params(request, signed=True)
        args = api.order_args(p)
        mode = p.get("cancelReplaceMode")
        if mode not in _MODES:
            raise mandatory("cancelReplaceMode")
        if not p.get("cancelOrderId") and not p.get("cancelOrigClientOrderId"):
            raise ApiError(400, -1102, "Param 'cancelOrigClientOrderId' or 'cancelOrderId' "
                                       "must be sent, but both were empty/null!")
        lookup = {k: v for k, v in (("orderId", p.get("cancelOrderId")),
                                    ("origClientOrderId", p.get("cancelOrigClientOrderId")))
                  if v}
        cancel: dict[str, Any]
        try:
            order = api.find_order(args["symbol"], lookup)
            if order is None:
                raise ApiError(400, -2011, "Unknown order sent.")
            cancel_id = p.get("cancelNewClientOrderId") or f"cancel{order.order_id}"
            api.exchange.cancel(order, cancel_id)
            cancel, cancel_ok = api.cancel_body(order, cancel_id, order.update_time), True
        except ApiError as e:
            cancel, cancel_ok = e.body(), False
        placed: dict[str, Any] | None = None
        placed_ok = False
        if cancel_ok or mode == "ALLOW_FAILURE":
            resp_type = p.get("newOrderRespType") or (
                "FULL" if args["type"] in ("LIMIT", "MARKET") else "ACK")
            try:
                order, fills = api.exchange.place(**args)
                api.count_order()
                placed, placed_ok = api.placed_body(order, fills, resp_type), True
            except ApiError as e:
                placed = e.body()
        data = {"cancelResult": "SUCCESS" if cancel_ok else "FAILURE",
                "newOrderResult": "SUCCESS" if placed_ok else (
                    "FAILURE" if placed is not None else "NOT_ATTEMPTED"),
                "cancelResponse": cancel, "newOrderResponse": placed}
        if cancel_ok and placed_ok:
            return api.ok(data, order_counted=True)
        if cancel_ok or placed_ok:
            status, code, msg = 409, -2021, "Order cancel-replace partially failed."
        else:
            status, code, msg = 400, -2022, "Order cancel-replace failed."
        return web.json_response({"code": code, "msg": msg, "data": data}, status=status,
                                 headers=api.headers(order_counted=placed_ok))
