"""The public market-data routes of the REST API beyond depth (rest-api.md "Market
data endpoints"), answered from each symbol's `history.TradeHistory` and book.

- `GET /api/v3/trades` (weight 25): `symbol`, `limit` (500, max 1000).
- `GET /api/v3/historicalTrades` (25): `symbol`, `limit` (500, max 1000), `fromId`.
- `GET /api/v3/aggTrades` (4): `symbol`, `fromId` or `startTime`/`endTime` (at most
  1 h apart), `limit` (500, max 1000).
- `GET /api/v3/klines` and `uiKlines` (2): `symbol`, `interval`, `startTime`,
  `endTime`, `timeZone` (0 only), `limit` (500, max 1000).
- `GET /api/v3/avgPrice` (2): `symbol`.
- `GET /api/v3/ticker/24hr`: `symbol` (2) or `symbols`, a JSON array (2 up to 20,
  40 up to 100, 80 beyond) or neither (80); `type` FULL or MINI.
- `GET /api/v3/ticker/price`, `ticker/bookTicker`: `symbol` (2), else 4.

With `symbol` a ticker is an object, otherwise a list. Errors: a missing mandatory
parameter -1102, an unknown symbol -1121, a bad interval -1120, digits expected
-1100, `limit` < 1 -1130, a bad `symbols` -1100, `symbol` with `symbols` or
`fromId` with times -1128, a time range too long -1127.

"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fake_binance.common import (
    ZERO,
    ApiError,
    d8,
    int_param,
    limit_param,
    mandatory,
    time_range,
)
from tests.fake_binance.history import INTERVALS
from tests.fake_binance.market import SymbolMarket

if TYPE_CHECKING:
    from tests.fake_binance.rest import RestApi

_LIMIT, _MAX = 500, 1000
_HOUR_MS = 3_600_000
_AVG_MINS = 5
_WEIGHTS = {"/api/v3/trades": 25, "/api/v3/historicalTrades": 25, "/api/v3/aggTrades": 4,
            "/api/v3/klines": 2, "/api/v3/uiKlines": 2, "/api/v3/avgPrice": 2}
_MANY = -1128, "Combination of optional parameters invalid."


def _symbols_count(query: Any) -> int | None:
    """How many symbols `symbols` names (None when absent or malformed)."""
    try:
        names = json.loads(query["symbols"])
    except (KeyError, ValueError):
        return None
    return len(names) if isinstance(names, list) else None


class MarketData:
    """The public market-data routes of `RestApi` (`api`)."""

    def __init__(self, api: RestApi) -> None:
        self.api = api

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v3/trades", self._trades)
        r.add_get("/api/v3/historicalTrades", self._historical_trades)
        r.add_get("/api/v3/aggTrades", self._agg_trades)
        r.add_get("/api/v3/klines", self._klines)
        r.add_get("/api/v3/uiKlines", self._klines)
        r.add_get("/api/v3/avgPrice", self._avg_price)
        r.add_get("/api/v3/ticker/24hr", self._ticker_24hr)
        r.add_get("/api/v3/ticker/price", self._ticker_price)
        r.add_get("/api/v3/ticker/bookTicker", self._book_ticker)

    @staticmethod
    def weight_of(method: str, path: str, query: Any) -> int | None:
        """Binance's request weight, or None for a route that is not this module's."""
        if method != "GET":
            return None
        if path in _WEIGHTS:
            return _WEIGHTS[path]
        if path == "/api/v3/ticker/24hr":
            if "symbol" in query:
                return 2
            n = _symbols_count(query)
            return 80 if n is None or n > 100 else 40 if n > 20 else 2
        if path in ("/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
            return 2 if "symbol" in query else 4
        return None

    def _market(self, p: dict[str, str]) -> SymbolMarket:
        return self.api.exchange.markets[self.api.symbol_of(p)]

    def _markets(self, p: dict[str, str]) -> list[SymbolMarket] | None:
        """The markets `symbol` or `symbols` name (all when neither); None for `symbol`
        (the answer is then one object, not a list)."""
        if p.get("symbol") and p.get("symbols"):
            raise ApiError(400, *_MANY)
        if p.get("symbol"):
            return None
        markets = self.api.exchange.markets
        if not p.get("symbols"):
            return list(markets.values())
        try:
            names = json.loads(p["symbols"])
        except ValueError:
            names = None
        if not isinstance(names, list) or not names or not all(
                isinstance(n, str) for n in names):
            raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'; "
                                       "legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_."
                                       "]{1,20}\"){0,}){0,1}\\]$'.")
        if any(n not in markets for n in names):
            raise ApiError(400, -1121, "Invalid symbol.")
        return [markets[n] for n in dict.fromkeys(names)]

    async def _each(self, request: web.Request, view: Any) -> web.Response:
        p = await self.api.params(request, signed=False)
        markets = self._markets(p)
        if markets is None:
            return self.api.ok(view(self._market(p), p))
        return self.api.ok([view(m, p) for m in markets])

    # --- trades -------------------------------------------------------------------

    async def _trades(self, request: web.Request) -> web.Response:
        p = await self.api.params(request, signed=False)
        market = self._market(p)
        limit = limit_param(p, _LIMIT, _MAX)
        return self.api.ok([t.rest() for t in market.history.recent(limit)])

    async def _historical_trades(self, request: web.Request) -> web.Response:
        p = await self.api.params(request, signed=False)
        market = self._market(p)
        limit = limit_param(p, _LIMIT, _MAX)
        from_id = int_param(p, "fromId")
        trades = (market.history.recent(limit) if from_id is None
                  else market.history.from_id(from_id, limit))
        return self.api.ok([t.rest() for t in trades])

    async def _agg_trades(self, request: web.Request) -> web.Response:
        p = await self.api.params(request, signed=False)
        market = self._market(p)
        from_id = int_param(p, "fromId")
        start, end = time_range(p, _HOUR_MS)
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(400, *_MANY)
        limit = limit_param(p, _LIMIT, _MAX)
        trades = market.history.aggregates(from_id=from_id, start=start, end=end, limit=limit)
        return self.api.ok([t.agg() for t in trades])

    # --- klines and prices -----------------------------------------------------------

    async def _klines(self, request: web.Request) -> web.Response:
        p = await self.api.params(request, signed=False)
        market = self._market(p)
        interval = p.get("interval")
        if not interval:
            raise mandatory("interval")
        if interval not in INTERVALS:
            raise ApiError(400, -1120, "Invalid interval.")
        if p.get("timeZone") not in (None, "", "0", "+00:00", "0:00"):
            # the fake keeps UTC candles only; say so rather than answer wrongly
            raise ApiError(400, -1100, "Illegal characters found in parameter 'timeZone'.")
        start, end = time_range(p, None)
        limit = limit_param(p, _LIMIT, _MAX)
        return self.api.ok(market.history.klines(interval, self.api.now_ms(), start=start,
                                                 end=end, limit=limit))

    async def _avg_price(self, request: web.Request) -> web.Response:
        p = await self.api.params(request, signed=False)
        now = self.api.now_ms()
        stats = self._market(p).history.stats(now, _AVG_MINS * 60_000)
        price = stats.weighted_avg if stats.count else stats.last
        return self.api.ok({"mins": _AVG_MINS, "price": d8(price), "closeTime": now})

    async def _ticker_24hr(self, request: web.Request) -> web.Response:
        now = self.api.now_ms()

        def view(m: SymbolMarket, p: dict[str, str]) -> dict[str, Any]:
            kind = p.get("type") or "FULL"
            if kind not in ("FULL", "MINI"):
                raise ApiError(400, -1100, "Illegal characters found in parameter 'type'; "
                                           "legal range is 'FULL, MINI'.")
            return m.history.stats(now).rest(m.symbol, (m.best_bid(), m.best_ask()),
                                             mini=kind == "MINI")
        return await self._each(request, view)

    async def _ticker_price(self, request: web.Request) -> web.Response:
        def view(m: SymbolMarket, p: dict[str, str]) -> dict[str, Any]:
            last = m.history.last()
            return {"symbol": m.symbol, "price": d8(last.price if last else ZERO)}
        return await self._each(request, view)

    async def _book_ticker(self, request: web.Request) -> web.Response:
        def view(m: SymbolMarket, p: dict[str, str]) -> dict[str, Any]:
            (bp, bq), (ap, aq) = m.best_bid() or (ZERO, ZERO), m.best_ask() or (ZERO, ZERO)
            return {"symbol": m.symbol, "bidPrice": d8(bp), "bidQty": d8(bq),
                    "askPrice": d8(ap), "askQty": d8(aq)}
        return await self._each(request, view)
