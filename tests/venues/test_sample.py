"""The venue contract for `kind = "sample"`: the bundled Binance recording played
as a live feed; its orders go to the node's simulated account of the same name."""

from __future__ import annotations

import pytest_asyncio

from adapters.sample.feed import SampleFeed
from adapters.venue import VenueState
from events.bus import Bus
from events.system import DISCONNECTED
from tests.conftest import REPO
from tests.venues.contract import VenueCase, VenueContract, contract_config

SAMPLE = REPO / "configs" / "samples" / "binance-usdm-btcusdt-20240808-head30k.gz"


class TestSampleFeed(VenueContract):
    @pytest_asyncio.fixture
    async def new_case(self) -> VenueCase:
        config = contract_config({"name": "sample", "kind": "sample", "file": SAMPLE,
                                  "speed": 20.0, "loop": True,
                                  "balances": {"USDT": 100_000.0}}, tick=0.1, step=0.001)
        return VenueCase(config, trading=True, feeds=True, reconciles=False, critical=False)


async def test_a_recording_played_to_its_end_says_so() -> None:
    # its status is what it last published: "connected" while playing, then
    # "disconnected" (it said "connected" for ever, and /metrics counted it up)
    bus = Bus()
    feed = SampleFeed(venue="sample", path=SAMPLE, symbol="BTCUSDT", speed=None, loop=False,
                      publish=bus.publish)
    assert feed.status().status == "connecting"
    await feed.run()
    assert feed.published == len(feed.events)
    assert feed.status() == VenueState(status=DISCONNECTED)
