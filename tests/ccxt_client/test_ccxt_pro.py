"""`ccxt.pro`'s `binance` websockets against the fake: market streams (trades,
order book, tickers, book tickers, klines) on `/ws`, and the user data stream
(orders, own trades, balance) on the WS-API's `userDataStream.subscribe.signature`,
which is what ccxt 4.5.90 uses for spot (no listenKey)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.ccxt_client.conftest import drive
from tests.ccxt_client.fake_exchange import ccxt_binance
from tests.conftest import until
from tests.fake_binance import FakeBinanceServer

SYMBOL, ID = "BTC/USDT", "BTCUSDT"


def dec(x: Any) -> Decimal:
    return Decimal(str(x))


async def test_watch_trades(server: FakeBinanceServer, exchange: Any) -> None:
    trades = await drive(server, exchange.watch_trades(SYMBOL))
    held = {t.trade_id: t for t in server.exchange.markets[ID].history.recent(10_000)}
    assert trades
    for t in trades:
        h = held[int(t["id"])]
        assert (dec(t["price"]), dec(t["amount"]), t["timestamp"]) == (h.price, h.qty, h.time)
    assert any(conn.streams[-1:] == ["btcusdt@trade"] for conn in server.market_connections)


async def test_watch_order_book_equals_the_fakes(server: FakeBinanceServer,
                                                 exchange: Any) -> None:
    book = await drive(server, exchange.watch_order_book(SYMBOL))
    await server.step(10)
    await until(lambda: book["nonce"] == server.last_update_id(), message="book caught up")
    bids, asks = server.book()
    assert [(dec(p), dec(q)) for p, q in book["bids"]] == bids
    assert [(dec(p), dec(q)) for p, q in book["asks"]] == asks


async def test_watch_tickers_and_klines(server: FakeBinanceServer, exchange: Any) -> None:
    ticker = await drive(server, exchange.watch_ticker(SYMBOL))  # ccxt: @miniTicker
    held = server.exchange.markets[ID].history.recent(10_000)
    assert dec(ticker["last"]) in {t.price for t in held}
    full = await drive(server, exchange.watch_ticker(SYMBOL, {"name": "ticker"}))
    assert full["info"]["e"] == "24hrTicker" and full["bid"] is not None
    top = await drive(server, exchange.watch_bids_asks([SYMBOL]))
    assert top[SYMBOL]["bid"] < top[SYMBOL]["ask"]
    candles = await drive(server, exchange.watch_ohlcv(SYMBOL, "1m"))
    opened = candles[-1][0]
    held = server.exchange.markets[ID].history.recent(10_000)
    assert opened % 60_000 == 0
    assert dec(candles[-1][5]) <= sum((t.qty for t in held if t.time >= opened), Decimal(0))
    subscribed = {s for c in server.market_connections for s in c.streams}
    assert {"btcusdt@miniTicker", "btcusdt@ticker", "btcusdt@bookTicker",
            "btcusdt@kline_1m"} <= subscribed


async def test_watch_orders_my_trades_and_balance(server: FakeBinanceServer,
                                                  exchange: Any) -> None:
    orders = asyncio.ensure_future(exchange.watch_orders(SYMBOL))
    await until(lambda: any(c.subscription_id is not None for c in server.user_connections),
                message="user data subscribed")
    mine = asyncio.ensure_future(exchange.watch_my_trades(SYMBOL))
    balance = asyncio.ensure_future(exchange.watch_balance())
    client = exchange.clients[exchange.urls["api"]["ws"]["ws-api"]["spot"]]
    await until(lambda: {"spot:balance", f"myTrades:{SYMBOL}", f"orders:{SYMBOL}"}
                <= set(client.futures), message="the watches waiting")
    bought = await exchange.create_order(SYMBOL, "market", "buy", 0.002, None,
                                         {"clientOrderId": "tl-ab12-ws-1"})
    fills = [t for t in server.trades if t["orderId"] == int(bought["id"])]
    seen = await asyncio.wait_for(orders, 5)
    assert {o["clientOrderId"] for o in seen} == {"tl-ab12-ws-1"}
    trades = await asyncio.wait_for(mine, 5)
    assert int(trades[0]["id"]) == fills[0]["id"] and trades[0]["order"] == bought["id"]
    bal = await asyncio.wait_for(balance, 5)
    assert dec(bal["USDT"]["free"]) + dec(bal["USDT"]["used"]) <= Decimal(100_000)
    assert len(server.ws_api.subscribed) == 1  # one signature subscription, shared
    final = await until(lambda: [o for o in exchange.orders if o["status"] == "closed"],
                        message="the fill reported")
    assert dec(final[-1]["filled"]) == Decimal("0.002")
    free = server.balances["BTC"][0]
    await until(lambda: dec(exchange.balance["spot"]["BTC"]["free"]) == free, message="balance")


async def test_watch_tickers_of_every_symbol(server: FakeBinanceServer, exchange: Any) -> None:
    tickers = await drive(server, exchange.watch_tickers())
    assert list(tickers) == [SYMBOL]
    assert {s for c in server.market_connections for s in c.streams} >= {"!miniTicker@arr"}


async def test_no_keys_record_only(server: FakeBinanceServer) -> None:
    """A record-only venue has no keys: markets and every market watch work, a
    private call is refused by ccxt itself, and nothing signed reaches the fake."""
    public = ccxt_binance(server.base_url, api_key=None, secret=None)
    try:
        await public.load_markets()
        trades = await drive(server, public.watch_trades(SYMBOL))
        assert trades and all(t["symbol"] == SYMBOL for t in trades)
        book = await drive(server, public.watch_order_book(SYMBOL))
        assert book["bids"][0][0] < book["asks"][0][0]
        with pytest.raises(ccxt.AuthenticationError):
            await public.fetch_balance()
        assert server.count("GET", "/api/v3/account") == 0
    finally:
        await public.close()


async def test_trades_missed_during_a_reconnect_are_backfilled(server: FakeBinanceServer,
                                                               exchange: Any) -> None:
    """ccxt #26945: `watch_trades` does not backfill after a reconnect. What the fake
    printed while the stream was down is found with `fetch_trades(since=...)`
    (aggTrades by time), so live + backfill leave no gap in the trade ids."""
    live = await drive(server, exchange.watch_trades(SYMBOL))
    last = live[-1]
    assert server.disconnect_market() >= 1
    await server.step(40)  # trades nobody streamed
    with pytest.raises(ccxt.NetworkError):
        await drive(server, exchange.watch_trades(SYMBOL))
    after = await drive(server, exchange.watch_trades(SYMBOL))  # a new connection
    backfill = await exchange.fetch_trades(SYMBOL, since=last["timestamp"])
    seen = {int(t["id"]) for t in live} | {int(t["info"]["f"]) for t in backfill}
    newest = max(int(t["id"]) for t in after)
    missed = [t.trade_id for t in server.exchange.markets[ID].history.recent(10_000)
              if int(last["id"]) < t.trade_id <= newest]
    assert len(missed) > len(after)  # the down time really printed trades
    assert set(missed) - {int(t["id"]) for t in after} <= seen
