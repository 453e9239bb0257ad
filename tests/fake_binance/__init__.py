"""A complete fake Binance Spot exchange on loopback, for tests and local runs.

One aiohttp server (`server.FakeBinanceServer`) serves the REST API, market
data streams and the WebSocket API, backed by a seeded market simulator and
matching engine. Modules:

- `common`   errors, 8-decimal formatting, documented payloads, timestamp check
- `filters`  exchangeInfo filters (PRICE_FILTER, LOT_SIZE, NOTIONAL, ...)
- `market`   one symbol's synthetic book, crowd trades and depth updates (pure)
- `orders`   the account order record, executionReport / account position payloads
- `engine`   the matching engine: orders, balances, fills (pure)
- `conn`     a websocket connection with an ordered outgoing queue
- `rest`     `/api/v3/...` with weights and REST fault injection
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
