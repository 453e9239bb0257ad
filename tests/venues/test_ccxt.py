"""The venue contract for `kind = "ccxt"`: ccxt's own `binance` class against the fake
Binance (its URLs moved to loopback by the venue's `urls`), trading and record-only."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.fake_binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinanceServer
from tests.venues.contract import VenueCase, VenueContract, contract_config


def ccxt_case(server: FakeBinanceServer, monkeypatch: pytest.MonkeyPatch, *,
              trade: bool) -> VenueCase:
    monkeypatch.setenv("CONTRACT_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("CONTRACT_API_SECRET", DEFAULT_SECRET)
    config = contract_config({"name": "bx", "kind": "ccxt", "exchange": "binance",
                              "urls": {"*": server.base_url}, "credentials": "CONTRACT",
                              "trade": trade}, symbol="BTC/USDT")
    return VenueCase(config, trading=trade, feeds=True, reconciles=True, critical=trade,
                     symbol="BTC/USDT",
                     disconnect=lambda: (server.disconnect_market(), server.disconnect_user()))


class TestCcxtVenue(VenueContract):
    @pytest_asyncio.fixture
    async def new_case(self, server: FakeBinanceServer,
                       monkeypatch: pytest.MonkeyPatch) -> VenueCase:
        return ccxt_case(server, monkeypatch, trade=True)


class TestCcxtRecordOnly(VenueContract):
    @pytest_asyncio.fixture
    async def new_case(self, server: FakeBinanceServer,
                       monkeypatch: pytest.MonkeyPatch) -> VenueCase:
        return ccxt_case(server, monkeypatch, trade=False)
