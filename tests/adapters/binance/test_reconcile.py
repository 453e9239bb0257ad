"""Reconciliation against the fake Binance: every trade of an order however many
pages it takes, and what a refused look-up of our order proves (-2013, -2026)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from adapters.binance.reconcile import order_trades, reconcile, resolve_order
from adapters.binance.rest import BinanceRest
from adapters.binance.user_stream import UserStreamTranslator
from events.orders import Fill, OrderCanceled, OrderRejected
from tests.adapters.binance.live import CREDS
from tests.fake_binance import FakeBinanceServer
from tests.fake_binance.rest import my_trades_page

SYMBOL = "BTCUSDT"


@dataclass
class Ours:
    """An order as our OMS holds it (what reconciliation reads of one)."""

    client_order_id: str
    qty: Decimal
    side: str = "BUY"
    venue: str = "binance"
    symbol: str = SYMBOL
    strategy_id: str = "s1"
    order_type: str = "LIMIT"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeBinanceServer]:
    s = FakeBinanceServer(seed=4, tick_interval_s=None)
    await s.start()
    yield s
    await s.close()


@pytest_asyncio.fixture
async def rest(server: FakeBinanceServer) -> AsyncIterator[BinanceRest]:
    client = BinanceRest(server.base_url, CREDS, timeout_s=5.0)
    yield client
    await client.close()


class PagedTrades:
    """`myTrades` as the fake answers it, over a given list of trades."""

    def __init__(self, trades: list[dict[str, Any]]) -> None:
        self.trades = trades
        self.calls = 0

    async def my_trades(self, symbol: str, from_id: int | None = None, limit: int | None = None,
                        order_id: int | None = None) -> list[dict[str, Any]]:
        self.calls += 1
        return my_trades_page(self.trades, symbol=symbol, order_id=order_id, from_id=from_id,
                              limit=min(limit or 500, 1000))


@given(st.lists(st.sampled_from([1, 2, 3]), max_size=2600), st.sampled_from([1, 7, 500, 1000]))
async def test_order_trades_reads_every_trade_of_the_order_once(owners: list[int],
                                                                 page: int) -> None:
    """However the account's trades interleave orders, and whatever the page
    size: the order's trades, all of them, in order, in len // page + 1 pages."""
    trades = [{"symbol": SYMBOL, "id": 5_000 + 3 * i, "orderId": o}
              for i, o in enumerate(owners)]
    source = PagedTrades(trades)
    got = await order_trades(source, SYMBOL, 2, page=page)  # type: ignore[arg-type]
    mine = [t for t in trades if t["orderId"] == 2]
    assert got == mine
    assert source.calls == len(mine) // page + 1


async def test_an_order_with_more_fills_than_a_page_loses_none(server: FakeBinanceServer,
                                                               rest: BinanceRest) -> None:
    bid = server.book()[0][0][0]
    placed = await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("1.2"),
                                  price=bid - 100, time_in_force="GTC",
                                  new_client_order_id="s1-1")
    server.crowd_trades(SYMBOL, bid - 100, Decimal("0.001"), 1200)  # 1200 fills of 0.001
    found = await resolve_order(rest, UserStreamTranslator("binance"),
                                Ours("s1-1", Decimal("1.2")), time.time_ns)
    fills = [e for e in found.events if isinstance(e, Fill)]
    theirs = [str(t["id"]) for t in server.trades if t["orderId"] == placed["orderId"]]
    assert len(theirs) == 1200
    assert [f.trade_id for f in fills] == theirs
    assert sum(f.qty for f in fills) == Decimal("1.2") and not found.open


async def test_an_archived_order_ended_unfilled_and_an_unknown_one_never_arrived(
        server: FakeBinanceServer, rest: BinanceRest) -> None:
    bid = server.book()[0][0][0]
    await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"), price=bid - 100,
                         time_in_force="GTC", new_client_order_id="s1-1")
    await rest.new_order(SYMBOL, "BUY", "LIMIT", quantity=Decimal("0.001"), price=bid - 90,
                         time_in_force="GTC", new_client_order_id="s1-3")
    server.cancel_behind_our_back("s1-1", archive=True)
    ours = [Ours("s1-1", Decimal("0.001")), Ours("s1-2", Decimal("0.001")),
            Ours("s1-3", Decimal("0.001"))]
    out = await reconcile(rest, UserStreamTranslator("binance"), "binance", ours, [SYMBOL], {},
                          time.time_ns, set())
    ends = {e.client_order_id: e for e in out.events
            if isinstance(e, OrderCanceled | OrderRejected)}
    assert set(ends) == {"s1-1", "s1-2"} and not out.unresolved
    archived = ends["s1-1"]
    assert isinstance(archived, OrderCanceled)
    assert archived.reason.startswith("-2026 ORDER_ARCHIVED")
    never = ends["s1-2"]
    assert isinstance(never, OrderRejected) and never.code == "-2013"
    assert out.still_open == ["s1-3"]
    assert any("s1-1" in line and "archived" in line for line in out.diff)
