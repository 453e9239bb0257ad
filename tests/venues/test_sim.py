"""The venue contract for `kind = "sim"`: the node's simulated account, fed by
the market data another venue would publish."""

from __future__ import annotations

import pytest_asyncio

from tests.venues.contract import VenueCase, VenueContract, contract_config, sim_market


class TestSimVenue(VenueContract):
    @pytest_asyncio.fixture
    async def new_case(self) -> VenueCase:
        config = contract_config({"name": "paper", "kind": "sim",
                                  "balances": {"USDT": 100_000.0}})
        return VenueCase(config, trading=True, feeds=False, reconciles=False, critical=False,
                         market=sim_market(60_000.0))
