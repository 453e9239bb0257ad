"""Fixtures: a fake Binance (quiet: its market steps when a test says so) and
ccxt's own `binance` (`ccxt.pro`) pointed at it, and `drive`, which steps the
market until a websocket watch answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import pytest_asyncio

from tests.ccxt_client.fake_exchange import ccxt_binance
from tests.fake_binance import FakeBinanceServer

T = TypeVar("T")


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeBinanceServer]:
    s = FakeBinanceServer(seed=11, tick_interval_s=None)
    await s.start()
    yield s
    await s.close()


@pytest_asyncio.fixture
async def exchange(server: FakeBinanceServer) -> AsyncIterator[Any]:
    ex = ccxt_binance(server.base_url)
    try:
        await ex.load_markets()
        yield ex
    finally:
        await ex.close()


async def drive(server: FakeBinanceServer, watch: Awaitable[T], *, steps: int = 400) -> T:
    """Await `watch` while the market steps, one step each time the watch has not
    answered within a beat (the market's pace: an answer ends it at once)."""
    task = asyncio.ensure_future(watch)
    for _ in range(steps):
        done, _ = await asyncio.wait({task}, timeout=0.02)
        if done:
            return task.result()
        await server.step(1)
    task.cancel()
    raise AssertionError(f"no answer after {steps} market steps")
