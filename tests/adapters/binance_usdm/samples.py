"""USD-M payloads in Binance's documented shapes, for the parsing tests and the fake."""

from __future__ import annotations

import json
from typing import Any


def exchange_info(*symbols: dict[str, Any]) -> bytes:
    return json.dumps({"timezone": "UTC", "symbols": list(symbols)}).encode()


def perp_symbol(symbol: str = "BTCUSDT", *, contract: str = "PERPETUAL", tick: str = "0.10",
                step: str = "0.001", notional: str = "100", status: str = "TRADING",
                base: str = "BTC", quote: str = "USDT") -> dict[str, Any]:
    return {
        "symbol": symbol, "pair": symbol, "contractType": contract, "status": status,
        "baseAsset": base, "quoteAsset": quote, "marginAsset": quote,
        "pricePrecision": 2, "quantityPrecision": 3,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764",
             "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000", "stepSize": step},
            {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": "120",
             "stepSize": step},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": notional},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
             "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ],
    }


BTC_BRACKETS = [
    {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
     "maintMarginRatio": 0.004, "cum": 0.0},
    {"bracket": 2, "initialLeverage": 100, "notionalCap": 250000, "notionalFloor": 50000,
     "maintMarginRatio": 0.005, "cum": 50.0},
    {"bracket": 3, "initialLeverage": 50, "notionalCap": 3000000, "notionalFloor": 250000,
     "maintMarginRatio": 0.01, "cum": 1300.0},
]


def leverage_brackets(**by_symbol: list[dict[str, Any]]) -> bytes:
    return json.dumps([{"symbol": s, "brackets": b} for s, b in by_symbol.items()]).encode()


def order_update(*, symbol: str = "BTCUSDT", cid: str = "s1-1", side: str = "BUY",
                 type: str = "LIMIT", x: str = "NEW", status: str = "NEW", order_id: int = 7,
                 qty: str = "0.010", price: str = "60000", last_qty: str = "0",
                 last_price: str = "0", cum: str = "0", trade_id: int = 0, fee: str = "0",
                 fee_asset: str | None = None, maker: bool = False, rp: str = "0",
                 ts: int = 1_700_000_000_000) -> bytes:
    o: dict[str, Any] = {
        "s": symbol, "c": cid, "S": side, "o": type, "f": "GTC", "q": qty, "p": price,
        "ap": "0", "sp": "0", "x": x, "X": status, "i": order_id, "l": last_qty, "z": cum,
        "L": last_price, "n": fee, "T": ts, "t": trade_id, "b": "0", "a": "0", "m": maker,
        "R": False, "wt": "CONTRACT_PRICE", "ot": type, "ps": "BOTH", "cp": False,
        "rp": rp, "pP": False, "si": 0, "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0,
    }
    if fee_asset is not None:
        o["N"] = fee_asset
    return json.dumps({"e": "ORDER_TRADE_UPDATE", "E": ts + 1, "T": ts, "o": o}).encode()


def account_update(reason: str, balances: list[tuple[str, str, str, str]],
                   positions: list[tuple[str, str]] = (),  # type: ignore[assignment]
                   ts: int = 1_700_000_000_000) -> bytes:
    """balances: (asset, wallet, cross wallet, change); positions: (symbol, amount)."""
    return json.dumps({"e": "ACCOUNT_UPDATE", "E": ts + 1, "T": ts, "a": {
        "m": reason,
        "B": [{"a": a, "wb": wb, "cw": cw, "bc": bc} for a, wb, cw, bc in balances],
        "P": [{"s": s, "pa": pa, "ep": "60000", "bep": "0", "cr": "0", "up": "0",
               "mt": "isolated", "iw": "0", "ps": "BOTH"} for s, pa in positions],
    }}).encode()
