"""Fixtures for the fake Binance tests: a started server (quiet market: steps
only when the test says so), a REST client for it, and websocket helpers that
wait on frames under a deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from websockets.asyncio.client import ClientConnection

from adapters.binance.rest import BinanceRest
from adapters.binance.signing import Credentials, HmacSigner, sign_ws
from tests.fake_binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinanceServer

CREDS = Credentials(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET)
DEADLINE = 5.0


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeBinanceServer]:
    s = FakeBinanceServer(seed=7, tick_interval_s=None)
    await s.start()
    yield s
    await s.close()


@pytest_asyncio.fixture
async def rest(server: FakeBinanceServer) -> AsyncIterator[BinanceRest]:
    client = BinanceRest(server.base_url, CREDS, timeout_s=2.0)
    yield client
    await client.close()


async def recv_json(ws: ClientConnection, timeout: float = DEADLINE) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: ClientConnection, done: Callable[[list[Any]], bool],
                     timeout: float = DEADLINE, raw: bool = False) -> list[Any]:
    """Frames received (JSON-decoded, or the raw bytes if `raw`) until
    `done(frames)` is true; fails at the deadline."""
    frames: list[Any] = []
    deadline = time.monotonic() + timeout
    while not done(frames):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s; got {frames[-5:]}")
        data = await asyncio.wait_for(ws.recv(decode=False), left)
        frames.append(data if raw else json.loads(data))
    return frames


def subscribe_frame(rid: int = 1, secret: str = DEFAULT_SECRET, key: str = DEFAULT_API_KEY,
                    timestamp: int | None = None) -> str:
    """`userDataStream.subscribe.signature` signed with HMAC (protocol doc §7)."""
    ts = timestamp if timestamp is not None else time.time_ns() // 1_000_000
    params = sign_ws(HmacSigner(secret), {"apiKey": key, "timestamp": ts})
    return json.dumps({"id": rid, "method": "userDataStream.subscribe.signature",
                       "params": params})


async def subscribed(ws: ClientConnection) -> int:
    """Subscribe with the default HMAC key; returns the subscription id."""
    await ws.send(subscribe_frame())
    reply = await recv_json(ws)
    assert reply["status"] == 200, reply
    return reply["result"]["subscriptionId"]


def events_of(frames: list[Any], etype: str) -> list[dict[str, Any]]:
    return [f["event"] for f in frames if "event" in f and f["event"].get("e") == etype]
