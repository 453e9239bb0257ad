"""`POST /api/v3/order/cancelReplace` (answered 404 before issue 11): results and
error answers of both modes, as Binance documents them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from adapters.binance.rest import BinanceError, BinanceRest
from tests.fake_binance import FakeBinanceServer

SYMBOL = "BTCUSDT"


async def replace(rest: BinanceRest, **params: Any) -> Any:
    fields: dict[str, Any] = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT",
                              "timeInForce": "GTC", "quantity": "0.00100000", **params}
    if fields["type"] == "LIMIT_MAKER":
        del fields["timeInForce"]
    query = [(k, str(v)) for k, v in fields.items()]
    return await rest._request("POST", "/api/v3/order/cancelReplace", query, signed=True,
                               weight=1)


async def test_cancel_replace(server: FakeBinanceServer, rest: BinanceRest) -> None:
    bid, ask = server.book()[0][0][0], server.book()[1][0][0]
    first = await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                                 price=bid - 50, time_in_force="GTC", new_client_order_id="r-1")
    done = await replace(rest, cancelReplaceMode="STOP_ON_FAILURE", price=bid - 40,
                         cancelOrigClientOrderId="r-1", newClientOrderId="r-2",
                         cancelNewClientOrderId="r-1-cancel")
    assert (done["cancelResult"], done["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    assert done["cancelResponse"]["status"] == "CANCELED"
    assert done["cancelResponse"]["clientOrderId"] == "r-1-cancel"
    assert done["newOrderResponse"]["clientOrderId"] == "r-2"
    assert done["newOrderResponse"]["fills"] == []
    assert server.orders[first["orderId"]].status == "CANCELED"

    with pytest.raises(BinanceError) as e:  # r-1 is gone: nothing is placed
        await replace(rest, cancelReplaceMode="STOP_ON_FAILURE", price=bid - 30,
                      cancelOrigClientOrderId="r-1", newClientOrderId="r-3")
    assert (e.value.status, e.value.code) == (400, -2022)
    assert server.exchange.find(SYMBOL, client_order_id="r-3") is None

    with pytest.raises(BinanceError) as e:  # ALLOW_FAILURE: placed all the same
        await replace(rest, cancelReplaceMode="ALLOW_FAILURE", price=bid - 30,
                      cancelOrigClientOrderId="r-1", newClientOrderId="r-3")
    assert (e.value.status, e.value.code) == (409, -2021)
    assert server.exchange.find(SYMBOL, client_order_id="r-3") is not None

    with pytest.raises(BinanceError) as e:  # canceled, the new one refused
        await replace(rest, cancelReplaceMode="STOP_ON_FAILURE", price=ask + 1,
                      type="LIMIT_MAKER", cancelOrigClientOrderId="r-3",
                      newClientOrderId="r-4")
    assert (e.value.status, e.value.code) == (409, -2021)
    r3 = server.exchange.find(SYMBOL, client_order_id="r-3")
    assert r3 is not None and r3.status == "CANCELED"
    assert server.exchange.find(SYMBOL, client_order_id="r-4") is None

    with pytest.raises(BinanceError) as e:
        await replace(rest, price=bid - 30, cancelOrderId=1, newClientOrderId="r-5")
    assert e.value.code == -1102  # no cancelReplaceMode
    assert server.post_count("r-3") == 2
