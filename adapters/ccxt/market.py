"""Market data of a ccxt venue: ccxt.pro watch loops → Trade, Quote, BookSnapshot.

`CcxtMarket` runs, per symbol, `watch_trades` (Trade, the exchange's trade id
kept), `watch_bids_asks` where the exchange has it, else `watch_ticker` (Quote),
and `watch_order_book` (BookSnapshot of the top `depth` levels, its nonce as
`last_update_id`). The exchange's own time is `ts_event`, our clock `ts_recv`.
For the `marks` symbols (perpetuals, where the exchange has `watchMarkPrice`:
binanceusdm), `watch_mark_price` gives MarkPrice (the mark, the index, and from
Binance's raw message the funding rate `r` due at `T`); the first mark past that
time settles a FundingRate (`adapters.binance.parse.FundingSettlement`).

- A watch that fails publishes `VenueStatus` disconnected and waits out the
  project's backoff (`adapters.binance.reconnect.Reconnects`: full jitter,
  seeded) before watching again; the next answer publishes connected.
- After such a gap the trades missed are backfilled (`_missed_trades`: binance
  from the next trade id, elsewhere `fetch_trades(since=<last trade time>)`),
  deduplicated by trade id; a backfill that fails or stops short is stated in a
  `VenueStatus` (resyncing).
- A feed silent for `stale_after_s` is reported (`VenueStatus` disconnected,
  "stale"); the venue holds trading REDUCING until messages flow again.

`status` and `reconnects` are what `tapeloop status` shows.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

import structlog

from adapters.binance.parse import FundingSettlement
from adapters.binance.reconnect import ReconnectBudgetExhausted, Reconnects
from events.base import Event
from events.market import (
    AGGRESSOR_BUY,
    AGGRESSOR_SELL,
    AGGRESSOR_UNKNOWN,
    BookSnapshot,
    Quote,
    Trade,
)
from events.perp import MarkPrice
from events.system import CONNECTED, DISCONNECTED, RESYNCING, VenueStatus

log = structlog.get_logger("tapeloop.ccxt")

MS = 1_000_000
_TRADE_IDS = 5_000  # trade ids remembered per symbol (a backfill overlaps the stream)
_BACKFILL_PAGES = 10  # at most this many pages of missed trades after a gap


class CcxtMarket:
    """The watch loops of one venue; see the module docstring."""

    def __init__(self, exchange: Any, venue: str, symbols: list[str],
                 publish: Callable[[Event], object], *, stale_after_s: float = 10.0,
                 depth: int = 20, now_ns: Callable[[], int] = time.time_ns,
                 kinds: tuple[str, ...] = ("trades", "quotes", "book"),
                 reconnects: Reconnects | None = None, marks: Collection[str] = ()) -> None:
        """`marks`: the symbols whose mark price (and funding) to watch too."""
        self.exchange = exchange
        self.venue = venue
        self.symbols = symbols
        self.publish = publish
        self.stale_after_s = stale_after_s
        self.depth = depth
        self.now_ns = now_ns
        self.kinds = kinds
        self.marks = [m for m in symbols if m in set(marks)]
        self._funding = FundingSettlement(venue)
        # backoff shared by the watches; the reconnect budget (as for Binance's streams:
        # at most `budget` per `window_s`) is per watch, each being its own subscription
        self.backoff = reconnects or Reconnects()
        self._budgets: dict[str, Reconnects] = {}
        self.status: str | None = None
        self.reconnects = 0
        self._last_msg = 0.0  # loop time of the last market message
        self._last_trade_ms: dict[str, int] = {}
        self._last_trade_id: dict[str, str] = {}
        self._trade_ids: dict[str, OrderedDict[str, None]] = {s: OrderedDict() for s in symbols}
        self._failing: set[str] = set()  # loops currently down

    async def run(self) -> None:
        self._last_msg = asyncio.get_running_loop().time()
        try:
            async with asyncio.TaskGroup() as tg:
                for symbol in self.symbols:
                    if "trades" in self.kinds:
                        tg.create_task(self._loop(f"trades:{symbol}", self._trades, symbol))
                    if "quotes" in self.kinds:
                        tg.create_task(self._loop(f"quotes:{symbol}", self._quotes, symbol))
                    if "book" in self.kinds:
                        tg.create_task(self._loop(f"book:{symbol}", self._book, symbol))
                    if symbol in self.marks:
                        tg.create_task(self._loop(f"marks:{symbol}", self._marks, symbol))
                tg.create_task(self._watchdog())
        finally:
            # on cancellation too: the feed is gone either way (found by the venue
            # contract: `tapeloop status` showed a stopped feed connected)
            if self.status is not None:
                self._set_status(DISCONNECTED, "feed stopped")

    def _set_status(self, status: str, reason: str) -> None:
        if status == self.status and status == CONNECTED:
            return
        self.status = status
        now = self.now_ns()
        self.publish(VenueStatus(ts_event=now, ts_recv=now, venue=self.venue, status=status,
                                 reason=reason))

    async def _loop(self, key: str, step: Callable[[str, bool], Any], symbol: str) -> None:
        loop = asyncio.get_running_loop()
        after_gap = False
        while True:
            try:
                await step(symbol, after_gap)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ccxt's NetworkError and friends: watch again
                self._failing.add(key)
                budget = self._budgets.setdefault(key, Reconnects(
                    budget=self.backoff.budget, window_s=self.backoff.window_s))
                try:
                    budget.spend(f"{key}: {str(exc)[:200] or type(exc).__name__}")
                except ReconnectBudgetExhausted as spent:
                    # a feed that keeps failing stops: a trading venue stops the daemon
                    # (systemd restarts it, reconciling), a record-only one goes on without
                    log.error("ccxt.reconnect_budget_exhausted", venue=self.venue, watch=key,
                              error=str(spent))
                    raise ReconnectBudgetExhausted(f"{self.venue} {key}: {spent}") from None
                self.reconnects += 1
                delay = self.backoff.next_delay()
                log.warning("ccxt.watch_failed", venue=self.venue, watch=key,
                            error=str(exc)[:300] or repr(exc), retry_s=round(delay, 3))
                self._set_status(DISCONNECTED, f"{key}: {str(exc)[:200] or type(exc).__name__}")
                after_gap = True
                await asyncio.sleep(delay)
                continue
            self._last_msg = loop.time()
            if after_gap or self.status != CONNECTED:
                self._failing.discard(key)
                after_gap = False
                if not self._failing:
                    self.backoff.reset()
                    self._set_status(CONNECTED, f"{key} flowing")

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.stale_after_s / 4))
            silent = loop.time() - self._last_msg
            if silent >= self.stale_after_s and self.status == CONNECTED:
                self._set_status(DISCONNECTED, f"stale: no market data for {silent:.1f} s")

    # -- the watches ------------------------------------------------------------------

    async def _trades(self, symbol: str, after_gap: bool) -> None:
        trades = await self.exchange.watch_trades(symbol)
        if after_gap and symbol in self._last_trade_ms:
            # watching again first: a trade between the backfill and the
            # subscription would be lost; the overlap is dropped by trade id
            await self._backfill(symbol)
        self._emit_trades(symbol, trades, self.now_ns())

    async def _backfill(self, symbol: str) -> None:
        since = self._last_trade_ms[symbol]
        try:
            missed = await self._missed_trades(symbol, since)
        except Exception as exc:
            self._set_status(RESYNCING, f"{symbol} trades since {since} ms lost: backfill "
                                        f"failed: {str(exc)[:200]}")
            return
        n = self._emit_trades(symbol, missed, self.now_ns())
        log.info("ccxt.trades_backfilled", venue=self.venue, symbol=symbol, since_ms=since,
                 trades=n)

    async def _missed_trades(self, symbol: str, since: int) -> list[dict[str, Any]]:
        """The trades after the last one we had. Binance's default `fetch_trades` is
        aggregate trades, whose ids are not the stream's trade ids: there the
        backfill reads historical trades from the next trade id (gapless, pages of
        1000); elsewhere `fetch_trades(since=...)`, deduplicated by trade id."""
        last_id = self._last_trade_id.get(symbol, "")
        if self.exchange.id.startswith("binance") and last_id.isdigit():
            return await self._binance_missed(symbol, int(last_id))
        trades: list[dict[str, Any]] = await self.exchange.fetch_trades(symbol, since)
        return trades

    async def _binance_missed(self, symbol: str, last_id: int) -> list[dict[str, Any]]:
        """Binance: historical trades from the next id (ccxt sends them only with a
        key), else the latest 1000 trades; a hole before them is stated."""
        out: list[dict[str, Any]] = []
        from_id = last_id + 1
        if not self.exchange.apiKey:
            out = [t for t in await self.exchange.fetch_trades(
                symbol, None, 1000, {"fetchTradesMethod": "publicGetTrades"})
                if int(t["id"]) > last_id]
        else:
            for _ in range(_BACKFILL_PAGES):
                page = await self.exchange.fetch_trades(
                    symbol, None, 1000, {"fetchTradesMethod": "publicGetHistoricalTrades",
                                         "fromId": from_id})
                out.extend(page)
                if len(page) < 1000:
                    break
                from_id = int(page[-1]["id"]) + 1
        if out and int(out[0]["id"]) != last_id + 1:
            self._set_status(RESYNCING, f"{symbol} trades {last_id + 1} to "
                                        f"{int(out[0]['id']) - 1} lost: too many to backfill")
        return out

    def _emit_trades(self, symbol: str, trades: list[dict[str, Any]], ts_recv: int) -> int:
        seen = self._trade_ids[symbol]
        n = 0
        for t in trades:
            tid = str(t.get("id") or "")
            if tid:
                if tid in seen:
                    continue
                seen[tid] = None
                if len(seen) > _TRADE_IDS:
                    seen.popitem(last=False)
            self._last_trade_id[symbol] = tid
            ms = t.get("timestamp") or 0
            if ms > self._last_trade_ms.get(symbol, 0):
                self._last_trade_ms[symbol] = ms
            side = t.get("side")
            self.publish(Trade(
                ts_event=ms * MS if ms else ts_recv, ts_recv=ts_recv, venue=self.venue,
                symbol=symbol, price=float(t["price"]), size=float(t["amount"]),
                aggressor=AGGRESSOR_BUY if side == "buy" else AGGRESSOR_SELL
                if side == "sell" else AGGRESSOR_UNKNOWN, trade_id=tid))
            n += 1
        return n

    async def _quotes(self, symbol: str, after_gap: bool) -> None:
        if self.exchange.has.get("watchBidsAsks"):
            tickers = await self.exchange.watch_bids_asks([symbol])
            ticker = tickers.get(symbol)
        else:
            ticker = await self.exchange.watch_ticker(symbol)
        if not ticker or ticker.get("bid") is None or ticker.get("ask") is None:
            return
        ts_recv = self.now_ns()
        ms = ticker.get("timestamp")
        self.publish(Quote(
            ts_event=ms * MS if ms else ts_recv, ts_recv=ts_recv, venue=self.venue,
            symbol=symbol, bid=float(ticker["bid"]), ask=float(ticker["ask"]),
            bid_size=float(ticker.get("bidVolume") or 0.0),
            ask_size=float(ticker.get("askVolume") or 0.0)))

    async def _book(self, symbol: str, after_gap: bool) -> None:
        book = await self.exchange.watch_order_book(symbol)
        ts_recv = self.now_ns()
        ms = book.get("timestamp")
        bids, asks = book["bids"][:self.depth], book["asks"][:self.depth]
        self.publish(BookSnapshot(
            ts_event=ms * MS if ms else ts_recv, ts_recv=ts_recv, venue=self.venue,
            symbol=symbol, bid_prices=[float(b[0]) for b in bids],
            bid_sizes=[float(b[1]) for b in bids], ask_prices=[float(a[0]) for a in asks],
            ask_sizes=[float(a[1]) for a in asks], last_update_id=int(book.get("nonce") or 0)))

    async def _marks(self, symbol: str, after_gap: bool) -> None:
        ticker = await self.exchange.watch_mark_price(symbol)
        if not ticker or ticker.get("markPrice") is None:
            return
        ts_recv = self.now_ns()
        ms = ticker.get("timestamp")
        info = ticker.get("info") or {}
        mark = MarkPrice(
            ts_event=ms * MS if ms else ts_recv, ts_recv=ts_recv, venue=self.venue,
            symbol=symbol, mark=float(ticker["markPrice"]),
            index=float(ticker.get("indexPrice") or 0.0),
            funding_rate=float(info.get("r") or 0.0),
            next_funding_ts=int(info.get("T") or 0) * MS)
        funding = self._funding.settle(mark)
        if funding is not None:
            self.publish(funding)
        self.publish(mark)
