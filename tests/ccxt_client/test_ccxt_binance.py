"""ccxt's own `binance` class (REST, `ccxt.pro`'s class used as the async client)
against the fake Binance with only its URLs moved to loopback: markets, balance,
market data, orders by our client id, look-ups, cancels, trades and errors.

ccxt was written against the real Binance; where it disagrees with the fake, the
fake is unfaithful. One difference is ccxt's own and stays: it picks its
spot-only error table by the URL's host, so against loopback only the common
table applies (it differs for -2026 alone: `ExchangeError` here, `InvalidOrder`
against api.binance.com)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.ccxt_client.fake_exchange import ccxt_binance, fake_urls
from tests.fake_binance import FakeBinanceServer

SYMBOL, ID = "BTC/USDT", "BTCUSDT"


def dec(x: Any) -> Decimal:
    return Decimal(str(x))


def test_fake_urls_keep_paths() -> None:
    urls = {"public": "https://api.binance.com/api/v3", "ws": {
        "spot": "wss://stream.binance.com:9443/ws",
        "ws-api": {"spot": "wss://ws-api.binance.com:443/ws-api/v3"}}}
    assert fake_urls("http://127.0.0.1:8990", urls) == {
        "public": "http://127.0.0.1:8990/api/v3", "ws": {
            "spot": "ws://127.0.0.1:8990/ws",
            "ws-api": {"spot": "ws://127.0.0.1:8990/ws-api/v3"}}}


async def test_markets_balance_and_market_data(server: FakeBinanceServer,
                                               exchange: Any) -> None:
    market = exchange.market(SYMBOL)
    assert (market["id"], market["spot"], market["active"]) == (ID, True, True)
    assert (dec(market["precision"]["price"]), dec(market["precision"]["amount"])) == (
        Decimal("0.01"), Decimal("0.00001"))
    assert dec(market["limits"]["cost"]["min"]) == Decimal(5)
    assert [m for m in exchange.markets if not exchange.markets[m]["spot"]] == []

    balance = await exchange.fetch_balance()
    assert (dec(balance["BTC"]["free"]), dec(balance["USDT"]["free"])) == (
        Decimal(1), Decimal(100_000))

    await server.step(120)
    held = server.exchange.markets[ID].history.recent(10_000)
    ticker = await exchange.fetch_ticker(SYMBOL)
    assert dec(ticker["last"]) == held[-1].price
    assert dec(ticker["baseVolume"]) == sum(t.qty for t in held)
    bids, asks = server.book()
    assert (dec(ticker["bid"]), dec(ticker["ask"])) == (bids[0][0], asks[0][0])
    assert list(await exchange.fetch_tickers([SYMBOL])) == [SYMBOL]
    top = (await exchange.fetch_bids_asks([SYMBOL]))[SYMBOL]
    assert (dec(top["bid"]), dec(top["askVolume"])) == (bids[0][0], asks[0][1])

    book = await exchange.fetch_order_book(SYMBOL, 5)
    assert [(dec(p), dec(q)) for p, q in book["bids"]] == bids[:5]
    assert [(dec(p), dec(q)) for p, q in book["asks"]] == asks[:5]
    assert book["nonce"] == server.last_update_id()

    trades = await exchange.fetch_trades(SYMBOL, limit=20)
    assert [(dec(t["price"]), dec(t["amount"])) for t in trades] == [
        (t.price, t.qty) for t in held[-20:]]
    assert [t["side"] for t in trades] == [
        "sell" if t.buyer_maker else "buy" for t in held[-20:]]
    since = await exchange.fetch_trades(SYMBOL, since=held[-5].time)  # the backfill call
    assert [int(t["info"]["f"]) for t in since] == [
        t.trade_id for t in held if t.time >= held[-5].time]

    candles = await exchange.fetch_ohlcv(SYMBOL, "1m")
    assert sum(dec(c[5]) for c in candles) == sum(t.qty for t in held)
    assert dec(candles[-1][4]) == held[-1].price


async def test_orders_by_our_client_id(server: FakeBinanceServer, exchange: Any) -> None:
    bid = server.book()[0][0][0]
    placed = await exchange.create_order(SYMBOL, "limit", "buy", 0.001, float(bid - 50),
                                         {"clientOrderId": "tl-ab12-sma-1"})
    assert placed["clientOrderId"] == "tl-ab12-sma-1" and placed["status"] == "open"
    assert server.post_count("tl-ab12-sma-1") == 1  # ccxt sent it as newClientOrderId
    order = server.orders[int(placed["id"])]
    assert (order.client_order_id, order.price, order.orig_qty) == (
        "tl-ab12-sma-1", bid - 50, Decimal("0.001"))

    for key in ("origClientOrderId", "clientOrderId"):
        found = await exchange.fetch_order(None, SYMBOL, {key: "tl-ab12-sma-1"})
        assert (found["id"], found["status"]) == (placed["id"], "open")
    assert [o["id"] for o in await exchange.fetch_open_orders(SYMBOL)] == [placed["id"]]

    canceled = await exchange.cancel_order(None, SYMBOL, {"origClientOrderId": "tl-ab12-sma-1"})
    assert canceled["status"] == "canceled" and order.status == "CANCELED"
    assert (await exchange.fetch_order(placed["id"], SYMBOL))["status"] == "canceled"

    bought = await exchange.create_order(SYMBOL, "market", "buy", 0.002, None,
                                         {"clientOrderId": "tl-ab12-sma-2"})
    assert bought["status"] == "closed" and dec(bought["filled"]) == Decimal("0.002")
    assert bought["clientOrderId"] == "tl-ab12-sma-2"
    fills = [t for t in server.trades if t["orderId"] == int(bought["id"])]
    assert dec(bought["cost"]) == sum(Decimal(t["quoteQty"]) for t in fills)

    closed = await exchange.fetch_closed_orders(SYMBOL)  # ccxt: filled ones only
    assert [(o["clientOrderId"], o["status"]) for o in closed] == [("tl-ab12-sma-2", "closed")]
    canceled = await exchange.fetch_canceled_orders(SYMBOL)
    assert [o["clientOrderId"] for o in canceled] == ["tl-ab12-sma-1"]
    assert [o["id"] for o in await exchange.fetch_orders(SYMBOL)] == [placed["id"], bought["id"]]

    mine = await exchange.fetch_my_trades(SYMBOL, since=fills[0]["time"])
    assert [(int(t["id"]), t["order"], dec(t["amount"]), dec(t["fee"]["cost"]))
            for t in mine] == [(t["id"], bought["id"], Decimal(t["qty"]),
                                Decimal(t["commission"])) for t in fills]
    assert {t["fee"]["currency"] for t in mine} == {"BTC"}


async def test_an_unknown_outcome_is_found_by_client_id(server: FakeBinanceServer,
                                                        exchange: Any) -> None:
    """ccxt #2599: the placement's answer is lost (5xx after the engine took it, a
    dropped connection); the order is there and is found by its client id, never
    sent twice."""
    bid = server.book()[0][0][0]
    server.fail_next(503, method="POST", path="/api/v3/order", after_processing=True)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.001, float(bid - 50),
                                    {"clientOrderId": "tl-ab12-x-1"})
    server.drop_next(method="POST", path="/api/v3/order")
    with pytest.raises(ccxt.NetworkError):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.001, float(bid - 51),
                                    {"clientOrderId": "tl-ab12-x-2"})
    for cid in ("tl-ab12-x-1", "tl-ab12-x-2"):
        found = await exchange.fetch_order(None, SYMBOL, {"origClientOrderId": cid})
        assert found["clientOrderId"] == cid and found["status"] == "open"
        assert server.post_count(cid) == 1
    server.fail_next(400, method="POST", path="/api/v3/order", code=-1007,
                     msg="Timeout waiting for response from backend server. Send status "
                         "unknown; execution status unknown.")
    with pytest.raises(ccxt.RequestTimeout):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.001, float(bid - 52),
                                    {"clientOrderId": "tl-ab12-x-3"})


async def test_errors_map_to_ccxt_exceptions(server: FakeBinanceServer, exchange: Any) -> None:
    bid, ask = server.book()[0][0][0], server.book()[1][0][0]
    with pytest.raises(ccxt.InsufficientFunds):
        await exchange.create_order(SYMBOL, "limit", "buy", 5, float(bid - 50))
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await exchange.create_order(SYMBOL, "limit", "sell", 9001, float(ask + 50))
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):  # -1013: ccxt's BadRequest
        await exchange.create_order(SYMBOL, "limit", "buy", 0.00001, float(bid - 50))
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.001, float(ask + 1),
                                    {"postOnly": True})
    assert server.orders == {}  # a refused order leaves no trace

    await exchange.create_order(SYMBOL, "limit", "buy", 0.001, float(bid - 50),
                                {"clientOrderId": "tl-dup"})
    # Binance's -2010 "Duplicate order sent.": ccxt has no DuplicateOrderId mapping for
    # it; it is an InvalidOrder whose message says so.
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.001, float(bid - 50),
                                    {"clientOrderId": "tl-dup"})
    assert len(server.orders) == 1

    with pytest.raises(ccxt.OrderNotFound):
        await exchange.fetch_order(None, SYMBOL, {"origClientOrderId": "tl-never"})
    with pytest.raises(ccxt.OrderNotFound):
        await exchange.cancel_order(None, SYMBOL, {"origClientOrderId": "tl-never"})

    server.fail_next(429, retry_after=1)
    with pytest.raises(ccxt.DDoSProtection):
        await exchange.fetch_open_orders(SYMBOL)

    wrong = ccxt_binance(server.base_url, pro=False, secret="not-the-secret")
    try:
        await wrong.load_markets()
        with pytest.raises(ccxt.AuthenticationError):
            await wrong.fetch_balance()
    finally:
        await wrong.close()


async def test_production_urls_load_markets_and_currencies(server: FakeBinanceServer) -> None:
    """Outside the testnet ccxt also asks the wallet and margin APIs (`sapi`) when
    it loads markets; the fake answers them as for a spot-only account."""
    prod = ccxt_binance(server.base_url, sandbox=False)
    try:
        await prod.load_markets()
        assert list(prod.markets) == [SYMBOL]
        assert {"BTC", "USDT"} <= set(prod.currencies)
        assert server.count("GET", "/sapi/v1/capital/config/getall") == 1
        balance = await prod.fetch_balance()
        assert dec(balance["BTC"]["total"]) == Decimal(1)
    finally:
        await prod.close()


async def test_edit_order_is_one_cancel_replace(server: FakeBinanceServer, exchange: Any) -> None:
    """ccxt's `edit_order` on spot is `order/cancelReplace`: the old order canceled,
    the new one placed with our client id, in one request."""
    bid, ask = server.book()[0][0][0], server.book()[1][0][0]
    placed = await exchange.create_order(SYMBOL, "limit", "buy", 0.001, float(bid - 50),
                                         {"clientOrderId": "tl-ed-1"})
    edited = await exchange.edit_order(placed["id"], SYMBOL, "limit", "buy", 0.002,
                                       float(bid - 40), {"clientOrderId": "tl-ed-2"})
    assert edited["clientOrderId"] == "tl-ed-2" and edited["status"] == "open"
    old, new = server.orders[int(placed["id"])], server.orders[int(edited["id"])]
    assert (old.status, new.status, new.price, new.orig_qty) == (
        "CANCELED", "NEW", bid - 40, Decimal("0.002"))
    assert server.post_count("tl-ed-2") == 1
    # The order to replace is gone: STOP_ON_FAILURE places nothing (-2022).
    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        await exchange.edit_order(placed["id"], SYMBOL, "limit", "buy", 0.002,
                                  float(bid - 30), {"clientOrderId": "tl-ed-3"})
    assert server.exchange.find(ID, client_order_id="tl-ed-3") is None
    # The cancel done, the new order refused (post-only would take): -2021, 409.
    with pytest.raises(ccxt.ExchangeError, match="-2021"):
        await exchange.edit_order(edited["id"], SYMBOL, "limit", "buy", 0.002,
                                  float(ask + 1), {"clientOrderId": "tl-ed-4",
                                                   "postOnly": True})
    assert new.status == "CANCELED"
    assert server.exchange.find(ID, client_order_id="tl-ed-4") is None
