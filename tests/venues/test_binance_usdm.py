"""The venue contract for `kind = "binance-usdm"` against the fake Binance
USD-M (loopback REST and websockets), trading and record-only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import msgspec
import pytest
import pytest_asyncio

from daemon.config import Config
from tests.fake_binance.common import DEFAULT_API_KEY, DEFAULT_SECRET
from tests.fake_binance.usdm import FakeUsdmServer
from tests.venues.contract import RISK, VenueCase, VenueContract


@pytest_asyncio.fixture
async def usdm() -> AsyncIterator[FakeUsdmServer]:
    """The fake with a live market: a quote every 50 ms and a mark every 100 ms."""
    server = FakeUsdmServer(min_notional="5")
    await server.start()

    async def tick() -> None:
        n = 0
        while True:
            n += 1
            price = Decimal("60000.0") + Decimal("0.1") * (n % 5)
            server.set_price("BTCUSDT", price)
            if n % 2 == 0:
                server.push_mark("BTCUSDT", price, Decimal("0.0001"),
                                 (server.now_ms() // 3_600_000 + 1) * 3_600_000)
            await asyncio.sleep(0.05)

    ticker = asyncio.get_running_loop().create_task(tick())
    yield server
    ticker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ticker
    await server.close()


def usdm_case(server: FakeUsdmServer, monkeypatch: pytest.MonkeyPatch, *,
              trade: bool) -> VenueCase:
    monkeypatch.setenv("CONTRACT_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("CONTRACT_API_SECRET", DEFAULT_SECRET)
    config = msgspec.convert({
        "venues": [{"name": "usdm", "kind": "binance-usdm", "endpoints": server.base,
                    "credentials": "CONTRACT", "trade": trade,
                    "streams": ["bookTicker", "markPrice@1s"]}],
        "instruments": [{"venue": "usdm", "symbol": "BTCUSDT", "base": "BTC",
                         "quote": "USDT", "kind": "perpetual", "tick_size": 0.1,
                         "step_size": 0.001, "min_notional": 5.0, "leverage": 5}],
        "risk": RISK,
    }, Config)
    return VenueCase(config, trading=trade, feeds=True, reconciles=True, critical=trade,
                     disconnect=lambda: (server.disconnect_market(), server.disconnect_user()))


class TestBinanceUsdmVenue(VenueContract):
    @pytest_asyncio.fixture
    async def new_case(self, usdm: FakeUsdmServer,
                       monkeypatch: pytest.MonkeyPatch) -> VenueCase:
        return usdm_case(usdm, monkeypatch, trade=True)


class TestBinanceUsdmRecordOnly(VenueContract):
    @pytest_asyncio.fixture
    async def new_case(self, usdm: FakeUsdmServer,
                       monkeypatch: pytest.MonkeyPatch) -> VenueCase:
        return usdm_case(usdm, monkeypatch, trade=False)
