"""Binance USD-M REST under `/fapi`: Spot's client (`adapters.binance.rest`:
clock, signing, rate limits, error mapping, never resending an order whose
outcome is unknown) with the futures endpoints.

Binance answers "no need to change" (-4046 margin type, -4059 position side)
when a setting already holds: `set_margin_type` returns False then, not an
error. Weights follow the USD-M docs' figures.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.binance.errors import BinanceError
from adapters.binance.rest import BinanceRest, decimal_text
from adapters.binance_usdm.exchange_info import perpetual_instruments
from events.instruments import Instrument

NO_CHANGE_MARGIN_TYPE = -4046
MAX_CLIENT_ID = 36  # newClientOrderId on USD-M: ^[\.A-Z\:/a-z0-9_-]{1,36}$


class UsdmRest(BinanceRest):
    """The signed USD-M REST client; see the module docstring."""

    TIME_PATH = "/fapi/v1/time"

    async def instruments(self, venue: str) -> list[Instrument]:
        """GET /fapi/v1/exchangeInfo + /fapi/v1/leverageBracket -> perpetuals."""
        info = await self._request("GET", "/fapi/v1/exchangeInfo", signed=False, weight=1,
                                   decode=False)
        brackets = await self._request("GET", "/fapi/v1/leverageBracket", signed=True,
                                       weight=1, decode=False)
        return perpetual_instruments(info, brackets, venue)

    async def new_order(  # type: ignore[override]  # futures parameters differ
        self, symbol: str, side: str, type: str, *, quantity: Decimal,
        price: Decimal | None = None, stop_price: Decimal | None = None,
        time_in_force: str | None = None, reduce_only: bool = False,
        new_client_order_id: str, new_order_resp_type: str = "RESULT",
    ) -> dict[str, Any]:
        """POST /fapi/v1/order (newOrderRespType RESULT: futures have no FULL,
        fills come on the stream or from userTrades). BinanceError on a
        reject, UnknownOutcome when the order may exist (never resent)."""
        if not new_client_order_id or len(new_client_order_id) > MAX_CLIENT_ID:
            raise ValueError(f"client order id {new_client_order_id!r}: 1 to "
                             f"{MAX_CLIENT_ID} characters on USD-M")
        params = [("symbol", symbol), ("side", side), ("type", type)]
        if time_in_force is not None:
            params.append(("timeInForce", time_in_force))
        params.append(("quantity", decimal_text(quantity)))
        if price is not None:
            params.append(("price", decimal_text(price)))
        if stop_price is not None:
            params.append(("stopPrice", decimal_text(stop_price)))
        if reduce_only:
            params.append(("reduceOnly", "true"))
        params += [("newClientOrderId", new_client_order_id), ("newOrderRespType", "RESULT")]
        return await self._request("POST", "/fapi/v1/order", params, signed=True, weight=1,
                                   is_order=True, client_order_id=new_client_order_id)

    async def cancel_order(self, symbol: str, orig_client_order_id: str) -> dict[str, Any]:
        return await self._request("DELETE", "/fapi/v1/order", [
            ("symbol", symbol), ("origClientOrderId", orig_client_order_id)],
            signed=True, weight=1)

    async def get_order(self, symbol: str, orig_client_order_id: str) -> dict[str, Any]:
        return await self._request("GET", "/fapi/v1/order", [
            ("symbol", symbol), ("origClientOrderId", orig_client_order_id)],
            signed=True, weight=1)

    async def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        params = [("symbol", symbol)] if symbol else []
        return await self._request("GET", "/fapi/v1/openOrders", params, signed=True,
                                   weight=1 if symbol else 40)

    async def my_trades(  # type: ignore[override]
        self, symbol: str, from_id: int | None = None, limit: int | None = None,
        order_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """GET /fapi/v1/userTrades (each row carries `realizedPnl`)."""
        params = [("symbol", symbol)]
        for key, value in (("orderId", order_id), ("fromId", from_id), ("limit", limit)):
            if value is not None:
                params.append((key, str(value)))
        rows = await self._request("GET", "/fapi/v1/userTrades", params, signed=True,
                                   weight=5)
        for r in rows:  # Spot's names, so Spot's trade translation reads them
            r.setdefault("isBuyer", r.get("buyer", r.get("side") == "BUY"))
            r.setdefault("isMaker", r.get("maker", False))
        return rows

    async def account(self) -> dict[str, Any]:
        """The balances in Spot's `GET /api/v3/account` shape (free =
        availableBalance, locked = walletBalance - free), so Spot's
        reconciliation records them."""
        rows = await self.balances()
        out = []
        for r in rows:
            total, free = Decimal(str(r["balance"])), Decimal(str(r["availableBalance"]))
            out.append({"asset": r["asset"], "free": str(free), "locked": str(total - free)})
        return {"balances": out}

    async def depth(self, symbol: str, limit: int = 1000) -> bytes:
        weight = 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
        return await self._request("GET", "/fapi/v1/depth", [("symbol", symbol),
                                   ("limit", str(limit))], signed=False, weight=weight,
                                   decode=False)

    async def position_risk(self) -> list[dict[str, Any]]:
        """GET /fapi/v3/positionRisk (every symbol with a position or open order)."""
        return await self._request("GET", "/fapi/v3/positionRisk", (), signed=True, weight=5)

    async def balances(self) -> list[dict[str, Any]]:
        """GET /fapi/v3/balance: walletBalance as `balance`, `availableBalance`."""
        return await self._request("GET", "/fapi/v3/balance", (), signed=True, weight=5)

    async def hedge_mode(self) -> bool:
        """GET /fapi/v1/positionSide/dual: True when the account is in hedge mode."""
        answer = await self._request("GET", "/fapi/v1/positionSide/dual", (), signed=True,
                                     weight=30)
        return bool(answer["dualSidePosition"])

    async def symbol_config(self, symbol: str) -> dict[str, Any]:
        """GET /fapi/v1/symbolConfig: the symbol's `marginType` (CROSSED |
        ISOLATED) and `leverage`; {} when Binance lists nothing for it."""
        rows = await self._request("GET", "/fapi/v1/symbolConfig", [("symbol", symbol)],
                                   signed=True, weight=5)
        return next((r for r in rows if r.get("symbol") == symbol), {})

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        """POST /fapi/v1/leverage: the leverage Binance now applies."""
        answer = await self._request("POST", "/fapi/v1/leverage", [
            ("symbol", symbol), ("leverage", str(leverage))], signed=True, weight=1)
        return int(answer["leverage"])

    async def set_margin_type(self, symbol: str, mode: str) -> bool:
        """POST /fapi/v1/marginType (`mode` "cross" or "isolated"): True when it
        changed, False when it already was (-4046)."""
        try:
            await self._request("POST", "/fapi/v1/marginType", [
                ("symbol", symbol), ("marginType", "CROSSED" if mode == "cross" else "ISOLATED")],
                signed=True, weight=1)
        except BinanceError as exc:
            if exc.code == NO_CHANGE_MARGIN_TYPE:
                return False
            raise
        return True

    async def funding_income(self, start_ms: int | None = None,
                             limit: int = 1000) -> list[dict[str, Any]]:
        """GET /fapi/v1/income?incomeType=FUNDING_FEE from `start_ms` on."""
        params = [("incomeType", "FUNDING_FEE")]
        if start_ms is not None:
            params.append(("startTime", str(start_ms)))
        params.append(("limit", str(limit)))
        return await self._request("GET", "/fapi/v1/income", params, signed=True, weight=30)

    async def listen_key(self) -> str:
        """POST /fapi/v1/listenKey (API key only): the user stream's key."""
        answer = await self._request("POST", "/fapi/v1/listenKey", (), signed=False,
                                     weight=1, keyed=True)
        return str(answer["listenKey"])

    async def keepalive(self) -> None:
        """PUT /fapi/v1/listenKey: 60 more minutes (-1125 when it lapsed)."""
        await self._request("PUT", "/fapi/v1/listenKey", (), signed=False, weight=1, keyed=True)
