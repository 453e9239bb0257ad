"""Fixtures of the venue contract: the fake Binance on a loopback port, moving
(a tick every 10 ms), for every case that speaks to an exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.fake_binance import FakeBinanceServer


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeBinanceServer]:
    s = FakeBinanceServer(seed=10, tick_interval_s=0.01)
    await s.start()
    yield s
    await s.close()
