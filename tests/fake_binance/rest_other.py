"""What clients ask of Binance's other APIs (futures `fapi`/`dapi`, wallet and
margin `sapi`) when they load markets, answered as for a spot-only account.

ccxt's `binance.load_markets()` asks, besides `GET /api/v3/exchangeInfo`:
- `GET /fapi/v1/exchangeInfo`, `GET /dapi/v1/exchangeInfo` (always, by default):
  answered with no symbols, this fake lists spot only;
- with keys and outside the testnet (`set_sandbox_mode`): `GET /sapi/v1/capital/config/getall`
  (signed, the account's coins: one network each, named as the coin, no fees),
  `GET /sapi/v1/margin/allPairs` and `GET /sapi/v1/margin/isolated/allPairs`
  (signed): no margin pairs.
These routes do not count in the `/api` request weight (Binance counts `sapi`
apart, and nothing here enforces its limits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fake_binance.common import RATE_LIMITS, ZERO, d8

if TYPE_CHECKING:
    from tests.fake_binance.rest import RestApi

PATHS = ("/fapi/", "/dapi/", "/sapi/")


class OtherApis:
    """The non-spot routes of `RestApi` (`api`)."""

    def __init__(self, api: RestApi) -> None:
        self.api = api

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/fapi/v1/exchangeInfo", self._no_futures)
        r.add_get("/dapi/v1/exchangeInfo", self._no_futures)
        r.add_get("/sapi/v1/capital/config/getall", self._coins)
        r.add_get("/sapi/v1/margin/allPairs", self._no_margin)
        r.add_get("/sapi/v1/margin/isolated/allPairs", self._no_isolated_margin)

    @staticmethod
    def weight_of(method: str, path: str, query: Any) -> int | None:
        return 0 if path.startswith(PATHS) else None

    async def _no_futures(self, request: web.Request) -> web.Response:
        return self.api.ok({"timezone": "UTC", "serverTime": self.api.now_ms(),
                            "rateLimits": RATE_LIMITS, "exchangeFilters": [], "assets": [],
                            "symbols": []})

    async def _coins(self, request: web.Request) -> web.Response:
        await self.api.params(request, signed=True)
        exchange = self.api.exchange
        coins = dict.fromkeys([*exchange.balances, *(r.base for r in exchange.rules.values()),
                               *(r.quote for r in exchange.rules.values())])
        out = []
        for coin in coins:
            free, locked = exchange.balances.get(coin, (ZERO, ZERO))
            out.append({
                "coin": coin, "depositAllEnable": True, "withdrawAllEnable": True,
                "name": coin, "free": d8(free), "locked": d8(locked), "freeze": "0",
                "withdrawing": "0", "ipoing": "0", "ipoable": "0", "storage": "0",
                "isLegalMoney": False, "trading": True,
                "networkList": [{
                    "network": coin, "coin": coin, "withdrawIntegerMultiple": "0.00000001",
                    "isDefault": True, "depositEnable": True, "withdrawEnable": True,
                    "depositDesc": "", "withdrawDesc": "", "name": coin,
                    "resetAddressStatus": False, "withdrawFee": "0", "withdrawMin": "0",
                    "withdrawMax": "9999999999.99999999", "minConfirm": 1,
                    "unLockConfirm": 0, "sameAddress": False}]})
        return self.api.ok(out)

    async def _no_margin(self, request: web.Request) -> web.Response:
        return self.api.ok([])

    async def _no_isolated_margin(self, request: web.Request) -> web.Response:
        await self.api.params(request, signed=True)
        return self.api.ok([])
