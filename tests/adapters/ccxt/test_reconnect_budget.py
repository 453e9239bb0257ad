"""A ccxt feed that keeps failing spends its reconnect budget (as Binance's streams do:
at most `budget` reconnects per `window_s` per watch) and then stops with one line,
rather than reconnecting for ever; the supervisor decides what follows."""

from __future__ import annotations

import asyncio

import pytest

from adapters.binance.reconnect import ReconnectBudgetExhausted, Reconnects
from adapters.ccxt.market import CcxtMarket


class Failing:
    """An exchange whose every watch fails at once, as a dead endpoint's does."""

    id = "failing"
    has = {"watchTrades": True}

    def __init__(self) -> None:
        self.calls = 0

    async def watch_trades(self, symbol: str, *args: object, **kwargs: object) -> list:
        self.calls += 1
        import ccxt

        raise ccxt.NetworkError("connection refused")


async def test_a_feed_that_keeps_failing_stops_when_its_budget_is_spent() -> None:
    exchange = Failing()
    market = CcxtMarket(exchange, "v", ["BTC/USDT"], lambda e: None, kinds=("trades",),
                        reconnects=Reconnects(backoff_initial=0.0, backoff_max=0.0,
                                              budget=3, window_s=300.0))
    with pytest.raises(BaseExceptionGroup) as group:
        await asyncio.wait_for(market.run(), 10)
    [exc] = group.value.exceptions
    assert isinstance(exc, ReconnectBudgetExhausted)
    assert "reconnect budget exhausted: 3 reconnects in 300 s" in str(exc)
    assert exchange.calls == 4 and market.reconnects == 3
