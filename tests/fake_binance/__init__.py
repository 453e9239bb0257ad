"""A complete fake Binance Spot exchange on loopback, for tests and local runs.

One aiohttp server (`server.FakeBinanceServer`) serves the REST API, market
data streams and the WebSocket API, backed by a seeded market simulator and
matching engine. ccxt's own `binance` class (REST and `ccxt.pro`) works against
it with only its URLs moved (`tests/ccxt_client/fake_exchange.ccxt_binance`).

What it serves (weights, parameters, error codes and payloads as Binance's docs
and ../shared/binance-spot-protocol.md; numbers are 8-decimal strings):
- REST, public: `ping`, `time`, `exchangeInfo`, `depth`, `trades`,
  `historicalTrades`, `aggTrades`, `klines`, `uiKlines`, `avgPrice`,
  `ticker/24hr` (FULL/MINI), `ticker/price`, `ticker/bookTicker`.
- REST, signed: `order` (POST, GET, DELETE), `order/test`, `order/cancelReplace`
  (ccxt's `edit_order`), `openOrders` (GET, DELETE), `allOrders`, `account`,
  `myTrades` (by `fromId`, `orderId`, time).
- Other APIs, as for a spot-only account: `/fapi/v1/exchangeInfo` and
  `/dapi/v1/exchangeInfo` (no symbols), `/sapi/v1/capital/config/getall`,
  `/sapi/v1/margin/allPairs`, `/sapi/v1/margin/isolated/allPairs` (none).
- Market streams (`/ws/<name>`, `/stream?streams=`, SUBSCRIBE): `@trade`,
  `@aggTrade`, `@bookTicker`, `@depth[@100ms]`, `@depth<5|10|20>`, `@ticker`,
  `@miniTicker`, `@kline_<interval>`, `!miniTicker@arr`.
- WS-API `/ws-api/v3`: session methods and the user data stream
  (`userDataStream.subscribe[.signature]`: `executionReport`,
  `outboundAccountPosition`). No listenKey: Binance retired it (2026-02-20).
Trade history (and so trades, klines and 24 h tickers) reaches back 10,000
trades per symbol. Not served: order lists (OCO/OTO), `order/amend/keepPriority`,
SOR, `ticker` (rolling window), `ticker/tradingDay`, `!ticker@arr`; they answer
404 / nothing.

Modules:

- `common`   errors, 8-decimal formatting, parameters, documented payloads, timestamp check
- `filters`  exchangeInfo filters (PRICE_FILTER, LOT_SIZE, NOTIONAL, ...)
- `history`  one symbol's public trade history, klines and 24 h statistics (pure)
- `market`   one symbol's synthetic book, crowd trades and depth updates (pure)
- `orders`   the account order record, executionReport / account position payloads
- `engine`   the matching engine: orders, balances, fills (pure)
- `conn`     a websocket connection with an ordered outgoing queue
- `rest`     `/api/v3/...` security, weights, orders and REST fault injection
- `rest_market`   public market data beyond depth
- `rest_account`  account queries (account, open/all orders, myTrades)
- `rest_replace`  `order/cancelReplace`
- `rest_other`    the futures, wallet and margin routes ccxt asks at load_markets
- `streams`  `/stream`, `/ws/<name>` market streams
- `ws_api`   `/ws-api/v3` sessions and user-data subscriptions
- `server`   `FakeBinanceServer`: wiring, market clock, fault injection
- `chaos`    random faults on a seeded schedule (`--chaos`)

Standalone: `python -m tests.fake_binance --port 8990 --seed 7`.
"""

from tests.fake_binance.common import DEFAULT_API_KEY, DEFAULT_SECRET, ApiError
from tests.fake_binance.engine import Exchange
from tests.fake_binance.server import FakeBinanceServer

__all__ = ["DEFAULT_API_KEY", "DEFAULT_SECRET", "ApiError", "Exchange", "FakeBinanceServer"]
