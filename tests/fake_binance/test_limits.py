"""The fake enforces Binance's rate limits (it only counted them before issue 11):
429 -1003 past the minute's request weight, 429 -1015 past the 10 s order count,
with Retry-After to the window's end."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from adapters.binance.rest import BinanceError, BinanceRest
from tests.fake_binance import FakeBinanceServer

SYMBOL = "BTCUSDT"


async def test_weight_past_the_limit_is_refused(server: FakeBinanceServer,
                                                rest: BinanceRest) -> None:
    server.rest.limits.weight_limit = 50
    used = server.rest.add_weight(0)
    assert used <= 10  # a fresh venue (the client's time sync may have cost a little)
    await rest.exchange_info()
    await rest.exchange_info()  # used + 40 <= 50
    status, headers, body = await raw_get(server, "/api/v3/exchangeInfo")
    assert status == 429 and body["code"] == -1003
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert int(headers["x-mbx-used-weight-1m"]) > 50


async def test_orders_past_the_10s_count_are_refused(server: FakeBinanceServer,
                                                     rest: BinanceRest) -> None:
    server.rest.limits.orders_limit = 3
    bid = server.book()[0][0][0]
    for i in range(3):
        await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                             price=bid - 50 - i, time_in_force="GTC",
                             new_client_order_id=f"lim-{i}")
    with pytest.raises(BinanceError) as e:
        await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                             price=bid - 60, time_in_force="GTC", new_client_order_id="lim-3")
    assert (e.value.status, e.value.code) == (429, -1015)
    assert server.exchange.find(SYMBOL, client_order_id="lim-3") is None
    assert len(server.orders) == 3


async def raw_get(server: FakeBinanceServer, path: str) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as s, s.get(server.base_url + path) as r:
        return r.status, r.headers, await r.json()
