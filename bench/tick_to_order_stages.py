"""Where the tick-to-order path's time goes: CPU time per stage, per order.

Not a figure of `make bench` (bench_tick_to_order is): a tool to find what to cut.
It wires the bench's path (Binance market stream parser, the bus with the journal,
fsync "never", the strategy runtime and the bench's `Chaser`, OMS, risk, the Binance
venue and REST client up to `_attempt`, the hand-off to the HTTP transport), feeds
trade frames to `MarketDataStream._on_message` one at a time without a socket, and
stamps `time.thread_time_ns()` (CPU time of this thread: a shared machine's
preemptions do not count) at each stage. Prints one JSON line per stage with its
p10 and p50 in µs, then the whole path's; `ref_call_ns` says how fast the machine
was. The stamps cost about a microsecond each.

    TAPELOOP_NATIVE=0 .venv/bin/python -m bench.tick_to_order_stages  # TAPELOOP_BENCH_ORDERS=8000

As source only: its stamps wrap methods and module functions, which compiled callers
(events/native.py) call directly, past the wrappers; it refuses to run compiled.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import tempfile
import time
from decimal import Decimal
from typing import Any

from bench.bench_tick_to_order import Chaser, _config, _endpoints, _trade_frame
from bench.common import emit, reference_call_ns

STAGES = ("frame", "bus", "strategy", "oms", "risk", "risk_done", "published", "venue",
          "new_order", "sign", "signed", "hand_off")
_now = time.thread_time_ns


def _stamped(fn: Any, before: str | None, after: str | None, stamps: dict[str, int]) -> Any:
    if hasattr(fn, "__code__") and fn.__code__.co_flags & 0x80:  # a coroutine function
        @functools.wraps(fn)
        async def wrapper_async(*args: Any, **kwargs: Any) -> Any:
            if before:
                stamps[before] = _now()
            return await fn(*args, **kwargs)
        return wrapper_async

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before:
            stamps[before] = _now()
        result = fn(*args, **kwargs)
        if after:
            stamps[after] = _now()
        return result
    return wrapper


async def run(n: int, warmup: int = 1000) -> list[dict[str, int]]:
    """Stage stamps of `n` orders after `warmup`."""
    import adapters.binance.rest as rest_mod
    from adapters.binance.exchange_info import RateLimit
    from adapters.binance.order_path import OrderPath
    from adapters.binance.ratelimit import RateLimiter
    from adapters.binance.rest import BinanceRest
    from adapters.binance.signing import Credentials
    from adapters.binance.venue import BinanceVenue
    from daemon.kernel import tune_gc
    from daemon.node import TradingNode
    from daemon.trading.oms import OMS
    from daemon.trading.risk import RiskEngine
    from events.bus import Bus
    from events.journal import JournalPolicy
    from events.market import Trade
    from events.orders import OrderSubmitted
    from events.state import BalanceChanged
    from events.store import EventStore
    from replay.clock import LiveClock

    stamps: dict[str, int] = {}
    rows: list[dict[str, int]] = []

    class LastInchRest(BinanceRest):
        async def _attempt(self, method: str, path: str, query: str, headers: Any,
                           weight: int, is_order: bool) -> tuple[int, Any, bytes, int, int]:
            self.limiter.note_sent(weight, is_order, self._now_ns())
            stamps["hand_off"] = _now()
            rows.append(dict(stamps))
            stamps.clear()
            cid = query.partition("newClientOrderId=")[2].partition("&")[0]
            body = (b'{"symbol":"BTCUSDT","orderId":%d,"orderListId":-1,"clientOrderId":"%s",'
                    b'"transactTime":1763735400123,"price":"1.00","origQty":"0.001",'
                    b'"executedQty":"0","cummulativeQuoteQty":"0","status":"EXPIRED",'
                    b'"timeInForce":"IOC","type":"LIMIT","side":"BUY","fills":[]}'
                    % (len(rows), cid.encode()))
            return 200, {}, body, 0, 0

    patches = [(Chaser, "on_trade", "strategy", None), (OMS, "submit", "oms", None),
               (RiskEngine, "check", "risk", "risk_done"),
               (OrderPath, "_on_submitted", "venue", None),
               (BinanceRest, "new_order", "new_order", None),
               # what an order's request starts from when its query is made from the
               # event (order_path._place): the same stage
               (BinanceRest, "place_order", "new_order", None)]
    saved = [(cls, name, getattr(cls, name)) for cls, name, _, _ in patches]
    publish, sign_rest = Bus.publish, rest_mod.sign_rest

    def stamped_publish(self: Bus, event: Any, *args: Any) -> Any:
        cls = type(event)
        if cls is Trade:
            stamps["bus"] = _now()
        elif cls is OrderSubmitted:
            stamps["published"] = _now()
        return publish(self, event, *args)

    def stamped_sign(*args: Any) -> str:
        stamps["sign"] = _now()
        query = sign_rest(*args)
        stamps["signed"] = _now()
        return query

    for cls, name, before, after in patches:
        setattr(cls, name, _stamped(getattr(cls, name), before, after, stamps))
    Bus.publish = stamped_publish  # type: ignore[method-assign]
    rest_mod.sign_rest = stamped_sign
    try:
        with tempfile.TemporaryDirectory(prefix="tapeloop-stages-") as tmp:
            store = EventStore.open_writer(tmp)
            journal = store.open_journal(JournalPolicy(fsync="never"))
            bus = Bus(next_seq=journal.next_seq, journal=journal.stage, commit=journal.commit,
                  write=journal.flush)
            loop = asyncio.get_running_loop()
            node = TradingNode(_config(1), bus, LiveClock(loop), replay=False)
            inst = [i for k, i in node.instruments.items() if k[0] == "binance"]
            venue = BinanceVenue("binance", inst, bus, endpoints=_endpoints(1),
                                 credentials=Credentials(api_key="k", secret="s"),
                                 oms=node.oms, risk=node.risk, streams=["trade"])
            roomy = RateLimiter([RateLimit("REQUEST_WEIGHT", "MINUTE", 1, 10**9),
                                 RateLimit("ORDERS", "SECOND", 10, 10**9),
                                 RateLimit("ORDERS", "DAY", 1, 10**9)])
            venue.rest = LastInchRest(venue.endpoints.rest,
                                      Credentials(api_key="k", secret="s"), limiter=roomy)
            venue.subscribe(bus)
            node.risk.unblock_venue("binance")
            now = time.time_ns()
            bus.publish(BalanceChanged(ts_event=now, ts_recv=now, venue="binance",
                                       currency="USDT", total=Decimal(10**12),
                                       free=Decimal(10**12)))
            node.start()
            tune_gc()
            for i in range(n + warmup):
                sent = len(rows)
                stamps["frame"] = _now()
                venue.market._on_message(_trade_frame(i))
                while len(rows) == sent:  # the request's task, if it was not sent at once
                    await asyncio.sleep(0)
                if len(venue._tasks) > 100:
                    await asyncio.sleep(0)
            while venue._tasks:
                await asyncio.sleep(0)
            journal.close()
            store.close()
    finally:
        for cls, name, fn in saved:
            setattr(cls, name, fn)
        Bus.publish = publish  # type: ignore[method-assign]
        rest_mod.sign_rest = sign_rest
    return rows[warmup:]


def main() -> None:
    import events.bus
    from daemon.logging import configure_logging
    from events.native import is_native

    if is_native(events.bus):
        sys.exit("tick_to_order_stages times the source: run it with TAPELOOP_NATIVE=0")

    configure_logging("warning", stream=sys.stderr)
    rows = asyncio.run(run(int(os.environ.get("TAPELOOP_BENCH_ORDERS", 8000))))

    def pct(values: list[float], q: float) -> float:
        values.sort()
        return round(values[int(q * len(values))], 1)

    for a, b in zip(STAGES, STAGES[1:], strict=False):
        spans = [(r[b] - r[a]) / 1000 for r in rows if a in r and b in r]
        emit("tick_to_order_stage", stage=f"{a}->{b}", p10_cpu_us=pct(spans, 0.1),
             p50_cpu_us=pct(spans, 0.5))
    whole = [(r["hand_off"] - r["frame"]) / 1000 for r in rows]
    emit("tick_to_order_stage", stage="frame->hand_off", p10_cpu_us=pct(whole, 0.1),
         p50_cpu_us=pct(whole, 0.5), p99_cpu_us=pct(whole, 0.99), orders=len(rows),
         ref_call_ns=reference_call_ns())


if __name__ == "__main__":
    main()
