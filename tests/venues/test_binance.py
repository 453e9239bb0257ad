"""The venue contract for `kind = "binance"` against the fake Binance (loopback
REST and websockets), trading and record-only."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.fake_binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinanceServer
from tests.venues.contract import VenueCase, VenueContract, contract_config


def binance_case(server: FakeBinanceServer, monkeypatch: pytest.MonkeyPatch, *,
                 trade: bool) -> VenueCase:
    # credentials as an operator gives them: the environment (daemon/venues.py reads it)
    monkeypatch.setenv("CONTRACT_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("CONTRACT_API_SECRET", DEFAULT_SECRET)
    config = contract_config({"name": "binance", "kind": "binance",
                              "endpoints": server.base_url, "credentials": "CONTRACT",
                              "trade": trade})
    return VenueCase(config, trading=trade, feeds=True, reconciles=True, critical=trade,
                     disconnect=lambda: (server.disconnect_market(), server.disconnect_user()))


class TestBinanceVenue(VenueContract):
    @pytest_asyncio.fixture
    async def new_case(self, server: FakeBinanceServer,
                   monkeypatch: pytest.MonkeyPatch) -> VenueCase:
        return binance_case(server, monkeypatch, trade=True)


class TestBinanceRecordOnly(VenueContract):
    @pytest_asyncio.fixture
    async def new_case(self, server: FakeBinanceServer,
                   monkeypatch: pytest.MonkeyPatch) -> VenueCase:
        return binance_case(server, monkeypatch, trade=False)
