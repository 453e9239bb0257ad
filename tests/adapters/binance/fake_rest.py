"""The REST-era fake Binance, now a thin layer over `tests.fake_binance`.

`FakeBinance(api_key=..., secret=...)` is a `FakeBinanceServer` with a quiet
market: no background ticker, best bid 60000.00 and best ask 60000.01, so a
BUY LIMIT at 60000 and a SELL LIMIT at 60000.01 rest, and a MARKET order fills
at the touch. `start()` listens on a free port and returns the base URL.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.fake_binance.common import ApiError
from tests.fake_binance.server import FakeBinanceServer

__all__ = ["ApiError", "FakeBinance"]


class FakeBinance(FakeBinanceServer):
    def __init__(self, api_key: str, secret: str, **kwargs: Any) -> None:
        kwargs.setdefault("tick_interval_s", None)
        kwargs.setdefault("start_prices", {"BTCUSDT": Decimal("60000.00")})
        super().__init__(api_key, secret, **kwargs)
