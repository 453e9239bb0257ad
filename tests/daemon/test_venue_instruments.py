"""A ccxt venue's instruments come from its exchange at start (daemon/venue_instruments.py):
ccxt's own binance class against the fake Binance, compared with the fake's exchangeInfo
read directly (the independent oracle); the config's mistakes are one line."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest

from daemon.config import Config
from daemon.errors import EXIT_CONFIG, UserError
from daemon.venue_instruments import resolve_venue_instruments
from tests.fake_binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinanceServer
from tests.venues.contract import RISK

STRATEGY = {"id": "s", "class": "daemon.strategies.sma_cross:SmaCross", "venue": "bx",
            "symbols": ["BTC/USDT"], "params": {"fast": 2, "slow": 5, "qty": 0.001}}


def config(url: str, *, instruments: list[dict[str, Any]] | None = None,
           strategies: list[dict[str, Any]] | None = None, trade: bool = True) -> Config:
    return msgspec.convert({
        "venues": [{"name": "bx", "kind": "ccxt", "exchange": "binance", "trade": trade,
                    "urls": {"*": url}, "credentials": "VI"}],
        "instruments": instruments or [],
        "strategies": [STRATEGY] if strategies is None else strategies,
        "risk": RISK,
    }, Config)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VI_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("VI_API_SECRET", DEFAULT_SECRET)


async def filters(url: str) -> dict[str, Decimal]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{url}/api/v3/exchangeInfo", params={"symbol": "BTCUSDT"}) as resp:
        info = await resp.json()
    by_type = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
    notional = by_type.get("NOTIONAL") or by_type["MIN_NOTIONAL"]
    return {"tick_size": Decimal(by_type["PRICE_FILTER"]["tickSize"]).normalize(),
            "step_size": Decimal(by_type["LOT_SIZE"]["stepSize"]).normalize(),
            "min_notional": Decimal(notional["minNotional"]).normalize()}


async def test_a_strategy_symbol_needs_no_instruments_entry(keys: None) -> None:
    server = FakeBinanceServer(seed=3)
    await server.start()
    try:
        got = await resolve_venue_instruments(config(server.base_url))
        want = await filters(server.base_url)
    finally:
        await server.close()
    inst = got["bx", "BTC/USDT"]
    assert (inst.base, inst.quote, inst.tradable) == ("BTC", "USDT", True)
    assert {k: getattr(inst, k).normalize() for k in want} == want


async def test_an_entry_that_disagrees_with_the_exchange_is_one_line(keys: None) -> None:
    server = FakeBinanceServer(seed=3)
    await server.start()
    try:
        want = await filters(server.base_url)
        wrong = {"venue": "bx", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT",
                 "tick_size": float(want["tick_size"] * 10),
                 "step_size": float(want["step_size"]),
                 "min_notional": float(want["min_notional"])}
        with pytest.raises(UserError) as err:
            await resolve_venue_instruments(config(server.base_url, instruments=[wrong]))
    finally:
        await server.close()
    assert err.value.code == EXIT_CONFIG
    mine = (want["tick_size"] * 10).normalize()
    assert str(err.value) == (f"instrument bx/BTC/USDT: tick_size is {mine} in the config but "
                              f"{want['tick_size']} on the exchange")


async def test_an_exchange_id_for_a_symbol_is_one_line_naming_the_unified_one(
        keys: None) -> None:
    server = FakeBinanceServer(seed=3)
    await server.start()
    strategy = {**STRATEGY, "symbols": ["BTCUSDT"]}
    try:
        with pytest.raises(UserError, match=r"^venue 'bx': the exchange lists no market "
                                            r"'BTCUSDT'; ccxt calls it 'BTC/USDT'$"):
            await resolve_venue_instruments(config(server.base_url, strategies=[strategy]))
    finally:
        await server.close()


async def test_an_unreachable_exchange_is_retried_until_a_stop() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.5, stop.set)
    # a port nothing listens on; record-only, so no keys are needed
    got = await resolve_venue_instruments(config("http://127.0.0.1:9", trade=False),
                                          stopping=stop.is_set)
    assert got == {} and stop.is_set()


async def test_no_ccxt_venue_imports_nothing_and_states_nothing() -> None:
    cfg = msgspec.convert({"venues": [{"name": "sim"}], "risk": RISK}, Config)
    assert await resolve_venue_instruments(cfg) == {}
