"""A record-only ccxt venue's perpetuals: binanceusdm's `watch_mark_price` becomes
MarkPrice, and the funding time passing a FundingRate (once). The tickers are what
ccxt.pro's own binanceusdm parser makes of Binance's markPriceUpdate messages; the
exchange hands them out one per watch, as its websocket would."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt.pro

from adapters.ccxt.market import CcxtMarket
from adapters.ccxt.venue import CcxtVenue
from events.bus import Bus
from events.instruments import Instrument
from events.margin import tiers
from events.perp import FundingRate, MarkPrice
from tests.conftest import until

MS = 1_000_000
H8 = 8 * 3_600_000
T0 = 1_700_006_400_000
SYMBOL = "XRP/USDT:USDT"


def message(e_ms: int, mark: str, rate: str, next_ms: int) -> dict[str, Any]:
    return {"e": "markPriceUpdate", "E": e_ms, "s": "XRPUSDT", "p": mark, "i": "0.6",
            "P": mark, "r": rate, "T": next_ms}


class MarkStream:
    """binanceusdm as far as marks go: each `watch_mark_price` answers the next
    message, parsed by ccxt's binanceusdm; then waits (a quiet stream)."""

    id = "binanceusdm"

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self._parser = ccxt.pro.binanceusdm()
        self.has = {**self._parser.has}
        self.messages = list(messages)
        self.options: dict[str, Any] = {}

    async def watch_mark_price(self, symbol: str, params: dict | None = None) -> dict:
        if not self.messages:
            await asyncio.Event().wait()
        ticker: dict = self._parser.parse_ws_ticker(self.messages.pop(0), "future")
        return {**ticker, "symbol": symbol}

    async def close(self) -> None:
        await self._parser.close()


async def test_marks_and_funding_from_watch_mark_price() -> None:
    exchange = MarkStream([
        message(T0 - 2000, "0.6100", "0.00010000", T0),
        message(T0 - 1000, "0.6110", "0.00012000", T0),
        message(T0 + 5, "0.6120", "-0.00004000", T0 + H8),
        message(T0 + 1005, "0.6130", "-0.00004000", T0 + H8),
    ])
    seen: list = []
    market = CcxtMarket(exchange, "usdm", [SYMBOL], seen.append, kinds=(), marks=[SYMBOL],
                        now_ns=lambda: 42)
    task = asyncio.create_task(market.run())
    try:
        await until(lambda: len([e for e in seen if type(e) is MarkPrice]) == 4,
                    message="four marks")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await exchange.close()
    marks = [e for e in seen if type(e) is MarkPrice]
    funding = [e for e in seen if type(e) is FundingRate]
    assert [(m.ts_event, m.mark, m.index, m.funding_rate, m.next_funding_ts) for m in marks] == [
        ((T0 - 2000) * MS, 0.61, 0.6, 0.0001, T0 * MS),
        ((T0 - 1000) * MS, 0.611, 0.6, 0.00012, T0 * MS),
        ((T0 + 5) * MS, 0.612, 0.6, -0.00004, (T0 + H8) * MS),
        ((T0 + 1005) * MS, 0.613, 0.6, -0.00004, (T0 + H8) * MS),
    ]
    assert [(f.symbol, f.funding_ts, f.ts_event, f.rate) for f in funding] == [
        (SYMBOL, T0 * MS, T0 * MS, 0.00012)]
    assert seen.index(funding[0]) == seen.index(marks[2]) - 1
    assert {e.venue for e in marks + funding} == {"usdm"}


def instrument(symbol: str, perpetual: bool) -> Instrument:
    extra: dict[str, Any] = {}
    if perpetual:
        extra = dict(kind="perpetual", margin_asset="USDT", max_leverage=20,
                     margin_tiers=tiers([(Decimal("1e30"), Decimal("0.005"), 20)]))
    return Instrument(venue="usdm", symbol=symbol, base="XRP", quote="USDT",
                      tick_size=Decimal("0.0001"), step_size=Decimal("0.1"), **extra)


async def test_a_record_only_venue_watches_its_perpetuals_marks() -> None:
    exchange = MarkStream([])
    insts = [instrument(SYMBOL, True), instrument("XRP/USDT", False)]
    try:
        recording = CcxtVenue("usdm", insts, Bus(), exchange=exchange, oms=None, risk=None,
                              trade=False)
        assert recording.market.marks == [SYMBOL]
        exchange.has["watchMarkPrice"] = False  # an exchange ccxt.pro cannot watch marks on
        assert CcxtVenue("usdm", insts, Bus(), exchange=exchange, oms=None, risk=None,
                         trade=False).market.marks == []
    finally:
        await exchange.close()
