"""REST additions of the fake: depth snapshot and its weights, filters, post-only,
myTrades paging, request accounting (`post_count`) across faults."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from adapters.binance.errors import BinanceError
from adapters.binance.rest import BinanceRest, UnknownOutcome
from adapters.binance.signing import HmacSigner, sign_rest
from tests.fake_binance import FakeBinanceServer

SYMBOL = "BTCUSDT"


@pytest.mark.parametrize(("limit", "weight"), [(5, 5), (100, 5), (500, 25), (1000, 50),
                                               (5000, 250)])
async def test_depth_snapshot_and_weight(server: FakeBinanceServer, limit: int,
                                         weight: int) -> None:
    async with aiohttp.ClientSession() as s, s.get(
            f"{server.base_url}/api/v3/depth", params={"symbol": SYMBOL, "limit": str(limit)},
            timeout=aiohttp.ClientTimeout(total=5)) as resp:
        body = await resp.json()
        assert resp.headers["x-mbx-used-weight-1m"] == str(weight)
    bids, asks = server.book()
    assert body["lastUpdateId"] == server.last_update_id()
    assert body["bids"][0] == [f"{bids[0][0]:.8f}", f"{bids[0][1]:.8f}"]
    assert len(body["asks"]) == min(limit, len(asks))


async def test_filters_and_post_only_through_rest(server: FakeBinanceServer,
                                                  rest: BinanceRest) -> None:
    ask = server.book()[1][0][0]
    cases = [
        (dict(type="LIMIT", price=Decimal("63000.005"), time_in_force="GTC"),
         (-1013, "Filter failure: PRICE_FILTER")),
        (dict(type="LIMIT", price=Decimal("63000"), quantity=Decimal("0.0000001"),
              time_in_force="GTC"), (-1013, "Filter failure: LOT_SIZE")),
        (dict(type="LIMIT", price=Decimal("63000"), quantity=Decimal("0.00001"),
              time_in_force="GTC"), (-1013, "Filter failure: NOTIONAL")),
        (dict(type="LIMIT_MAKER", price=ask), (-2010, "Order would immediately match and take.")),
        (dict(type="LIMIT", price=Decimal("63000"), quantity=Decimal("2"), time_in_force="GTC"),
         (-2010, "Account has insufficient balance for requested action.")),
    ]
    for i, (kw, (code, msg)) in enumerate(cases):
        args = dict(quantity=Decimal("0.001"), new_client_order_id=f"f-{i}")
        args.update(kw)
        with pytest.raises(BinanceError) as e:
            await rest.new_order(SYMBOL, "BUY", **args)  # type: ignore[arg-type]
        assert (e.value.status, e.value.code, e.value.msg) == (400, code, msg)
    assert server.orders == {}


async def test_post_count_includes_faults(server: FakeBinanceServer, rest: BinanceRest) -> None:
    server.fail_next(503, method="POST", path="/api/v3/order", after_processing=True)
    with pytest.raises(UnknownOutcome):
        await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                             price=Decimal("63000"), time_in_force="GTC",
                             new_client_order_id="pc-1")
    assert server.post_count("pc-1") == 1 and server.count("POST", "/api/v3/order") == 1
    assert (await rest.get_order(SYMBOL, "pc-1"))["status"] == "NEW"
    server.fail_next(429, retry_after=1, method="POST")
    with pytest.raises(BinanceError):
        await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                             price=Decimal("63000"), time_in_force="GTC",
                             new_client_order_id="pc-2")
    assert server.post_count("pc-2") == 1 and len(server.orders) == 1


async def test_cancel_all_test_order_and_account(server: FakeBinanceServer,
                                                 rest: BinanceRest) -> None:
    for i in range(3):
        await rest.new_order(SYMBOL, "SELL", "LIMIT", quantity=Decimal("0.001"),
                             price=Decimal("65000") + i, time_in_force="GTC",
                             new_client_order_id=f"s-{i}")
    account = await rest.account()
    btc = next(b for b in account["balances"] if b["asset"] == "BTC")
    assert (btc["free"], btc["locked"]) == ("0.99700000", "0.00300000")
    headers = {"X-MBX-APIKEY": server.api_key}
    signer = HmacSigner(server.secret)
    async with aiohttp.ClientSession() as s:
        q = sign_rest(signer, [("symbol", SYMBOL), ("timestamp", str(server.now_ms()))])
        async with s.delete(f"{server.base_url}/api/v3/openOrders?{q}", headers=headers) as r:
            body = await r.json()
        assert [o["status"] for o in body] == ["CANCELED"] * 3
        q = sign_rest(signer, [("symbol", SYMBOL), ("side", "BUY"), ("type", "MARKET"),
                               ("quantity", "0.001"), ("timestamp", str(server.now_ms()))])
        async with s.post(f"{server.base_url}/api/v3/order/test?{q}", headers=headers) as r:
            assert (r.status, await r.json()) == (200, {})
    assert server.balances["BTC"] == (Decimal("1"), Decimal("0"))
    assert sum(1 for o in server.orders.values() if o.status == "CANCELED") == 3


@pytest.mark.parametrize("cid", ["x" * 37, "a.b", "ok\n", "with space", "é"])
async def test_a_client_order_id_binance_refuses_is_refused(server: FakeBinanceServer,
                                                            rest: BinanceRest, cid: str) -> None:
    with pytest.raises(BinanceError) as e:
        await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                             price=Decimal("63000"), time_in_force="GTC",
                             new_client_order_id=cid)
    assert (e.value.status, e.value.code) == (400, -1100)
    assert e.value.msg == ("Illegal characters found in parameter 'newClientOrderId'; "
                           "legal range is '^[a-zA-Z0-9-_]{1,36}$'.")
    assert server.orders == {}


async def test_the_longest_client_order_id_binance_takes(server: FakeBinanceServer,
                                                         rest: BinanceRest) -> None:
    cid = "A-z_9" + "x" * 31
    placed = await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                                  price=Decimal("63000"), time_in_force="GTC",
                                  new_client_order_id=cid)
    assert len(cid) == 36 and placed["clientOrderId"] == cid


async def test_my_trades_pages_like_binance(server: FakeBinanceServer, rest: BinanceRest) -> None:
    """At most `limit` (500 by default, 1000 at most) trades: from `fromId` on,
    else the most recent ones; `orderId` and `fromId` combine."""
    bid = server.book()[0][0][0]
    placed = await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("1.2"),
                                  price=bid - 100, time_in_force="GTC",
                                  new_client_order_id="many")
    server.crowd_trades(SYMBOL, bid - 100, Decimal("0.001"), 1200)
    ids = [t["id"] for t in server.trades if t["orderId"] == placed["orderId"]]
    assert len(ids) == 1200 and server.orders[placed["orderId"]].status == "FILLED"
    oid = placed["orderId"]
    assert [t["id"] for t in await rest.my_trades(SYMBOL, order_id=oid)] == ids[-500:]
    page = await rest.my_trades(SYMBOL, order_id=oid, from_id=0, limit=5000)
    assert [t["id"] for t in page] == ids[:1000]
    page = await rest.my_trades(SYMBOL, order_id=oid, from_id=ids[1000], limit=1000)
    assert [t["id"] for t in page] == ids[1000:]


async def test_only_an_order_that_ended_unfilled_is_archived(server: FakeBinanceServer,
                                                             rest: BinanceRest) -> None:
    bid = server.book()[0][0][0]
    for cid in ("filled", "open"):
        await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"),
                             price=bid - 100, time_in_force="GTC", new_client_order_id=cid)
    server.crowd_trades(SYMBOL, bid - 100, Decimal("0.001"), 1)  # the oldest first
    filled = server.exchange.find(SYMBOL, client_order_id="filled")
    assert filled is not None and filled.status == "FILLED"
    with pytest.raises(ValueError):
        server.exchange.archive(filled)
    opened = server.exchange.find(SYMBOL, client_order_id="open")
    assert opened is not None
    with pytest.raises(ValueError):
        server.exchange.archive(opened)
    server.cancel_behind_our_back("open", archive=True)
    with pytest.raises(BinanceError) as e:
        await rest.get_order(SYMBOL, "open")
    assert (e.value.code, e.value.msg) == (
        -2026, "Order was canceled or expired with no executed qty over 90 days ago and "
               "has been archived.")
    with pytest.raises(BinanceError) as e:
        await rest.cancel_order(SYMBOL, "open")
    assert e.value.code == -2011
