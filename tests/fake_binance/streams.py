"""Market data websocket streams (protocol doc §8).

Routes: combined `/stream?streams=a/b` (frames `{"stream":name,"data":payload}`),
raw `/ws/<name>` or `/ws` (bare payloads). Streams per symbol `s` (lower case):
`s@trade`, `s@aggTrade`, `s@bookTicker`, `s@depth`, `s@depth@100ms` (spot diff
depth) and `s@depth<5|10|20>[@100ms]` (top-N `{"lastUpdateId","bids","asks"}`,
sent on every book change), and after each market step in which the symbol traded:
`s@ticker` (`24hrTicker`), `s@miniTicker` (`24hrMiniTicker`) and `s@kline_<i>`
(`kline`, the current candle of interval `i`; when a trade opens a new candle,
the one that ended is sent first with `x` true) and `!miniTicker@arr` (the mini
tickers of the symbols that traded), all from the symbol's trade history
(`history`). Binance sends those every 1 s (2 s for klines) and closes a candle
at its close time; the fake sends them at its market's pace, when a symbol
trades.
Control frames SUBSCRIBE / UNSUBSCRIBE answer
`{"result":null,"id":N}`, LIST_SUBSCRIPTIONS `{"result":[...],"id":N}`; a bad one
`{"error":{"code":2,"msg":"Invalid request: ..."},"id":N}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fake_binance.common import d8, dumps
from tests.fake_binance.conn import Connection
from tests.fake_binance.history import INTERVALS
from tests.fake_binance.market import SymbolMarket

_PARTIAL = re.compile(r"^depth(5|10|20)(@100ms|@1000ms)?$")
KIND_STREAMS = {"trade": ("trade",), "aggTrade": ("aggTrade",), "bookTicker": ("bookTicker",),
                "depth": ("depth", "depth@100ms", "depth@1000ms")}
_DERIVED = ("ticker", "miniTicker", *(f"kline_{i}" for i in INTERVALS))
ALL_MINI = "!miniTicker@arr"


class MarketConnection(Connection):
    """A market-stream client: its subscriptions and payload form."""

    def __init__(self, request: web.Request, heartbeat_s: float | None, combined: bool,
                 streams: list[str]) -> None:
        super().__init__(request, "market", heartbeat_s)
        self.combined = combined
        self.streams: list[str] = []
        for s in streams:
            if s and s not in self.streams:
                self.streams.append(s)

    def push(self, stream: str, data: str) -> None:
        """Send one stream message (`data` is the payload's JSON)."""
        self.send(f'{{"stream":"{stream}","data":{data}}}' if self.combined else data)

    def first_symbol(self) -> str:
        return self.streams[0].partition("@")[0] if self.streams else "btcusdt"


class MarketStreams:
    """The market-stream endpoint and fan-out; `connections` are the live clients."""

    def __init__(self, markets: Callable[[], dict[str, SymbolMarket]],
                 heartbeat_s: Callable[[], float | None]) -> None:
        self._markets = markets
        self._heartbeat_s = heartbeat_s
        self.connections: list[MarketConnection] = []
        self._kline_open: dict[str, int] = {}  # kline stream -> open time last sent

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/stream", self._combined)
        app.router.add_get("/ws", self._raw)
        app.router.add_get("/ws/{name:.*}", self._raw)

    async def _combined(self, request: web.Request) -> web.StreamResponse:
        streams = request.query.get("streams", "").split("/")
        return await self._serve(request, MarketConnection(
            request, self._heartbeat_s(), True, streams))

    async def _raw(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", "")
        return await self._serve(request, MarketConnection(
            request, self._heartbeat_s(), False, name.split("/") if name else []))

    async def _serve(self, request: web.Request, conn: MarketConnection) -> web.StreamResponse:
        self.connections.append(conn)
        try:
            return await conn.serve(request, self._on_text)
        finally:
            if conn in self.connections:
                self.connections.remove(conn)

    # --- control frames ------------------------------------------------------------

    def _on_text(self, conn: Connection, text: str) -> None:
        assert isinstance(conn, MarketConnection)
        try:
            req = json.loads(text)
            rid = req.get("id")
            method, params = req.get("method"), req.get("params", [])
        except (ValueError, AttributeError):
            conn.send(dumps({"error": {"code": 3, "msg": "Invalid JSON: expected value"},
                             "id": None}))
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE") and isinstance(params, list) and all(
                isinstance(p, str) for p in params):
            for p in params:
                if method == "SUBSCRIBE" and p not in conn.streams:
                    conn.streams.append(p)
                elif method == "UNSUBSCRIBE" and p in conn.streams:
                    conn.streams.remove(p)
            conn.send(dumps({"result": None, "id": rid}))
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send(dumps({"result": list(conn.streams), "id": rid}))
        else:
            conn.send(dumps({"error": {"code": 2, "msg": f"Invalid request: unknown method "
                                                         f"or params {method!r}"}, "id": rid}))

    # --- fan-out -----------------------------------------------------------------

    def broadcast(self, messages: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Send engine market messages `(symbol, kind, payload)` to subscribers."""
        traded: dict[str, None] = {}
        for symbol, kind, payload in messages:
            if kind == "trade":
                traded[symbol] = None
            low = symbol.lower()
            data = dumps(payload)
            names = [f"{low}@{k}" for k in KIND_STREAMS.get(kind, ())]
            partial: dict[str, str] = {}
            for conn in list(self.connections):
                for stream in conn.streams:
                    if stream in names:
                        conn.push(stream, data)
                    elif kind == "depth" and stream.startswith(low + "@"):
                        m = _PARTIAL.match(stream.partition("@")[2])
                        if m:
                            if stream not in partial:
                                partial[stream] = self._partial(symbol, int(m.group(1)))
                            conn.push(stream, partial[stream])
        if traded:
            self._derived(list(traded))

    def _derived(self, traded: list[str]) -> None:
        """The ticker, mini ticker and kline streams of the symbols that `traded`,
        to those subscribed (computed only when someone is)."""
        wanted = {s for conn in self.connections for s in conn.streams
                  if s.partition("@")[2] in _DERIVED or s == ALL_MINI}
        if not wanted:
            return
        payloads: dict[str, list[str]] = {}
        minis: list[str] = []
        for symbol in traded:
            self._symbol_derived(symbol, wanted, payloads, minis)
        if minis and ALL_MINI in wanted:
            payloads[ALL_MINI] = ["[" + ",".join(minis) + "]"]
        for conn in list(self.connections):
            for stream in conn.streams:
                for data in payloads.get(stream, ()):
                    conn.push(stream, data)

    def _symbol_derived(self, symbol: str, wanted: set[str], payloads: dict[str, list[str]],
                        minis: list[str]) -> None:
        low = symbol.lower()
        market = self._markets()[symbol]
        last = market.history.last()
        if last is None:
            return
        now = last.time
        stats = market.history.stats(now) if wanted & {
            f"{low}@ticker", f"{low}@miniTicker", ALL_MINI} else None
        if stats is not None:
            mini = dumps(stats.mini_event(symbol, now))
            minis.append(mini)
            payloads[f"{low}@miniTicker"] = [mini]
            payloads[f"{low}@ticker"] = [dumps(stats.ticker_event(
                symbol, now, (market.best_bid(), market.best_ask())))]
        for stream in wanted:
            name = stream.partition("@")[2]
            if not stream.startswith(low + "@") or not name.startswith("kline_"):
                continue
            interval = name.partition("_")[2]
            out = []
            opened = self._kline_open.get(stream)
            current = market.history.candle(interval, now)
            assert current is not None
            if opened is not None and opened < current.open_ms:
                # the candle that ended since the last message, sent closed (x true)
                closed = market.history.candle(interval, opened)
                assert closed is not None
                out.append(dumps({"e": "kline", "E": now, "s": symbol,
                                  "k": closed.stream(symbol, now)}))
            self._kline_open[stream] = current.open_ms
            out.append(dumps({"e": "kline", "E": now, "s": symbol,
                              "k": current.stream(symbol, now)}))
            payloads[stream] = out

    def _partial(self, symbol: str, depth: int) -> str:
        market = self._markets()[symbol]
        bids, asks = market.book(depth)
        return dumps({"lastUpdateId": market.update_id,
                      "bids": [[d8(p), d8(q)] for p, q in bids],
                      "asks": [[d8(p), d8(q)] for p, q in asks]})

    # --- faults ------------------------------------------------------------------

    def disconnect(self, n: int | None = None) -> int:
        """Abort `n` (default all) connections, oldest first; returns how many."""
        victims = list(self.connections)[: n if n is not None else None]
        for conn in victims:
            conn.abort()
            self.connections.remove(conn)
        return len(victims)

    def send_malformed(self) -> None:
        for conn in self.connections:
            sym = conn.first_symbol()
            conn.send(f'{{"stream":"{sym}@trade","data":{{"e":"trade","E":' if conn.combined
                      else '{"e":"trade","E":')

    def send_unknown(self, now_ms: int) -> None:
        for conn in self.connections:
            data = dumps({"e": "someNewEvent", "E": now_ms})
            conn.push(f"{conn.first_symbol()}@someNewStream", data)

    def server_shutdown(self, now_ms: int) -> None:
        """The `serverShutdown` notice on every connection, then a close frame."""
        data = dumps({"e": "serverShutdown", "E": now_ms})
        for conn in list(self.connections):
            conn.push("!serverShutdown", data)
            conn.close()
